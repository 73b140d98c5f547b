//! weir's plugin runtime: plugins are WebAssembly components of the
//! `weir:plugin@0.2.0` world (wit/v0.2.0/plugin.wit) or of the older
//! `weir:plugin@0.1.0` (wit/plugin.wit), compiled once (and cached on
//! disk), instantiated from an `InstancePre` into sandboxed stores with a memory
//! cap and a per-call CPU deadline, and chained per pipeline with a failure
//! policy each. The same chain can run plugins compiled natively (feature
//! `native-plugins`), for benchmarks.

mod bindings;
mod bindings_v2;
pub mod cache;
mod chain;
pub mod embedded;
mod engine;
mod metrics;
mod native;
mod runner;
mod stdio;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

pub use chain::{ChainLink, PluginChain};
pub use engine::sha256_hex;
pub use metrics::PluginMetrics;
use metrics::ReasonLabels;
pub use native::NativeRunner;
use runner::{WasmRunner, WasmSettings};
use weir_batch::HostBatch as Tree;
use weir_pipeline::Metrics;
use weir_pipeline::config::{PluginConfig, PluginSource};
use weir_plugin_sdk::Changes;

/// How one plugin call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    #[error("returned an error: {0}")]
    Error(String),
    /// `cause` is the trap's own message; `backtrace` the full error with
    /// the guest's stack, when there is one (shown by `weir plugin test`).
    #[error("trapped: {cause}")]
    Trap {
        cause: String,
        backtrace: Option<String>,
    },
    #[error("exceeded its time limit")]
    Timeout,
    #[error("exceeded its memory limit")]
    MemoryLimit,
    #[error("returned invalid changes: {0}")]
    Invalid(String),
}

impl Failure {
    /// A trap with no more to say than `cause`.
    pub fn trap(cause: impl Into<String>) -> Self {
        Failure::Trap {
            cause: cause.into(),
            backtrace: None,
        }
    }

    /// The failure with everything known about it: for a trap, the guest's
    /// backtrace as well.
    pub fn detailed(&self) -> String {
        match self {
            Failure::Trap {
                backtrace: Some(bt), ..
            } => format!("{self}\n{bt}"),
            _ => self.to_string(),
        }
    }

    /// The `outcome` label of `weir_plugin_calls_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Error(_) => "error",
            Failure::Trap { .. } => "trap",
            Failure::Timeout => "timeout",
            Failure::MemoryLimit => "memory_limit",
            Failure::Invalid(_) => "invalid",
        }
    }
}

/// What a plugin call gives back: the batch (unchanged) with the changes the
/// plugin queued, or how it failed.
pub type RunOutcome = (Option<Tree>, Result<Changes, Failure>);

/// Runs one plugin over one batch. A future because plugins run in async
/// stores: a chain on a receiving task must never block it, and a plugin's
/// WASI calls (stdout, clocks) wait by awaiting, on a worker or on a thread.
pub trait Runner: Send + Sync {
    fn run(&self, tree: Tree) -> BoxFuture<'_, RunOutcome>;

    /// Instances alive now (idle and in use); native plugins have one.
    fn instances(&self) -> usize {
        1
    }
}

impl<R: Runner + ?Sized> Runner for Box<R> {
    fn run(&self, tree: Tree) -> BoxFuture<'_, RunOutcome> {
        (**self).run(tree)
    }

    fn instances(&self) -> usize {
        (**self).instances()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot create the Wasm engine: {0}")]
    Engine(String),
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("sha256 mismatch: the file has {actual}, the config pins {expected}")]
    Checksum { expected: String, actual: String },
    #[error("not a valid weir plugin component: {0}")]
    Compile(String),
    #[error("the component does not fit the weir:plugin world it imports: {0}")]
    Link(String),
    #[error("cannot instantiate: {0}")]
    Instantiate(String),
    #[error("the plugin rejected its config: {0}")]
    ConfigRejected(String),
    #[error("{0}")]
    Builtin(String),
}

/// A plugin's `.wasm` file as read (and checked against its pin) at one moment.
pub struct WasmSource {
    pub sha256: String,
    wasm: Vec<u8>,
}

impl WasmSource {
    /// Reads the file of a path plugin (relative paths under `base_dir`) and
    /// checks its sha256 pin; `None` for a builtin plugin.
    pub fn read(config: &PluginConfig, base_dir: &Path) -> Result<Option<WasmSource>, RuntimeError> {
        let (wasm, sha256) = match &config.source {
            PluginSource::Builtin(_) => return Ok(None),
            PluginSource::Embedded { name, sha256 } => (embedded::get(name)?.to_vec(), sha256),
            PluginSource::Path { path, sha256 } => {
                let full = if path.is_absolute() {
                    path.clone()
                } else {
                    base_dir.join(path)
                };
                let wasm = std::fs::read(&full).map_err(|e| RuntimeError::Read {
                    path: full.display().to_string(),
                    message: e.to_string(),
                })?;
                (wasm, sha256)
            }
        };
        let actual = sha256_hex(&wasm);
        if let Some(expected) = sha256
            && !actual.eq_ignore_ascii_case(expected)
        {
            return Err(RuntimeError::Checksum {
                expected: expected.clone(),
                actual,
            });
        }
        Ok(Some(WasmSource { sha256: actual, wasm }))
    }
}

/// Compiled components kept in memory by sha256, so a reload that brings
/// back a recent version, or runs the same wasm under another name, does not
/// compile again.
const COMPILED_KEPT: usize = 8;

/// Process-wide plugin machinery: one engine (and its epoch ticker), one
/// compile cache, one set of metric families. Create it once per process:
/// every reload loads through the same runtime.
pub struct PluginRuntime {
    engine: wasmtime::Engine,
    cache: Option<cache::ArtifactCache>,
    metrics: PluginMetrics,
    compiled: std::sync::Mutex<Vec<(String, wasmtime::component::Component)>>,
}

impl PluginRuntime {
    /// `cache_dir`: where compiled plugins are kept across runs. A directory
    /// that is not safe to load native code from is not used (logged, counted,
    /// and every plugin compiles), never a reason not to start.
    pub fn new(metrics: &Metrics, cache_dir: Option<PathBuf>) -> Result<Self, RuntimeError> {
        let metrics = PluginMetrics::register(metrics);
        let cache = cache_dir.and_then(|dir| match cache::ArtifactCache::open(&dir) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "not using the compiled-plugin cache");
                metrics
                    .cache_rejected
                    .get_or_create(&ReasonLabels {
                        reason: e.label().into(),
                    })
                    .inc();
                None
            }
        });
        Ok(PluginRuntime {
            engine: engine::new_engine()?,
            cache,
            metrics,
            compiled: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Loads, compiles, links and initialises one plugin (one instance is
    /// created and its `init` run, so a bad config is reported here). For
    /// commands without a runtime (`weir validate`); never on a runtime worker.
    pub fn load_blocking(
        &self,
        name: &str,
        config: &PluginConfig,
        base_dir: &Path,
    ) -> Result<Arc<dyn Runner>, RuntimeError> {
        let source = WasmSource::read(config, base_dir)?;
        self.load_source_blocking(name, config, source)
    }

    /// [`PluginRuntime::load_source`] for commands without a runtime.
    pub fn load_source_blocking(
        &self,
        name: &str,
        config: &PluginConfig,
        source: Option<WasmSource>,
    ) -> Result<Arc<dyn Runner>, RuntimeError> {
        block_on(self.load_source(name, config, source))
    }

    /// Loads one plugin with its file already read (see [`PluginRuntime::load_blocking`]).
    pub async fn load_source(
        &self,
        name: &str,
        config: &PluginConfig,
        source: Option<WasmSource>,
    ) -> Result<Arc<dyn Runner>, RuntimeError> {
        let config_json = serde_json::to_string(&config.config).unwrap_or_else(|_| "{}".into());
        let source = match (&config.source, source) {
            (PluginSource::Builtin(builtin), _) => {
                return Ok(Arc::from(native::builtin(builtin, config_json)?));
            }
            (_, Some(source)) => source,
            (_, None) => {
                return Err(RuntimeError::Read {
                    path: format!("{:?}", config.source),
                    message: "the component was not read".into(),
                });
            }
        };
        let component = self.component(&source)?;
        let settings = WasmSettings {
            name: name.to_string(),
            config_json,
            memory_limit: config.memory_limit.as_usize().min(engine::MAX_PLUGIN_MEMORY),
            timeout: config.timeout.0.max(Duration::from_millis(1)),
            max_idle: config.instances.max(1),
            output_cap: 64 * 1024,
            memory_gauges: runner::MemoryGauges {
                plugin: self
                    .metrics
                    .memory
                    .get_or_create(&metrics::NameLabels {
                        plugin: name.to_string(),
                    })
                    .clone(),
                total: self.metrics.instances_memory.clone(),
            },
        };
        Ok(Arc::new(
            WasmRunner::new(&self.engine, &component, settings).await?,
        ))
    }

    /// Compiles `source` (or loads it from the caches), so that a later load
    /// only instantiates; for timing the two apart.
    pub fn prepare(&self, source: &WasmSource) -> Result<(), RuntimeError> {
        self.component(source).map(drop)
    }

    fn component(&self, source: &WasmSource) -> Result<wasmtime::component::Component, RuntimeError> {
        let lock = || {
            self.compiled
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        {
            let mut kept = lock();
            if let Some(at) = kept.iter().position(|(sha, _)| *sha == source.sha256) {
                // Most recently used last.
                let hit = kept.remove(at);
                let component = hit.1.clone();
                kept.push(hit);
                return Ok(component);
            }
        }
        // Compiling takes long: not under the lock.
        let rejected = |reason: &'static str| {
            self.metrics
                .cache_rejected
                .get_or_create(&ReasonLabels {
                    reason: reason.into(),
                })
                .inc();
        };
        let component = engine::load_component(&self.engine, &source.wasm, self.cache.as_ref(), &rejected)?;
        let mut kept = lock();
        if kept.len() >= COMPILED_KEPT {
            let (_, evicted) = kept.remove(0);
            self.metrics.code_memory.dec_by(code_bytes(&evicted));
        }
        self.metrics.code_memory.inc_by(code_bytes(&component));
        kept.push((source.sha256.clone(), component.clone()));
        Ok(component)
    }

    pub fn chain(&self, pipeline: &str, links: Vec<ChainLink>) -> PluginChain {
        PluginChain::new(pipeline, links, self.metrics.clone())
    }
}

/// Runs a plugin future to completion where there is no runtime to await it
/// on (commands, benchmarks): on the thread's runtime if it has one and is
/// not one of its workers, else on wasmtime-wasi's own.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    wasmtime_wasi::runtime::in_tokio(f)
}

/// Bytes of compiled code a component maps (counted while the runtime keeps it).
fn code_bytes(component: &wasmtime::component::Component) -> i64 {
    let range = component.image_range();
    i64::try_from((range.end as usize).saturating_sub(range.start as usize)).unwrap_or(i64::MAX)
}
