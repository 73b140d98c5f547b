//! An exporter's TLS: a rustls `ClientConfig` whose server-certificate
//! verifier and client certificate come from a material that is swapped when
//! the CA, certificate or key files change, so connections opened after a
//! rotation use the new files without rebuilding the exporter.
//!
//! Without `ca_file` the destination is verified against the system's trust
//! store (rustls-native-certs: /etc/ssl/certs, or SSL_CERT_FILE/SSL_CERT_DIR).
//! `server_name` replaces the endpoint's host in the certificate check.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use weir_pipeline::config::{TlsClientConfig, TlsVersion};

use super::error::{TlsError, TlsErrorKind};
use super::pem::{self, Files, KeyPairFiles};
use super::watch::{self, Refresh, fingerprint};
use super::{provider, versions};

/// What an exporter connects with.
#[derive(Clone)]
pub struct ClientTls {
    pub config: rustls::ClientConfig,
    /// The name to send as SNI and check the certificate against, when not
    /// the endpoint's host.
    pub server_name: Option<String>,
}

struct Loaded {
    verifier: Arc<WebPkiServerVerifier>,
    cert: Option<Arc<CertifiedKey>>,
}

struct Material {
    config: TlsClientConfig,
    key: String,
    server_name: Option<ServerName<'static>>,
    current: ArcSwap<Loaded>,
    seen: Mutex<[u8; 32]>,
}

fn read_files(config: &TlsClientConfig) -> Files {
    [&config.ca_file, &config.cert_file, &config.key_file]
        .into_iter()
        .flatten()
        .map(|p| (p.clone(), std::fs::read(p)))
        .collect()
}

fn system_roots() -> Result<rustls::RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none installed".to_string(), |e| e.to_string());
        return Err(why);
    }
    Ok(roots)
}

fn load(config: &TlsClientConfig, key: &str, files: &Files) -> Result<Loaded, TlsError> {
    let provider = provider();
    let roots = match &config.ca_file {
        Some(ca) => {
            let ca_key = format!("{key}.ca_file");
            pem::root_store(pem::file_content(files, ca, &ca_key)?, ca, &ca_key)?
        }
        None => {
            system_roots().map_err(|reason| TlsError::new(key, TlsErrorKind::NoSystemRoots { reason }))?
        }
    };
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::new(format!("{key}.ca_file"), TlsErrorKind::Rustls(e.to_string())))?;
    let cert = match (&config.cert_file, &config.key_file) {
        (Some(cert), Some(private)) => {
            let pair = KeyPairFiles {
                cert,
                cert_key: format!("{key}.cert_file"),
                key: private,
                key_key: format!("{key}.key_file"),
            };
            let c = pem::file_content(files, cert, &pair.cert_key)?;
            let k = pem::file_content(files, private, &pair.key_key)?;
            Some(pem::certified_key(&pair, c, k, &provider)?)
        }
        _ => None,
    };
    Ok(Loaded { verifier, cert })
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
        match load(&self.config, &self.key, &files) {
            Ok(loaded) => {
                self.current.store(Arc::new(loaded));
                tracing::info!(key = %self.key, "TLS files reloaded; new connections use them");
            }
            Err(e) => tracing::error!(
                error = %e,
                "the changed TLS files were not loaded; new connections keep the previous ones"
            ),
        }
    }
}

/// Checks the destination with the currently loaded roots (and the
/// configured server name).
#[derive(Debug)]
struct Verifier(Arc<Material>);

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = self.0.server_name.as_ref().unwrap_or(server_name);
        self.0
            .current
            .load()
            .verifier
            .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .current
            .load()
            .verifier
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .current
            .load()
            .verifier
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.current.load().verifier.supported_verify_schemes()
    }
}

/// Presents the currently loaded client certificate.
#[derive(Debug)]
struct ClientCert(Arc<Material>);

impl ResolvesClientCert for ClientCert {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.0.current.load().cert.clone()
    }

    fn has_certs(&self) -> bool {
        self.0.config.cert_file.is_some()
    }
}

impl ClientTls {
    /// The TLS of an `https://` exporter: `config` (keys under `key`), or the
    /// system's roots when there is no `tls` table.
    pub fn load(config: Option<&TlsClientConfig>, key: &str, alpn: &[&[u8]]) -> Result<Self, TlsError> {
        let config = config.cloned().unwrap_or(TlsClientConfig {
            ca_file: None,
            cert_file: None,
            key_file: None,
            server_name: None,
            min_version: TlsVersion::V1_2,
            reload_interval: weir_pipeline::config::HumanDuration::from_secs(0),
        });
        let server_name = match &config.server_name {
            Some(n) => Some(ServerName::try_from(n.clone()).map_err(|e| {
                TlsError::new(format!("{key}.server_name"), TlsErrorKind::Rustls(e.to_string()))
            })?),
            None => None,
        };
        let files = read_files(&config);
        let loaded = load(&config, key, &files)?;
        let material = Arc::new(Material {
            key: key.to_string(),
            server_name,
            current: ArcSwap::from_pointee(loaded),
            seen: Mutex::new(fingerprint(&files)),
            config: config.clone(),
        });
        if !files.is_empty() {
            watch::poll(&material, config.reload_interval.0, key);
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions(config.min_version))
            .map_err(|e| TlsError::new(key, TlsErrorKind::Rustls(e.to_string())))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier(material.clone())))
            .with_client_cert_resolver(Arc::new(ClientCert(material)));
        tls.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        Ok(ClientTls {
            config: tls,
            server_name: config.server_name.clone(),
        })
    }
}
