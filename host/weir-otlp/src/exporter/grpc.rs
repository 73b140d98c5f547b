//! OTLP/gRPC exporter: sends the batch's encoded request as it is.

use std::str::FromStr;
use std::time::Duration;

use futures::future::BoxFuture;
use http::uri::PathAndQuery;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use weir_pipeline::config::{Compression, OtlpExporterConfig};
use weir_pipeline::{Batch, ExportError, ExportOutcome, Exporter};

use hyper_rustls::FixedServerNameResolver;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::ServerName;

use super::{BuildError, partial};
use crate::codec::RawCodec;
use crate::grpc_path;
use crate::tls::ClientTls;

pub struct GrpcExporter {
    channel: Channel,
    headers: MetadataMap,
    compression: Option<CompressionEncoding>,
    timeout: Duration,
}

impl GrpcExporter {
    /// Connects lazily: a destination that is down at start-up is retried like any other.
    pub fn new(config: &OtlpExporterConfig) -> Result<Self, BuildError> {
        let endpoint_err = |e: tonic::transport::Error| BuildError::Endpoint {
            endpoint: config.endpoint.clone(),
            reason: e.to_string(),
        };
        let channel = match config.endpoint.strip_prefix("https://") {
            // TLS is weir's own connector's (rustls config, CA, client certificate,
            // server name). tonic refuses an https URI unless its own TLS is set
            // up (when its TLS feature is compiled in, e.g. through another crate
            // of the workspace), so it is given the http form to dial, the https
            // origin for the requests, and the connector puts the scheme back.
            Some(rest) => {
                let origin = http::Uri::from_str(&config.endpoint).map_err(|e| BuildError::Endpoint {
                    endpoint: config.endpoint.clone(),
                    reason: e.to_string(),
                })?;
                Endpoint::from_shared(format!("http://{rest}"))
                    .map_err(endpoint_err)?
                    .origin(origin)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    .connect_with_connector_lazy(ForceHttps(https_connector(config)?))
            }
            None => Endpoint::from_shared(config.endpoint.clone())
                .map_err(endpoint_err)?
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                .connect_lazy(),
        };
        let mut headers = MetadataMap::new();
        for (name, value) in &config.headers {
            let header_err = |reason: String| BuildError::Header {
                name: name.clone(),
                reason,
            };
            let key = AsciiMetadataKey::from_str(name).map_err(|e| header_err(e.to_string()))?;
            let val = AsciiMetadataValue::from_str(value).map_err(|e| header_err(e.to_string()))?;
            headers.insert(key, val);
        }
        Ok(GrpcExporter {
            channel,
            headers,
            compression: match config.compression {
                Compression::None => None,
                Compression::Gzip => Some(CompressionEncoding::Gzip),
                Compression::Zstd => Some(CompressionEncoding::Zstd),
            },
            timeout: config.timeout.0,
        })
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// TLS over TCP with weir's rustls config, HTTP/2 by ALPN as gRPC requires.
fn https_connector(
    config: &OtlpExporterConfig,
) -> Result<hyper_rustls::HttpsConnector<HttpConnector>, BuildError> {
    // No ALPN here: the connector sets h2 itself (and refuses a config that has it).
    let tls = ClientTls::load(config.tls.as_ref(), "tls", &[])?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.config)
        .https_only();
    let builder = match tls.server_name {
        Some(name) => {
            let name = ServerName::try_from(name).map_err(|e| BuildError::Client(e.to_string()))?;
            builder.with_server_name_resolver(FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    Ok(builder.enable_http2().wrap_connector(http))
}

/// Dials an `http://` URI (what tonic is given) over TLS, as `https://`.
#[derive(Clone)]
struct ForceHttps(hyper_rustls::HttpsConnector<HttpConnector>);

impl tower_service::Service<http::Uri> for ForceHttps {
    type Response =
        <hyper_rustls::HttpsConnector<HttpConnector> as tower_service::Service<http::Uri>>::Response;
    type Error = <hyper_rustls::HttpsConnector<HttpConnector> as tower_service::Service<http::Uri>>::Error;
    type Future = <hyper_rustls::HttpsConnector<HttpConnector> as tower_service::Service<http::Uri>>::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let mut parts = uri.clone().into_parts();
        parts.scheme = Some(http::uri::Scheme::HTTPS);
        // An http URI with an authority always has an https twin; if not, the
        // https-only connector refuses the original with its own error.
        let uri = http::Uri::from_parts(parts).unwrap_or(uri);
        self.0.call(uri)
    }
}

impl Exporter for GrpcExporter {
    fn export<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
        Box::pin(async move {
            let mut client = tonic::client::Grpc::new(self.channel.clone());
            if let Some(c) = self.compression {
                client = client.send_compressed(c);
            }
            client
                .ready()
                .await
                .map_err(|e| ExportError::retryable(format!("destination not ready: {e}")))?;
            let mut request = tonic::Request::new(batch.payload.clone());
            *request.metadata_mut() = self.headers.clone();
            request.set_timeout(self.timeout);
            let path = PathAndQuery::from_static(grpc_path(batch.signal));
            match client.unary(request, path, RawCodec).await {
                Ok(resp) => Ok(partial::outcome(batch.signal, resp.get_ref())),
                Err(status) => Err(classify(&status)),
            }
        })
    }
}

/// What a failed export means, per the OTLP specification's failure rules
/// (opentelemetry.io/docs/specs/otlp/#failures):
///
/// - CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and
///   DATA_LOSS are retryable;
/// - RESOURCE_EXHAUSTED is retryable only when the status carries a
///   `google.rpc.RetryInfo` (the server says it can recover); without one it is
///   [`ExportError::TooLarge`] when the message says the request was larger than
///   the server's limit (the stage then splits the batch and resends it), and
///   permanent otherwise;
/// - every other code is permanent.
///
/// A RetryInfo's delay becomes `retry_after` for any retryable code. One
/// departure from the letter of the list: tonic servers refuse an oversized
/// message with OUT_OF_RANGE ("decoded message length too large"); retrying
/// the same bytes cannot succeed, so that is TooLarge too.
fn classify(status: &Status) -> ExportError {
    let code = status.code();
    let retry_info = details::retry_info(status.details());
    let message = format!("{code:?}: {}", status.message());
    let too_large = retry_info.is_none() && says_too_large(status.message());
    match code {
        Code::OutOfRange if too_large => ExportError::too_large(message),
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => ExportError::Retryable {
            message,
            retry_after: retry_info.flatten(),
        },
        Code::ResourceExhausted => match retry_info {
            Some(retry_after) => ExportError::Retryable { message, retry_after },
            None if too_large => ExportError::too_large(message),
            None => ExportError::permanent(format!(
                "{message} (not retried: RESOURCE_EXHAUSTED without RetryInfo means the destination cannot recover, per the OTLP specification)"
            )),
        },
        _ => ExportError::permanent(message),
    }
}

/// Whether a status message is a gRPC implementation's "message too large".
fn says_too_large(message: &str) -> bool {
    const NEEDLES: [&str; 4] = [
        // grpc-go "grpc: received message larger than max (N vs. M)" (also "after
        // decompression"); grpcio / C-core "Received message larger than max (N vs. M)".
        "larger than max",
        // tonic "decoded message length too large: found N bytes, the limit is: M bytes".
        "message length too large",
        // grpc-java "gRPC message exceeds maximum size N: M".
        "exceeds maximum size",
        // weir's own receiver "request of N bytes exceeds the limit of M bytes (the receiver's max_request_size)".
        "max_request_size",
    ];
    let message = message.to_ascii_lowercase();
    NEEDLES.iter().any(|n| message.contains(n))
}

/// The `google.rpc.Status` a server may put in `grpc-status-details-bin`,
/// and the one detail the retry rules read.
mod details {
    use std::time::Duration;

    use prost::Message;

    const RETRY_INFO: &str = "type.googleapis.com/google.rpc.RetryInfo";

    #[derive(Clone, PartialEq, Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
        #[prost(message, repeated, tag = "3")]
        details: Vec<Any>,
    }

    /// google.protobuf.Any
    #[derive(Clone, PartialEq, Message)]
    pub(super) struct Any {
        #[prost(string, tag = "1")]
        pub type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    /// google.rpc.RetryInfo
    #[derive(Clone, PartialEq, Message)]
    pub(super) struct RetryInfo {
        #[prost(message, optional, tag = "1")]
        pub retry_delay: Option<ProtoDuration>,
    }

    /// google.protobuf.Duration
    #[derive(Clone, PartialEq, Message)]
    pub(super) struct ProtoDuration {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    /// `Some(delay)` when the details hold a RetryInfo (`delay` is `None` if it
    /// has no retry_delay); `None` without one, or when the details do not decode.
    pub(super) fn retry_info(details: &[u8]) -> Option<Option<Duration>> {
        if details.is_empty() {
            return None;
        }
        let status = RpcStatus::decode(details).ok()?;
        let any = status.details.iter().find(|a| a.type_url == RETRY_INFO)?;
        let info = RetryInfo::decode(&any.value[..]).ok()?;
        Some(info.retry_delay.map(|d| {
            // A negative delay means "now".
            let secs = u64::try_from(d.seconds).unwrap_or(0);
            let nanos = u32::try_from(d.nanos).unwrap_or(0).min(999_999_999);
            Duration::new(secs, if d.seconds < 0 { 0 } else { nanos })
        }))
    }

    #[cfg(test)]
    pub(super) fn encode(code: i32, details: Vec<Any>) -> Vec<u8> {
        RpcStatus {
            code,
            message: String::new(),
            details,
        }
        .encode_to_vec()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use prost::Message;

    use super::details::{Any, ProtoDuration, RetryInfo};
    use super::*;

    fn retry_info(seconds: i64, nanos: i32) -> Any {
        Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: RetryInfo {
                retry_delay: Some(ProtoDuration { seconds, nanos }),
            }
            .encode_to_vec(),
        }
    }

    fn with(code: Code, message: &str, details: Vec<Any>) -> Status {
        let encoded = details::encode(code as i32, details);
        // Through the trailers and back, as a client receives it.
        let mut headers = http::HeaderMap::new();
        Status::with_details(code, message, Bytes::from(encoded))
            .add_header(&mut headers)
            .expect("encodable status");
        Status::from_header_map(&headers).expect("a status in the headers")
    }

    fn retry_after(e: &ExportError) -> Option<Option<Duration>> {
        match e {
            ExportError::Retryable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    #[test]
    fn retryable_codes_follow_the_spec() {
        for code in [
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unavailable,
            Code::DataLoss,
        ] {
            assert_eq!(
                retry_after(&classify(&Status::new(code, "x"))),
                Some(None),
                "{code:?}"
            );
            let delayed = classify(&with(code, "slow down", vec![retry_info(3, 500_000_000)]));
            assert_eq!(
                retry_after(&delayed),
                Some(Some(Duration::from_millis(3500))),
                "{code:?}"
            );
        }
        for code in [
            Code::Unknown,
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::FailedPrecondition,
            Code::Unimplemented,
            Code::Internal,
            Code::Unauthenticated,
        ] {
            let e = classify(&with(code, "no", vec![retry_info(1, 0)]));
            assert!(matches!(e, ExportError::Permanent { .. }), "{code:?}: {e:?}");
        }
    }

    #[test]
    fn resource_exhausted_is_retried_only_with_retry_info() {
        let e = classify(&with(Code::ResourceExhausted, "quota", vec![retry_info(2, 0)]));
        assert_eq!(retry_after(&e), Some(Some(Duration::from_secs(2))));
        // RetryInfo without a delay: retryable, on the exporter's own backoff.
        let bare = Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: Vec::new(),
        };
        assert_eq!(
            retry_after(&classify(&with(Code::ResourceExhausted, "quota", vec![bare]))),
            Some(None)
        );
        // Other details, no details, undecodable details: not retried.
        let quota = Any {
            type_url: "type.googleapis.com/google.rpc.QuotaFailure".into(),
            value: vec![1, 2, 3],
        };
        let e = classify(&with(Code::ResourceExhausted, "quota exceeded", vec![quota]));
        assert!(
            matches!(&e, ExportError::Permanent { message } if message.contains("without RetryInfo")),
            "{e:?}"
        );
        let e = classify(&Status::resource_exhausted("quota exceeded"));
        assert!(matches!(e, ExportError::Permanent { .. }), "{e:?}");
        let garbage = Status::with_details(Code::ResourceExhausted, "x", Bytes::from_static(b"\xff\xff"));
        assert!(matches!(classify(&garbage), ExportError::Permanent { .. }));
        // A negative delay is no wait.
        let e = classify(&with(Code::Unavailable, "x", vec![retry_info(-5, 7)]));
        assert_eq!(retry_after(&e), Some(Some(Duration::ZERO)));
    }

    #[test]
    fn messages_too_large_are_too_large() {
        for message in [
            "grpc: received message larger than max (5242880 vs. 4194304)",
            "grpc: received message after decompression larger than max (5242880 vs. 4194304)",
            "Received message larger than max (5242880 vs. 4194304)",
            "Error, decoded message length too large: found 5242880 bytes, the limit is: 4194304 bytes",
            "gRPC message exceeds maximum size 4194304: 5242880",
            "request of 5242880 bytes exceeds the limit of 4194304 bytes (the receiver's max_request_size)",
        ] {
            let e = classify(&Status::resource_exhausted(message));
            assert!(matches!(e, ExportError::TooLarge { .. }), "{message}: {e:?}");
        }
        // tonic refuses an oversized message with OUT_OF_RANGE.
        let e = classify(&Status::out_of_range(
            "Error, decoded message length too large: found 5242880 bytes, the limit is: 4194304 bytes",
        ));
        assert!(matches!(e, ExportError::TooLarge { .. }), "{e:?}");
        // With RetryInfo the server says waiting helps: retry.
        let e = classify(&with(
            Code::ResourceExhausted,
            "grpc: received message larger than max (1 vs. 0)",
            vec![retry_info(1, 0)],
        ));
        assert_eq!(retry_after(&e), Some(Some(Duration::from_secs(1))));
    }
}
