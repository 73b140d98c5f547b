//! Config values that may hold credentials. Their `Debug` (and so every log line
//! or report that formats a config) shows `<redacted>` instead of the value.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;

use serde::Deserialize;

const REDACTED: &str = "<redacted>";

/// A string that is a credential: a token, a password, a key.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends or compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Request headers an exporter sends. Values are often API keys
/// (`authorization`, `x-api-key`), so all are redacted; names are shown.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Headers(BTreeMap<String, String>);

impl Headers {
    pub fn new(map: BTreeMap<String, String>) -> Self {
        Headers(map)
    }
}

impl Deref for Headers {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, REDACTED)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_values() {
        let h = Headers::new(BTreeMap::from([(
            "authorization".to_string(),
            "Bearer s3cret".to_string(),
        )]));
        let shown = format!("{h:?} {:?}", Secret::new("hunter2"));
        assert_eq!(shown, "{\"authorization\": \"<redacted>\"} <redacted>");
        assert_eq!(h["authorization"], "Bearer s3cret");
    }
}
