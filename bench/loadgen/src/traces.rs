//! Trace load generator: pre-encodes a pool of realistic
//! `ExportTraceServiceRequest`s, then replays them as raw bytes over
//! OTLP/gRPC at a target span rate (or as fast as possible).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;
use tonic::client::Grpc;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

use weir_spangen::values::kv;

use crate::codec::RawCodec;
use crate::wire;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

#[derive(Debug, clap::Args)]
pub struct TracesArgs {
    /// OTLP/gRPC endpoint of the system under test.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Target spans per second across all workers (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 100)]
    spans_per_request: usize,
    /// Requests in flight at once (one sending task each).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// HTTP/2 connections the workers are spread over.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Distinct pre-encoded requests to cycle through.
    #[arg(long, default_value_t = 64)]
    pool: usize,
    /// Seed for the generated content.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Plant a secret (an email, a bearer JWT, a card number or a SQL
    /// statement, in turn) in one span out of every N, for redaction
    /// benchmarks; 0 = none (the default, which keeps the load identical to
    /// the pass-through benchmark's).
    #[arg(long, default_value_t = 0)]
    secrets_every: usize,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// After a failed request, this worker pauses this long (milliseconds)
    /// before sending again, so a system shedding load is not hammered in a
    /// tight loop.
    #[arg(long, default_value_t = 10)]
    error_backoff_ms: u64,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Write every acknowledged request as a CSV line "sent_at_secs,latency_us"
    /// (seconds since the start of sending) to this file, for latency over time.
    #[arg(long)]
    latency_log: Option<std::path::PathBuf>,
    /// CA (PEM) to verify an https:// endpoint with.
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
    /// The name the endpoint's certificate must carry.
    #[arg(long, default_value = "localhost")]
    tls_server_name: String,
}

#[derive(Debug, Default)]
struct Stats {
    ok_requests: AtomicU64,
    failed_requests: AtomicU64,
    ok_spans: AtomicU64,
    failed_spans: AtomicU64,
    errors: Mutex<HashMap<String, u64>>,
}

impl Stats {
    fn record_error(&self, spans: u64, error: String) {
        self.failed_requests.fetch_add(1, Ordering::Relaxed);
        self.failed_spans.fetch_add(spans, Ordering::Relaxed);
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(error).or_default() += 1;
        }
    }
}

pub async fn run(args: TracesArgs) -> anyhow::Result<()> {
    if args.spans_per_request == 0 || args.concurrency == 0 || args.connections == 0 || args.pool == 0 {
        bail!("--spans-per-request, --concurrency, --connections and --pool must be positive");
    }
    if !(args.duration > 0.0 && args.timeout > 0.0) {
        bail!("--duration and --timeout must be positive");
    }
    let pool: Arc<[Bytes]> =
        build_pool(args.pool, args.spans_per_request, args.seed, args.secrets_every).into();
    let pool_bytes: usize = pool.iter().map(Bytes::len).sum();
    let bytes_per_span = pool_bytes as f64 / (args.pool * args.spans_per_request) as f64;
    eprintln!(
        "weir-loadgen traces: {} requests x {} spans pre-encoded, {:.0} bytes/span, {:.1} KiB/request",
        args.pool,
        args.spans_per_request,
        bytes_per_span,
        pool_bytes as f64 / args.pool as f64 / 1024.0,
    );

    let endpoint = Endpoint::from_shared(args.endpoint.clone())
        .with_context(|| format!("invalid endpoint {}", args.endpoint))?
        .tcp_nodelay(true)
        .timeout(Duration::from_secs_f64(args.timeout));
    let endpoint = match &args.tls_ca {
        Some(ca) => {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            endpoint
                .tls_config(
                    tonic::transport::ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(pem))
                        .domain_name(args.tls_server_name.clone()),
                )
                .context("TLS config")?
        }
        None => endpoint,
    };
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        channels.push(
            endpoint
                .connect()
                .await
                .with_context(|| format!("connecting to {}", args.endpoint))?,
        );
    }

    let spans_per_request = args.spans_per_request as u64;
    let period =
        (args.rate > 0).then(|| Duration::from_secs_f64(spans_per_request as f64 / args.rate as f64));
    let stats = Arc::new(Stats::default());
    let seq = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration);

    let mut workers = Vec::with_capacity(args.concurrency);
    for i in 0..args.concurrency {
        let channel = channels[i % channels.len()].clone();
        let worker = Worker {
            grpc: Grpc::new(channel),
            pool: Arc::clone(&pool),
            stats: Arc::clone(&stats),
            seq: Arc::clone(&seq),
            spans_per_request,
            period,
            error_backoff: Duration::from_millis(args.error_backoff_ms),
            start,
            end,
        };
        workers.push(tokio::spawn(worker.run()));
    }
    let mut latencies: Vec<(f64, u32)> = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.context("sender task panicked")?);
    }
    latencies.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let Some(path) = &args.latency_log {
        let mut csv = String::with_capacity(latencies.len() * 16);
        for (at, us) in &latencies {
            csv.push_str(&format!("{at:.6},{us}\n"));
        }
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut sorted: Vec<u32> = latencies.iter().map(|l| l.1).collect();
    sorted.sort_unstable();
    let pct = |p: f64| -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((sorted.len() - 1) as f64 * p).round() as usize;
        f64::from(sorted[i.min(sorted.len() - 1)]) / 1e3
    };
    let (p50, p99, max) = (pct(0.50), pct(0.99), pct(1.0));
    // Paced runs finish just before `end`; unpaced ones drain in-flight
    // requests after it. Either way, rate over at least the nominal duration.
    let elapsed = start.elapsed().as_secs_f64().max(args.duration);

    let ok_requests = stats.ok_requests.load(Ordering::Relaxed);
    let failed_requests = stats.failed_requests.load(Ordering::Relaxed);
    let ok_spans = stats.ok_spans.load(Ordering::Relaxed);
    let failed_spans = stats.failed_spans.load(Ordering::Relaxed);
    let rate = ok_spans as f64 / elapsed;
    eprintln!(
        "weir-loadgen traces: sent {ok_spans} spans ok ({rate:.0} spans/s) in {elapsed:.2}s; \
         requests ok={ok_requests} failed={failed_requests} (failed spans {failed_spans}); \
         latency ms p50={p50:.2} p99={p99:.2} max={max:.2}"
    );
    let mut errors: Vec<(String, u64)> = stats
        .errors
        .lock()
        .map(|e| e.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    errors.sort_by_key(|e| std::cmp::Reverse(e.1));
    for (error, n) in errors.iter().take(5) {
        eprintln!("weir-loadgen traces:   {n} x {error}");
    }
    if args.json {
        let errors_json: Vec<String> = errors
            .iter()
            .take(5)
            .map(|(error, n)| format!("{{\"count\":{n},\"error\":{}}}", json_string(error)))
            .collect();
        println!(
            "{{\"ok_spans\":{ok_spans},\"failed_spans\":{failed_spans},\"ok_requests\":{ok_requests},\
             \"failed_requests\":{failed_requests},\"elapsed_secs\":{elapsed:.6},\"bytes_per_span\":{bytes_per_span:.1},\
             \"latency_ms\":{{\"p50\":{p50:.3},\"p99\":{p99:.3},\"max\":{max:.3}}},\
             \"errors\":[{}]}}",
            errors_json.join(",")
        );
    }
    Ok(())
}

struct Worker {
    grpc: Grpc<Channel>,
    pool: Arc<[Bytes]>,
    stats: Arc<Stats>,
    seq: Arc<AtomicU64>,
    spans_per_request: u64,
    period: Option<Duration>,
    error_backoff: Duration,
    start: Instant,
    end: Instant,
}

impl Worker {
    /// Sends until the end; returns (sent at, latency) of every acknowledged request.
    async fn run(mut self) -> Vec<(f64, u32)> {
        let mut latencies = Vec::new();
        loop {
            // A shared sequence number paces all workers against one global
            // schedule: request k is due at start + k * period.
            let k = self.seq.fetch_add(1, Ordering::Relaxed);
            match self.period {
                Some(period) => {
                    let due = self.start + period.mul_f64(k as f64);
                    if due >= self.end {
                        break;
                    }
                    tokio::time::sleep_until(due).await;
                }
                None if Instant::now() >= self.end => break,
                None => {}
            }
            let body = self.pool[(k % self.pool.len() as u64) as usize].clone();
            let sent = Instant::now();
            match self.send(body).await {
                Ok(()) => {
                    let us = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                    latencies.push(((sent - self.start).as_secs_f64(), us));
                    self.stats.ok_requests.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .ok_spans
                        .fetch_add(self.spans_per_request, Ordering::Relaxed);
                }
                Err(status) => {
                    self.stats.record_error(
                        self.spans_per_request,
                        format!("{:?}: {}", status.code(), status.message()),
                    );
                    tokio::time::sleep(self.error_backoff).await;
                }
            }
        }
        latencies
    }

    async fn send(&mut self, body: Bytes) -> Result<(), tonic::Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("connection not ready: {e}")))?;
        self.grpc
            .unary(
                tonic::Request::new(body),
                PathAndQuery::from_static(EXPORT_PATH),
                RawCodec,
            )
            .await
            .map(drop)
    }
}

/// Quotes `s` as a JSON string.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds `pool` encoded requests of `spans_per_request` spans each, with a
/// secret in one span out of every `secrets_every` (0 = none).
pub fn build_pool(pool: usize, spans_per_request: usize, seed: u64, secrets_every: usize) -> Vec<Bytes> {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (0..pool)
        .map(|i| {
            let mut request =
                weir_spangen::synthetic::request_starting(&mut rng, i, spans_per_request, |ago| {
                    now.saturating_sub(ago)
                });
            if secrets_every > 0 {
                plant_secrets(&mut request, i * spans_per_request, secrets_every);
            }
            let encoded = Bytes::from(request.encode_to_vec());
            debug_assert_eq!(
                wire::count(&encoded, wire::SPANS_PATH),
                Ok(spans_per_request as u64)
            );
            encoded
        })
        .collect()
}

/// Adds one secret attribute to every `every`-th span (counting from
/// `first`, the request's first span number). Placement is by position, not
/// drawn from the RNG, so the rest of the load is unchanged.
fn plant_secrets(request: &mut ExportTraceServiceRequest, first: usize, every: usize) {
    let spans = request
        .resource_spans
        .iter_mut()
        .flat_map(|r| r.scope_spans.iter_mut())
        .flat_map(|s| s.spans.iter_mut());
    for (n, span) in spans.enumerate() {
        let number = first + n;
        if !number.is_multiple_of(every) {
            continue;
        }
        let secret = match (number / every) % 4 {
            0 => kv("user.email", format!("customer{number}@example.com")),
            1 => kv(
                "http.request.header.authorization",
                format!("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ{number:x}In0.c2lnbmF0dXJl"),
            ),
            2 => kv("payment.card", "card 4111 1111 1111 1111 charged"),
            _ => kv(
                "db.statement",
                format!("SELECT * FROM users WHERE email = 'u{number}@example.com'"),
            ),
        };
        span.attributes.push(secret);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_string_escapes() {
        assert_eq!(json_string("a\"b\\c\nd"), r#""a\"b\\c\u000ad""#);
    }

    #[test]
    fn pool_spans_are_realistic() {
        let pool = build_pool(4, 100, 7, 0);
        let bytes: usize = pool.iter().map(Bytes::len).sum();
        let per_span = bytes / 400;
        assert!((600..=800).contains(&per_span), "{per_span} bytes/span");
        let req = ExportTraceServiceRequest::decode(pool[0].clone()).expect("decodes");
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 100);
        assert!(
            spans
                .iter()
                .all(|s| s.attributes.len() == 10 && s.trace_id.len() == 16 && s.span_id.len() == 8)
        );
    }

    #[test]
    fn secrets_are_planted_without_changing_the_rest() {
        let plain = build_pool(2, 40, 3, 0);
        let with = build_pool(2, 40, 3, 10);
        let mut planted = Vec::new();
        for (a, b) in plain.iter().zip(&with) {
            let a = ExportTraceServiceRequest::decode(a.clone()).expect("decodes");
            let b = ExportTraceServiceRequest::decode(b.clone()).expect("decodes");
            let (a, b) = (
                &a.resource_spans[0].scope_spans[0].spans,
                &b.resource_spans[0].scope_spans[0].spans,
            );
            for (x, y) in a.iter().zip(b) {
                assert_eq!(x.attributes[..], y.attributes[..10]);
                planted.extend(y.attributes[10..].iter().map(|kv| kv.key.clone()));
            }
        }
        assert_eq!(
            planted,
            [
                "user.email",
                "http.request.header.authorization",
                "payment.card",
                "db.statement",
                "user.email",
                "http.request.header.authorization",
                "payment.card",
                "db.statement"
            ]
        );
    }
}
