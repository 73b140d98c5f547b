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
use weir_pipeline::{Batch, BatchProcessor, Metrics, Signal};
use weir_wasm::{ChainLink, PluginRuntime};

pub struct Args {
    pub wasm: Option<PathBuf>,
    pub plugin_config: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub pipeline: Option<String>,
    pub input: PathBuf,
    pub expect: Option<PathBuf>,
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
    let runtime = PluginRuntime::new(&metrics, None)?;
    let links = links(&args, &runtime, signal)?;
    let chain = runtime.chain("plugin-test", links);
    let processed = chain
        .process(Batch::new(signal, payload, items))
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

fn links(args: &Args, runtime: &PluginRuntime, signal: Signal) -> anyhow::Result<Vec<ChainLink>> {
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
            let runner = runtime.load("plugin", &pc, &here)?;
            Ok(vec![ChainLink {
                name: "plugin".into(),
                policy: FailurePolicy::Reject,
                runner,
            }])
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
            pipeline
                .plugins
                .iter()
                .map(|n| {
                    let pc = cfg
                        .plugins
                        .get(n)
                        .with_context(|| format!("plugins.{n} is not defined"))?;
                    let runner: Arc<dyn weir_wasm::Runner> = runtime
                        .load(n, pc, &here)
                        .with_context(|| format!("plugins.{n}"))?;
                    Ok(ChainLink {
                        name: n.clone(),
                        policy: pc.on_error,
                        runner,
                    })
                })
                .collect()
        }
        _ => bail!("give either --wasm FILE (one plugin) or --config FILE (a pipeline's chain)"),
    }
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
