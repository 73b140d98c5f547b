//! OTLP receivers: gRPC and HTTP listeners that validate, count and submit
//! requests into weir's pipelines, answering with the status codes the OTLP
//! specification prescribes.
//!
//! Serving is shared with the admin server: [`listen::serve`] runs an axum
//! router behind an accept loop with connection limits and timeouts;
//! [`threaded::ThreadedServer`] runs one on its own thread; one [`Shutdown`]
//! deadline bounds how long connections may finish.

pub mod auth;
mod connection;
mod connection_metrics;
mod decode;
mod fd_limit;
pub mod grpc;
pub mod http;
pub mod listen;
mod offload;
mod shutdown;
pub mod tenant;
pub mod threaded;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use auth::{Authenticated, Authenticator};
pub use connection::Protocol;
pub use connection_metrics::ConnectionMetrics;
pub use decode::{DecodeError, decompress};
pub use fd_limit::open_file_limit;
pub use offload::{DecodePool, OffloadError};
pub use shutdown::Shutdown;
use weir_pipeline::Ingest;

/// What both receivers need to take a request: where it goes, how large it may
/// be, and where its decoding runs.
#[derive(Clone)]
pub struct Receiver {
    pub ingest: Arc<Ingest>,
    /// Largest request accepted, after decompression.
    pub max_request_size: usize,
    pub decode: DecodePool,
    /// Bearer tokens required of every request, when configured.
    pub auth: Option<Authenticator>,
}

impl Receiver {
    /// Puts the authenticated tenant (if any) on every resource of `payload`.
    fn with_tenant(
        &self,
        who: Option<&Authenticated>,
        payload: bytes::Bytes,
    ) -> Result<bytes::Bytes, tenant::Malformed> {
        match (who.and_then(|w| w.tenant.as_deref()), &self.auth) {
            (Some(tenant), Some(auth)) => {
                tenant::set_resource_attribute(&payload, auth.tenant_attribute(), tenant)
                    .map(bytes::Bytes::from)
            }
            _ => Ok(payload),
        }
    }
}
