//! Counting OTLP/gRPC sink. Requests are received as raw bytes and only
//! walked at the wire level, so the sink costs as little CPU as possible next
//! to the system under test.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::codec::CompressionEncoding;
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use crate::codec::RawCodec;
use crate::wire;

/// Largest accepted export request (exporters batch up to thousands of spans).
const MAX_MESSAGE_SIZE: usize = 256 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct SinkArgs {
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:14317")]
    listen: SocketAddr,
    /// Address serving `GET /count` (JSON totals).
    #[arg(long)]
    stats_listen: Option<SocketAddr>,
    /// Print received items per second to stderr every this many seconds (0 = never).
    #[arg(long, default_value_t = 0)]
    print_every: u64,
    /// Serve TLS with this certificate chain (PEM; with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    #[arg(long)]
    tls_key: Option<std::path::PathBuf>,
}

#[derive(Debug, Default)]
struct Counters {
    spans: AtomicU64,
    log_records: AtomicU64,
    data_points: AtomicU64,
    requests: AtomicU64,
    bytes: AtomicU64,
    /// Requests that arrived with a `grpc-encoding` other than identity.
    compressed: AtomicU64,
    malformed: AtomicU64,
}

impl Counters {
    fn to_json(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{{\"spans\":{},\"log_records\":{},\"data_points\":{},\"requests\":{},\"bytes\":{},\"compressed\":{},\"malformed\":{}}}\n",
            get(&self.spans),
            get(&self.log_records),
            get(&self.data_points),
            get(&self.requests),
            get(&self.bytes),
            get(&self.compressed),
            get(&self.malformed),
        )
    }
}

trait Signal: Send + Sync + 'static {
    const SERVICE: &'static str;
    const PATH: &'static str;
    const ITEMS: &'static [&'static [u32]];
    fn counter(c: &Counters) -> &AtomicU64;
}

struct Traces;
struct Logs;
struct Metrics;

impl Signal for Traces {
    const SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const ITEMS: &'static [&'static [u32]] = wire::SPANS_PATH;
    fn counter(c: &Counters) -> &AtomicU64 {
        &c.spans
    }
}

impl Signal for Logs {
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const ITEMS: &'static [&'static [u32]] = wire::LOG_RECORDS_PATH;
    fn counter(c: &Counters) -> &AtomicU64 {
        &c.log_records
    }
}

impl Signal for Metrics {
    const SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const ITEMS: &'static [&'static [u32]] = wire::DATA_POINTS_PATH;
    fn counter(c: &Counters) -> &AtomicU64 {
        &c.data_points
    }
}

/// A gRPC service exposing the single `Export` method of one OTLP signal.
struct ExportService<S> {
    counters: Arc<Counters>,
    signal: PhantomData<fn() -> S>,
}

impl<S> ExportService<S> {
    fn new(counters: Arc<Counters>) -> Self {
        Self {
            counters,
            signal: PhantomData,
        }
    }
}

impl<S> Clone for ExportService<S> {
    fn clone(&self) -> Self {
        Self::new(Arc::clone(&self.counters))
    }
}

impl<S: Signal> NamedService for ExportService<S> {
    const NAME: &'static str = S::SERVICE;
}

impl<S: Signal> UnaryService<Bytes> for ExportService<S> {
    type Response = Bytes;
    type Future = std::future::Ready<Result<Response<Bytes>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let c = &self.counters;
        if request
            .metadata()
            .get("grpc-encoding")
            .is_some_and(|e| e != "identity")
        {
            c.compressed.fetch_add(1, Ordering::Relaxed);
        }
        let body = request.into_inner();
        let result = match wire::count(&body, S::ITEMS) {
            Ok(n) => {
                S::counter(c).fetch_add(n, Ordering::Relaxed);
                c.requests.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                // An empty Export*ServiceResponse: full success.
                Ok(Response::new(Bytes::new()))
            }
            Err(e) => {
                c.malformed.fetch_add(1, Ordering::Relaxed);
                Err(Status::invalid_argument(e.to_string()))
            }
        };
        std::future::ready(result)
    }
}

impl<S, B> Service<http::Request<B>> for ExportService<S>
where
    S: Signal,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != S::PATH {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let method = self.clone();
        Box::pin(async move {
            let mut grpc = Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(MAX_MESSAGE_SIZE);
            Ok(grpc.unary(method, req).await)
        })
    }
}

pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    let counters = Arc::new(Counters::default());
    if let Some(addr) = args.stats_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding stats listener {addr}"))?;
        tokio::spawn(serve_stats(listener, Arc::clone(&counters)));
    }
    if args.print_every > 0 {
        tokio::spawn(print_rates(
            Arc::clone(&counters),
            Duration::from_secs(args.print_every),
        ));
    }
    eprintln!("weir-loadgen sink: gRPC on {}", args.listen);
    let mut server = Server::builder();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let identity = tonic::transport::Identity::from_pem(
            std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?,
            std::fs::read(key).with_context(|| format!("reading {}", key.display()))?,
        );
        server = server
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .context("TLS config")?;
    }
    server
        .tcp_nodelay(true)
        .initial_stream_window_size(8 * 1024 * 1024)
        .initial_connection_window_size(32 * 1024 * 1024)
        .add_service(ExportService::<Traces>::new(Arc::clone(&counters)))
        .add_service(ExportService::<Logs>::new(Arc::clone(&counters)))
        .add_service(ExportService::<Metrics>::new(Arc::clone(&counters)))
        .serve_with_shutdown(args.listen, shutdown_signal())
        .await
        .with_context(|| format!("serving gRPC on {}", args.listen))?;
    eprint!("weir-loadgen sink: final {}", counters.to_json());
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("weir-loadgen sink: cannot install SIGTERM handler: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn print_rates(counters: Arc<Counters>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    let mut last = (Instant::now(), 0u64);
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let total = counters.spans.load(Ordering::Relaxed)
            + counters.log_records.load(Ordering::Relaxed)
            + counters.data_points.load(Ordering::Relaxed);
        let rate = (total - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        eprintln!("weir-loadgen sink: {rate:.0} items/s, {total} total");
        last = (now, total);
    }
}

/// A deliberately tiny HTTP/1.1 responder: `GET /count` returns the counters
/// as one JSON object; anything else is a 404.
async fn serve_stats(listener: TcpListener, counters: Arc<Counters>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let counters = Arc::clone(&counters);
                tokio::spawn(async move {
                    if let Err(e) = answer_stats(stream, &counters).await {
                        eprintln!("weir-loadgen sink: stats request failed: {e}");
                    }
                });
            }
            Err(e) => {
                eprintln!("weir-loadgen sink: stats accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer_stats(mut stream: TcpStream, counters: &Counters) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() > 16 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let (status, body) = if buf.starts_with(b"GET /count ") {
        ("200 OK", counters.to_json())
    } else {
        ("404 Not Found", String::from("not found\n"))
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
