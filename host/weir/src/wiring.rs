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

pub struct Wired {
    pub ingests: BTreeMap<String, Arc<Ingest>>,
    pub stages: Stages,
}

pub fn wire(config: &Config, metrics: &Arc<Metrics>) -> anyhow::Result<Wired> {
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
        };
        exporters.insert(name, exporter);
    }

    let mut stages = Stages::default();
    let mut stage_of: BTreeMap<(&str, Signal), Arc<ExportStage>> = BTreeMap::new();
    let mut pipelines_of: BTreeMap<&str, Vec<Arc<Pipeline>>> = BTreeMap::new();
    for (name, p) in &config.pipelines {
        let signal = pipeline_signal(name).with_context(|| format!("pipelines.{name}: unknown signal"))?;
        let mut own = Vec::new();
        for e in &p.exporters {
            let stage = match stage_of.get(&(e.as_str(), signal)) {
                Some(s) => s.clone(),
                None => {
                    let cfg = config
                        .exporters
                        .get(e)
                        .with_context(|| format!("pipelines.{name}: exporter {e} is not defined"))?;
                    let exporter = exporters
                        .get(e.as_str())
                        .with_context(|| format!("exporter {e} was not built"))?
                        .clone();
                    let sc = cfg.stage();
                    let settings = StageSettings {
                        exporter: e.clone(),
                        signal,
                        capacity: sc.queue.capacity,
                        concurrency: sc.queue.concurrency,
                        batch: sc.batch,
                        retry: sc.retry,
                    };
                    let s = stages.start(settings, exporter, metrics.clone());
                    stage_of.insert((e.as_str(), signal), s.clone());
                    s
                }
            };
            own.push(stage);
        }
        let pipeline = Arc::new(Pipeline::new(name.clone(), signal, own, BTreeMap::new()));
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
