//! Exporters and the export stages they run: one exporter per
//! `[exporters.X]`, one stage per (exporter, signal) some pipeline sends to.

use std::collections::BTreeMap;
use std::sync::Arc;

use weir_otlp::exporter::{ConsoleExporter, GrpcExporter, HttpExporter};
use weir_pipeline::config::{Config, ConfigError, ExporterConfig, pipeline_signal};
use weir_pipeline::{Exporter, Metrics, Signal, StageSettings};

/// Creates the exporter `[exporters.name]` describes.
pub fn build(
    name: &str,
    cfg: &ExporterConfig,
    metrics: &Arc<Metrics>,
) -> Result<Arc<dyn Exporter>, ConfigError> {
    let key = format!("exporters.{name}");
    let fail = |e: &dyn std::fmt::Display| ConfigError::new(&key, format!("{e:#}"));
    Ok(match cfg {
        ExporterConfig::OtlpGrpc(c) => Arc::new(GrpcExporter::new(c).map_err(|e| e.to_config_error(&key))?),
        ExporterConfig::OtlpHttp(c) => Arc::new(HttpExporter::new(c).map_err(|e| e.to_config_error(&key))?),
        ExporterConfig::Console(c) => Arc::new(ConsoleExporter::new(c.verbosity)),
        ExporterConfig::Parquet(c) => {
            Arc::new(weir_parquet::ParquetArchive::new(name, c, metrics).map_err(|e| fail(&e))?)
        }
    })
}

/// (exporter name, signal): one export stage.
pub type StageKey = (String, Signal);

/// The stages `config` needs, with their settings.
pub fn wanted_stages(config: &Config) -> BTreeMap<StageKey, StageSettings> {
    let mut out = BTreeMap::new();
    for (pipeline, p) in &config.pipelines {
        let Some(signal) = pipeline_signal(pipeline) else {
            continue;
        };
        for e in p.exporters.iter().chain(p.routes.values().flatten()) {
            let Some(cfg) = config.exporters.get(e) else {
                continue;
            };
            let sc = cfg.stage();
            let mut queue = sc.queue;
            if queue.directory.is_none() {
                queue.directory = config.service.data_dir.as_ref().map(|d| d.join("queue").join(e));
            }
            out.insert(
                (e.clone(), signal),
                StageSettings {
                    exporter: e.clone(),
                    signal,
                    queue,
                    batch: sc.batch,
                    retry: sc.retry,
                    circuit_breaker: sc.circuit_breaker,
                },
            );
        }
    }
    out
}
