//! TLS for weir's listeners and exporters, with rustls on the `ring` provider
//! (no OpenSSL, no C build beyond ring's): PEM loading with errors that name
//! the config key, certificates checked against their keys and their validity
//! period, and reloading when the files' content changes.

pub mod client;
mod error;
mod pem;
pub mod server;
mod validity;
pub(crate) mod watch;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use client::ClientTls;
pub use error::{TlsError, TlsErrorKind};
pub use server::ServerTls;
use weir_pipeline::config::TlsVersion;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn versions(min: TlsVersion) -> &'static [&'static rustls::SupportedProtocolVersion] {
    match min {
        TlsVersion::V1_2 => rustls::ALL_VERSIONS,
        TlsVersion::V1_3 => TLS13_ONLY,
    }
}
