//! OTLP/HTTP exporter (protobuf bodies).

use std::io::Write;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use weir_pipeline::config::{Compression, OtlpExporterConfig};
use weir_pipeline::{Batch, ExportError, ExportOutcome, Exporter, Signal};

use super::{BuildError, partial};
use crate::http_path;

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
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout.0)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| BuildError::Client(e.to_string()))?;
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
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = resp.bytes().await.unwrap_or_default();
            if status.is_success() {
                return Ok(partial::outcome(batch.signal, &body));
            }
            let message = format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(512)])
            );
            match status {
                StatusCode::TOO_MANY_REQUESTS
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT => Err(ExportError::Retryable { message, retry_after }),
                _ => Err(ExportError::permanent(message)),
            }
        })
    }
}
