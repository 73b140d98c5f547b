//! `weir run`: start listeners and pipelines, serve, and shut down gracefully
//! within one grace period.
//!
//! The running parts live in a [`Topology`] that reloads change in place
//! (see `reload`).
//!
//! Shutdown: not ready, Ingests closed, listeners stop accepting; one deadline
//! (now + `service.shutdown_grace`) bounds both the in-flight requests (idle
//! connections close at once) and the queue draining; the admin server, on its
//! own thread, stays up until the queues are drained (a moment longer when that
//! took until the deadline), so the final metrics can be scraped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weir_otlp::receiver::listen::{AtFdLimit, ListenerSpec};
use weir_otlp::receiver::threaded::ThreadedServer;
use weir_otlp::receiver::{self, ConnectionMetrics, Protocol};
use weir_otlp::tls::ServerTls;
use weir_otlp::tls::server::ALPN_HTTP;
use weir_pipeline::Metrics;
use weir_pipeline::admin::{self, Readiness};
use weir_pipeline::config::{Config, ConfigErrors, ConnectionLimits};

use crate::demo;
use crate::reload::control::{Controller, Reloads, Shared};
use crate::reload::watch::{self, ConfigWatcher, ContentHash, WatchOptions};
use crate::topology::Topology;

/// Descriptors the admin server keeps in reserve to answer /health at the
/// open-file limit.
const ADMIN_FD_RESERVE: usize = 4;
/// When draining ran into the deadline (data may have been abandoned), the admin
/// endpoints stay up this much longer so a final scrape sees what was lost.
const FINAL_SCRAPE_WINDOW: Duration = Duration::from_millis(400);
/// In-flight scrapes may finish within this once the admin server stops.
const ADMIN_STOP_GRACE: Duration = Duration::from_millis(300);
/// Descriptors weir needs besides its listeners' connections (exporters, files,
/// plugins), for the start-up check against the open-file limit.
const FD_HEADROOM: u64 = 256;

/// Where the running config came from: a file (watched for changes, with the
/// content hash taken before it was read) or the embedded quickstart.
pub struct Source {
    pub path: Option<PathBuf>,
    pub hash: Option<ContentHash>,
}

pub fn run(config: Config, source: Source, demo: bool) -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir")
        // Blocking work (decoding large requests, plugin chains over large
        // batches, disk queue reads, the archive) is bounded by permits of one
        // per CPU each; without a cap on threads, a permit handed on before its
        // thread is idle again starts another thread, and each keeps its
        // allocator's caches (50+ threads and 200 MB more under load).
        .max_blocking_threads(4 * cpus + 4)
        .thread_keep_alive(std::time::Duration::from_secs(2))
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config, source, demo))
}

async fn bind(address: &str, what: &str) -> anyhow::Result<TcpListener> {
    let addr: std::net::SocketAddr = address
        .parse()
        .with_context(|| format!("{what}: invalid address {address:?}"))?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{what}: cannot listen on {addr}"))
}

async fn serve(config: Config, source: Source, demo: bool) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let connection_metrics = ConnectionMetrics::register(&metrics);
    let ready = Readiness::default();
    let admin_config = config.admin.clone();
    let reload_config = config.service.reload.clone();
    // Bind the admin port before anything else, so a port clash fails start-up cleanly.
    let admin_listener = bind(&admin_config.address, "admin.address")
        .await?
        .into_std()
        .context("admin.address: preparing the listener")?;
    let (admin_tls, admin_auth) = admin_security(&admin_config)?;
    let (topology, mut failures) = Topology::start(
        config,
        metrics.clone(),
        connection_metrics.clone(),
        watch::plugin_base_dir(),
    )
    .await
    .map_err(|errors| {
        anyhow::anyhow!(
            "{}",
            ConfigErrors {
                source_name: source
                    .path
                    .as_ref()
                    .map_or("config".into(), |p| p.display().to_string()),
                errors
            }
        )
    })?;
    crate::allocator::steady();
    warn_if_fd_limit_is_low(&topology, admin_config.max_connections);
    let demo_target = topology
        .listener_addrs()
        .into_iter()
        .find(|(_, t, _)| *t == "grpc")
        .map(|(_, _, a)| a);
    let shared: Shared = Arc::new(tokio::sync::Mutex::new(Some(topology)));
    let reloads = Controller::start(shared.clone(), source.path.clone(), source.hash.clone(), &metrics).await;

    let admin = ThreadedServer::start(
        "weir-admin",
        admin_listener,
        {
            let router = admin::router(metrics.clone(), ready.clone(), Some(Arc::new(reloads.clone())));
            match admin_auth {
                // Probes stay open: kubelet sends no token.
                Some(auth) => receiver::auth::require(router, auth, &["/health", "/ready"]),
                None => router,
            }
        },
        ListenerSpec {
            receiver: "admin".into(),
            transport: "admin",
            config_key: "admin".into(),
            limits: ConnectionLimits {
                max_connections: admin_config.max_connections,
                ..ConnectionLimits::default()
            },
            protocol: Protocol::Auto,
            at_fd_limit: AtFdLimit::Serve {
                reserve: ADMIN_FD_RESERVE,
            },
            tls: admin_tls,
        },
        connection_metrics.clone(),
    )
    .context("admin: starting the admin server thread")?;
    tracing::info!(address = %admin_config.address, "admin endpoints /health /ready /metrics /status, POST /reload");

    let watcher = match (&source.path, &source.hash) {
        (Some(path), Some(hash)) if reload_config.watch => {
            start_watcher(path, hash, &reload_config, &reloads)
        }
        _ => None,
    };
    let stop_hup = CancellationToken::new();
    tokio::spawn(reload_on_sighup(reloads.clone(), stop_hup.clone()));

    let demo_stop = CancellationToken::new();
    if demo {
        match demo_target {
            Some(addr) => {
                tokio::spawn(demo::send_forever(addr, demo_stop.clone()));
            }
            None => tracing::warn!("--demo needs an OTLP/gRPC receiver; none is configured"),
        }
    }

    ready.set(true);
    tracing::info!("weir is ready");
    let failure = tokio::select! {
        _ = shutdown_signal() => None,
        Some(listener) = failures.recv() => Some(listener),
    };

    // Shutdown: one deadline for in-flight requests and for draining.
    ready.set(false);
    stop_hup.cancel();
    if let Some(w) = watcher {
        w.stop();
    }
    // Taking the topology waits for a reload under way to finish.
    let topology = shared.lock().await.take();
    let grace = topology
        .as_ref()
        .map_or(Duration::from_secs(10), |t| t.config().service.shutdown_grace.0);
    let deadline = Instant::now() + grace;
    tracing::info!(
        ?grace,
        "shutting down: finishing in-flight requests and draining queues"
    );
    demo_stop.cancel();
    if let Some(t) = topology {
        t.shutdown(deadline).await;
    }
    if Instant::now() >= deadline {
        tracing::info!(window = ?FINAL_SCRAPE_WINDOW, "queues drained at the deadline; admin endpoints stay up for a final scrape");
        tokio::time::sleep(FINAL_SCRAPE_WINDOW).await;
    }
    admin.stop(Instant::now() + ADMIN_STOP_GRACE).await;
    tracing::info!("weir stopped");
    match failure {
        Some(listener) => Err(anyhow::anyhow!("{listener} stopped serving unexpectedly")),
        None => Ok(()),
    }
}

/// Watches the config file; a failure to watch is logged, and SIGHUP and
/// `POST /reload` still work.
fn start_watcher(
    path: &std::path::Path,
    hash: &ContentHash,
    config: &weir_pipeline::config::ReloadConfig,
    reloads: &Reloads,
) -> Option<ConfigWatcher> {
    let (triggers, mut rx) = tokio::sync::mpsc::channel(4);
    let options = WatchOptions {
        debounce: config.debounce.0,
        poll_interval: config.poll_interval.0,
        ..WatchOptions::default()
    };
    match ConfigWatcher::start(path, hash.clone(), options, triggers) {
        Ok(w) => {
            let reloads = reloads.clone();
            tokio::spawn(async move {
                while let Some(t) = rx.recv().await {
                    reloads.request(t.reason);
                }
            });
            tracing::info!(config = %path.display(), "watching the config for changes");
            Some(w)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP or POST /reload");
            None
        }
    }
}

async fn reload_on_sighup(reloads: Reloads, stop: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /reload");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                got = hup.recv() => {
                    if got.is_none() { return; }
                    tracing::info!("SIGHUP received: reloading the config");
                    reloads.request("sighup");
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (reloads, stop);
    }
}

/// The admin server's TLS and tokens (`admin.tls`, `admin.auth`).
fn admin_security(
    admin: &weir_pipeline::config::AdminConfig,
) -> anyhow::Result<(Option<ServerTls>, Option<receiver::Authenticator>)> {
    let tls = match &admin.tls {
        Some(t) => Some(ServerTls::load(t, "admin.tls", ALPN_HTTP).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let auth = match &admin.auth {
        Some(a) => Some(receiver::Authenticator::load(a, "admin.auth").map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    Ok((tls, auth))
}

/// Warns at start-up when the listeners may hold more connections than the
/// open-file limit allows (weir then sheds new connections at the limit).
fn warn_if_fd_limit_is_low(topology: &Topology, admin_connections: usize) {
    let Some(limit) = receiver::open_file_limit() else {
        return;
    };
    let wanted: u64 = topology.connection_budget() + admin_connections as u64 + FD_HEADROOM;
    if wanted > limit {
        tracing::warn!(
            open_file_limit = limit,
            connections_allowed = wanted - FD_HEADROOM,
            "the open-file limit is below what the listeners' max_connections allow; \
             at the limit new connections are closed while existing ones are served. \
             Raise it (ulimit -n, systemd LimitNOFILE) to at least {wanted}, or lower max_connections"
        );
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C received"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops weir");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
