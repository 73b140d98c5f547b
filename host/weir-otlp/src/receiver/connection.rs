//! One accepted connection: HTTP/1 and HTTP/2 (or HTTP/2 only, for gRPC) with
//! the listener's header-read, idle and keepalive timeouts, and the shared
//! shutdown deadline.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tower_service::Service as _;
use weir_pipeline::config::ConnectionLimits;

use super::connection_metrics::ListenerMetrics;
use super::shutdown::Shutdown;

/// How long a connection asked to close (shutdown, timeout) may take to do so
/// once it has no request in flight: HTTP/1 closes at once; HTTP/2 sends GOAWAY
/// and waits for the client's ping answer, which a stuck client never sends.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 and HTTP/2 (prior knowledge), detected per connection.
    Auto,
    /// HTTP/2 only, as gRPC.
    Http2Only,
}

/// The per-connection timeouts; a zero duration in the config turns one off.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    header_read: Option<Duration>,
    idle: Option<Duration>,
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

impl Timeouts {
    pub(crate) fn of(limits: &ConnectionLimits) -> Self {
        Timeouts {
            header_read: nonzero(limits.header_read_timeout.0),
            idle: nonzero(limits.idle_timeout.0),
        }
    }
}

pub(crate) fn builder(protocol: Protocol, limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // hyper restarts this timer for every request head, so on HTTP/1 it also
    // bounds the pause between kept-alive requests.
    b.http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(nonzero(limits.header_read_timeout.0));
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(nonzero(limits.keepalive_interval.0))
        .keep_alive_timeout(limits.keepalive_timeout.0);
    match protocol {
        Protocol::Auto => b,
        Protocol::Http2Only => b.http2_only(),
    }
}

/// Requests in flight on one connection, and since when it has had none.
struct Activity {
    in_flight: AtomicUsize,
    started: AtomicU64,
    idle_since: Mutex<Instant>,
    became_idle: Notify,
}

struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.started.fetch_add(1, Ordering::SeqCst);
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.0.idle_since.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
            self.0.became_idle.notify_one();
        }
    }
}

#[derive(Clone, Copy)]
enum Expiry {
    HeaderRead,
    Idle,
}

impl Activity {
    fn new(accepted: Instant) -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            idle_since: Mutex::new(accepted),
            became_idle: Notify::new(),
        }
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// When this connection expires if nothing happens: before its first request
    /// the header-read timeout runs from accept, afterwards the idle timeout from
    /// the end of the last request. None while a request is in flight.
    fn expiry(&self, t: &Timeouts) -> Option<(Instant, Expiry)> {
        if !self.is_idle() {
            return None;
        }
        let since = *self.idle_since.lock().unwrap_or_else(PoisonError::into_inner);
        if self.started.load(Ordering::SeqCst) == 0 {
            t.header_read.map(|d| (since + d, Expiry::HeaderRead))
        } else {
            t.idle.map(|d| (since + d, Expiry::Idle))
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn earliest(a: Option<Instant>, b: Instant) -> Instant {
    a.map_or(b, |a| a.min(b))
}

pub(crate) struct Served<'a> {
    pub builder: &'a auto::Builder<TokioExecutor>,
    /// TLS to negotiate before HTTP, when the listener has it.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub router: Router,
    pub timeouts: Timeouts,
    pub shutdown: &'a Shutdown,
    pub metrics: &'a ListenerMetrics,
}

/// Serves `stream` until the client closes it, it times out, or shutdown
/// (idle: at once; in flight: until the shutdown deadline).
pub(crate) async fn serve(stream: TcpStream, accepted: Instant, s: Served<'_>) {
    let begun = s.shutdown.begun();
    tokio::pin!(begun);
    // hyper allocates its buffers when it first reads; until the client sends
    // something, a held connection costs only this task and its socket.
    let first_bytes_by = s.timeouts.header_read.map(|d| accepted + d);
    // (`readable()` reports a fresh socket ready; `peek` waits for a byte.)
    let mut first = [0u8; 1];
    tokio::select! {
        r = stream.peek(&mut first) => {
            // 0: the client closed without sending anything.
            if !matches!(r, Ok(n) if n > 0) {
                return;
            }
        }
        _ = sleep_until_opt(first_bytes_by) => {
            s.metrics.header_read_timeout.inc();
            return;
        }
        _ = &mut begun => return,
    }
    let Some(acceptor) = s.tls.clone() else {
        return drive(stream, accepted, s).await;
    };
    // The handshake counts against the header-read timeout: a client that
    // stalls in it holds a connection like one that sends no headers.
    let tls = tokio::select! {
        r = acceptor.accept(stream) => match r {
            Ok(tls) => tls,
            Err(e) => {
                s.metrics.tls_handshake_failed.inc();
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
        },
        _ = sleep_until_opt(first_bytes_by) => {
            s.metrics.header_read_timeout.inc();
            return;
        }
        _ = &mut begun => return,
    };
    drive(tls, accepted, s).await;
}

/// Serves HTTP on `io` (plain or TLS) until it closes, times out or shutdown.
async fn drive<I>(io: I, accepted: Instant, s: Served<'_>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let begun = s.shutdown.begun();
    tokio::pin!(begun);
    let activity = Arc::new(Activity::new(accepted));
    let service = {
        let activity = activity.clone();
        let router = s.router;
        hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let guard = InFlight::begin(&activity);
            let mut router = router.clone();
            async move {
                let response = router.call(req).await;
                drop(guard);
                response
            }
        })
    };
    let conn = s.builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut shutting_down = false;
    // Set once the connection is asked to close; dropped (closed hard) then.
    let mut close_by: Option<Instant> = None;
    loop {
        let idle = activity.became_idle.notified();
        let expiry = if close_by.is_none() {
            activity.expiry(&s.timeouts)
        } else {
            None
        };
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            deadline = &mut begun, if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
                let by = if activity.is_idle() {
                    deadline.min(Instant::now() + CLOSE_LINGER)
                } else {
                    deadline
                };
                close_by = Some(earliest(close_by, by));
            }
            _ = idle => {
                if close_by.is_some() && activity.is_idle() {
                    close_by = Some(earliest(close_by, Instant::now() + CLOSE_LINGER));
                }
            }
            _ = sleep_until_opt(close_by) => return,
            _ = sleep_until_opt(expiry.map(|(at, _)| at)) => {
                // Re-check: a request may have begun since the timer was set.
                if let Some((at, why)) = activity.expiry(&s.timeouts)
                    && at <= Instant::now()
                {
                    match why {
                        Expiry::HeaderRead => s.metrics.header_read_timeout.inc(),
                        Expiry::Idle => s.metrics.idle_timeout.inc(),
                    };
                    conn.as_mut().graceful_shutdown();
                    close_by = Some(Instant::now() + CLOSE_LINGER);
                }
            }
        }
    }
}
