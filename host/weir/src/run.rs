//! `weir run`: start listeners and pipelines, serve, and shut down gracefully
//! within one grace period.
//!
//! Shutdown: not ready, Ingests closed, listeners stop accepting; one deadline
//! (now + `service.shutdown_grace`) bounds both the in-flight requests (idle
//! connections close at once) and the queue draining; the admin server, on its
//! own thread, stays up until the queues are drained (a moment longer when that
//! took until the deadline), so the final metrics can be scraped.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weir_otlp::receiver::listen::{self, AtFdLimit, ListenerSpec};
use weir_otlp::receiver::threaded::ThreadedServer;
use weir_otlp::receiver::{self, ConnectionMetrics, DecodePool, Protocol, Receiver, Shutdown};
use weir_pipeline::admin::{self, Readiness};
use weir_pipeline::config::{Config, ConnectionLimits, ReceiverConfig};
use weir_pipeline::{Ingest, Metrics};

use crate::{demo, plugins, wiring};

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

pub fn run(config: Config, demo: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config, demo))
}

async fn bind(address: &str, what: &str) -> anyhow::Result<TcpListener> {
    let addr: SocketAddr = address
        .parse()
        .with_context(|| format!("{what}: invalid address {address:?}"))?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{what}: cannot listen on {addr}"))
}

struct DataListener {
    listener: TcpListener,
    receiver: Receiver,
    spec: ListenerSpec,
}

async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let connection_metrics = ConnectionMetrics::register(&metrics);
    let ready = Readiness::default();
    let loaded = plugins::load(&config, &metrics).map_err(|errors| {
        anyhow::anyhow!(
            "{}",
            weir_pipeline::config::ConfigErrors {
                source_name: "plugins".into(),
                errors
            }
        )
    })?;
    let wired = wiring::wire(&config, &metrics, loaded.as_ref())?;

    // Bind everything before serving anything, so a port clash fails start-up cleanly.
    let admin_listener = bind(&config.admin.address, "admin.address")
        .await?
        .into_std()
        .context("admin.address: preparing the listener")?;
    let decode = DecodePool::default();
    let mut listeners = Vec::new();
    for (name, rc) in &config.receivers {
        let ReceiverConfig::Otlp(otlp) = rc;
        let ingest = wired
            .ingests
            .get(name)
            .context("receiver without ingest")?
            .clone();
        let receiver = Receiver {
            ingest,
            max_request_size: otlp.max_request_size.as_usize(),
            decode: decode.clone(),
        };
        let (grpc, http) = otlp.listeners();
        let (grpc_limits, http_limits) = otlp.limits();
        let spec = |transport: &'static str, limits: ConnectionLimits, protocol| ListenerSpec {
            receiver: name.clone(),
            transport,
            config_key: format!("receivers.{name}.{transport}"),
            limits,
            protocol,
            at_fd_limit: AtFdLimit::Shed,
        };
        if let Some(a) = grpc {
            let listener = bind(a, &format!("receivers.{name}.grpc.address")).await?;
            tracing::info!(receiver = %name, address = %a, "OTLP/gRPC receiver listening");
            listeners.push(DataListener {
                listener,
                receiver: receiver.clone(),
                spec: spec("grpc", grpc_limits, Protocol::Http2Only),
            });
        }
        if let Some(a) = http {
            let listener = bind(a, &format!("receivers.{name}.http.address")).await?;
            tracing::info!(receiver = %name, address = %a, "OTLP/HTTP receiver listening");
            listeners.push(DataListener {
                listener,
                receiver: receiver.clone(),
                spec: spec("http", http_limits, Protocol::Auto),
            });
        }
    }
    warn_if_fd_limit_is_low(&config, &listeners);
    let demo_target = listeners
        .iter()
        .find(|l| l.spec.transport == "grpc")
        .and_then(|l| l.listener.local_addr().ok());

    let admin = ThreadedServer::start(
        "weir-admin",
        admin_listener,
        admin::router(metrics.clone(), ready.clone()),
        ListenerSpec {
            receiver: "admin".into(),
            transport: "admin",
            config_key: "admin".into(),
            limits: ConnectionLimits {
                max_connections: config.admin.max_connections,
                ..ConnectionLimits::default()
            },
            protocol: Protocol::Auto,
            at_fd_limit: AtFdLimit::Serve {
                reserve: ADMIN_FD_RESERVE,
            },
        },
        connection_metrics.clone(),
    )
    .context("admin: starting the admin server thread")?;
    tracing::info!(address = %config.admin.address, "admin endpoints /health /ready /metrics");

    let shutdown = Shutdown::new();
    let mut servers = JoinSet::new();
    for l in listeners {
        let router = match l.spec.protocol {
            Protocol::Http2Only => receiver::grpc::router(l.receiver),
            Protocol::Auto => receiver::http::router(l.receiver),
        };
        let (shutdown, metrics) = (shutdown.clone(), connection_metrics.clone());
        servers.spawn(async move { listen::serve(l.listener, router, l.spec, &metrics, shutdown).await });
    }

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
        Some(res) = servers.join_next() => Some(res),
    };

    // Shutdown: one deadline for in-flight requests and for draining.
    ready.set(false);
    let grace = config.service.shutdown_grace.0;
    let deadline = Instant::now() + grace;
    tracing::info!(
        ?grace,
        "shutting down: finishing in-flight requests and draining queues"
    );
    for ingest in wired.ingests.values() {
        Ingest::close(ingest);
    }
    demo_stop.cancel();
    shutdown.begin(deadline);
    let servers_done = async { while servers.join_next().await.is_some() {} };
    // Each listener returns by the deadline; the margin is for the last drops.
    if tokio::time::timeout_at(deadline + Duration::from_millis(200), servers_done)
        .await
        .is_err()
    {
        tracing::warn!("receivers did not close their connections by the shutdown deadline");
    }
    wired.stages.drain(deadline).await;
    if Instant::now() >= deadline {
        tracing::info!(window = ?FINAL_SCRAPE_WINDOW, "queues drained at the deadline; admin endpoints stay up for a final scrape");
        tokio::time::sleep(FINAL_SCRAPE_WINDOW).await;
    }
    admin.stop(Instant::now() + ADMIN_STOP_GRACE).await;
    tracing::info!("weir stopped");
    match failure {
        Some(Err(join)) => Err(anyhow::anyhow!("a receiver task panicked: {join}")),
        Some(Ok(())) => Err(anyhow::anyhow!("a receiver stopped serving unexpectedly")),
        None => Ok(()),
    }
}

/// Warns at start-up when the listeners may hold more connections than the
/// open-file limit allows (weir then sheds new connections at the limit).
fn warn_if_fd_limit_is_low(config: &Config, listeners: &[DataListener]) {
    let Some(limit) = receiver::open_file_limit() else {
        return;
    };
    let wanted: u64 = listeners
        .iter()
        .map(|l| l.spec.limits.max_connections as u64)
        .sum::<u64>()
        + config.admin.max_connections as u64
        + FD_HEADROOM;
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
