//! A batch of telemetry as it travels through weir: the encoded OTLP export
//! request plus the number of items (spans, log records, metric points) in it.
//!
//! Payloads stay encoded: an OTLP export request is a single repeated field, so two
//! encoded requests concatenated are one valid request holding both. Batching is
//! therefore a memcpy, and pass-through never decodes and re-encodes.

use bytes::{Bytes, BytesMut};

use crate::Signal;

#[derive(Clone, Debug)]
pub struct Batch {
    pub signal: Signal,
    /// An encoded `Export{Trace,Logs,Metrics}ServiceRequest`.
    pub payload: Bytes,
    pub items: usize,
}

impl Batch {
    pub fn new(signal: Signal, payload: Bytes, items: usize) -> Self {
        Batch {
            signal,
            payload,
            items,
        }
    }

    /// Joins batches of one signal into one request (see the module docs for why
    /// concatenation is a valid merge).
    pub fn concat(signal: Signal, parts: &[Batch]) -> Batch {
        if let [only] = parts {
            return only.clone();
        }
        let len = parts.iter().map(|b| b.payload.len()).sum();
        let mut buf = BytesMut::with_capacity(len);
        for part in parts {
            buf.extend_from_slice(&part.payload);
        }
        Batch {
            signal,
            payload: buf.freeze(),
            items: parts.iter().map(|b| b.items).sum(),
        }
    }
}

/// Why a request could not be split to a size limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// One item (with its resource and scope) is larger than the limit by itself.
    #[error(
        "one {noun} in this request takes {bytes} bytes encoded (with its resource and scope), more than the {limit}-byte batch limit of an exporter; send smaller items or raise batch.max_bytes"
    )]
    ItemTooLarge {
        noun: &'static str,
        bytes: usize,
        limit: usize,
    },
    #[error("cannot split the request: {0}")]
    Malformed(String),
}

/// Splits an encoded request into requests of at most `max_bytes` each, by
/// resource, scope and item, keeping item order (supplied by the OTLP crate,
/// which knows the wire format).
pub trait RequestSplitter: Send + Sync + 'static {
    fn split(&self, batch: &Batch, max_bytes: usize) -> Result<Vec<Batch>, SplitError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_joins_payloads_and_counts() {
        let a = Batch::new(Signal::Traces, Bytes::from_static(b"\x0a\x00"), 2);
        let b = Batch::new(Signal::Traces, Bytes::from_static(b"\x0a\x01\x00"), 3);
        let joined = Batch::concat(Signal::Traces, &[a, b]);
        assert_eq!(&joined.payload[..], b"\x0a\x00\x0a\x01\x00");
        assert_eq!(joined.items, 5);
    }
}
