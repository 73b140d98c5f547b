//! OTLP receivers: gRPC and HTTP listeners that validate, count and submit
//! requests into weir's pipelines, answering with the status codes the OTLP
//! specification prescribes.

mod decode;
pub mod grpc;
pub mod http;

pub use decode::{DecodeError, decompress};
