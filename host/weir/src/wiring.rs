//! Turns a validated config into running parts: one exporter per `[exporters.X]`,
//! one export stage per (exporter, signal) in use, one pipeline per
//! `[pipelines.X]`, and one ingest (its pipelines) per receiver.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use weir_otlp::exporter::{ConsoleExporter, GrpcExporter, HttpExporter};
use weir_pipeline::config::{Config, ExporterConfig, pipeline_signal};
use weir_pipeline::export::Stages;
use weir_pipeline::{ExportStage, Exporter, Ingest, Metrics, Pipeline, Signal, StageSettings};
use weir_wasm::ChainLink;

use crate::plugins::LoadedPlugins;

pub struct Wired {
    pub ingests: BTreeMap<String, Arc<Ingest>>,
    pub stages: Stages,
}

pub fn wire(
    config: &Config,
    metrics: &Arc<Metrics>,
    plugins: Option<&LoadedPlugins>,
) -> anyhow::Result<Wired> {
    let mut exporters: BTreeMap<&str, Arc<dyn Exporter>> = BTreeMap::new();
    for (name, cfg) in &config.exporters {
        let exporter: Arc<dyn Exporter> = match cfg {
            ExporterConfig::OtlpGrpc(c) => {
                Arc::new(GrpcExporter::new(c).with_context(|| format!("exporters.{name}"))?)
            }
            ExporterConfig::OtlpHttp(c) => {
                Arc::new(HttpExporter::new(c).with_context(|| format!("exporters.{name}"))?)
            }
            ExporterConfig::Console(c) => Arc::new(ConsoleExporter::new(c.verbosity)),
            ExporterConfig::Parquet(c) => Arc::new(
                weir_parquet::ParquetArchive::new(name, c, metrics)
                    .with_context(|| format!("exporters.{name}"))?,
            ),
        };
        exporters.insert(name, exporter);
    }

    let mut stages = Stages::default();
    let mut stage_of: BTreeMap<(&str, Signal), Arc<ExportStage>> = BTreeMap::new();
    let mut pipelines_of: BTreeMap<&str, Vec<Arc<Pipeline>>> = BTreeMap::new();
    let workers = config
        .service
        .processing_threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(2, |n| n.get());
    let workers = Arc::new(tokio::sync::Semaphore::new(workers));
    for (name, p) in &config.pipelines {
        let signal = pipeline_signal(name).with_context(|| format!("pipelines.{name}: unknown signal"))?;
        let mut stage = |e: &String| -> anyhow::Result<Arc<ExportStage>> {
            if let Some(s) = stage_of.get(&(e.as_str(), signal)) {
                return Ok(s.clone());
            }
            let cfg = config
                .exporters
                .get(e)
                .with_context(|| format!("pipelines.{name}: exporter {e} is not defined"))?;
            let exporter = exporters
                .get(e.as_str())
                .with_context(|| format!("exporter {e} was not built"))?
                .clone();
            let sc = cfg.stage();
            let mut queue = sc.queue;
            if queue.directory.is_none() {
                queue.directory = config.service.data_dir.as_ref().map(|d| d.join("queue").join(e));
            }
            let settings = StageSettings {
                exporter: e.clone(),
                signal,
                queue,
                batch: sc.batch,
                retry: sc.retry,
                circuit_breaker: sc.circuit_breaker,
            };
            let s = stages.start(settings, exporter, metrics.clone())?;
            let key = config.exporters.get_key_value(e).map_or("", |(k, _)| k.as_str());
            stage_of.insert((key, signal), s.clone());
            Ok(s)
        };
        let default = p
            .exporters
            .iter()
            .map(&mut stage)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut routes = BTreeMap::new();
        for (route, names) in &p.routes {
            routes.insert(
                route.clone(),
                names.iter().map(&mut stage).collect::<anyhow::Result<Vec<_>>>()?,
            );
        }
        let pipeline = Arc::new(
            Pipeline::new(name.clone(), signal, default, routes, workers.clone())
                .with_splitter(Arc::new(weir_otlp::OtlpSplitter)),
        );
        if !p.plugins.is_empty() {
            let loaded = plugins.context("plugins are listed but none were loaded")?;
            let links = p
                .plugins
                .iter()
                .map(|n| {
                    let runner = loaded
                        .runners
                        .get(n)
                        .with_context(|| format!("plugin {n} was not loaded"))?;
                    let policy = config.plugins.get(n).map(|c| c.on_error).unwrap_or_default();
                    Ok(ChainLink {
                        name: n.clone(),
                        policy,
                        runner: runner.clone(),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            pipeline.set_processor(Some(Arc::new(loaded.runtime.chain(name, links))));
        }
        for r in &p.receivers {
            pipelines_of.entry(r.as_str()).or_default().push(pipeline.clone());
        }
    }

    let ingests = config
        .receivers
        .keys()
        .map(|name| {
            let pipelines = pipelines_of.remove(name.as_str()).unwrap_or_default();
            (
                name.clone(),
                Arc::new(Ingest::new(name.clone(), pipelines, metrics.clone())),
            )
        })
        .collect();
    Ok(Wired { ingests, stages })
}
