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

/// ring's suites with AES-128-GCM first: as secure for this use and cheaper
/// per byte than AES-256 (telemetry is bulk data); ChaCha20 stays for clients
/// without AES instructions.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
        | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 1,
        _ => 2,
    });
    Arc::new(provider)
}

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn versions(min: TlsVersion) -> &'static [&'static rustls::SupportedProtocolVersion] {
    match min {
        TlsVersion::V1_2 => rustls::ALL_VERSIONS,
        TlsVersion::V1_3 => TLS13_ONLY,
    }
}
