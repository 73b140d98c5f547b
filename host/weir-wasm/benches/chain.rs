//! In-process benchmarks of the plugin runtime (criterion):
//!
//! - `call/empty-batch`: the fixed cost of one plugin call — enter the instance,
//!   hand over a batch (empty), return — with one host call (`wasm`) and without
//!   (`wasm-noop`), next to the host-side decode alone;
//! - `chain/512-spans`: the four reference plugins over a 512-span batch, as Wasm
//!   components and compiled natively into the host (the chain-only ratio);
//! - `plugin/512-spans/<name>`: each plugin alone, Wasm and native.
//!
//! Needs the plugin components built first:
//!   plugins/build.sh
//!   cargo bench -p weir-wasm --features native-plugins --bench chain

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use weir_pipeline::config::{FailurePolicy, PluginConfig, PluginSource};
use weir_pipeline::{Batch, BatchProcessor, Metrics, Signal};
use weir_wasm::{ChainLink, PluginRuntime, Runner};

// The allocator the weir binary uses, so host-side costs match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn kv(k: &str, v: String) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    }
}

/// SplitMix64's finalizer: distinct inputs give well-spread outputs.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `n` spans of ~700 bytes with 10 string attributes (one an email), over 4 services.
pub fn spans(n: usize) -> Batch {
    let resource_spans = (0..4)
        .map(|svc| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv(
                        "service.name",
                        format!("{}-service", ["checkout", "cart", "payment", "shipping"][svc]),
                    ),
                    kv("tenant", format!("tenant-{}", svc % 2)),
                    kv("host.name", format!("node-{svc}.cluster.local")),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..n / 4)
                    .map(|i| {
                        let id = (svc * n + i) as u64;
                        Span {
                            // Well-mixed ids, as real tracers make: sampling keeps ~half.
                            trace_id: [mix(id).to_be_bytes(), mix(!id).to_be_bytes()].concat(),
                            span_id: (id + 1).to_be_bytes().to_vec(),
                            name: format!("GET /api/v1/orders/{}", i % 16),
                            kind: 2,
                            start_time_unix_nano: 1_700_000_000_000_000_000 + id,
                            end_time_unix_nano: 1_700_000_000_005_000_000 + id,
                            status: Some(Status {
                                code: if i % 50 == 0 { 2 } else { 0 },
                                ..Default::default()
                            }),
                            attributes: vec![
                                kv("http.method", "GET".into()),
                                kv("http.route", "/api/v1/orders/{id}".into()),
                                kv("http.status_code", "200".into()),
                                kv("user.email", format!("user{i}@example.com")),
                                kv(
                                    "user.agent",
                                    "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101".into(),
                                ),
                                kv("net.peer.ip", format!("10.0.{}.{}", i % 255, svc)),
                                kv("db.statement", format!("SELECT * FROM orders WHERE id = {i}")),
                                kv("order.id", format!("ord-{id:012}")),
                                kv("region", "eu-west-1".into()),
                                kv("feature.flag", "checkout-v2".into()),
                            ],
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    let req = ExportTraceServiceRequest { resource_spans };
    Batch::new(Signal::Traces, Bytes::from(req.encode_to_vec()), n)
}

fn wasm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm32-wasip2/release")
}

fn plugin(source: PluginSource, config: &str) -> PluginConfig {
    PluginConfig {
        source,
        on_error: FailurePolicy::Pass,
        memory_limit: weir_pipeline::config::ByteSize::mib(64),
        timeout: weir_pipeline::config::HumanDuration::from_secs(5),
        instances: 1,
        config: toml::from_str(config).expect("plugin config"),
    }
}

/// The four reference plugins, in order, with the configs the end-to-end benchmark
/// (bench/passthrough.py, systems weir-chain and weir-native-chain) uses.
pub const CHAIN: &[(&str, &str)] = &[
    ("sample", include_str!("../../../bench/configs/sample.toml")),
    ("redact", include_str!("../../../bench/configs/redact.toml")),
    ("enrich", include_str!("../../../bench/configs/enrich.toml")),
    ("route", include_str!("../../../bench/configs/route.toml")),
];

fn chain(runtime: &PluginRuntime, native: bool, only: Option<&str>) -> weir_wasm::PluginChain {
    let here = std::env::current_dir().expect("cwd");
    let links = CHAIN
        .iter()
        .filter(|(name, _)| only.is_none_or(|o| o == *name))
        .map(|(name, cfg)| {
            let source = if native {
                PluginSource::Builtin((*name).into())
            } else {
                PluginSource::Path {
                    path: wasm_dir().join(format!("weir_plugin_{name}.wasm")),
                    sha256: None,
                }
            };
            ChainLink {
                name: (*name).into(),
                policy: FailurePolicy::Pass,
                runner: runtime
                    .load_blocking(name, &plugin(source, cfg), &here)
                    .expect("plugin loads"),
            }
        })
        .collect();
    runtime.chain("bench", links)
}

fn bench(c: &mut Criterion) {
    let metrics = Metrics::new();
    let runtime = PluginRuntime::new(&metrics, None).expect("engine");
    let here = std::env::current_dir().expect("cwd");
    // Plugins run as futures (async stores); weir awaits them on a worker.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let empty = Batch::new(Signal::Traces, Bytes::new(), 0);
    let mut group = c.benchmark_group("call");
    let misbehave = plugin(
        PluginSource::Path {
            path: wasm_dir().join("weir_test_plugin_misbehave.wasm"),
            sha256: None,
        },
        "mode = \"ok\"",
    );
    let wasm: Arc<dyn Runner> = runtime
        .load_blocking("ok", &misbehave, &here)
        .expect("misbehave plugin");
    group.bench_function("empty-batch/wasm", |b| {
        b.iter(|| {
            let tree = weir_batch::HostBatch::decode(&empty).expect("decode");
            black_box(rt.block_on(wasm.run(tree)))
        })
    });
    // The same plugin returning at once: enter, hand over the batch, return,
    // without the one host call (`len`) the run above makes.
    let noop = plugin(
        PluginSource::Path {
            path: wasm_dir().join("weir_test_plugin_misbehave.wasm"),
            sha256: None,
        },
        "mode = \"noop\"",
    );
    let noop: Arc<dyn Runner> = runtime
        .load_blocking("noop", &noop, &here)
        .expect("misbehave plugin");
    group.bench_function("empty-batch/wasm-noop", |b| {
        b.iter(|| {
            let tree = weir_batch::HostBatch::decode(&empty).expect("decode");
            black_box(rt.block_on(noop.run(tree)))
        })
    });
    // The no-op plugin over a real batch: what a plugin that reads nothing
    // costs (the batch is not indexed, and leaves as it came).
    let spans512 = spans(512);
    group.bench_function("512-spans/wasm-noop", |b| {
        b.iter(|| {
            let tree = weir_batch::HostBatch::decode(&spans512).expect("decode");
            black_box(rt.block_on(noop.run(tree)))
        })
    });
    // What every such call paid before the shape was taken lazily: the index.
    group.bench_function("512-spans/index-only", |b| {
        b.iter(|| black_box(weir_batch::HostBatch::decode(&spans512).expect("decode").shape()))
    });
    group.bench_function("empty-batch/decode-only", |b| {
        b.iter(|| black_box(weir_batch::HostBatch::decode(&empty).expect("decode")))
    });
    group.finish();

    let batch = spans(512);
    let mut group = c.benchmark_group("chain/512-spans");
    group.throughput(Throughput::Elements(512));
    let wasm_chain = chain(&runtime, false, None);
    let native_chain = chain(&runtime, true, None);
    group.bench_function("wasm", |b| {
        b.iter(|| black_box(rt.block_on(wasm_chain.process(batch.clone())).expect("ok")))
    });
    group.bench_function("native", |b| {
        b.iter(|| black_box(rt.block_on(native_chain.process(batch.clone())).expect("ok")))
    });
    group.finish();

    // Each plugin alone (the batch is decoded and re-encoded around it, as in
    // a chain of one), to see where the Wasm/native difference comes from.
    let mut group = c.benchmark_group("plugin/512-spans");
    group.throughput(Throughput::Elements(512));
    for (name, _) in CHAIN {
        for native in [false, true] {
            let one = chain(&runtime, native, Some(name));
            let id = format!("{name}/{}", if native { "native" } else { "wasm" });
            group.bench_function(id, |b| {
                b.iter(|| black_box(rt.block_on(one.process(batch.clone())).expect("ok")))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
