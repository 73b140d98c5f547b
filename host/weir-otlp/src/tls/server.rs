//! A listener's TLS: a rustls `ServerConfig` (certificate, key, client CA for
//! mTLS) held behind an atomic pointer. Each new connection takes the
//! current one; a reload builds a new one from the files and swaps it in, so
//! connections already open keep the session they negotiated.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use weir_pipeline::config::TlsServerConfig;

use super::error::{TlsError, TlsErrorKind};
use super::pem::{self, Files, KeyPairFiles};
use super::watch::{self, Refresh, fingerprint};
use super::{provider, versions};

/// ALPN for a gRPC listener.
pub const ALPN_H2: &[&[u8]] = &[b"h2"];
/// ALPN for a listener that speaks HTTP/1.1 and HTTP/2.
pub const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];

/// A listener's TLS; cheap to clone.
#[derive(Clone)]
pub struct ServerTls(Arc<Material>);

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("key", &self.0.key)
            .finish_non_exhaustive()
    }
}

struct Material {
    config: TlsServerConfig,
    /// The table's dotted path, e.g. `receivers.otlp.grpc.tls`.
    key: String,
    alpn: Vec<Vec<u8>>,
    current: ArcSwap<rustls::ServerConfig>,
    /// Fingerprint of the files last loaded (or last refused).
    seen: Mutex<[u8; 32]>,
}

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn read_files(config: &TlsServerConfig) -> Files {
    let mut paths = vec![config.cert_file.clone(), config.key_file.clone()];
    paths.extend(config.client_ca_file.clone());
    paths
        .into_iter()
        .map(|p| {
            let content = std::fs::read(&p);
            (p, content)
        })
        .collect()
}

fn build(
    config: &TlsServerConfig,
    key: &str,
    alpn: &[Vec<u8>],
    files: &Files,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let pair = KeyPairFiles {
        cert: &config.cert_file,
        cert_key: format!("{key}.cert_file"),
        key: &config.key_file,
        key_key: format!("{key}.key_file"),
    };
    let cert = pem::file_content(files, pair.cert, &pair.cert_key)?;
    let private = pem::file_content(files, pair.key, &pair.key_key)?;
    let certified = pem::certified_key(&pair, cert, private, &provider)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(config.min_version))
        .map_err(|e| TlsError::new(key, TlsErrorKind::Rustls(e.to_string())))?;
    let builder = match &config.client_ca_file {
        Some(ca) => {
            let ca_key = format!("{key}.client_ca_file");
            let roots = pem::root_store(pem::file_content(files, ca, &ca_key)?, ca, &ca_key)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| {
                    TlsError::new(
                        &ca_key,
                        TlsErrorKind::BadCa {
                            path: ca.clone(),
                            reason: e.to_string(),
                        },
                    )
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server = builder.with_cert_resolver(Arc::new(Fixed(certified)));
    server.alpn_protocols = alpn.to_vec();
    // Our suite order (AES-128-GCM first), not the client's.
    server.ignore_client_order = true;
    Ok(server)
}

impl ServerTls {
    /// Loads the files `config` names (errors name `key`'s sub-keys) and, when
    /// `reload_interval` is not zero, watches them for changes.
    pub fn load(config: &TlsServerConfig, key: &str, alpn: &[&[u8]]) -> Result<Self, TlsError> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|a| a.to_vec()).collect();
        let files = read_files(config);
        let server = build(config, key, &alpn, &files)?;
        let material = Arc::new(Material {
            config: config.clone(),
            key: key.to_string(),
            alpn,
            current: ArcSwap::from_pointee(server),
            seen: Mutex::new(fingerprint(&files)),
        });
        watch::poll(&material, config.reload_interval.0, key);
        Ok(ServerTls(material))
    }

    /// The acceptor for a new connection, with the certificate loaded now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.0.current.load_full())
    }

    /// Whether clients must present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.0.config.client_ca_file.is_some()
    }

    /// Rereads the files now (the poll does this every `reload_interval`).
    pub fn refresh(&self) {
        self.0.refresh();
    }
}

impl Refresh for Material {
    fn refresh(&self) {
        let files = read_files(&self.config);
        let print = fingerprint(&files);
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == print {
                return;
            }
            *seen = print;
        }
        match build(&self.config, &self.key, &self.alpn, &files) {
            Ok(server) => {
                self.current.store(Arc::new(server));
                tracing::info!(key = %self.key, "TLS certificate reloaded; new connections use it");
            }
            Err(e) => tracing::error!(
                error = %e,
                "the changed TLS files were not loaded; new connections keep the previous certificate"
            ),
        }
    }
}
