//! OTLP for weir: receivers (gRPC, and HTTP with protobuf or JSON bodies) and
//! exporters (gRPC, HTTP, console).
//!
//! Payloads cross weir as encoded protobuf ([`weir_pipeline::Batch`]): the receiver
//! validates the wire format and counts items without building message trees
//! ([`wire`]), JSON is transcoded once at the edge ([`json`]), and the exporters
//! send the bytes as they are ([`codec::RawCodec`]). A batch too large for a
//! destination is cut into smaller requests without decoding ([`OtlpSplitter`]).

pub mod codec;
pub mod exporter;
pub mod json;
pub mod receiver;
pub mod rpc_status;
pub mod split;
pub mod tls;
pub mod wire;

pub use split::OtlpSplitter;

/// gRPC method paths of the three OTLP export services.
pub fn grpc_path(signal: weir_pipeline::Signal) -> &'static str {
    match signal {
        weir_pipeline::Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        weir_pipeline::Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        weir_pipeline::Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    }
}

/// OTLP/HTTP paths of the three signals.
pub fn http_path(signal: weir_pipeline::Signal) -> &'static str {
    match signal {
        weir_pipeline::Signal::Traces => "/v1/traces",
        weir_pipeline::Signal::Logs => "/v1/logs",
        weir_pipeline::Signal::Metrics => "/v1/metrics",
    }
}
