//! Validates an encoded OTLP export request at the door and counts its items
//! (spans, log records, metric data points) without building message trees.
//!
//! Receivers call [`count_items`] on every request before it can be batched with
//! other clients' data, so it refuses what a strict decoder downstream (prost, Go
//! protobuf, the Collector) would refuse, and a bad request fails alone:
//!
//! - framing: truncated fields, bad varints, groups, field number 0;
//! - a known field sent with another wire type than the OTLP schema gives it
//!   (prost refuses that); repeated scalars may be packed or not;
//! - invalid UTF-8 in any `string` field of the schema (attribute keys and
//!   string values at every depth, names, trace_state, status message, log
//!   severity_text and event_name, metric name/description/unit, schema_url,
//!   entity refs...), as prost and Go protobuf check when decoding;
//! - message nesting deeper than [`MAX_MESSAGE_DEPTH`] (prost's recursion
//!   limit), which bounds AnyValue array_value / kvlist_value nesting;
//! - id lengths: span trace_id 16 and span_id 8 bytes (required), parent span,
//!   link, log record and exemplar ids empty or 16 / 8 bytes.
//!
//! Unknown fields are accepted with their framing checked, so newer clients keep
//! working. Errors name the field path and the byte, e.g.
//! `resource_spans[0].scope_spans[1].spans[3].attributes["http.url"].value.string_value: invalid UTF-8 at byte 1234`.

use weir_pipeline::Signal;

mod common;
pub(crate) mod cursor;
mod envelope;
pub(crate) mod fault;
mod fields;
mod logs;
pub(crate) mod metrics;
mod traces;

#[cfg(test)]
pub(crate) mod fixtures;

pub use common::MAX_MESSAGE_DEPTH;
pub use fields::{FieldError, Fields, Value};

/// Why a request was refused: what is wrong, where (a field path, empty above
/// the first field), what was found if that helps, and at which byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{path}{}{what}{} at byte {offset}",
    if path.is_empty() { "" } else { ": " },
    note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
)]
pub struct WireError {
    pub path: String,
    pub what: &'static str,
    pub note: Option<String>,
    pub offset: usize,
}

impl WireError {
    pub(crate) fn framing(what: &'static str, offset: usize) -> Self {
        WireError {
            path: String::new(),
            what,
            note: None,
            offset,
        }
    }
}

/// Validates an encoded `Export*ServiceRequest` (or several concatenated) and
/// counts its items: spans, log records, or metric data points.
pub fn count_items(signal: Signal, request: &[u8]) -> Result<usize, WireError> {
    let counted = match signal {
        Signal::Traces => envelope::request::<traces::Traces>(request),
        Signal::Logs => envelope::request::<logs::Logs>(request),
        Signal::Metrics => envelope::request::<metrics::Metrics>(request),
    };
    counted.map_err(|f| f.into_error())
}

#[cfg(test)]
mod tests;
