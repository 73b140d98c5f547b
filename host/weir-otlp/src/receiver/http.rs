//! OTLP/HTTP receiver: `POST /v1/{traces,logs,metrics}` with protobuf or JSON
//! bodies, gzip or zstd encoded, answered in the request's content type.

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::LengthLimitError;
use tonic::Code;
use weir_pipeline::{Batch, Signal, SubmitError};

use super::offload::{INLINE_MAX, INLINE_MAX_COMPRESSED};
use super::{Authenticated, DecodeError, Receiver, decompress};
use crate::rpc_status::RpcStatus;
use crate::{http_path, json, wire};

const TRANSPORT: &str = "http";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// The OTLP/HTTP routes.
pub fn router(receiver: Receiver) -> Router {
    let mut router = Router::new();
    for signal in Signal::ALL {
        router = router.route(
            http_path(signal),
            post(move |s: State<Receiver>, h: HeaderMap, b: Body| export(signal, s, h, b)),
        );
    }
    // Limits are applied by `export` itself, after decompression.
    router.layer(DefaultBodyLimit::disable()).with_state(receiver)
}

struct Failure {
    status: StatusCode,
    code: Code,
    message: String,
    retry_after: bool,
    /// What `Ingest::refuse` counts it under; None when `Ingest::submit` counted it.
    reason: Option<&'static str>,
}

impl Failure {
    fn new(status: StatusCode, code: Code, reason: &'static str, message: impl Into<String>) -> Self {
        Failure {
            status,
            code,
            message: message.into(),
            retry_after: false,
            reason: Some(reason),
        }
    }

    fn respond(self, format: Format) -> Response {
        let body = RpcStatus::new(self.code, self.message);
        let body = match format {
            Format::Protobuf => body.to_protobuf(),
            Format::Json => body.to_json(),
        };
        let mut resp = (self.status, [(header::CONTENT_TYPE, format.content_type())], body).into_response();
        if self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

async fn export(signal: Signal, State(r): State<Receiver>, headers: HeaderMap, body: Body) -> Response {
    let who = match &r.auth {
        Some(auth) => match auth.check(&headers) {
            Some(who) => Some(who),
            None => {
                r.ingest.refuse(TRANSPORT, signal, "unauthenticated", 0);
                return unauthorized();
            }
        },
        None => None,
    };
    let result = match content_format(&headers) {
        Ok(format) => accept(signal, &r, format, &headers, body, who.as_ref())
            .await
            .map(|()| format),
        Err(f) => Err(f),
    };
    match result {
        // An empty Export*ServiceResponse means full success.
        Ok(format) => {
            let body = match format {
                Format::Protobuf => Bytes::new(),
                Format::Json => Bytes::from_static(b"{}"),
            };
            ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
        }
        Err(f) => {
            if let Some(reason) = f.reason {
                r.ingest.refuse(TRANSPORT, signal, reason, 0);
            }
            // Errors answer in the request's format; JSON when it has none we know.
            f.respond(content_format(&headers).unwrap_or(Format::Json))
        }
    }
}

/// 401 with no body: no detail on what was wrong with the credentials.
pub fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")]).into_response()
}

fn content_format(headers: &HeaderMap) -> Result<Format, Failure> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        _ => Err(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::InvalidArgument,
            "unsupported_media_type",
            format!("unsupported Content-Type {ct:?}; send application/x-protobuf or application/json"),
        )),
    }
}

fn too_large(limit: usize) -> Failure {
    Failure::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        Code::ResourceExhausted,
        "too_large",
        format!("request body exceeds the limit of {limit} bytes (the receiver's max_request_size)"),
    )
}

async fn accept(
    signal: Signal,
    r: &Receiver,
    format: Format,
    headers: &HeaderMap,
    body: Body,
    who: Option<&Authenticated>,
) -> Result<(), Failure> {
    if !r.ingest.accepts(signal) {
        return Err(Failure {
            reason: Some("no_pipeline"),
            ..failure_of(SubmitError::NoPipeline(signal))
        });
    }
    let limit = r.max_request_size;
    let raw = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            too_large(limit)
        } else {
            Failure::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                "invalid",
                format!("reading the request body failed: {e}"),
            )
        }
    })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let compressed = encoding
        .as_deref()
        .is_some_and(|e| !matches!(e.trim(), "" | "identity"));
    let heavy = if compressed {
        raw.len() > INLINE_MAX_COMPRESSED
    } else {
        raw.len() > INLINE_MAX
    };
    let decode = move || decode(signal, format, encoding.as_deref(), raw, limit);
    let (payload, items) = if heavy {
        r.decode.run(decode).await.map_err(|e| {
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                "invalid",
                e.to_string(),
            )
        })??
    } else {
        decode()?
    };
    if items == 0 {
        return Ok(());
    }
    let payload = r.with_tenant(who, payload).map_err(|e| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            "invalid",
            e.to_string(),
        )
    })?;
    r.ingest
        .submit(TRANSPORT, Batch::new(signal, payload, items))
        .await
        .map_err(failure_of)
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Decompresses, then transcodes JSON or counts protobuf items: the CPU-heavy
/// part of a request, run on the decode pool for large bodies.
fn decode(
    signal: Signal,
    format: Format,
    encoding: Option<&str>,
    raw: Bytes,
    limit: usize,
) -> Result<(Bytes, usize), Failure> {
    let decoded = match decompress(encoding, &raw, limit) {
        Ok(Some(d)) => Bytes::from(d),
        Ok(None) => raw,
        Err(DecodeError::TooLarge { .. }) => return Err(too_large(limit)),
        Err(e @ DecodeError::UnsupportedEncoding(_)) => {
            return Err(Failure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::InvalidArgument,
                "unsupported_media_type",
                e.to_string(),
            ));
        }
        Err(e) => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                "invalid",
                e.to_string(),
            ));
        }
    };
    let bad = |m: String| Failure::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, "invalid", m);
    match format {
        Format::Protobuf => {
            let n = wire::count_items(signal, &decoded).map_err(|e| bad(e.to_string()))?;
            Ok((decoded, n))
        }
        Format::Json => json::to_protobuf(signal, &decoded).map_err(|e| bad(e.to_string())),
    }
}

fn failure_of(e: SubmitError) -> Failure {
    let message = e.to_string();
    let failure = |status, code| Failure {
        status,
        code,
        message: message.clone(),
        retry_after: false,
        reason: None,
    };
    match e {
        SubmitError::NoPipeline(_) => failure(StatusCode::NOT_FOUND, Code::Unimplemented),
        SubmitError::TooLarge { .. } => failure(StatusCode::PAYLOAD_TOO_LARGE, Code::ResourceExhausted),
        SubmitError::Invalid(_) => failure(StatusCode::BAD_REQUEST, Code::InvalidArgument),
        SubmitError::Full
        | SubmitError::ShuttingDown
        | SubmitError::PluginRejected(_)
        | SubmitError::Unavailable(_) => Failure {
            retry_after: true,
            ..failure(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable)
        },
    }
}
