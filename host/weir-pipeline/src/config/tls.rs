//! `tls` tables: TLS (and mTLS) on a listener (`receivers.X.grpc.tls`,
//! `receivers.X.http.tls`, `admin.tls`) and on an OTLP exporter
//! (`exporters.X.tls`). The files are read, checked and watched by the
//! listeners and exporters; this is only their shape and static checks.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, HumanDuration};

/// The lowest TLS version accepted. rustls speaks nothing older than 1.2.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    V1_2,
    #[serde(rename = "1.3")]
    V1_3,
}

fn default_reload_interval() -> HumanDuration {
    HumanDuration::from_secs(10)
}

/// A listener's TLS: its certificate chain and key, and for mTLS the CA whose
/// client certificates it accepts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf certificate.
    pub key_file: PathBuf,
    /// PEM CA certificates; when set, every client must present a
    /// certificate signed by one of them (mTLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub min_version: TlsVersion,
    /// How often the files are compared with what is loaded (content, so a
    /// Kubernetes Secret's symlink swap is seen); "0s" turns reloading off.
    #[serde(default = "default_reload_interval")]
    pub reload_interval: HumanDuration,
}

/// An exporter's TLS. Without a `tls` table an `https://` endpoint is verified
/// against the system's root certificates.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsClientConfig {
    /// PEM CA certificates trusted for the destination instead of the
    /// system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain for mTLS (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The name the destination's certificate must carry, when it is not the
    /// endpoint's host (e.g. an endpoint given by IP address).
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub min_version: TlsVersion,
    #[serde(default = "default_reload_interval")]
    pub reload_interval: HumanDuration,
}

impl TlsClientConfig {
    /// Static checks; `key` is the table's dotted path.
    pub fn validate(&self, key: &str, endpoint: &str, errors: &mut Vec<ConfigError>) {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => errors.push(ConfigError::new(
                format!("{key}.key_file"),
                "cert_file is set without key_file; give the client certificate's private key too",
            )),
            (None, Some(_)) => errors.push(ConfigError::new(
                format!("{key}.cert_file"),
                "key_file is set without cert_file; give the client certificate too",
            )),
            _ => {}
        }
        if endpoint.starts_with("http://") {
            errors.push(ConfigError::new(
                key,
                format!(
                    "TLS is configured but the endpoint {endpoint:?} is plain http://; write https:// to use it"
                ),
            ));
        }
        if let Some(name) = &self.server_name
            && (name.is_empty() || name.contains(['/', ':', ' ']))
        {
            errors.push(ConfigError::new(
                format!("{key}.server_name"),
                format!("{name:?} is not a DNS name or IP address; write e.g. \"collector.example.com\""),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_table_needs_cert_and_key_together_and_https() {
        let c: TlsClientConfig =
            toml::from_str("cert_file = \"/c.pem\"\nmin_version = \"1.3\"").expect("parse");
        assert_eq!(c.min_version, TlsVersion::V1_3);
        let mut errors = Vec::new();
        c.validate("exporters.x.tls", "http://h:1", &mut errors);
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["exporters.x.tls.key_file", "exporters.x.tls"]);
        assert!(toml::from_str::<TlsClientConfig>("min_version = \"1.1\"").is_err());
    }

    #[test]
    fn server_table_has_defaults() {
        let s: TlsServerConfig = toml::from_str("cert_file = \"c\"\nkey_file = \"k\"").expect("parse");
        assert_eq!(
            (s.min_version, s.reload_interval, s.client_ca_file),
            (TlsVersion::V1_2, HumanDuration::from_secs(10), None)
        );
        assert!(toml::from_str::<TlsServerConfig>("cert_file = \"c\"\nkey_file = \"k\"\nca = 1").is_err());
    }
}
