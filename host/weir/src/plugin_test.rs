//! `weir plugin test`: runs one plugin, or a pipeline's chain, over an OTLP/JSON
//! file and prints (or compares) what comes out — a plugin author's inner loop,
//! usable in their own CI.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use weir_pipeline::config::{self, FailurePolicy, PluginConfig, PluginSource};
use weir_pipeline::{Batch, Metrics, Signal};
use weir_wasm::{ChainLink, PluginRuntime};

pub struct Args {
    pub wasm: Option<PathBuf>,
    pub plugin_config: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub pipeline: Option<String>,
    pub input: PathBuf,
    pub expect: Option<PathBuf>,
    /// Where compiled plugins are cached; `None` with `no_cache`.
    pub cache_dir: Option<PathBuf>,
    pub no_cache: bool,
    /// Run the chain this many times and print compile, instantiate and call times.
    pub repeat: Option<u32>,
}

/// The compile cache `weir plugin test` uses unless told otherwise:
/// `$WEIR_PLUGIN_CACHE_DIR`, else `$XDG_CACHE_HOME/weir/plugins`, else
/// `~/.cache/weir/plugins`.
fn default_cache_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("WEIR_PLUGIN_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("weir").join("plugins")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("weir").join("plugins")))
}

/// The cache directory to use, created private to this user; without one
/// (none found, or it cannot be created) every run compiles.
fn cache_dir(args: &Args) -> Option<PathBuf> {
    if args.no_cache {
        return None;
    }
    let dir = args.cache_dir.clone().or_else(default_cache_dir)?;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(&dir) {
        Ok(()) => Some(dir),
        Err(e) => {
            eprintln!(
                "not caching compiled plugins: cannot create {}: {e}",
                dir.display()
            );
            None
        }
    }
}

/// A plugin given by `--wasm` is named after its file.
fn name_of(wasm: &Path) -> String {
    wasm.file_stem()
        .map_or_else(|| "plugin".into(), |s| s.to_string_lossy().into_owned())
}

/// Returns whether the output matched `--expect` (true when there is none).
pub fn run(args: Args) -> anyhow::Result<bool> {
    let text = std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let json: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", args.input.display()))?;
    let signal = detect_signal(&json).with_context(|| {
        format!(
            "{}: expected resourceSpans, resourceLogs or resourceMetrics",
            args.input.display()
        )
    })?;
    let (payload, items) =
        weir_otlp::json::to_protobuf(signal, &text).with_context(|| format!("{}", args.input.display()))?;
    let metrics = Metrics::new();
    let cache = cache_dir(&args);
    let runtime = PluginRuntime::new(&metrics, cache.clone())?;
    let (links, timings) = links(&args, &runtime, signal)?;
    let chain = runtime.chain("plugin-test", links).with_full_failures();
    let batch = Batch::new(signal, payload, items);
    if let Some(n) = args.repeat {
        report_times(&chain, &batch, n.max(1), &timings, cache.as_deref())?;
    }
    let processed = chain
        .process_blocking(batch)
        .map_err(|e| anyhow::anyhow!("the batch was rejected: {e}"))?;
    let mut out = serde_json::Map::new();
    for (route, batch) in processed.outputs {
        out.insert(
            route.unwrap_or_else(|| "default".into()),
            to_json(signal, &batch)?,
        );
    }
    for (reason, n) in &processed.dropped {
        eprintln!("dropped {n} {}: {reason}", signal.item_noun());
    }
    let out = serde_json::Value::Object(out);
    println!("{}", serde_json::to_string_pretty(&out)?);
    let Some(expect) = &args.expect else {
        return Ok(true);
    };
    let wanted: serde_json::Value = serde_json::from_slice(
        &std::fs::read(expect).with_context(|| format!("reading {}", expect.display()))?,
    )
    .with_context(|| format!("{} is not JSON", expect.display()))?;
    if normalise(&wanted) == normalise(&out) {
        eprintln!("output matches {}", expect.display());
        Ok(true)
    } else {
        eprintln!("output differs from {}", expect.display());
        Ok(false)
    }
}

/// How long one plugin took to compile (or load from the cache) and to
/// instantiate and `init`.
struct LoadTimes {
    name: String,
    compile: std::time::Duration,
    instantiate: std::time::Duration,
}

fn load_timed(
    runtime: &PluginRuntime,
    name: &str,
    pc: &PluginConfig,
    here: &Path,
) -> anyhow::Result<(Arc<dyn weir_wasm::Runner>, LoadTimes)> {
    let started = std::time::Instant::now();
    let source = weir_wasm::WasmSource::read(pc, here)?;
    if let Some(s) = &source {
        runtime.prepare(s)?;
    }
    let compiled = std::time::Instant::now();
    let runner = runtime.load_source_blocking(name, pc, source)?;
    let times = LoadTimes {
        name: name.to_string(),
        compile: compiled - started,
        instantiate: compiled.elapsed(),
    };
    Ok((runner, times))
}

fn links(
    args: &Args,
    runtime: &PluginRuntime,
    signal: Signal,
) -> anyhow::Result<(Vec<ChainLink>, Vec<LoadTimes>)> {
    let here = std::env::current_dir().unwrap_or_default();
    match (&args.wasm, &args.config) {
        (Some(wasm), None) => {
            let table = match &args.plugin_config {
                Some(p) => read_table(p)?,
                None => toml::Table::new(),
            };
            let pc = PluginConfig {
                source: PluginSource::Path {
                    path: wasm.clone(),
                    sha256: None,
                },
                on_error: FailurePolicy::Reject,
                memory_limit: config::ByteSize::mib(64),
                timeout: config::HumanDuration::from_secs(5),
                instances: 1,
                config: table,
            };
            let name = name_of(wasm);
            let (runner, times) =
                load_timed(runtime, &name, &pc, &here).with_context(|| format!("plugin {name}"))?;
            Ok((
                vec![ChainLink {
                    name,
                    policy: FailurePolicy::Reject,
                    runner,
                }],
                vec![times],
            ))
        }
        (None, Some(path)) => {
            let cfg = config::load_file(path).map_err(|e| anyhow::anyhow!("{e}"))?;
            let name = args
                .pipeline
                .clone()
                .unwrap_or_else(|| signal.as_str().to_string());
            let pipeline = cfg.pipelines.get(&name).with_context(|| {
                format!(
                    "{}: no [pipelines.{name}]; pick one with --pipeline",
                    path.display()
                )
            })?;
            let mut links = Vec::new();
            let mut timings = Vec::new();
            for n in &pipeline.plugins {
                let pc = cfg
                    .plugins
                    .get(n)
                    .with_context(|| format!("plugins.{n} is not defined"))?;
                let (runner, times) =
                    load_timed(runtime, n, pc, &here).with_context(|| format!("plugins.{n}"))?;
                links.push(ChainLink {
                    name: n.clone(),
                    policy: pc.on_error,
                    runner,
                });
                timings.push(times);
            }
            Ok((links, timings))
        }
        _ => bail!("give either --wasm FILE (one plugin) or --config FILE (a pipeline's chain)"),
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `--repeat N`: the chain over the input N times, and what each step cost.
fn report_times(
    chain: &weir_wasm::PluginChain,
    batch: &Batch,
    n: u32,
    timings: &[LoadTimes],
    cache: Option<&Path>,
) -> anyhow::Result<()> {
    let cache = cache.map_or_else(|| "no cache".into(), |d| format!("cache {}", d.display()));
    for t in timings {
        eprintln!(
            "{}: compile {:.1} ms ({cache}), instantiate + init {:.2} ms",
            t.name,
            ms(t.compile),
            ms(t.instantiate)
        );
    }
    let mut calls = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let started = std::time::Instant::now();
        chain
            .process_blocking(batch.clone())
            .map_err(|e| anyhow::anyhow!("the batch was rejected: {e}"))?;
        calls.push(started.elapsed());
    }
    calls.sort();
    let pick = |q: f64| ms(calls[((calls.len() - 1) as f64 * q).round() as usize]);
    eprintln!(
        "chain over {} {} x {n}: min {:.3} ms, median {:.3} ms, p90 {:.3} ms, max {:.3} ms per call",
        batch.items,
        batch.signal.item_noun(),
        pick(0.0),
        pick(0.5),
        pick(0.9),
        pick(1.0)
    );
    Ok(())
}

fn read_table(path: &Path) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "json") {
        let v: serde_json::Value = serde_json::from_str(&text)?;
        return Ok(toml::Table::try_from(v)?);
    }
    Ok(toml::from_str(&text)?)
}

fn detect_signal(json: &serde_json::Value) -> Option<Signal> {
    let o = json.as_object()?;
    if o.contains_key("resourceSpans") {
        Some(Signal::Traces)
    } else if o.contains_key("resourceLogs") {
        Some(Signal::Logs)
    } else if o.contains_key("resourceMetrics") {
        Some(Signal::Metrics)
    } else {
        None
    }
}

fn to_json(signal: Signal, batch: &Batch) -> anyhow::Result<serde_json::Value> {
    let p = batch.payload.clone();
    Ok(match signal {
        Signal::Traces => serde_json::to_value(ExportTraceServiceRequest::decode(p)?)?,
        Signal::Logs => serde_json::to_value(ExportLogsServiceRequest::decode(p)?)?,
        Signal::Metrics => serde_json::to_value(ExportMetricsServiceRequest::decode(p)?)?,
    })
}

/// Makes hand-written expectations comparable: OTLP/JSON allows int64 as a
/// string or a number, and omitted fields equal their defaults.
fn normalise(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::Object(o) => J::Object(
            o.iter()
                .filter(|(_, v)| !is_default(v))
                .map(|(k, v)| (k.clone(), normalise(v)))
                .collect(),
        ),
        J::Array(a) => J::Array(a.iter().map(normalise).collect()),
        J::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse::<u64>()
            .map(|n| J::Number(n.into()))
            .unwrap_or_else(|_| v.clone()),
        _ => v.clone(),
    }
}

fn is_default(v: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match v {
        J::Null => true,
        J::Bool(b) => !b,
        J::Number(n) => n.as_f64() == Some(0.0),
        J::String(s) => s.is_empty() || s == "0",
        J::Array(a) => a.is_empty(),
        J::Object(o) => o.is_empty(),
    }
}
