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

use super::{BuildError, partial};
use crate::codec::RawCodec;
use crate::grpc_path;

pub struct GrpcExporter {
    channel: Channel,
    headers: MetadataMap,
    compression: Option<CompressionEncoding>,
    timeout: Duration,
}

impl GrpcExporter {
    /// Connects lazily: a destination that is down at start-up is retried like any other.
    pub fn new(config: &OtlpExporterConfig) -> Result<Self, BuildError> {
        let endpoint = Endpoint::from_shared(config.endpoint.clone()).map_err(|e| BuildError::Endpoint {
            endpoint: config.endpoint.clone(),
            reason: e.to_string(),
        })?;
        let channel = endpoint
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy();
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

/// Retryable codes per the OTLP specification.
fn classify(status: &Status) -> ExportError {
    let message = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => ExportError::retryable(message),
        _ => ExportError::permanent(message),
    }
}
