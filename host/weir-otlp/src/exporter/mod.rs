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
}
