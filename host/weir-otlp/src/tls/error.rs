//! What can be wrong with TLS material, each naming the config key.

use std::path::PathBuf;

/// A TLS problem at `key` (e.g. `receivers.otlp.grpc.tls.key_file`).
#[derive(Debug, thiserror::Error)]
#[error("{key}: {kind}")]
pub struct TlsError {
    pub key: String,
    pub kind: TlsErrorKind,
}

impl TlsError {
    pub(crate) fn new(key: impl Into<String>, kind: TlsErrorKind) -> Self {
        TlsError {
            key: key.into(),
            kind,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsErrorKind {
    #[error("cannot read {path}: {source}; check the path and that weir may read the file")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no PEM {want} ({found}); give a file with a -----BEGIN {label}----- block")]
    NoPem {
        path: PathBuf,
        want: &'static str,
        label: &'static str,
        found: String,
    },
    #[error("{path} is not valid PEM: {reason}")]
    BadPem { path: PathBuf, reason: String },
    #[error(
        "the private key in {path} cannot be used: {reason}; give an RSA, ECDSA (P-256/P-384) or Ed25519 key"
    )]
    BadKey { path: PathBuf, reason: String },
    #[error(
        "the certificate in {cert} does not match the private key in {key} ({key_key}); give the key the certificate was issued for"
    )]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        key_key: String,
    },
    #[error("the certificate in {path} expired at {not_after}; renew it (weir refuses expired certificates)")]
    Expired { path: PathBuf, not_after: String },
    #[error("the certificate in {path} is not valid before {not_before}; check the certificate or the clock")]
    NotYetValid { path: PathBuf, not_before: String },
    #[error("{path} holds no certificate usable as a CA: {reason}")]
    BadCa { path: PathBuf, reason: String },
    #[error("no root certificates found in the system's trust store ({reason}); set ca_file in this table")]
    NoSystemRoots { reason: String },
    #[error("{0}")]
    Rustls(String),
}
