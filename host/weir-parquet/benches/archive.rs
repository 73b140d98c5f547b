//! Archive benchmark: how fast the Parquet exporter archives spans, compared
//! with writing the same rows from prebuilt Arrow record batches with arrow-rs's
//! `ArrowWriter` directly, and how many bytes a span takes in the archive,
//! compared with the same spans as OTLP protobuf compressed with zstd.
//!
//! Run (release build; the measurement takes about a minute on 2 cores):
//!
//! ```text
//! cargo bench -p weir-parquet --bench archive
//! cargo bench -p weir-parquet --bench archive -- --requests 400 --rounds 5 --zstd-level 3 \
//!     --batch-requests 80 --keep /tmp/archive-sample
//! ```
//!
//! Wall times are the best round; CPU times are the whole process's (all
//! threads) over all rounds, from /proc/self/stat, so they hold up when other
//! processes compete for the cores.
//!
//! Spans are shaped like weir's load generator's: ~700 bytes of OTLP each, 10
//! string attributes with the repetitive values real telemetry has, random ids,
//! 100 spans per request, 7 resource attributes. The exporter receives batches
//! of 8,000 spans (80 requests concatenated, as weir's export stage batches them
//! with its default `max_items = 8192`), or of 100 spans with `--batch-requests 1`.

use std::path::Path;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use bytes::Bytes;
use futures::StreamExt as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};
use parquet::arrow::ArrowWriter;
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weir_parquet::writer::{FileSettings, properties};
use weir_parquet::{ParquetArchive, ParquetExporterConfig, convert, schema};
use weir_pipeline::{Batch, Exporter, Metrics, Signal};

const SPANS_PER_REQUEST: usize = 100;
/// 2025-01-02T03:30:00Z: every generated span starts in the minute after it.
const T0: u64 = 1_735_788_600_000_000_000;

struct Args {
    keep: Option<std::path::PathBuf>,
    requests: usize,
    rounds: usize,
    batch_requests: usize,
    zstd_level: i32,
}

fn args() -> Args {
    let mut a = Args {
        keep: None,
        requests: 1000,
        rounds: 7,
        batch_requests: 80,
        zstd_level: 3,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        if argv[i] == "--keep"
            && let Some(dir) = argv.get(i + 1)
        {
            a.keep = Some(dir.into());
            i += 2;
            continue;
        }
        let value = argv.get(i + 1).and_then(|v| v.parse::<usize>().ok());
        match (argv[i].as_str(), value) {
            ("--requests", Some(v)) => a.requests = v.max(1),
            ("--rounds", Some(v)) => a.rounds = v.max(1),
            ("--batch-requests", Some(v)) => a.batch_requests = v.max(1),
            ("--zstd-level", Some(v)) => a.zstd_level = i32::try_from(v).unwrap_or(3),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const SERVICES: &[&str] = &["checkout", "cart", "payment", "inventory", "shipping", "frontend"];
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE"];
const ROUTES: &[&str] = &[
    "/api/v1/orders/{order_id}/items",
    "/api/v1/carts/{cart_id}",
    "/api/v1/payments/{payment_id}/capture",
    "/api/v1/products/{sku}/stock",
    "/api/v1/shipments/{shipment_id}/labels",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
];

/// One request of realistic spans (the shape of bench/loadgen's).
fn request(rng: &mut StdRng, index: usize) -> ExportTraceServiceRequest {
    let service = SERVICES[index % SERVICES.len()];
    let instance: [u8; 16] = rng.random();
    let resource = Resource {
        attributes: vec![
            kv("service.name", format!("{service}-service")),
            kv("service.version", format!("1.{}.{}", index % 7, index % 13)),
            kv("service.instance.id", hex(&instance)),
            kv(
                "host.name",
                format!("ip-10-42-{}-{}.ec2.internal", index % 16, index % 250),
            ),
            kv("deployment.environment.name", "production"),
            kv("telemetry.sdk.language", "rust"),
            kv("telemetry.sdk.name", "opentelemetry"),
        ],
        ..Default::default()
    };
    let mut trace_id = [0u8; 16];
    let mut root_id = [0u8; 8];
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| {
            let is_root = i % 10 == 0;
            if is_root {
                trace_id = rng.random();
                root_id = rng.random();
            }
            let span_id: [u8; 8] = if is_root { root_id } else { rng.random() };
            let method = METHODS[rng.random_range(0..METHODS.len())];
            let route = ROUTES[rng.random_range(0..ROUTES.len())];
            let id: u32 = rng.random();
            let path = route.split('{').next().unwrap_or(route);
            let start = T0 + rng.random_range(1_000_000..60_000_000_000);
            let status_code = if rng.random_ratio(1, 50) { "503" } else { "200" };
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: if is_root { Vec::new() } else { root_id.to_vec() },
                flags: 0x301,
                name: format!("{method} {route}"),
                kind: if is_root {
                    span::SpanKind::Server
                } else if rng.random_bool(0.5) {
                    span::SpanKind::Client
                } else {
                    span::SpanKind::Internal
                } as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + rng.random_range(50_000..900_000_000),
                attributes: vec![
                    kv("http.request.method", method),
                    kv("http.route", route),
                    kv(
                        "url.full",
                        format!(
                            "https://shop-frontend.prod.example.com{path}{id:08x}?page={}&limit=50&sort=created_at&order=desc&currency=EUR&locale=en-US",
                            id % 9
                        ),
                    ),
                    kv("url.scheme", "https"),
                    kv("server.address", "shop-frontend.prod.example.com"),
                    kv("network.peer.address", format!("10.42.{}.{}", id % 256, (id >> 8) % 256)),
                    kv("user_agent.original", AGENTS[rng.random_range(0..AGENTS.len())]),
                    kv("http.response.status_code", status_code),
                    kv("code.function.name", "com.example.shop.api.RequestHandler.handle"),
                    kv("enduser.id", format!("user-{:08x}-{:08x}", id, id.rotate_left(13))),
                ],
                status: Some(Status {
                    code: if status_code == "200" {
                        status::StatusCode::Unset
                    } else {
                        status::StatusCode::Error
                    } as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.instrumentation.http".to_owned(),
                    version: "2.6.0".to_owned(),
                    ..Default::default()
                }),
                spans,
                schema_url: "https://opentelemetry.io/schemas/1.26.0".to_owned(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.26.0".to_owned(),
        }],
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                total += dir_bytes(&p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                total += e.metadata().map_or(0, |m| m.len());
            }
        }
    }
    total
}

/// CPU time of this whole process (all threads, also exited ones), from
/// /proc/self/stat: user + system, in clock ticks of 10 ms. Robust to other
/// processes competing for the cores, unlike wall time.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Wall times of each round and the CPU time of all rounds together.
#[derive(Default)]
struct Runs {
    wall: Vec<Duration>,
    cpu: Duration,
}

impl Runs {
    fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let (cpu, t) = (process_cpu(), Instant::now());
        let r = f();
        self.wall.push(t.elapsed());
        self.cpu += process_cpu().saturating_sub(cpu);
        r
    }
}

fn best(times: &[Duration]) -> Duration {
    times.iter().copied().min().unwrap_or_default()
}

fn median(times: &[Duration]) -> Duration {
    let mut t = times.to_vec();
    t.sort();
    t.get(t.len() / 2).copied().unwrap_or_default()
}

fn settings(zstd_level: i32) -> FileSettings {
    let c = ParquetExporterConfig::local("/unused");
    FileSettings {
        max_rows: c.max_rows,
        max_bytes: c.max_bytes.as_usize(),
        max_age: c.max_age.0,
        max_open_files: c.max_open_files,
        row_group_rows: c.row_group_rows,
        zstd_level,
    }
}

/// arrow-rs alone: prebuilt record batches → ArrowWriter → a file (same properties).
fn raw_arrow_writer(dir: &Path, batches: &[RecordBatch], zstd_level: i32) -> u64 {
    let path = dir.join("raw.parquet");
    let file = std::fs::File::create(&path).expect("create");
    let props = properties(Signal::Traces, &settings(zstd_level), "bench");
    let mut w = ArrowWriter::try_new(file, schema::spans(), Some(props)).expect("writer");
    for b in batches {
        w.write(b).expect("write");
    }
    let file = w.into_inner().expect("close");
    file.sync_all().expect("fsync");
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    let _ = std::fs::remove_file(&path);
    size
}

/// The exporter end to end: encoded batches → export() → shutdown() (file finished).
fn exporter_run(
    rt: &tokio::runtime::Runtime,
    root: &Path,
    batches: &[Batch],
    concurrency: usize,
    zstd_level: i32,
) -> u64 {
    let _ = std::fs::remove_dir_all(root);
    let mut cfg = ParquetExporterConfig::local(root);
    cfg.zstd_level = zstd_level;
    rt.block_on(async {
        let archive = ParquetArchive::new("bench", &cfg, &Metrics::new()).expect("archive");
        futures::stream::iter(batches)
            .map(|b| archive.export(b))
            .buffer_unordered(concurrency)
            .for_each(|r| {
                r.expect("export");
                async {}
            })
            .await;
        archive.shutdown().await;
        dir_bytes(root)
    })
}

fn zstd_bytes(payloads: &[Bytes], level: i32) -> usize {
    payloads
        .iter()
        .map(|p| zstd::bulk::compress(p, level).expect("zstd").len())
        .sum()
}

fn main() {
    let a = args();
    let mut rng = StdRng::seed_from_u64(7);
    let requests: Vec<Bytes> = (0..a.requests)
        .map(|i| Bytes::from(request(&mut rng, i).encode_to_vec()))
        .collect();
    let spans = a.requests * SPANS_PER_REQUEST;
    let proto_bytes: usize = requests.iter().map(Bytes::len).sum();
    let batches: Vec<Batch> = requests
        .chunks(a.batch_requests)
        .map(|c| {
            let parts: Vec<Batch> = c
                .iter()
                .map(|p| Batch::new(Signal::Traces, p.clone(), SPANS_PER_REQUEST))
                .collect();
            Batch::concat(Signal::Traces, &parts)
        })
        .collect();
    let prebuilt: Vec<RecordBatch> = batches
        .iter()
        .map(|b| {
            convert::convert(Signal::Traces, &b.payload, b.items)
                .expect("convert")
                .batch
        })
        .collect();

    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // One core, no I/O: where the time goes.
    let mut decode = Runs::default();
    let mut build = Runs::default();
    let mut raw = Runs::default();
    let mut seq = Runs::default();
    let mut conc = Runs::default();
    let (mut raw_size, mut archive_size) = (0, 0);
    for _ in 0..a.rounds {
        decode.run(|| {
            for b in &batches {
                let req = ExportTraceServiceRequest::decode(b.payload.clone()).expect("decode");
                std::hint::black_box(&req);
            }
        });
        build.run(|| {
            for b in &batches {
                std::hint::black_box(
                    weir_parquet::prepare(Signal::Traces, &b.payload, b.items, false).expect("prepare"),
                );
            }
        });
        raw_size = raw.run(|| raw_arrow_writer(tmp.path(), &prebuilt, a.zstd_level));
        archive_size = seq.run(|| exporter_run(&rt, &tmp.path().join("seq"), &batches, 1, a.zstd_level));
        conc.run(|| exporter_run(&rt, &tmp.path().join("conc"), &batches, 4, a.zstd_level));
    }
    if let Some(keep) = &a.keep {
        exporter_run(&rt, keep, &batches, 1, a.zstd_level);
    }

    let total = (spans * a.rounds) as f64;
    let wall_us = |r: &Runs| best(&r.wall).as_secs_f64() * 1e6 / spans as f64;
    let median_us = |r: &Runs| median(&r.wall).as_secs_f64() * 1e6 / spans as f64;
    let cpu_us = |r: &Runs| r.cpu.as_secs_f64() * 1e6 / total;
    let per_s = |r: &Runs| 1e6 / wall_us(r);
    let zstd_req = zstd_bytes(&requests, 3);
    let zstd_batch = zstd_bytes(&batches.iter().map(|b| b.payload.clone()).collect::<Vec<_>>(), 3);
    let per_span = |b: usize| b as f64 / spans as f64;
    let archive_per_span = archive_size as f64 / spans as f64;

    println!("weir-parquet archive benchmark (cargo bench -p weir-parquet --bench archive)");
    println!(
        "  input: {} requests x {SPANS_PER_REQUEST} spans = {spans} spans, {:.0} bytes/span as OTLP protobuf; \
         exporter batches of {} spans; zstd level {}; {} rounds",
        a.requests,
        per_span(proto_bytes),
        a.batch_requests * SPANS_PER_REQUEST,
        a.zstd_level,
        a.rounds
    );
    println!(
        "  throughput: spans/s (best round), wall us/span best (median), CPU us/span (all rounds, all threads)"
    );
    let line = |name: &str, r: &Runs| {
        println!(
            "    {name:<52} {:>9.0}  {:>5.2} ({:.2})  cpu {:>5.2}  ratio wall {:.2} cpu {:.2}",
            per_s(r),
            wall_us(r),
            median_us(r),
            cpu_us(r),
            wall_us(&raw) / wall_us(r),
            cpu_us(&raw) / cpu_us(r),
        )
    };
    line("arrow-rs ArrowWriter, prebuilt RecordBatches -> file", &raw);
    line("exporter, OTLP bytes -> file, 1 batch in flight", &seq);
    line("exporter, OTLP bytes -> file, 4 batches in flight", &conc);
    println!(
        "    (one core, no I/O: OTLP wire -> Arrow record batches {:.2} us/span wall, {:.2} cpu; \
         for scale, a prost decode alone {:.2} wall, {:.2} cpu)",
        wall_us(&build),
        cpu_us(&build),
        wall_us(&decode),
        cpu_us(&decode)
    );
    println!("  size (bytes/span):");
    println!(
        "    OTLP protobuf                                  {:>6.1}",
        per_span(proto_bytes)
    );
    println!(
        "    OTLP protobuf + zstd(3), per 100-span request  {:>6.1}",
        per_span(zstd_req)
    );
    println!(
        "    OTLP protobuf + zstd(3), per {}-span batch    {:>6.1}",
        a.batch_requests * SPANS_PER_REQUEST,
        per_span(zstd_batch)
    );
    println!(
        "    archive Parquet, zstd({})                       {:>6.1}  ratio {:.2} vs per-request zstd, {:.2} vs per-batch",
        a.zstd_level,
        archive_per_span,
        archive_per_span / per_span(zstd_req),
        archive_per_span / per_span(zstd_batch)
    );
    println!(
        "    arrow-rs ArrowWriter file (same rows)          {:>6.1}",
        raw_size as f64 / spans as f64
    );
    if let Some(keep) = &a.keep {
        println!("  archive kept in {}", keep.display());
    }
}
