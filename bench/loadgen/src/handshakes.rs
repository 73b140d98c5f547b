//! `weir-loadgen handshakes`: new TLS connections per second against a
//! listener (connect, full handshake, close), from `--concurrency` tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;

#[derive(Debug, clap::Args)]
pub struct HandshakeArgs {
    /// host:port of a TLS listener.
    #[arg(long, default_value = "127.0.0.1:4318")]
    target: String,
    /// CA (PEM) that signed the listener's certificate.
    #[arg(long)]
    tls_ca: std::path::PathBuf,
    #[arg(long, default_value = "localhost")]
    tls_server_name: String,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Only TLS 1.3 (default: what the server prefers among 1.2 and 1.3).
    #[arg(long)]
    tls13: bool,
}

pub async fn run(args: HandshakeArgs) -> anyhow::Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&args.tls_ca)
        .with_context(|| format!("reading {}", args.tls_ca.display()))?
    {
        roots.add(cert.context("CA PEM")?).context("CA certificate")?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if args.tls13 {
        &[&rustls::version::TLS13]
    } else {
        rustls::ALL_VERSIONS
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every connection a full handshake, as a new client's would be.
    config.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(args.tls_server_name.clone())?;
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(args.duration);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (connector, name, target) = (connector.clone(), name.clone(), args.target.clone());
        let (done, failed) = (done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let ok = match tokio::net::TcpStream::connect(&target).await {
                    Ok(tcp) => connector.connect(name.clone(), tcp).await.is_ok(),
                    Err(_) => false,
                };
                if ok { &done } else { &failed }.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.context("handshake task")?;
    }
    let secs = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "{{\"handshakes\": {n}, \"failed\": {}, \"seconds\": {secs:.3}, \"per_second\": {:.1}}}",
        failed.load(Ordering::Relaxed),
        n as f64 / secs
    );
    Ok(())
}
