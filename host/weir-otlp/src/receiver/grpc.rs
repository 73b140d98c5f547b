//! OTLP/gRPC receiver: the three unary `Export` methods. The gRPC framing is
//! handled here rather than by tonic's server so that request bytes reach the
//! pipeline undecoded and decompression of large messages runs on the
//! [`DecodePool`], not on the async workers; errors are tonic `Status`es.

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tonic::{Code, Status};
use weir_pipeline::{Batch, Signal, SubmitError};

use super::offload::{DecodePool, INLINE_MAX, INLINE_MAX_COMPRESSED};
use super::{Authenticated, DecodeError, Receiver, decompress};
use crate::{grpc_path, wire};

const TRANSPORT: &str = "grpc";
const ACCEPT_ENCODING: &str = "gzip,zstd";
/// The 5-byte gRPC message prefix: compressed flag, big-endian length.
const PREFIX: usize = 5;

/// The gRPC routes (and UNIMPLEMENTED for any other method).
pub fn router(receiver: Receiver) -> axum::Router {
    let mut router = axum::Router::new();
    for signal in Signal::ALL {
        let r = receiver.clone();
        router = router.route(
            grpc_path(signal),
            axum::routing::any(move |req: Request| {
                let r = r.clone();
                async move { export(&r, signal, req).await }
            }),
        );
    }
    router.fallback(|| async {
        Status::unimplemented("unknown service or method; weir serves the OTLP export services")
            .into_http::<Body>()
    })
}

/// A refused request: the status to answer, and the reason it is counted under
/// (None when `Ingest::submit` already counted it).
#[derive(Debug)]
struct Refusal {
    status: Status,
    reason: Option<&'static str>,
}

impl Refusal {
    fn new(code: Code, reason: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status: Status::new(code, message),
            reason: Some(reason),
        }
    }
}

async fn export(r: &Receiver, signal: Signal, req: Request) -> Response {
    let who = match &r.auth {
        Some(auth) => match auth.check(req.headers()) {
            Some(who) => Some(who),
            None => {
                r.ingest.refuse(TRANSPORT, signal, "unauthenticated", 0);
                // No detail: which part was wrong is nobody's business.
                return Status::unauthenticated("").into_http::<Body>();
            }
        },
        None => None,
    };
    let mut resp = match accept(r, signal, req, who.as_ref()).await {
        Ok(()) => ok_response(),
        Err(refusal) => {
            if let Some(reason) = refusal.reason {
                r.ingest.refuse(TRANSPORT, signal, reason, 0);
            }
            refusal.status.into_http::<Body>()
        }
    };
    resp.headers_mut()
        .insert("grpc-accept-encoding", HeaderValue::from_static(ACCEPT_ENCODING));
    resp
}

/// An empty Export*ServiceResponse (full success, no partial_success), status OK.
fn ok_response() -> Response {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = Full::new(Bytes::from_static(&[0; PREFIX])).with_trailers(async move { Some(Ok(trailers)) });
    let mut resp = Response::new(Body::new(body));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    resp
}

#[derive(Clone, Copy, Debug)]
enum Encoding {
    Gzip,
    Zstd,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
        }
    }
}

fn encoding_of(headers: &HeaderMap) -> Result<Option<Encoding>, Refusal> {
    let Some(v) = headers.get("grpc-encoding") else {
        return Ok(None);
    };
    match v.to_str().map(str::trim) {
        Ok("identity") => Ok(None),
        Ok("gzip") => Ok(Some(Encoding::Gzip)),
        Ok("zstd") => Ok(Some(Encoding::Zstd)),
        _ => Err(Refusal::new(
            Code::Unimplemented,
            "unsupported_media_type",
            format!("grpc-encoding {v:?} is not supported; use gzip, zstd or identity"),
        )),
    }
}

async fn accept(
    r: &Receiver,
    signal: Signal,
    req: Request,
    who: Option<&Authenticated>,
) -> Result<(), Refusal> {
    if !r.ingest.accepts(signal) {
        return Err(Refusal {
            reason: Some("no_pipeline"),
            ..refusal_of(SubmitError::NoPipeline(signal))
        });
    }
    let encoding = encoding_of(req.headers())?;
    let limit = r.max_request_size;
    // The encoded message may be larger than the decoded limit only when
    // compressed, and never usefully beyond twice it.
    let frame_limit = limit.saturating_mul(2).max(4096).saturating_add(PREFIX);
    let body = Limited::new(req.into_body(), frame_limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                too_large(limit)
            } else {
                Refusal::new(
                    Code::Internal,
                    "invalid",
                    format!("reading the request failed: {e}"),
                )
            }
        })?
        .to_bytes();
    let (compressed, message) = unframe(body)?;
    let heavy = if compressed {
        message.len() > INLINE_MAX_COMPRESSED
    } else {
        message.len() > INLINE_MAX
    };
    let decode = move || decode(signal, encoding, compressed, message, limit);
    let (payload, items) = if heavy {
        run_on(&r.decode, decode).await?
    } else {
        decode()?
    };
    if items == 0 {
        return Ok(());
    }
    let payload = r
        .with_tenant(who, payload)
        .map_err(|e| Refusal::new(Code::InvalidArgument, "invalid", e.to_string()))?;
    r.ingest
        .submit(TRANSPORT, Batch::new(signal, payload, items))
        .await
        .map_err(|e| Refusal {
            reason: None,
            ..refusal_of(e)
        })
}

async fn run_on<T: Send + 'static>(
    pool: &DecodePool,
    f: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    pool.run(f)
        .await
        .map_err(|e| Refusal::new(Code::Internal, "invalid", e.to_string()))?
}

/// Splits the one message of a unary call from its prefix.
fn unframe(mut body: Bytes) -> Result<(bool, Bytes), Refusal> {
    let protocol = |m: &str| Refusal::new(Code::Internal, "invalid", format!("malformed gRPC request: {m}"));
    if body.len() < PREFIX {
        return Err(protocol("no request message"));
    }
    let compressed = match body.get_u8() {
        0 => false,
        1 => true,
        f => return Err(protocol(&format!("invalid compressed flag {f}"))),
    };
    let len = usize::try_from(body.get_u32()).unwrap_or(usize::MAX);
    if body.len() < len {
        return Err(protocol("the message is cut short"));
    }
    if body.len() > len {
        return Err(protocol("a unary call carries exactly one message"));
    }
    Ok((compressed, body))
}

/// Decompresses (when flagged), checks the size limit and counts the items.
fn decode(
    signal: Signal,
    encoding: Option<Encoding>,
    compressed: bool,
    message: Bytes,
    limit: usize,
) -> Result<(Bytes, usize), Refusal> {
    let payload = if compressed {
        let Some(encoding) = encoding else {
            return Err(Refusal::new(
                Code::Internal,
                "invalid",
                "malformed gRPC request: the message is flagged compressed but no grpc-encoding is given",
            ));
        };
        match decompress(Some(encoding.name()), &message, limit) {
            Ok(Some(d)) => Bytes::from(d),
            Ok(None) => message,
            Err(DecodeError::TooLarge { .. }) => return Err(too_large(limit)),
            Err(e) => return Err(Refusal::new(Code::InvalidArgument, "invalid", e.to_string())),
        }
    } else {
        message
    };
    if payload.len() > limit {
        return Err(Refusal::new(
            Code::ResourceExhausted,
            "too_large",
            format!(
                "request of {} bytes exceeds the limit of {limit} bytes (the receiver's max_request_size)",
                payload.len()
            ),
        ));
    }
    let items = wire::count_items(signal, &payload)
        .map_err(|e| Refusal::new(Code::InvalidArgument, "invalid", e.to_string()))?;
    Ok((payload, items))
}

fn too_large(limit: usize) -> Refusal {
    Refusal::new(
        Code::ResourceExhausted,
        "too_large",
        format!("request exceeds the limit of {limit} bytes (the receiver's max_request_size)"),
    )
}

fn refusal_of(e: SubmitError) -> Refusal {
    Refusal {
        status: status_of(e),
        reason: None,
    }
}

pub fn status_of(e: SubmitError) -> Status {
    let code = match e {
        SubmitError::NoPipeline(_) => Code::Unimplemented,
        SubmitError::Full
        | SubmitError::ShuttingDown
        | SubmitError::PluginRejected(_)
        | SubmitError::Unavailable(_) => Code::Unavailable,
        SubmitError::Invalid(_) => Code::InvalidArgument,
        SubmitError::TooLarge { .. } => Code::ResourceExhausted,
    };
    Status::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    use super::*;

    fn request(spans: usize) -> Vec<u8> {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "s".into(),
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span; spans],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn framed(compressed: bool, message: &[u8]) -> Bytes {
        let mut out = vec![u8::from(compressed)];
        out.extend_from_slice(&u32::try_from(message.len()).expect("len").to_be_bytes());
        out.extend_from_slice(message);
        Bytes::from(out)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).expect("write");
        enc.finish().expect("finish")
    }

    #[test]
    fn plain_and_gzip_messages_decode_and_count() {
        let msg = request(3);
        let (compressed, m) = unframe(framed(false, &msg)).expect("frame");
        let (payload, n) = decode(Signal::Traces, None, compressed, m, 1 << 20).expect("decode");
        assert_eq!((payload.as_ref(), n), (msg.as_slice(), 3));

        let (compressed, m) = unframe(framed(true, &gzip(&msg))).expect("frame");
        let (payload, n) =
            decode(Signal::Traces, Some(Encoding::Gzip), compressed, m, 1 << 20).expect("decode");
        assert_eq!((payload.as_ref(), n), (msg.as_slice(), 3));
    }

    #[test]
    fn malformed_frames_and_oversized_messages_are_refused() {
        let code = |r: Result<(bool, Bytes), Refusal>| r.err().map(|r| r.status.code());
        assert_eq!(
            code(unframe(Bytes::from_static(&[0, 0, 0]))),
            Some(Code::Internal)
        );
        assert_eq!(
            code(unframe(Bytes::from_static(&[0, 0, 0, 0, 9, 1]))),
            Some(Code::Internal)
        );
        assert_eq!(
            code(unframe(Bytes::from_static(&[7, 0, 0, 0, 0]))),
            Some(Code::Internal)
        );
        let mut two = framed(false, b"").to_vec();
        two.extend_from_slice(&framed(false, b""));
        assert_eq!(code(unframe(Bytes::from(two))), Some(Code::Internal));

        let bomb = gzip(&vec![0u8; 4 << 20]);
        let refused = decode(
            Signal::Traces,
            Some(Encoding::Gzip),
            true,
            Bytes::from(bomb),
            1 << 20,
        )
        .expect_err("too large");
        assert_eq!(
            (refused.status.code(), refused.reason),
            (Code::ResourceExhausted, Some("too_large"))
        );

        let refused = decode(Signal::Traces, None, true, Bytes::from_static(b"x"), 1 << 20)
            .expect_err("flag without encoding");
        assert_eq!(refused.status.code(), Code::Internal);

        let refused = decode(
            Signal::Traces,
            None,
            false,
            Bytes::from_static(b"\xff\xff"),
            1 << 20,
        )
        .expect_err("not protobuf");
        assert_eq!(
            (refused.status.code(), refused.reason),
            (Code::InvalidArgument, Some("invalid"))
        );
    }

    #[test]
    fn unknown_grpc_encoding_is_unimplemented() {
        let mut h = HeaderMap::new();
        h.insert("grpc-encoding", HeaderValue::from_static("br"));
        let refused = encoding_of(&h).expect_err("refused");
        assert_eq!(
            (refused.status.code(), refused.reason),
            (Code::Unimplemented, Some("unsupported_media_type"))
        );
        h.insert("grpc-encoding", HeaderValue::from_static("zstd"));
        assert!(matches!(encoding_of(&h).ok().flatten(), Some(Encoding::Zstd)));
    }
}
