//! The wasmtime engine shared by every plugin: component model, epoch
//! interruption for per-call deadlines, the pooling allocator, and an on-disk
//! cache of compiled plugins keyed by the wasm's sha256 and the engine settings.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::RuntimeError;
use crate::cache::{ArtifactCache, Lookup};

/// Epoch tick: the granularity of per-call deadlines. Deadlines are hundreds
/// of milliseconds by default, so 10 ms is precise enough; a finer tick costs
/// CPU even when idle (the ticker thread wakes on every tick).
pub const TICK: Duration = Duration::from_millis(10);

/// Largest linear memory any plugin may be given (per-plugin caps are lower).
pub const MAX_PLUGIN_MEMORY: usize = 1 << 30;

fn config(pooling: bool) -> Config {
    let mut c = Config::new();
    // Plugins are called async (runner.rs): a chain runs on the task that
    // received the batch, where wasmtime-wasi's sync bindings would block on
    // a runtime inside the runtime (and panic). The per-call deadline stays
    // an epoch trap.
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
            // Async calls run on fiber stacks; each store keeps its own
            // between calls, so as many stacks as component instances.
            .total_stacks(512)
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
/// compiled before with these engine settings. `rejected` is told why a cached
/// artifact was not used (it is compiled again).
pub fn load_component(
    engine: &Engine,
    wasm: &[u8],
    cache: Option<&ArtifactCache>,
    rejected: &dyn Fn(&'static str),
) -> Result<Component, RuntimeError> {
    let compile = || Component::new(engine, wasm).map_err(|e| RuntimeError::Compile(format!("{e:#}")));
    let Some(cache) = cache else {
        return compile();
    };
    let name = format!("{}-{}", sha256_hex(wasm), engine_key(engine));
    match cache.load(&name) {
        Lookup::Hit(bytes) => {
            // SAFETY: `bytes` carry this cache's HMAC over the wasm's sha256, the
            // engine settings and the bytes themselves, made by weir when it
            // compiled them (cache.rs); they were verified in memory, so they are
            // what weir wrote, and wasmtime checks the engine compatibility.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize(engine, &bytes) };
            match loaded {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(artifact = %name, error = %e, "ignoring an unusable cached plugin; compiling it again");
                    rejected("incompatible");
                }
            }
        }
        Lookup::Miss => {}
        Lookup::Rejected(reason) => {
            tracing::warn!(
                dir = %cache.dir().display(),
                artifact = %name,
                reason,
                "a cached plugin failed verification (not written by this weir for this wasm); compiling it again"
            );
            rejected(reason);
        }
    }
    let component = compile()?;
    let stored = component
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|bytes| cache.store(&name, &bytes));
    if let Err(e) = stored {
        tracing::warn!(dir = %cache.dir().display(), error = %e, "cannot cache the compiled plugin");
    }
    Ok(component)
}
