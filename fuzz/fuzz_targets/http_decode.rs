//! The OTLP/HTTP request path after the body is read, as
//! `weir_otlp::receiver::http` runs it: Content-Encoding (`decompress`, capped
//! at the receiver's `max_request_size`), then protobuf validation
//! (`wire::count_items`) or JSON transcoding (`json::to_protobuf`).
//!
//! Input: byte 0 picks a Content-Encoding header value from `ENCODINGS`;
//! byte 1: bits 0-3 the signal, bit 4 JSON instead of protobuf; bytes 2-3: the
//! size limit in units of 4 bytes (u16 LE, so at most 256 KiB); the rest: the
//! body as received.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_fuzz::{assert_downstream_agrees, signal_of};
use weir_otlp::receiver::{DecodeError, decompress};

/// Header values as clients send them, including ones weir must refuse.
const ENCODINGS: &[Option<&str>] = &[
    None,
    Some(""),
    Some("identity"),
    Some("gzip"),
    Some(" GZip "),
    Some("zstd"),
    Some("ZSTD"),
    Some("br"),
    Some("deflate"),
    Some("gzip, zstd"),
    Some("x-gzip"),
];

fuzz_target!(|data: &[u8]| {
    let [enc, flags, l0, l1, body @ ..] = data else {
        return;
    };
    let encoding = ENCODINGS[usize::from(*enc) % ENCODINGS.len()];
    let signal = signal_of(flags & 0x0f);
    let json = flags & 0x10 != 0;
    let limit = usize::from(u16::from_le_bytes([*l0, *l1])) * 4;
    // axum's to_bytes refuses a raw body over the limit before decoding.
    if body.len() > limit {
        return;
    }
    let decoded = match decompress(encoding, body, limit) {
        Ok(Some(d)) => {
            assert!(
                d.len() <= limit,
                "decompressed {} bytes past the limit {limit}",
                d.len()
            );
            d
        }
        Ok(None) => {
            assert!(
                matches!(encoding.map(str::trim), None | Some("") | Some("identity")),
                "{encoding:?} passed through undecoded"
            );
            body.to_vec()
        }
        Err(DecodeError::TooLarge { limit: l }) => return assert_eq!(l, limit),
        Err(e) => return drop(e.to_string()),
    };
    if json {
        if let Ok((bytes, n)) = weir_otlp::json::to_protobuf(signal, &decoded) {
            assert_downstream_agrees(signal, &bytes, n);
        }
    } else if let Ok(n) = weir_otlp::wire::count_items(signal, &decoded) {
        assert_downstream_agrees(signal, &decoded, n);
    }
});
