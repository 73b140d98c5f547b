//! OTLP exporters (gRPC, HTTP) and a console exporter for humans.

mod console;
mod grpc;
mod http;
mod partial;

pub use console::ConsoleExporter;
pub use grpc::GrpcExporter;
pub use http::HttpExporter;

/// Build errors an exporter can report at start-up.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("invalid header {name:?}: {reason}")]
    Header { name: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// Its key is relative to the exporter's table (`tls.ca_file`).
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
}

impl BuildError {
    /// The config error for `[exporters.NAME]` (`key` = `exporters.NAME`).
    pub fn to_config_error(&self, key: &str) -> weir_pipeline::config::ConfigError {
        match self {
            BuildError::Tls(e) => {
                weir_pipeline::config::ConfigError::new(format!("{key}.{}", e.key), e.kind.to_string())
            }
            e => weir_pipeline::config::ConfigError::new(key, e.to_string()),
        }
    }
}
