//! OTLP/HTTP exporter (protobuf bodies).

use std::io::Write;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use prost::Message;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use weir_pipeline::config::{Compression, OtlpExporterConfig};
use weir_pipeline::{Batch, ExportError, ExportOutcome, Exporter, Signal};

use super::{BuildError, partial};
use crate::http_path;
use crate::rpc_status::RpcStatus;
use crate::tls::ClientTls;
use crate::tls::server::ALPN_HTTP;

pub struct HttpExporter {
    client: reqwest::Client,
    urls: [String; 3],
    compression: Compression,
}

impl HttpExporter {
    pub fn new(config: &OtlpExporterConfig) -> Result<Self, BuildError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let header_err = |reason: String| BuildError::Header {
                name: name.clone(),
                reason,
            };
            let key = HeaderName::from_bytes(name.as_bytes()).map_err(|e| header_err(e.to_string()))?;
            let val = HeaderValue::from_str(value).map_err(|e| header_err(e.to_string()))?;
            headers.insert(key, val);
        }
        let mut client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout.0)
            .connect_timeout(Duration::from_secs(5));
        if config.endpoint.starts_with("https://") {
            let tls = ClientTls::load(config.tls.as_ref(), "tls", ALPN_HTTP)?;
            client = client.use_preconfigured_tls(tls.config);
        }
        let client = client.build().map_err(|e| BuildError::Client(e.to_string()))?;
        // A base URL gets /v1/<signal>; a URL with a path is used as it is.
        let base = config.endpoint.trim_end_matches('/');
        let has_path = base.splitn(4, '/').nth(3).is_some_and(|p| !p.is_empty());
        let url = |s: Signal| {
            if has_path {
                base.to_string()
            } else {
                format!("{base}{}", http_path(s))
            }
        };
        Ok(HttpExporter {
            client,
            urls: Signal::ALL.map(url),
            compression: config.compression,
        })
    }

    fn body(&self, payload: &[u8]) -> Result<(Vec<u8>, Option<&'static str>), ExportError> {
        let fail = |e: std::io::Error| ExportError::permanent(format!("compressing the request failed: {e}"));
        match self.compression {
            Compression::None => Ok((payload.to_vec(), None)),
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(payload).map_err(fail)?;
                Ok((enc.finish().map_err(fail)?, Some("gzip")))
            }
            Compression::Zstd => Ok((zstd::encode_all(payload, 1).map_err(fail)?, Some("zstd"))),
        }
    }
}

impl Exporter for HttpExporter {
    fn export<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
        Box::pin(async move {
            let (body, encoding) = match self.compression {
                Compression::None => (reqwest::Body::from(batch.payload.clone()), None),
                _ => {
                    let (b, e) = self.body(&batch.payload)?;
                    (reqwest::Body::from(b), e)
                }
            };
            let mut req = self
                .client
                .post(&self.urls[batch.signal.index()])
                .header(CONTENT_TYPE, "application/x-protobuf")
                .body(body);
            if let Some(e) = encoding {
                req = req.header(CONTENT_ENCODING, e);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| ExportError::retryable(format!("sending failed: {e}")))?;
            let status = resp.status();
            if status.is_success() {
                let body = resp.bytes().await.unwrap_or_default();
                return Ok(partial::outcome(batch.signal, &body));
            }
            let headers = resp.headers().clone();
            // A body that fails to arrive after the status is no reason to change the verdict.
            let body = resp.bytes().await.unwrap_or_default();
            Err(classify(status, &headers, &body, SystemTime::now()))
        })
    }
}

/// What a refused export means, per the OTLP/HTTP failure rules
/// (opentelemetry.io/docs/specs/otlp/#failures-1): 429, 502, 503 and 504 are
/// retryable, after `Retry-After` if the destination sent one; 413 is
/// [`ExportError::TooLarge`] (the stage splits the batch and resends it); every
/// other status, 400 included, is permanent. (A request that never got a
/// response, e.g. a refused connection, is retryable: see `export`.)
fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8], now: SystemTime) -> ExportError {
    let message = format!("HTTP {status}: {}", reason(headers, body));
    match status {
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => ExportError::Retryable {
            message,
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, now)),
        },
        StatusCode::PAYLOAD_TOO_LARGE => ExportError::too_large(message),
        _ => ExportError::permanent(message),
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 10.2.3); a date in
/// the past means now.
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The destination's reason: the message of the `google.rpc.Status` an OTLP
/// server answers with, or the start of the body as text.
fn reason(headers: &HeaderMap, body: &[u8]) -> String {
    let protobuf = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("protobuf"));
    if protobuf
        && let Ok(status) = RpcStatus::decode(body)
        && !status.message.is_empty()
    {
        return status.message;
    }
    String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    fn verdict(status: u16, h: &HeaderMap) -> ExportError {
        let status = StatusCode::from_u16(status).expect("status");
        classify(
            status,
            h,
            b"refused",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
    }

    #[test]
    fn retryable_statuses_follow_the_spec() {
        for status in [429, 502, 503, 504] {
            let e = verdict(status, &HeaderMap::new());
            assert!(
                matches!(
                    e,
                    ExportError::Retryable {
                        retry_after: None,
                        ..
                    }
                ),
                "{status}: {e:?}"
            );
        }
        for status in [400, 401, 403, 404, 405, 408, 409, 415, 500, 501, 505] {
            let e = verdict(status, &headers(&[("retry-after", "5")]));
            assert!(matches!(e, ExportError::Permanent { .. }), "{status}: {e:?}");
        }
        assert!(matches!(
            verdict(413, &HeaderMap::new()),
            ExportError::TooLarge { .. }
        ));
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let delay = |v: &str| match verdict(503, &headers(&[("retry-after", v)])) {
            ExportError::Retryable { retry_after, .. } => retry_after,
            e => panic!("{e:?}"),
        };
        assert_eq!(delay("120"), Some(Duration::from_secs(120)));
        assert_eq!(delay(" 7 "), Some(Duration::from_secs(7)));
        // now = 2023-11-14T22:13:20Z
        assert_eq!(
            delay("Tue, 14 Nov 2023 22:14:00 GMT"),
            Some(Duration::from_secs(40))
        );
        assert_eq!(
            delay("Mon, 13 Nov 2023 00:00:00 GMT"),
            Some(Duration::ZERO),
            "past means now"
        );
        assert_eq!(delay("soon"), None);
        assert_eq!(delay("-3"), None);
    }

    #[test]
    fn the_reason_is_the_status_message_when_there_is_one() {
        let body = RpcStatus::new(tonic::Code::InvalidArgument, "span 3 has no name").to_protobuf();
        let h = headers(&[("content-type", "application/x-protobuf")]);
        let e = classify(StatusCode::BAD_REQUEST, &h, &body, SystemTime::now());
        assert_eq!(e.to_string(), "HTTP 400 Bad Request: span 3 has no name");
        let e = classify(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            b"plain words",
            SystemTime::now(),
        );
        assert_eq!(e.to_string(), "HTTP 400 Bad Request: plain words");
    }
}
