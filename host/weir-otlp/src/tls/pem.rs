//! Reading PEM files into rustls types, with errors that say what a file
//! holds when it is not what the key asks for (a key given as the
//! certificate, a DER file, ...).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::error::{TlsError, TlsErrorKind};
use super::validity;

/// The TLS files of one listener or exporter, read once per (re)load: each path
/// with its content or the error reading it.
pub type Files = Vec<(PathBuf, std::io::Result<Vec<u8>>)>;

/// The content of `path` among `files`, or the error naming `key`.
pub fn file_content<'a>(files: &'a Files, path: &Path, key: &str) -> Result<&'a [u8], TlsError> {
    match files.iter().find(|(p, _)| p == path).map(|(_, c)| c) {
        Some(Ok(bytes)) => Ok(bytes),
        Some(Err(e)) => Err(TlsError::new(
            key,
            TlsErrorKind::Read {
                path: path.to_owned(),
                source: std::io::Error::new(e.kind(), e.to_string()),
            },
        )),
        None => Err(TlsError::new(
            key,
            TlsErrorKind::Rustls(format!("{} was not read", path.display())),
        )),
    }
}

/// Certificates expiring sooner than this get a warning at load.
const EXPIRY_WARNING: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// The labels of the PEM blocks in `bytes`, for messages.
fn found(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let labels: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .collect();
    if labels.is_empty() {
        if text.trim().is_empty() {
            "the file is empty".into()
        } else {
            "no -----BEGIN line: not PEM, perhaps DER".into()
        }
    } else {
        format!("it holds {}", labels.join(", "))
    }
}

/// Every certificate in a PEM file (at least one).
pub(crate) fn certs(bytes: &[u8], path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            TlsError::new(
                key,
                TlsErrorKind::BadPem {
                    path: path.to_owned(),
                    reason: e.to_string(),
                },
            )
        })?;
    if certs.is_empty() {
        return Err(TlsError::new(
            key,
            TlsErrorKind::NoPem {
                path: path.to_owned(),
                want: "certificate",
                label: "CERTIFICATE",
                found: found(bytes),
            },
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub(crate) fn private_key(bytes: &[u8], path: &Path, key: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| {
        let kind = match e {
            pem::Error::NoItemsFound => TlsErrorKind::NoPem {
                path: path.to_owned(),
                want: "private key",
                label: "PRIVATE KEY",
                found: found(bytes),
            },
            e => TlsErrorKind::BadPem {
                path: path.to_owned(),
                reason: e.to_string(),
            },
        };
        TlsError::new(key, kind)
    })
}

/// Refuses a leaf certificate outside its validity period; warns when it
/// expires within a week.
pub(crate) fn check_validity(cert: &CertificateDer<'_>, path: &Path, key: &str) -> Result<(), TlsError> {
    let Some(v) = validity::of(cert) else {
        return Err(TlsError::new(
            key,
            TlsErrorKind::BadPem {
                path: path.to_owned(),
                reason: "the first certificate is not an X.509 certificate".into(),
            },
        ));
    };
    let now = SystemTime::now();
    let fmt = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    if now > v.not_after {
        return Err(TlsError::new(
            key,
            TlsErrorKind::Expired {
                path: path.to_owned(),
                not_after: fmt(v.not_after),
            },
        ));
    }
    if now < v.not_before {
        return Err(TlsError::new(
            key,
            TlsErrorKind::NotYetValid {
                path: path.to_owned(),
                not_before: fmt(v.not_before),
            },
        ));
    }
    if v.not_after.duration_since(now).unwrap_or_default() < EXPIRY_WARNING {
        tracing::warn!(
            key, path = %path.display(), not_after = %fmt(v.not_after),
            "the certificate expires within a week; renew it"
        );
    }
    Ok(())
}

/// Paths and config keys of one certificate + key pair.
pub(crate) struct KeyPairFiles<'a> {
    pub cert: &'a Path,
    pub cert_key: String,
    pub key: &'a Path,
    pub key_key: String,
}

/// A certificate chain with its private key, checked to belong together and
/// to be valid now.
pub(crate) fn certified_key(
    files: &KeyPairFiles<'_>,
    cert_bytes: &[u8],
    key_bytes: &[u8],
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = certs(cert_bytes, files.cert, &files.cert_key)?;
    check_validity(&chain[0], files.cert, &files.cert_key)?;
    let key = private_key(key_bytes, files.key, &files.key_key)?;
    let signing = provider.key_provider.load_private_key(key).map_err(|e| {
        TlsError::new(
            &files.key_key,
            TlsErrorKind::BadKey {
                path: files.key.to_owned(),
                reason: e.to_string(),
            },
        )
    })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        // Keys whose public half rustls cannot derive are checked at handshake.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(TlsError::new(
                &files.cert_key,
                TlsErrorKind::Mismatch {
                    cert: files.cert.to_owned(),
                    key: files.key.to_owned(),
                    key_key: files.key_key.clone(),
                },
            ));
        }
    }
    Ok(Arc::new(certified))
}

/// A root store of the CA certificates in a PEM file.
pub(crate) fn root_store(bytes: &[u8], path: &Path, key: &str) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(bytes, path, key)? {
        roots.add(cert).map_err(|e| {
            TlsError::new(
                key,
                TlsErrorKind::BadCa {
                    path: path.to_owned(),
                    reason: e.to_string(),
                },
            )
        })?;
    }
    Ok(roots)
}
