//! Archive benchmark: how fast the Parquet exporter archives spans, compared
//! with writing the same rows from prebuilt Arrow record batches with arrow-rs's
//! `ArrowWriter` directly, and how many bytes a span takes in the archive,
//! compared with the same spans as OTLP protobuf compressed with zstd.
//!
//! Run (release build; the measurement takes about a minute on 2 cores):
//!
//! ```text
//! cargo bench -p weir-parquet --bench archive
//! cargo bench -p weir-parquet --bench archive -- --data mesh --requests 400 --rounds 5 \
//!     --zstd-level 3 --batch-requests 80 --keep /tmp/archive-sample
//! ```
//!
//! `--data synthetic|mesh|both` (default both, one after the other in one run)
//! picks the spans (`weir-spangen`): `synthetic` is the load generator's shape
//! (random ids inside URLs and user ids: values that barely compress), `mesh` a
//! Kubernetes service mesh (semantic-convention attributes, repeated routes and
//! status codes, log-normal durations, one pod per request).
//!
//! The raw ArrowWriter baseline writes the record batches the exporter's
//! conversion produced (already sorted), with the exporter's writer properties,
//! to one file: it includes Parquet encoding, compression and the file write,
//! and excludes reading OTLP, sorting and partitioning.
//!
//! Wall times are the best round; CPU times are the whole process's (all
//! threads) over all rounds, from /proc/self/stat, so they hold up when other
//! processes compete for the cores.
//!
//! Requests hold 100 spans. The exporter receives batches of 8,000 spans (80 requests concatenated, as weir's export stage batches them
//! with its default `max_items = 8192`), or of 100 spans with `--batch-requests 1`.

use std::path::Path;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use bytes::Bytes;
use futures::StreamExt as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use parquet::arrow::ArrowWriter;
use parquet::file::reader::{FileReader, SerializedFileReader};
use prost::Message;
use rand::SeedableRng;
use rand::rngs::StdRng;
use weir_parquet::writer::{FileSettings, properties};
use weir_parquet::{ParquetArchive, ParquetExporterConfig, schema};
use weir_pipeline::{Batch, Exporter, Metrics, Signal};

// The allocator of the weir binary: glibc malloc maps and unmaps the
// converter's large column buffers on every batch, and the page faults that
// follow serialise the converting and the encoding thread on the address space.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SPANS_PER_REQUEST: usize = 100;

struct Args {
    data: Vec<&'static str>,
    keep: Option<std::path::PathBuf>,
    requests: usize,
    rounds: usize,
    batch_requests: usize,
    zstd_level: i32,
}

fn args() -> Args {
    let mut a = Args {
        data: vec!["synthetic", "mesh"],
        keep: None,
        requests: 1000,
        rounds: 7,
        batch_requests: 80,
        zstd_level: 3,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        if argv[i] == "--data"
            && let Some(d) = argv.get(i + 1)
        {
            a.data = match d.as_str() {
                "synthetic" => vec!["synthetic"],
                "mesh" => vec!["mesh"],
                _ => vec!["synthetic", "mesh"],
            };
            i += 2;
            continue;
        }
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

/// The requests of one data set, encoded.
fn generate(data: &str, requests: usize) -> Vec<Bytes> {
    let encode = |r: ExportTraceServiceRequest| Bytes::from(r.encode_to_vec());
    match data {
        "mesh" => {
            let mut mesh = weir_spangen::Mesh::new(7);
            (0..requests)
                .map(|_| encode(mesh.traces(SPANS_PER_REQUEST)))
                .collect()
        }
        _ => {
            let mut rng = StdRng::seed_from_u64(7);
            (0..requests)
                .map(|i| encode(weir_spangen::synthetic::request(&mut rng, i, SPANS_PER_REQUEST)))
                .collect()
        }
    }
}

/// Compressed bytes per top-level column of a Parquet file, largest first.
fn column_sizes(file: Bytes) -> Vec<(String, i64)> {
    let Ok(reader) = SerializedFileReader::new(file) else {
        return Vec::new();
    };
    let mut sizes: Vec<(String, i64)> = Vec::new();
    for rg in reader.metadata().row_groups() {
        for c in rg.columns() {
            // The span attribute map's key and value leaves separately: they
            // hold most of the bytes.
            let parts = c.column_path().parts();
            let top = if parts[0] == "SpanAttributes" {
                format!("SpanAttributes.{}", parts.last().map_or("", String::as_str))
            } else {
                parts[0].clone()
            };
            match sizes.iter_mut().find(|(n, _)| *n == top) {
                Some((_, s)) => *s += c.compressed_size(),
                None => sizes.push((top, c.compressed_size())),
            }
        }
    }
    sizes.sort_by_key(|(_, s)| -s);
    sizes
}

/// The prebuilt batches as one Parquet file in memory, for the column breakdown.
fn encode_in_memory(batches: &[RecordBatch], zstd_level: i32) -> Bytes {
    let props = properties(Signal::Traces, &settings(zstd_level), "bench");
    let mut w = ArrowWriter::try_new(Vec::new(), schema::spans(), Some(props)).expect("writer");
    for b in batches {
        w.write(b).expect("write");
    }
    Bytes::from(w.into_inner().expect("close"))
}

fn main() {
    let a = args();
    for data in &a.data {
        run(&a, data);
    }
}

fn run(a: &Args, data: &str) {
    let requests = generate(data, a.requests);
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
    // What the exporter hands its writer: converted, sorted, split by partition.
    let prebuilt: Vec<RecordBatch> = batches
        .iter()
        .flat_map(|b| {
            weir_parquet::prepare(Signal::Traces, &b.payload, b.items, false)
                .expect("prepare")
                .0
                .into_iter()
                .map(|(_, batch)| batch)
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
        exporter_run(&rt, &keep.join(data), &batches, 1, a.zstd_level);
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

    println!("weir-parquet archive benchmark (cargo bench -p weir-parquet --bench archive), data: {data}");
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
    println!("  bytes/span by column (the raw file; top 12):");
    for (name, size) in column_sizes(encode_in_memory(&prebuilt, a.zstd_level))
        .iter()
        .take(12)
    {
        println!("    {name:<30} {:>6.2}", *size as f64 / spans as f64);
    }
    if let Some(keep) = &a.keep {
        println!("  archive kept in {}", keep.display());
    }
}
