//! Certificates made with rcgen: loading errors, mTLS refusals and rotation
//! over in-memory connections.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weir_pipeline::config::{HumanDuration, TlsClientConfig, TlsServerConfig, TlsVersion};

use super::server::ALPN_HTTP;
use super::*;

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca"))
    }

    /// (certificate PEM, key PEM) for `name`, valid from `from` to `to` (years).
    fn issue_between(&self, name: &str, from: i32, to: i32) -> (String, String) {
        let mut params = CertificateParams::new(vec![name.to_string()]).expect("params");
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.0).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    fn issue(&self, name: &str) -> (String, String) {
        self.issue_between(name, 2020, 2090)
    }
}

fn write(dir: &Path, name: &str, content: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write");
    p
}

fn server_config(dir: &Path, ca: &Ca, client_ca: Option<&Ca>) -> TlsServerConfig {
    let (cert, key) = ca.issue("localhost");
    TlsServerConfig {
        cert_file: write(dir, "tls.crt", &cert),
        key_file: write(dir, "tls.key", &key),
        client_ca_file: client_ca.map(|c| write(dir, "client-ca.crt", &c.0.pem())),
        min_version: TlsVersion::V1_2,
        reload_interval: HumanDuration::from_secs(0),
    }
}

fn client_config(dir: &Path, ca: &Ca, client: Option<(&Ca, &str)>) -> TlsClientConfig {
    let (cert_file, key_file) = match client {
        Some((issuer, tag)) => {
            let (c, k) = issuer.issue("client");
            (
                Some(write(dir, &format!("{tag}.crt"), &c)),
                Some(write(dir, &format!("{tag}.key"), &k)),
            )
        }
        None => (None, None),
    };
    TlsClientConfig {
        ca_file: Some(write(dir, "server-ca.crt", &ca.0.pem())),
        cert_file,
        key_file,
        server_name: None,
        min_version: TlsVersion::V1_2,
        reload_interval: HumanDuration::from_secs(0),
    }
}

/// Handshakes over an in-memory pipe and echoes one message; the error of
/// either side when it fails.
async fn exchange(server: &ServerTls, client: &ClientTls) -> Result<Vec<u8>, String> {
    let (c, s) = tokio::io::duplex(64 << 10);
    let acceptor = server.acceptor();
    let served = tokio::spawn(async move {
        let mut tls = acceptor.accept(s).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(&buf).await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    });
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client.config.clone()));
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let result = async {
        let mut tls = connector.connect(name, c).await.map_err(|e| e.to_string())?;
        tls.write_all(b"hello").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 5];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(buf)
    }
    .await;
    let server_result = served.await.expect("join");
    match (result, server_result) {
        (Ok(b), Ok(())) => Ok(b),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

#[tokio::test]
async fn mtls_serves_a_good_client_and_refuses_the_others() {
    let dir = tempfile::tempdir().expect("dir");
    let (server_ca, client_ca, other_ca) = (Ca::new("server ca"), Ca::new("client ca"), Ca::new("other ca"));
    let server = ServerTls::load(
        &server_config(dir.path(), &server_ca, Some(&client_ca)),
        "receivers.otlp.grpc.tls",
        ALPN_HTTP,
    )
    .expect("server");
    assert!(server.is_mutual());
    let good = ClientTls::load(
        Some(&client_config(dir.path(), &server_ca, Some((&client_ca, "good")))),
        "tls",
        ALPN_HTTP,
    )
    .expect("client");
    assert_eq!(exchange(&server, &good).await, Ok(b"hello".to_vec()));

    let anonymous = ClientTls::load(
        Some(&client_config(dir.path(), &server_ca, None)),
        "tls",
        ALPN_HTTP,
    )
    .expect("client");
    assert!(exchange(&server, &anonymous).await.is_err());
    let foreign = ClientTls::load(
        Some(&client_config(
            dir.path(),
            &server_ca,
            Some((&other_ca, "foreign")),
        )),
        "tls",
        ALPN_HTTP,
    )
    .expect("client");
    assert!(exchange(&server, &foreign).await.is_err());
    // A client that does not trust the server's CA refuses it.
    let distrustful = ClientTls::load(
        Some(&client_config(dir.path(), &other_ca, Some((&client_ca, "d")))),
        "tls",
        ALPN_HTTP,
    )
    .expect("client");
    let e = exchange(&server, &distrustful).await.expect_err("unknown issuer");
    assert!(e.contains("UnknownIssuer") || e.contains("unknown"), "{e}");
    assert_eq!(exchange(&server, &good).await, Ok(b"hello".to_vec()));
}

#[tokio::test]
async fn a_rotated_certificate_is_used_by_new_connections_and_open_ones_stay() {
    let dir = tempfile::tempdir().expect("dir");
    let (old_ca, new_ca) = (Ca::new("old"), Ca::new("new"));
    let config = server_config(dir.path(), &old_ca, None);
    let server = ServerTls::load(&config, "admin.tls", ALPN_HTTP).expect("server");
    let trusts_old =
        ClientTls::load(Some(&client_config(dir.path(), &old_ca, None)), "tls", ALPN_HTTP).expect("c");
    let sub = tempfile::tempdir().expect("dir");
    let trusts_new =
        ClientTls::load(Some(&client_config(sub.path(), &new_ca, None)), "tls", ALPN_HTTP).expect("c");

    // A connection opened before the rotation.
    let (c, s) = tokio::io::duplex(64 << 10);
    let acceptor = server.acceptor();
    let open_server = tokio::spawn(async move {
        let mut tls = acceptor.accept(s).await.expect("accept");
        let mut buf = [0u8; 2];
        for _ in 0..2 {
            tls.read_exact(&mut buf).await.expect("read");
            tls.write_all(&buf).await.expect("write");
            tls.flush().await.expect("flush");
        }
    });
    let connector = tokio_rustls::TlsConnector::from(Arc::new(trusts_old.config.clone()));
    let mut open = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").expect("name"),
            c,
        )
        .await
        .expect("connect");
    let mut buf = [0u8; 2];
    open.write_all(b"a1").await.expect("write");
    open.flush().await.expect("flush");
    open.read_exact(&mut buf).await.expect("read");

    let (cert, key) = new_ca.issue("localhost");
    std::fs::write(&config.cert_file, cert).expect("write");
    std::fs::write(&config.key_file, key).expect("write");
    server.refresh();
    assert!(exchange(&server, &trusts_old).await.is_err());
    assert_eq!(exchange(&server, &trusts_new).await, Ok(b"hello".to_vec()));

    open.write_all(b"b2").await.expect("write after rotation");
    open.flush().await.expect("flush");
    open.read_exact(&mut buf).await.expect("read after rotation");
    assert_eq!(&buf, b"b2");
    open_server.await.expect("join");

    // A broken change is refused and the loaded certificate stays.
    std::fs::write(&config.key_file, "not a key").expect("write");
    server.refresh();
    assert_eq!(exchange(&server, &trusts_new).await, Ok(b"hello".to_vec()));
}

fn load_error(config: &TlsServerConfig) -> TlsError {
    match ServerTls::load(config, "receivers.otlp.http.tls", ALPN_HTTP) {
        Ok(_) => panic!("loaded"),
        Err(e) => e,
    }
}

#[test]
fn bad_material_is_refused_with_the_key_that_names_it() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("ca");
    let good = server_config(dir.path(), &ca, None);

    let missing = TlsServerConfig {
        key_file: dir.path().join("nope.key"),
        ..good.clone()
    };
    let e = load_error(&missing);
    assert_eq!(e.key, "receivers.otlp.http.tls.key_file");
    assert!(matches!(e.kind, TlsErrorKind::Read { .. }), "{e}");
    assert!(e.to_string().contains("nope.key"), "{e}");

    let (_, other_key) = ca.issue("localhost");
    let mismatched = TlsServerConfig {
        key_file: write(dir.path(), "other.key", &other_key),
        ..good.clone()
    };
    let e = load_error(&mismatched);
    assert_eq!(e.key, "receivers.otlp.http.tls.cert_file");
    assert!(matches!(e.kind, TlsErrorKind::Mismatch { .. }), "{e}");

    let (cert, key) = ca.issue_between("localhost", 2020, 2021);
    let expired = TlsServerConfig {
        cert_file: write(dir.path(), "old.crt", &cert),
        key_file: write(dir.path(), "old.key", &key),
        ..good.clone()
    };
    let e = load_error(&expired);
    assert!(matches!(e.kind, TlsErrorKind::Expired { .. }), "{e}");
    assert!(e.to_string().contains("2021-01-01T00:00:00Z"), "{e}");

    let swapped = TlsServerConfig {
        cert_file: good.key_file.clone(),
        key_file: good.cert_file.clone(),
        ..good.clone()
    };
    let e = load_error(&swapped);
    assert_eq!(e.key, "receivers.otlp.http.tls.cert_file");
    assert!(e.to_string().contains("it holds PRIVATE KEY"), "{e}");

    let der = TlsServerConfig {
        client_ca_file: Some(write(dir.path(), "ca.der", "\u{30}\u{82}binary")),
        ..good.clone()
    };
    let e = load_error(&der);
    assert_eq!(e.key, "receivers.otlp.http.tls.client_ca_file");
    assert!(e.to_string().contains("not PEM"), "{e}");

    assert!(ServerTls::load(&good, "k", ALPN_HTTP).is_ok());
}

#[test]
fn a_client_certificate_without_its_key_file_is_an_error() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("ca");
    let mut c = client_config(dir.path(), &ca, Some((&ca, "c")));
    c.key_file = Some(dir.path().join("gone.key"));
    let e = ClientTls::load(Some(&c), "tls", ALPN_HTTP).err().expect("error");
    assert_eq!(e.key, "tls.key_file");
}

fn exporter_config(endpoint: &str, tls: serde_json::Value) -> weir_pipeline::config::OtlpExporterConfig {
    serde_json::from_value(serde_json::json!({ "endpoint": endpoint, "tls": tls })).expect("config")
}

#[tokio::test]
async fn https_exporters_build_with_a_ca_and_name_a_missing_file_by_key() {
    use crate::exporter::{GrpcExporter, HttpExporter};
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("ca");
    let ca_file = write(dir.path(), "ca.crt", &ca.0.pem());
    let good = exporter_config(
        "https://127.0.0.1:4317",
        serde_json::json!({ "ca_file": ca_file, "server_name": "localhost" }),
    );
    assert!(GrpcExporter::new(&good).is_ok());
    assert!(HttpExporter::new(&good).is_ok());
    let missing = exporter_config(
        "https://127.0.0.1:4317",
        serde_json::json!({ "ca_file": dir.path().join("no.crt") }),
    );
    for e in [
        GrpcExporter::new(&missing).err(),
        HttpExporter::new(&missing).err(),
    ] {
        let e = e.expect("refused").to_config_error("exporters.backend");
        assert_eq!(e.key, "exporters.backend.tls.ca_file");
        assert!(e.message.contains("cannot read"), "{e}");
    }
}
