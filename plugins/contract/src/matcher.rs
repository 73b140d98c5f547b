//! How the host's bulk matching (weir:plugin@0.2.0 `match-field`,
//! `match-attribute`) compares values — one definition for the host and for
//! the SDKs' local fallbacks.

use crate::glob::GlobSet;
use crate::types::{Column, Field, ValueRef};

/// Which values a match selects.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Equal to one of these strings.
    AnyOf(Vec<String>),
    /// Matching one of these globs.
    Glob(GlobSet),
    /// Present, whatever the value.
    Present,
    /// Absent.
    Absent,
}

impl Matcher {
    /// Whether a value (as its text; `None` when absent) is selected.
    pub fn hits(&self, text: Option<&str>) -> bool {
        match (self, text) {
            (Matcher::Absent, t) => t.is_none(),
            (_, None) => false,
            (Matcher::Present, Some(_)) => true,
            (Matcher::AnyOf(set), Some(t)) => set.iter().any(|s| s == t),
            (Matcher::Glob(g), Some(t)) => g.matches(t),
        }
    }
}

/// Fields whose empty entry is an empty string rather than an absent value.
fn is_text(field: Field) -> bool {
    use Field as F;
    matches!(
        field,
        F::Name
            | F::StatusMessage
            | F::TraceState
            | F::SeverityText
            | F::EventName
            | F::Unit
            | F::Description
    )
}

/// A field entry as the text a matcher compares: text fields as they are, ids
/// as lowercase hex, numbers in decimal, a log body by its value's text.
/// `None` when absent.
pub fn field_text(field: Field, bytes: &[u8]) -> Option<String> {
    use Field as F;
    match field {
        F::Body => ValueRef::decode(bytes).to_text(),
        _ if is_text(field) => std::str::from_utf8(bytes).ok().map(str::to_string),
        F::TraceId | F::SpanId | F::ParentSpanId => {
            (!bytes.is_empty()).then(|| bytes.iter().map(|b| format!("{b:02x}")).collect())
        }
        F::Kind | F::StatusCode | F::SeverityNumber => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| i32::from_le_bytes(b).to_string()),
        F::Flags => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| u32::from_le_bytes(b).to_string()),
        _ => <[u8; 8]>::try_from(bytes)
            .ok()
            .map(|b| u64::from_le_bytes(b).to_string()),
    }
}

/// The entries of a field column that `m` selects.
pub fn select_field(column: &Column, field: Field, m: &Matcher) -> Vec<u32> {
    (0..column.len())
        .filter(|&i| m.hits(field_text(field, column.get(i)).as_deref()))
        .map(|i| i as u32)
        .collect()
}

/// The entries of a tagged-value column that `m` selects.
pub fn select_values(column: &Column, m: &Matcher) -> Vec<u32> {
    (0..column.len())
        .filter(|&i| m.hits(column.value(i).to_text().as_deref()))
        .map(|i| i as u32)
        .collect()
}
