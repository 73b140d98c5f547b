//! OTLP export requests → Arrow record batches in the archive schema
//! ([`crate::schema`]). One call reads one encoded request (a [`weir_pipeline::Batch`]
//! payload) and builds one record batch of all its spans or log records.
//!
//! The converters read the protobuf wire format directly ([`wire`]) and copy
//! strings from the payload into the Arrow builders: no message tree, no
//! per-attribute allocation. Only arrays and kvlists in attribute values are
//! decoded with prost, to render them as JSON.

mod columns;
mod logs;
pub mod render;
mod span_ref;
mod spans;
pub mod wire;

#[cfg(test)]
mod tests;

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use weir_pipeline::Signal;

pub use spans::{kind_name, status_name};

/// Items left out because they cannot be stored (e.g. an id of the wrong length).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub count: usize,
    /// The first reason met, for the partial-success message.
    pub reason: Option<&'static str>,
}

impl Rejected {
    fn add(&mut self, why: &'static str) {
        self.count += 1;
        self.reason.get_or_insert(why);
    }

    /// Adds the items another part of the same batch left out.
    pub fn merge(&mut self, other: Rejected) {
        self.count += other.count;
        if self.reason.is_none() {
            self.reason = other.reason;
        }
    }
}

/// The rows of one request, and what had to be left out.
#[derive(Debug)]
pub struct Converted {
    pub batch: RecordBatch,
    pub rejected: Rejected,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("the archive stores traces and logs only; route {0} to another exporter")]
    Unsupported(Signal),
    #[error("not a valid OTLP export request: {0}")]
    Malformed(#[from] wire::WireError),
    #[error("building the Arrow columns failed: {0}")]
    Arrow(#[from] ArrowError),
}

/// Converts an encoded request in record batches of at most `chunk_rows` rows,
/// handing each to `emit` as soon as it is built (so the caller can encode one
/// while the next is converted); stops early when `emit` returns false. Spans
/// are sorted across the whole request first. Logs come as one batch.
///
/// An error can come after some chunks were emitted (a malformed attribute
/// deep in a span is found only when its row is built).
pub fn convert_chunks(
    signal: Signal,
    payload: &[u8],
    items: usize,
    chunk_rows: usize,
    mut emit: impl FnMut(Converted) -> bool,
) -> Result<(), ConvertError> {
    match signal {
        Signal::Traces => {
            let sorted = spans::SortedSpans::scan(payload, items)?;
            let step = chunk_rows.max(1);
            let mut at = 0;
            while at < sorted.count() {
                let end = (at + step).min(sorted.count());
                if !emit(sorted.convert(at..end)?) {
                    break;
                }
                at = end;
            }
            Ok(())
        }
        Signal::Logs => {
            emit(logs::convert(payload, items)?);
            Ok(())
        }
        Signal::Metrics => Err(ConvertError::Unsupported(signal)),
    }
}

/// Converts an encoded `Export{Trace,Logs}ServiceRequest`; `items` (the batch's
/// item count) sizes the column builders.
pub fn convert(signal: Signal, payload: &[u8], items: usize) -> Result<Converted, ConvertError> {
    match signal {
        Signal::Traces => spans::convert(payload, items),
        Signal::Logs => logs::convert(payload, items),
        Signal::Metrics => Err(ConvertError::Unsupported(signal)),
    }
}
