//! OTLP/HTTP receiver: `POST /v1/{traces,logs,metrics}` with protobuf or JSON
//! bodies, gzip or zstd encoded, answered in the request's content type.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use tokio::net::TcpListener;
use tonic::Code;
use weir_pipeline::{Batch, Ingest, Signal, SubmitError};

use super::{DecodeError, decompress};
use crate::rpc_status::RpcStatus;
use crate::{http_path, json, wire};

#[derive(Clone)]
struct HttpState {
    ingest: Arc<Ingest>,
    max_request_size: usize,
}

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

pub fn router(ingest: Arc<Ingest>, max_request_size: usize) -> Router {
    let state = HttpState {
        ingest,
        max_request_size,
    };
    let mut router = Router::new();
    for signal in Signal::ALL {
        router = router.route(
            http_path(signal),
            post(move |s: State<HttpState>, h: HeaderMap, b: Body| export(signal, s, h, b)),
        );
    }
    // Limits are applied by `export` itself, after decompression.
    router.layer(DefaultBodyLimit::disable()).with_state(state)
}

/// Serves OTLP/HTTP on `listener` until `stop` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    ingest: Arc<Ingest>,
    max_request_size: usize,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(ingest, max_request_size))
        .with_graceful_shutdown(stop)
        .await
}

struct Failure {
    status: StatusCode,
    code: Code,
    message: String,
    retry_after: bool,
}

impl Failure {
    fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Failure {
            status,
            code,
            message: message.into(),
            retry_after: false,
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

async fn export(signal: Signal, State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    let format = match content_format(&headers) {
        Ok(f) => f,
        Err(f) => return f.respond(Format::Json),
    };
    match accept(signal, &state, &headers, body).await {
        // An empty Export*ServiceResponse means full success.
        Ok(()) => {
            let body = match format {
                Format::Protobuf => Bytes::new(),
                Format::Json => Bytes::from_static(b"{}"),
            };
            ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
        }
        Err(f) => f.respond(format),
    }
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
            format!("unsupported Content-Type {ct:?}; send application/x-protobuf or application/json"),
        )),
    }
}

async fn accept(signal: Signal, state: &HttpState, headers: &HeaderMap, body: Body) -> Result<(), Failure> {
    if !state.ingest.accepts(signal) {
        return Err(failure_of(SubmitError::NoPipeline(signal)));
    }
    let limit = state.max_request_size;
    let too_large = || {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    let raw = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let decoded = match decompress(encoding, &raw, limit) {
        Ok(Some(d)) => Bytes::from(d),
        Ok(None) => raw,
        Err(DecodeError::TooLarge { .. }) => return Err(too_large()),
        Err(e @ DecodeError::UnsupportedEncoding(_)) => {
            return Err(Failure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::InvalidArgument,
                e.to_string(),
            ));
        }
        Err(e) => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                e.to_string(),
            ));
        }
    };
    let bad = |m: String| Failure::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, m);
    let (payload, items) = match content_format(headers)? {
        Format::Protobuf => {
            let n = wire::count_items(signal, &decoded).map_err(|e| bad(e.to_string()))?;
            (decoded, n)
        }
        Format::Json => json::to_protobuf(signal, &decoded).map_err(|e| bad(e.to_string()))?,
    };
    if items == 0 {
        return Ok(());
    }
    state
        .ingest
        .submit("http", Batch::new(signal, payload, items))
        .await
        .map_err(failure_of)
}

fn failure_of(e: SubmitError) -> Failure {
    let message = e.to_string();
    match e {
        SubmitError::NoPipeline(_) => Failure::new(StatusCode::NOT_FOUND, Code::Unimplemented, message),
        SubmitError::TooLarge { .. } => {
            Failure::new(StatusCode::PAYLOAD_TOO_LARGE, Code::ResourceExhausted, message)
        }
        SubmitError::Invalid(_) => Failure::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, message),
        SubmitError::Full
        | SubmitError::ShuttingDown
        | SubmitError::PluginRejected(_)
        | SubmitError::Unavailable(_) => Failure {
            retry_after: true,
            ..Failure::new(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, message)
        },
    }
}
