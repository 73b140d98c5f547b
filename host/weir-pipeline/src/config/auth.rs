//! `auth` tables: bearer tokens a receiver (`receivers.X.auth`) or the admin
//! server (`admin.auth`) accepts. Tokens are never written in the config
//! itself: each entry names a file (a mounted Secret) or an environment
//! variable holding one or more tokens, so several can be valid at once while
//! clients rotate.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, HumanDuration};

/// One source of accepted tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSource {
    /// A file with one token per line (blank lines and `#` comments ignored);
    /// reread when its content changes.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// An environment variable with one token per line; read at (re)load.
    #[serde(default)]
    pub env: Option<String>,
    /// Requests with these tokens get the resource attribute
    /// `tenant_attribute` = this value (any value the client sent under that
    /// key is replaced).
    #[serde(default)]
    pub tenant: Option<String>,
}

fn default_tenant_attribute() -> String {
    "tenant".into()
}

fn default_reload_interval() -> HumanDuration {
    HumanDuration::from_secs(10)
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Where the accepted tokens are; a request must carry one of them as
    /// `authorization: Bearer <token>`.
    pub tokens: Vec<TokenSource>,
    /// The resource attribute that carries a token's `tenant`.
    #[serde(default = "default_tenant_attribute")]
    pub tenant_attribute: String,
    /// How often token files are compared with what is loaded; "0s": never.
    #[serde(default = "default_reload_interval")]
    pub reload_interval: HumanDuration,
}

impl AuthConfig {
    /// Static checks; `key` is the table's dotted path.
    pub fn validate(&self, key: &str, errors: &mut Vec<ConfigError>) {
        if self.tokens.is_empty() {
            errors.push(ConfigError::new(
                format!("{key}.tokens"),
                "lists no token source; add { file = \"/path/to/tokens\" } or { env = \"VAR\" }, or remove the auth table",
            ));
        }
        for (i, t) in self.tokens.iter().enumerate() {
            let k = format!("{key}.tokens[{i}]");
            match (&t.file, &t.env) {
                (Some(_), Some(_)) => errors.push(ConfigError::new(
                    k.clone(),
                    "give either file or env, not both; use two entries for two sources",
                )),
                (None, None) => errors.push(ConfigError::new(
                    k.clone(),
                    "needs file = \"/path/to/tokens\" or env = \"VAR\"",
                )),
                _ => {}
            }
            if let Some(env) = &t.env
                && (env.is_empty() || env.contains('='))
            {
                errors.push(ConfigError::new(
                    format!("{k}.env"),
                    format!("{env:?} is not an environment variable name"),
                ));
            }
            if t.tenant.as_deref().is_some_and(str::is_empty) {
                errors.push(ConfigError::new(
                    format!("{k}.tenant"),
                    "is empty; name the tenant or remove the key",
                ));
            }
        }
        if self.tenant_attribute.is_empty() {
            errors.push(ConfigError::new(
                format!("{key}.tenant_attribute"),
                "is empty; name the resource attribute, e.g. \"tenant\"",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_needs_exactly_one_source() {
        let a: AuthConfig = toml::from_str(
            "tokens = [{ file = \"/t\", tenant = \"a\" }, { env = \"T\", file = \"/u\" }, {}, { env = \"A=B\" }]",
        )
        .expect("parse");
        assert_eq!(a.tenant_attribute, "tenant");
        let mut errors = Vec::new();
        a.validate("receivers.r.auth", &mut errors);
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "receivers.r.auth.tokens[1]",
                "receivers.r.auth.tokens[2]",
                "receivers.r.auth.tokens[3].env"
            ]
        );
        let mut errors = Vec::new();
        toml::from_str::<AuthConfig>("tokens = []")
            .expect("parse")
            .validate("admin.auth", &mut errors);
        assert_eq!(errors[0].key, "admin.auth.tokens");
    }
}
