//! The running topology: receivers (listeners and ingests), plugins,
//! pipelines and exporters (with their stages), each keyed by name, and the
//! one operation that changes it: [`Topology::apply`] a new config.
//!
//! `apply` compares component by component (config values, and a plugin's
//! wasm sha256), builds everything added or changed aside — listeners bound,
//! plugins compiled and `init`-ed, exporters created, new stages opened — and
//! only when all of that worked swaps it in:
//! - every receiver's pipeline set is replaced at once; a request finishes
//!   with the set (and so the plugin chains and routes) it started with;
//! - unchanged plugins keep their instances (and their in-memory state),
//!   unchanged exporters their stages, queues and in-flight sends;
//! - a changed exporter's stages keep their queues and take the new exporter
//!   and settings; when the queue itself changes kind or directory, a new
//!   stage takes new data and the old one hands what it holds to the new
//!   exporter;
//! - a removed stage drains within `service.shutdown_grace`;
//! - new and moved listeners serve before the old ones stop accepting.
//!
//! If any part fails to build, nothing running is touched.

mod exporters;
mod listeners;
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use weir_otlp::receiver::{ConnectionMetrics, DecodePool, Receiver};
use weir_pipeline::config::{Config, ConfigError, ExporterConfig, PluginConfig, pipeline_signal};
use weir_pipeline::export::Stages;
use weir_pipeline::{ExportStage, Exporter, Ingest, Metrics, Pipeline};
use weir_wasm::{ChainLink, PluginRuntime, Runner, WasmSource};

use exporters::StageKey;
pub use listeners::check_security;
use listeners::{Bound, ListenerKey, Servers};
pub use report::Report;

struct RunningPlugin {
    config: PluginConfig,
    /// sha256 of the wasm file; `None` for a builtin plugin.
    sha256: Option<String>,
    runner: Arc<dyn Runner>,
}

struct RunningExporter {
    config: ExporterConfig,
    exporter: Arc<dyn Exporter>,
}

/// One plugin as `/status` shows it (its instance count read live).
#[derive(Clone)]
pub struct PluginStatus {
    pub name: String,
    pub sha256: Option<String>,
    pub runner: Arc<dyn Runner>,
}

pub struct Topology {
    config: Config,
    metrics: Arc<Metrics>,
    /// Created the first time a config has plugins, then kept for the process.
    runtime: Option<Arc<PluginRuntime>>,
    plugin_base: PathBuf,
    plugins: BTreeMap<String, RunningPlugin>,
    exporters: BTreeMap<String, RunningExporter>,
    stages: BTreeMap<StageKey, Arc<ExportStage>>,
    stage_set: Stages,
    ingests: BTreeMap<String, Arc<Ingest>>,
    listeners: BTreeMap<ListenerKey, listeners::Running>,
    servers: Servers,
    /// Shared by every pipeline: batches processed at once.
    workers: Arc<Semaphore>,
    decode: DecodePool,
}

/// Everything built aside for one `apply`, not yet in service.
#[derive(Default)]
struct Built {
    binds: Vec<(ListenerKey, listeners::Wanted, Bound)>,
    plugins: BTreeMap<String, RunningPlugin>,
    exporters: BTreeMap<String, RunningExporter>,
    /// Stages started for this config (they hold no data yet, unless a disk
    /// queue recovered some).
    new_stages: BTreeMap<StageKey, Arc<ExportStage>>,
    /// Plugins rebuilt because their wasm changed under an unchanged config.
    bytes_changed: Vec<String>,
}

impl Topology {
    /// Builds and starts everything `config` describes. `failures` reports a
    /// listener that stopped serving unexpectedly.
    pub async fn start(
        config: Config,
        metrics: Arc<Metrics>,
        connections: ConnectionMetrics,
        plugin_base: PathBuf,
    ) -> Result<(Topology, mpsc::UnboundedReceiver<String>), Vec<ConfigError>> {
        let (servers, failures) = Servers::new(connections);
        let workers = config
            .service
            .processing_threads
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(2, |n| n.get());
        let mut empty = config.clone();
        empty.receivers.clear();
        empty.plugins.clear();
        empty.exporters.clear();
        empty.pipelines.clear();
        let mut topology = Topology {
            config: empty,
            metrics,
            runtime: None,
            plugin_base,
            plugins: BTreeMap::new(),
            exporters: BTreeMap::new(),
            stages: BTreeMap::new(),
            stage_set: Stages::default(),
            ingests: BTreeMap::new(),
            listeners: BTreeMap::new(),
            servers,
            workers: Arc::new(Semaphore::new(workers)),
            decode: DecodePool::default(),
        };
        topology.build_and_swap(config, Duration::ZERO).await?;
        Ok((topology, failures))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every listener's receiver, transport and address.
    pub fn listener_addrs(&self) -> Vec<(String, &'static str, std::net::SocketAddr)> {
        self.listeners
            .iter()
            .map(|((r, t), l)| (r.clone(), *t, l.local))
            .collect()
    }

    pub fn plugin_status(&self) -> Vec<PluginStatus> {
        self.plugins
            .iter()
            .map(|(name, p)| PluginStatus {
                name: name.clone(),
                sha256: p.sha256.clone(),
                runner: p.runner.clone(),
            })
            .collect()
    }

    /// Replaces the running config with `new`, touching only what changed;
    /// on an error nothing running has changed.
    pub async fn apply(&mut self, new: Config) -> Result<Report, Vec<ConfigError>> {
        let mut report = Report::between(&self.config, &new);
        let grace = new.service.shutdown_grace.0;
        let quiesce = self.build_and_swap(new, grace).await?;
        report.plugins_rebuilt(&quiesce.bytes_changed);
        report.restart_required.extend(quiesce.restart_required);
        // Stages only the old pipeline sets reached are retired once no
        // request still being admitted can enqueue into them.
        let deadline = Instant::now() + grace;
        for replaced in quiesce.replaced {
            if !replaced.released(deadline).await {
                tracing::warn!("requests admitted before the reload did not finish within shutdown_grace");
                break;
            }
        }
        for (stage, deadline) in quiesce.retire {
            self.stage_set.retire(&stage, deadline);
        }
        for exporter in quiesce.retire_exporters {
            self.stage_set.retire_exporter(&exporter);
        }
        self.servers.reap();
        Ok(report)
    }

    fn runtime(&mut self, config: &Config) -> Result<Arc<PluginRuntime>, ConfigError> {
        if let Some(r) = &self.runtime {
            return Ok(r.clone());
        }
        let runtime = PluginRuntime::new(&self.metrics, config.service.effective_plugin_cache_dir())
            .map_err(|e| ConfigError::new("plugins", e.to_string()))?;
        let runtime = Arc::new(runtime);
        self.runtime = Some(runtime.clone());
        Ok(runtime)
    }

    async fn build(&mut self, new: &Config) -> Result<Built, Vec<ConfigError>> {
        let mut built = Built::default();
        let mut errors = Vec::new();

        // Listeners: bind new addresses (a clash fails the whole reload).
        for (key, wanted) in listeners::wanted(new) {
            let bound = match self.listeners.get(&key) {
                Some(r) if r.wanted == wanted => continue,
                Some(r) if r.wanted.address == wanted.address => r.duplicate(&key),
                _ => listeners::bind(&key, &wanted),
            };
            match bound.and_then(|b| b.secure(&key, &wanted)) {
                Ok(b) => built.binds.push((key, wanted, b)),
                Err(e) => errors.push(e),
            }
        }

        // Plugins: keep those whose config and bytes are unchanged.
        if !new.plugins.is_empty() {
            match self.runtime(new) {
                Err(e) => errors.push(e),
                Ok(runtime) => {
                    for (name, pc) in &new.plugins {
                        let key = format!("plugins.{name}");
                        let source = match WasmSource::read(pc, &self.plugin_base) {
                            Ok(s) => s,
                            Err(e) => {
                                errors.push(ConfigError::new(key, e.to_string()));
                                continue;
                            }
                        };
                        let sha256 = source.as_ref().map(|s| s.sha256.clone());
                        if let Some(running) = self.plugins.get(name)
                            && running.config == *pc
                        {
                            if running.sha256 == sha256 {
                                continue;
                            }
                            built.bytes_changed.push(name.clone());
                        }
                        match runtime.load_source(name, pc, source).await {
                            Ok(runner) => {
                                built.plugins.insert(
                                    name.clone(),
                                    RunningPlugin {
                                        config: pc.clone(),
                                        sha256,
                                        runner,
                                    },
                                );
                            }
                            Err(e) => errors.push(ConfigError::new(key, e.to_string())),
                        }
                    }
                }
            }
        }

        // Exporters: a new one for each added or changed config.
        for (name, cfg) in &new.exporters {
            if self.exporters.get(name).is_some_and(|r| r.config == *cfg) {
                continue;
            }
            match exporters::build(name, cfg, &self.metrics) {
                Ok(exporter) => {
                    built.exporters.insert(
                        name.clone(),
                        RunningExporter {
                            config: cfg.clone(),
                            exporter,
                        },
                    );
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        // Stages last: opening a disk queue is the one step with an effect
        // (its lock and recovery), so it runs only when all else built.
        for (key, settings) in exporters::wanted_stages(new) {
            let keeps_queue = self
                .stages
                .get(&key)
                .is_some_and(|s| s.settings().keeps_queue_with(&settings));
            if keeps_queue {
                continue;
            }
            let exporter = match built.exporters.get(&key.0).or_else(|| self.exporters.get(&key.0)) {
                Some(e) => e.exporter.clone(),
                None => {
                    errors.push(ConfigError::new(format!("exporters.{}", key.0), "is not defined"));
                    continue;
                }
            };
            match self.stage_set.start(settings, exporter, self.metrics.clone()) {
                Ok(stage) => {
                    built.new_stages.insert(key, stage);
                }
                Err(e) => errors.push(ConfigError::new(
                    format!("exporters.{}.queue", key.0),
                    e.to_string(),
                )),
            }
        }
        if !errors.is_empty() {
            for stage in built.new_stages.values() {
                self.stage_set.retire(stage, Some(Instant::now()));
            }
            for e in built.exporters.values() {
                self.stage_set.retire_exporter(&e.exporter);
            }
            return Err(errors);
        }
        Ok(built)
    }

    /// Builds `new` aside and swaps it in; returns what must wait until the
    /// requests admitted with the old pipeline sets are done.
    async fn build_and_swap(&mut self, new: Config, grace: Duration) -> Result<Quiesce, Vec<ConfigError>> {
        let mut built = self.build(&new).await?;
        let mut quiesce = Quiesce {
            bytes_changed: std::mem::take(&mut built.bytes_changed),
            ..Quiesce::default()
        };
        let now = Instant::now();

        // Plugins: the new set is the kept ones plus the built ones.
        let mut plugins = BTreeMap::new();
        for name in new.plugins.keys() {
            let p = match built.plugins.get(name) {
                Some(_) => None,
                None => self.plugins.remove(name),
            };
            if let Some(p) = p {
                plugins.insert(name.clone(), p);
            }
        }
        plugins.extend(built.plugins);
        self.plugins = plugins;

        // Exporters and stages.
        let mut exporters = BTreeMap::new();
        for name in new.exporters.keys() {
            if !built.exporters.contains_key(name)
                && let Some(e) = self.exporters.remove(name)
            {
                exporters.insert(name.clone(), e);
            }
        }
        for (_, gone) in std::mem::take(&mut self.exporters) {
            quiesce.retire_exporters.push(gone.exporter);
        }
        let rebuilt: BTreeSet<String> = built.exporters.keys().cloned().collect();
        exporters.extend(built.exporters);
        let wanted = exporters::wanted_stages(&new);
        let mut stages = BTreeMap::new();
        for (key, settings) in &wanted {
            let Some(exporter) = exporters.get(&key.0).map(|e| e.exporter.clone()) else {
                continue;
            };
            match (self.stages.remove(key), built.new_stages.get(key)) {
                (Some(old), Some(fresh)) => {
                    // The queue changed kind or place: the old stage sends
                    // what it holds with the new exporter, then retires.
                    let mut handover = settings.clone();
                    handover.queue = old.settings().queue.clone();
                    self.stage_set.update(&old, handover, exporter, &self.metrics);
                    quiesce.retire.push((old, None));
                    stages.insert(key.clone(), fresh.clone());
                }
                (Some(old), None) => {
                    for k in old.settings().restart_only_changes(settings) {
                        quiesce.restart_required.push(format!("exporters.{}.{k}", key.0));
                    }
                    if rebuilt.contains(&key.0) || *old.settings() != *settings {
                        self.stage_set
                            .update(&old, settings.clone(), exporter, &self.metrics);
                    }
                    stages.insert(key.clone(), old);
                }
                (None, Some(fresh)) => {
                    stages.insert(key.clone(), fresh.clone());
                }
                (None, None) => {}
            }
        }
        for (_, gone) in std::mem::take(&mut self.stages) {
            quiesce.retire.push((gone, Some(now + grace)));
        }
        self.stages = stages;
        self.exporters = exporters;

        // Pipelines, rebuilt over the kept and new parts (they hold no state).
        let pipelines_of = self.pipelines(&new);

        // Receivers: new ingests and listeners first, then the swap, then the
        // old listeners stop.
        let mut ingests = BTreeMap::new();
        for name in new.receivers.keys() {
            let pipelines = pipelines_of.get(name).cloned().unwrap_or_default();
            match self.ingests.remove(name) {
                Some(ingest) => {
                    quiesce.replaced.push(ingest.replace_pipelines(pipelines));
                    ingests.insert(name.clone(), ingest);
                }
                None => {
                    let ingest = Arc::new(Ingest::new(name.clone(), pipelines, self.metrics.clone()));
                    ingests.insert(name.clone(), ingest);
                }
            }
        }
        // Removed receivers: their listeners stop below; requests on their
        // open connections still finish through the ingest they hold.
        self.ingests = ingests;
        let mut stopping = Vec::new();
        for (key, wanted, bound) in built.binds {
            let Some(ingest) = self.ingests.get(&key.0).cloned() else {
                continue;
            };
            let receiver = Receiver {
                ingest,
                max_request_size: wanted.max_request_size,
                decode: self.decode.clone(),
                auth: bound.auth(),
            };
            match self.servers.serve(&key, wanted, bound, receiver) {
                Ok(running) => {
                    if let Some(old) = self.listeners.insert(key, running) {
                        stopping.push(old);
                    }
                }
                Err(e) => {
                    tracing::error!(listener = %format!("receivers.{}.{}", key.0, key.1), error = %e, "cannot serve the listener")
                }
            }
        }
        let wanted_listeners = listeners::wanted(&new);
        let gone: Vec<ListenerKey> = self
            .listeners
            .keys()
            .filter(|k| !wanted_listeners.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(old) = self.listeners.remove(&key) {
                stopping.push(old);
            }
        }
        for old in stopping {
            old.stop(now + grace);
        }
        self.config = new;
        listeners::warn_exposed(&self.config);
        Ok(quiesce)
    }

    /// Each receiver's pipelines under `config`.
    fn pipelines(&self, config: &Config) -> BTreeMap<String, Vec<Arc<Pipeline>>> {
        let mut of: BTreeMap<String, Vec<Arc<Pipeline>>> = BTreeMap::new();
        for (name, p) in &config.pipelines {
            let Some(signal) = pipeline_signal(name) else {
                continue;
            };
            let stages = |names: &[String]| -> Vec<Arc<ExportStage>> {
                names
                    .iter()
                    .filter_map(|e| self.stages.get(&(e.clone(), signal)).cloned())
                    .collect()
            };
            let default = stages(&p.exporters);
            let routes = p
                .routes
                .iter()
                .map(|(route, names)| (route.clone(), stages(names)))
                .collect();
            let pipeline = Pipeline::new(name.clone(), signal, default, routes, self.workers.clone())
                .with_splitter(Arc::new(weir_otlp::OtlpSplitter));
            if let Some(runtime) = &self.runtime
                && !p.plugins.is_empty()
            {
                let links = p
                    .plugins
                    .iter()
                    .filter_map(|n| {
                        let running = self.plugins.get(n)?;
                        Some(ChainLink {
                            name: n.clone(),
                            policy: running.config.on_error,
                            runner: running.runner.clone(),
                        })
                    })
                    .collect();
                pipeline.set_processor(Some(Arc::new(runtime.chain(name, links))));
            }
            let pipeline = Arc::new(pipeline);
            for r in &p.receivers {
                of.entry(r.clone()).or_default().push(pipeline.clone());
            }
        }
        of
    }

    /// Stops everything: receivers refuse, listeners finish their in-flight
    /// requests, stages drain, all by `deadline`.
    pub async fn shutdown(mut self, deadline: Instant) {
        for ingest in self.ingests.values() {
            Ingest::close(ingest);
        }
        for l in self.listeners.values() {
            l.stop(deadline);
        }
        self.servers.finish(deadline).await;
        self.stage_set.drain(deadline).await;
    }

    /// Where relative plugin paths resolve.
    pub fn plugin_base(&self) -> &std::path::Path {
        &self.plugin_base
    }

    /// Connections the listeners may hold at once, for the start-up
    /// file-descriptor check.
    pub fn connection_budget(&self) -> u64 {
        self.listeners
            .values()
            .map(|l| l.wanted.limits.max_connections as u64)
            .sum()
    }
}

/// What a swap leaves to finish once old requests are done.
#[derive(Default)]
struct Quiesce {
    replaced: Vec<weir_pipeline::Replaced>,
    retire: Vec<(Arc<ExportStage>, Option<Instant>)>,
    retire_exporters: Vec<Arc<dyn Exporter>>,
    restart_required: Vec<String>,
    bytes_changed: Vec<String>,
}
