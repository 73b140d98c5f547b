//! `weir run`: start listeners and pipelines, serve, and shut down gracefully.

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use weir_otlp::receiver;
use weir_pipeline::admin::{self, Readiness};
use weir_pipeline::config::{Config, ReceiverConfig};
use weir_pipeline::{Ingest, Metrics};

use crate::{demo, plugins, wiring};

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

async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let ready = Readiness::default();
    let stop = CancellationToken::new();
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
    let admin_listener = bind(&config.admin.address, "admin.address").await?;
    let mut listeners = Vec::new();
    for (name, rc) in &config.receivers {
        let ReceiverConfig::Otlp(otlp) = rc;
        let ingest = wired
            .ingests
            .get(name)
            .context("receiver without ingest")?
            .clone();
        let (grpc, http) = otlp.listeners();
        let max = otlp.max_request_size.as_usize();
        if let Some(a) = grpc {
            let l = bind(a, &format!("receivers.{name}.grpc.address")).await?;
            tracing::info!(receiver = %name, address = %a, "OTLP/gRPC receiver listening");
            listeners.push((l, ingest.clone(), max, true));
        }
        if let Some(a) = http {
            let l = bind(a, &format!("receivers.{name}.http.address")).await?;
            tracing::info!(receiver = %name, address = %a, "OTLP/HTTP receiver listening");
            listeners.push((l, ingest.clone(), max, false));
        }
    }
    let demo_target = listeners
        .iter()
        .find(|(_, _, _, is_grpc)| *is_grpc)
        .and_then(|(l, ..)| l.local_addr().ok());

    let mut servers = JoinSet::new();
    for (listener, ingest, max, is_grpc) in listeners {
        let stop = stop.clone();
        if is_grpc {
            servers.spawn(async move {
                receiver::grpc::serve(listener, ingest, max, stop.cancelled_owned())
                    .await
                    .context("OTLP/gRPC receiver failed")
            });
        } else {
            servers.spawn(async move {
                receiver::http::serve(listener, ingest, max, stop.cancelled_owned())
                    .await
                    .context("OTLP/HTTP receiver failed")
            });
        }
    }
    let admin_stop = CancellationToken::new();
    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        admin::router(metrics.clone(), ready.clone()),
        admin_stop.clone().cancelled_owned(),
    ));
    tracing::info!(address = %config.admin.address, "admin endpoints /health /ready /metrics");

    if demo {
        match demo_target {
            Some(addr) => {
                tokio::spawn(demo::send_forever(addr, stop.clone()));
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

    // Shutdown: not ready, refuse new data, let in-flight requests finish, drain.
    ready.set(false);
    let grace = config.service.shutdown_grace.0;
    tracing::info!(?grace, "shutting down: draining queues");
    for ingest in wired.ingests.values() {
        Ingest::close(ingest);
    }
    stop.cancel();
    let servers_done = async { while servers.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, servers_done).await.is_err() {
        tracing::warn!("receivers did not finish in-flight requests within the grace period");
    }
    wired.stages.drain(tokio::time::Instant::now() + grace).await;
    admin_stop.cancel();
    let _ = admin_task.await;
    tracing::info!("weir stopped");
    match failure {
        Some(Ok(Err(e))) => Err(e),
        Some(Err(join)) => Err(anyhow::anyhow!("a receiver task panicked: {join}")),
        _ => Ok(()),
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
