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
