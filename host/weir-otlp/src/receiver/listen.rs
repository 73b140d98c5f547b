//! The accept loop shared by the gRPC, HTTP and admin listeners: a cap on
//! concurrent connections (over it, accept and close at once), accepting at the
//! open-file limit without spinning, rate-limited warnings, and the shared
//! shutdown (stop accepting, then let each connection finish as
//! [`connection::serve`] allows).

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use futures::FutureExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use weir_pipeline::config::ConnectionLimits;

use super::connection::{self, Protocol, Served, Timeouts};
use super::connection_metrics::{ConnectionMetrics, ListenerMetrics};
use super::fd_limit::{SpareFds, is_fd_limit};
use super::shutdown::Shutdown;
use crate::tls::ServerTls;

/// At most one warning line per listener and cause in this time.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Pause before accepting again when the open-file limit leaves nothing to do:
/// a data listener waits longer (it only sheds), the admin server retries soon.
const FD_LIMIT_BACKOFF: Duration = Duration::from_millis(50);
const FD_LIMIT_BACKOFF_SERVE: Duration = Duration::from_millis(10);
/// Pause after an unexpected accept error (ENOBUFS, ENOMEM, ...).
const ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// What a listener does with a new connection at the open-file limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtFdLimit {
    /// Take it with the one spare descriptor and close it: new clients are shed
    /// while existing connections are served.
    Shed,
    /// Serve it from a reserve of this many descriptors (the admin server, so
    /// /health answers even when the data listeners have used up the rest).
    Serve { reserve: usize },
}

/// One listener's identity and limits.
#[derive(Clone, Debug)]
pub struct ListenerSpec {
    /// The `receiver` label: the receiver's name, or "admin".
    pub receiver: String,
    /// The `transport` label: "grpc", "http" or "admin".
    pub transport: &'static str,
    /// Where the limits are configured, for messages ("receivers.otlp.grpc", "admin").
    pub config_key: String,
    pub limits: ConnectionLimits,
    pub protocol: Protocol,
    pub at_fd_limit: AtFdLimit,
    /// TLS (and mTLS) before HTTP.
    pub tls: Option<ServerTls>,
}

/// Counts events and says when to log them: the first at once, then at most one
/// line per `every`, with the number of events since the last line.
struct RateLimited {
    every: Duration,
    last: Option<Instant>,
    count: u64,
}

impl RateLimited {
    fn new(every: Duration) -> Self {
        RateLimited {
            every,
            last: None,
            count: 0,
        }
    }

    fn hit(&mut self) -> Option<u64> {
        self.hit_at(Instant::now())
    }

    fn hit_at(&mut self, now: Instant) -> Option<u64> {
        self.count += 1;
        if self.last.is_some_and(|l| now.duration_since(l) < self.every) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

enum AtLimit {
    Serve(TcpStream),
    /// One queued connection was closed; go on accepting.
    Shed,
    /// Nothing could be taken; back off before accepting again.
    Nothing,
}

struct AcceptLoop {
    spec: ListenerSpec,
    router: Router,
    builder: Arc<hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>>,
    timeouts: Timeouts,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    metrics: ListenerMetrics,
    shutdown: Shutdown,
    /// Shared with the connections of a `Serve` listener, which hand their
    /// descriptor back to the reserve as they close.
    spares: Arc<Mutex<SpareFds>>,
    over_cap_log: RateLimited,
    fd_limit_log: RateLimited,
    error_log: RateLimited,
}

/// Serves `router` on `listener` until `shutdown` begins; returns when every
/// connection has closed (at the latest at the shutdown deadline).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    spec: ListenerSpec,
    metrics: &ConnectionMetrics,
    shutdown: Shutdown,
) {
    let reserve = match spec.at_fd_limit {
        AtFdLimit::Shed => 1,
        AtFdLimit::Serve { reserve } => reserve.max(1),
    };
    let mut l = AcceptLoop {
        builder: Arc::new(connection::builder(spec.protocol, &spec.limits)),
        timeouts: Timeouts::of(&spec.limits),
        permits: Arc::new(Semaphore::new(
            spec.limits.max_connections.min(Semaphore::MAX_PERMITS),
        )),
        tracker: TaskTracker::new(),
        metrics: metrics.for_listener(&spec.receiver, spec.transport),
        spares: Arc::new(Mutex::new(SpareFds::new(reserve))),
        over_cap_log: RateLimited::new(LOG_EVERY),
        fd_limit_log: RateLimited::new(LOG_EVERY),
        error_log: RateLimited::new(LOG_EVERY),
        shutdown,
        router,
        spec,
    };
    l.run(&listener).await;
    // Stop accepting: clients still queued get a reset instead of a hang.
    drop(listener);
    l.tracker.close();
    l.tracker.wait().await;
}

impl AcceptLoop {
    async fn run(&mut self, listener: &TcpListener) {
        let shutdown = self.shutdown.clone();
        let begun = shutdown.begun();
        tokio::pin!(begun);
        loop {
            let accepted = tokio::select! {
                biased;
                _ = &mut begun => return,
                r = listener.accept() => r,
            };
            let stream = match accepted {
                Ok((stream, _)) => {
                    let mut spares = self.spares();
                    if !spares.is_full() {
                        spares.refill();
                    }
                    stream
                }
                Err(e) if is_fd_limit(&e) => match self.at_fd_limit(listener, &e) {
                    AtLimit::Serve(stream) => stream,
                    AtLimit::Shed => {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    AtLimit::Nothing => {
                        let pause = match self.spec.at_fd_limit {
                            AtFdLimit::Shed => FD_LIMIT_BACKOFF,
                            AtFdLimit::Serve { .. } => FD_LIMIT_BACKOFF_SERVE,
                        };
                        tokio::select! {
                            _ = &mut begun => return,
                            _ = tokio::time::sleep(pause) => continue,
                        }
                    }
                },
                // The client gave up while queued: nothing to do.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    if let Some(n) = self.error_log.hit() {
                        tracing::warn!(
                            listener = %self.spec.config_key, error = %e, errors = n,
                            "accepting a connection failed; retrying shortly"
                        );
                    }
                    tokio::select! {
                        _ = &mut begun => return,
                        _ = tokio::time::sleep(ERROR_BACKOFF) => continue,
                    }
                }
            };
            self.start(stream);
            // Shedding in a tight loop must not starve the connections this
            // worker also serves.
            tokio::task::yield_now().await;
        }
    }

    /// Handles EMFILE/ENFILE with a spare descriptor.
    fn at_fd_limit(&mut self, listener: &TcpListener, e: &io::Error) -> AtLimit {
        let shed = self.spec.at_fd_limit == AtFdLimit::Shed;
        if let Some(n) = self.fd_limit_log.hit() {
            let key = &self.spec.config_key;
            if shed {
                tracing::warn!(
                    listener = %key, error = %e, events = n,
                    "open-file limit reached: closing new connections while existing ones are served; \
                     raise the limit (ulimit -n, systemd LimitNOFILE) or lower {key}.max_connections"
                );
            } else {
                tracing::warn!(
                    listener = %key, error = %e, events = n,
                    "open-file limit reached: serving from reserved descriptors; \
                     raise the limit (ulimit -n, systemd LimitNOFILE) or lower the receivers' max_connections"
                );
            }
        }
        let mut spares = self.spares();
        let taken = if spares.release_one() {
            // Only what is queued now; an empty queue clears the readiness.
            listener.accept().now_or_never().and_then(Result::ok)
        } else {
            None
        };
        match taken {
            // Its descriptor is the spare's; the reserve is topped up after it closes.
            Some((stream, _)) if !shed => AtLimit::Serve(stream),
            Some((stream, _)) => {
                drop(stream);
                self.metrics.refused_fd_limit.inc();
                spares.refill();
                AtLimit::Shed
            }
            None => {
                spares.refill();
                AtLimit::Nothing
            }
        }
    }

    fn spares(&self) -> MutexGuard<'_, SpareFds> {
        self.spares.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn start(&mut self, stream: TcpStream) {
        let accepted = Instant::now();
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            drop(stream);
            self.metrics.refused_max_connections.inc();
            if let Some(n) = self.over_cap_log.hit() {
                let key = &self.spec.config_key;
                tracing::warn!(
                    listener = %key, max_connections = self.spec.limits.max_connections, closed = n,
                    "connection limit reached: closed new connections at once; \
                     raise {key}.max_connections or spread clients over more instances"
                );
            }
            return;
        };
        // OTLP answers are small and latency-bound.
        let _ = stream.set_nodelay(true);
        self.metrics.open.inc();
        let builder = self.builder.clone();
        let router = self.router.clone();
        let tls = self.spec.tls.as_ref().map(ServerTls::acceptor);
        let timeouts = self.timeouts;
        let shutdown = self.shutdown.clone();
        let metrics = self.metrics.clone();
        let spares = (self.spec.at_fd_limit != AtFdLimit::Shed).then(|| self.spares.clone());
        self.tracker.spawn(async move {
            connection::serve(
                stream,
                accepted,
                Served {
                    builder: &builder,
                    tls,
                    router,
                    timeouts,
                    shutdown: &shutdown,
                    metrics: &metrics,
                },
            )
            .await;
            metrics.open.dec();
            drop(permit);
            // The socket is closed now: take its descriptor back into the reserve
            // before anything else can.
            if let Some(spares) = spares {
                spares.lock().unwrap_or_else(PoisonError::into_inner).refill();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_logs_once_per_period_with_a_count() {
        let mut r = RateLimited::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(r.hit_at(t0), Some(1));
        assert_eq!(r.hit_at(t0 + Duration::from_secs(1)), None);
        assert_eq!(r.hit_at(t0 + Duration::from_secs(9)), None);
        assert_eq!(r.hit_at(t0 + Duration::from_secs(11)), Some(3));
        assert_eq!(r.hit_at(t0 + Duration::from_secs(12)), None);
    }
}
