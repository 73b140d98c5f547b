//! The wasmtime engine shared by every plugin: component model, epoch
//! interruption for per-call deadlines, the pooling allocator, and an on-disk
//! cache of compiled plugins keyed by the wasm's sha256 and the engine settings.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::RuntimeError;

/// Epoch tick: the granularity of per-call deadlines. Deadlines are hundreds
/// of milliseconds by default, so 10 ms is precise enough; a finer tick costs
/// CPU even when idle (the ticker thread wakes on every tick).
pub const TICK: Duration = Duration::from_millis(10);

/// Largest linear memory any plugin may be given (per-plugin caps are lower).
pub const MAX_PLUGIN_MEMORY: usize = 1 << 30;

fn config(pooling: bool) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true).epoch_interruption(true);
    // WEIR_PERF_MAP=1 writes /tmp/perf-<pid>.map, so `perf report` names the
    // functions of plugins (docs/plugins.md, "Profiling a plugin").
    if std::env::var_os("WEIR_PERF_MAP").is_some_and(|v| v == "1") {
        c.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if pooling {
        let mut p = PoolingAllocationConfig::default();
        p.total_component_instances(512)
            .total_core_instances(1024)
            .total_memories(1024)
            .total_tables(1024)
            .max_memory_size(MAX_PLUGIN_MEMORY)
            .table_elements(100_000);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    c
}

/// Builds the engine (pooling allocator, falling back to on-demand allocation
/// where the machine cannot reserve the pool) and starts its epoch ticker.
pub fn new_engine() -> Result<Engine, RuntimeError> {
    let engine = match Engine::new(&config(true)) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand instance allocation");
            Engine::new(&config(false)).map_err(|e| RuntimeError::Engine(e.to_string()))?
        }
    };
    let ticker = engine.weak();
    std::thread::Builder::new()
        .name("weir-epoch".into())
        .spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })
        .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch ticker: {e}")))?;
    Ok(engine)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn engine_key(engine: &Engine) -> String {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Compiles a component, or loads it from the cache if this exact wasm was
/// compiled before with these engine settings.
pub fn load_component(
    engine: &Engine,
    wasm: &[u8],
    cache_dir: Option<&Path>,
) -> Result<Component, RuntimeError> {
    let compile = || Component::new(engine, wasm).map_err(|e| RuntimeError::Compile(format!("{e:#}")));
    let Some(dir) = cache_dir else {
        return compile();
    };
    let path: PathBuf = dir.join(format!("{}-{}.cwasm", sha256_hex(wasm), engine_key(engine)));
    if path.exists() {
        // SAFETY: the cache holds only artifacts this process family wrote with
        // `Component::serialize` (named by the wasm's hash and the engine's
        // compatibility hash, renamed into place only once complete); the cache
        // directory must be private to weir, as documented for `plugin_cache_dir`.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(c) => return Ok(c),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached plugin"),
        }
    }
    let component = compile()?;
    if let Err(e) = store_artifact(&component, dir, &path) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot cache the compiled plugin");
    }
    Ok(component)
}

fn store_artifact(component: &Component, dir: &Path, path: &Path) -> std::io::Result<()> {
    let bytes = component
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
