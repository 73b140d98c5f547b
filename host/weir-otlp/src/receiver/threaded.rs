//! A listener on its own OS thread with its own current-thread runtime, so what
//! it serves (the admin endpoints) keeps answering while the main runtime's
//! workers are saturated by data traffic.

use std::io;
use std::thread::JoinHandle;

use axum::Router;
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::connection_metrics::ConnectionMetrics;
use super::listen::{self, ListenerSpec};
use super::shutdown::Shutdown;

pub struct ThreadedServer {
    name: String,
    shutdown: Shutdown,
    thread: JoinHandle<()>,
}

impl ThreadedServer {
    /// Starts serving `router` on `listener` (already bound, so a port clash
    /// failed start-up) on a new thread named `thread_name`.
    pub fn start(
        thread_name: &str,
        listener: std::net::TcpListener,
        router: Router,
        spec: ListenerSpec,
        metrics: ConnectionMetrics,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(l) => listen::serve(l, router, spec, &metrics, stop).await,
                        Err(e) => tracing::error!(error = %e, "cannot serve {}", spec.config_key),
                    }
                });
            })?;
        Ok(ThreadedServer {
            name: thread_name.into(),
            shutdown,
            thread,
        })
    }

    /// Stops accepting, lets in-flight requests finish until `deadline`, and
    /// waits for the thread to end.
    pub async fn stop(self, deadline: Instant) {
        self.shutdown.begin(deadline);
        let thread = self.thread;
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => tracing::error!(thread = %self.name, "the server thread panicked"),
            Err(e) => {
                tracing::error!(thread = %self.name, error = %e, "waiting for the server thread failed")
            }
        }
    }
}
