//! Running one plugin: a pool of sandboxed instances of one compiled component.
//! Each call gets a CPU deadline (epoch interruption) and each instance a
//! memory cap; an instance that traps or times out is thrown away and a fresh
//! one is instantiated from the `InstancePre` on the next call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus_client::metrics::gauge::Gauge;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::WasiCtxBuilder;
use weir_batch::HostBatch as Tree;
use weir_plugin_sdk::Signal;

use crate::bindings::{BatchEntry, Plugin, PluginPre, State, weir::plugin::types as wit};
use crate::bindings_v2 as v2;
use crate::engine::TICK;
use crate::stdio::LogOutput;
use crate::{Failure, RunOutcome, Runner, RuntimeError};

/// Memory cap of one instance; remembers whether it refused growth, so a trap
/// that follows can be reported as "memory limit" rather than a plain trap.
pub struct Limits {
    memory: usize,
    pub hit: bool,
    /// The instance's linear memory now, counted in `gauges` while it lives.
    current: usize,
    gauges: MemoryGauges,
}

/// Where an instance's linear memory is counted: its plugin's and the total.
#[derive(Clone)]
pub struct MemoryGauges {
    pub plugin: Gauge,
    pub total: Gauge,
}

impl MemoryGauges {
    fn add(&self, bytes: i64) {
        self.plugin.inc_by(bytes);
        self.total.inc_by(bytes);
    }
}

/// The store (and so the instance's memory) is gone: so is its count.
impl Drop for Limits {
    fn drop(&mut self) {
        self.gauges.add(-i64::try_from(self.current).unwrap_or(i64::MAX));
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory;
        self.hit |= !ok;
        // Also called for a memory's initial size (current 0).
        if ok && desired > self.current {
            self.gauges
                .add(i64::try_from(desired - self.current).unwrap_or(i64::MAX));
            self.current = desired;
        }
        Ok(ok)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

pub struct WasmSettings {
    pub name: String,
    pub config_json: String,
    pub memory_limit: usize,
    pub timeout: Duration,
    /// Idle instances kept for reuse.
    pub max_idle: usize,
    /// Bytes of stdout/stderr logged per instance per minute.
    pub output_cap: usize,
    pub memory_gauges: MemoryGauges,
}

/// A linked component of one contract version.
enum Pre {
    V1(PluginPre<State>),
    V2(v2::PluginPre<State>),
}

/// An instance's exports, of its contract version.
enum Loaded {
    V1(Plugin),
    V2(v2::Plugin),
}

impl Loaded {
    async fn init(&self, store: &mut Store<State>, config: &str) -> wasmtime::Result<Result<(), String>> {
        match self {
            Loaded::V1(p) => p.call_init(store, config).await,
            Loaded::V2(p) => p.call_init(store, config).await,
        }
    }

    async fn process(
        &self,
        store: &mut Store<State>,
        signal: Signal,
        batch: wasmtime::component::Resource<BatchEntry>,
        sequence: u64,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Loaded::V1(p) => {
                let ctx = wit::Context { sequence };
                let r = match signal {
                    Signal::Traces => p.call_process_traces(store, batch, ctx).await,
                    Signal::Logs => p.call_process_logs(store, batch, ctx).await,
                    Signal::Metrics => p.call_process_metrics(store, batch, ctx).await,
                };
                r.map(|r| r.map_err(|e| e.message))
            }
            Loaded::V2(p) => {
                let ctx = v2::weir::plugin::types::Context { sequence };
                let r = match signal {
                    Signal::Traces => p.call_process_traces(store, batch, ctx).await,
                    Signal::Logs => p.call_process_logs(store, batch, ctx).await,
                    Signal::Metrics => p.call_process_metrics(store, batch, ctx).await,
                };
                r.map(|r| r.map_err(|e| e.message))
            }
        }
    }
}

/// The contract version a component was built against, from what it imports.
fn contract_version(engine: &Engine, component: &wasmtime::component::Component) -> &'static str {
    let v2 = component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with("weir:plugin/") && name.ends_with("@0.2.0"));
    if v2 { "0.2.0" } else { "0.1.0" }
}

struct Instance {
    store: Store<State>,
    plugin: Loaded,
    seq: u64,
    /// The runner's count of live instances, given back on drop.
    live: Arc<AtomicUsize>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct WasmRunner {
    engine: Engine,
    pre: Pre,
    settings: WasmSettings,
    idle: Mutex<Vec<Instance>>,
    live: Arc<AtomicUsize>,
}

/// Runs a plugin call, ending it as timed out once `limit` has passed. The
/// epoch deadline ends a call that computes; this ends one that waits in
/// WASI (a sleep, a poll), where no guest code runs to be interrupted. The
/// call's future is dropped, which unwinds the guest; its instance is not
/// reused (a timeout never is), but the batch in its table is still there.
async fn within<T>(limit: Duration, call: impl Future<Output = wasmtime::Result<T>>) -> wasmtime::Result<T> {
    // Two ticks past the epoch deadline, so computing guests keep timing out
    // by the epoch trap (which leaves the store consistent).
    match tokio::time::timeout(limit + TICK * 2, call).await {
        Ok(result) => result,
        Err(_) => Err(wasmtime::Error::from(Trap::Interrupt)),
    }
}

fn ticks(d: Duration) -> u64 {
    (d.as_nanos() / TICK.as_nanos()).max(1) as u64 + 1
}

impl WasmRunner {
    /// Links the component and creates one instance, running `init` with the
    /// plugin's config: a plugin that rejects its config fails here.
    pub async fn new(
        engine: &Engine,
        component: &wasmtime::component::Component,
        settings: WasmSettings,
    ) -> Result<Self, RuntimeError> {
        let mut linker: Linker<State> = Linker::new(engine);
        let link = |e: wasmtime::Error| RuntimeError::Link(format!("{e:#}"));
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
        let version = contract_version(engine, component);
        let world = |e: wasmtime::Error| RuntimeError::Link(format!("weir:plugin@{version}: {e:#}"));
        let pre = if version == "0.2.0" {
            v2::Plugin::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s).map_err(link)?;
            let pre = linker.instantiate_pre(component).map_err(world)?;
            Pre::V2(v2::PluginPre::new(pre).map_err(world)?)
        } else {
            Plugin::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s).map_err(link)?;
            let pre = linker.instantiate_pre(component).map_err(world)?;
            Pre::V1(PluginPre::new(pre).map_err(world)?)
        };
        let runner = WasmRunner {
            engine: engine.clone(),
            pre,
            settings,
            idle: Mutex::new(Vec::new()),
            live: Arc::new(AtomicUsize::new(0)),
        };
        let first = runner.instantiate().await?;
        runner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(first);
        Ok(runner)
    }

    async fn instantiate(&self) -> Result<Instance, RuntimeError> {
        let s = &self.settings;
        let wasi = WasiCtxBuilder::new()
            .stdout(LogOutput::new(&s.name, "stdout", s.output_cap))
            .stderr(LogOutput::new(&s.name, "stderr", s.output_cap))
            .build();
        let state = State {
            wasi,
            table: ResourceTable::new(),
            limits: Limits {
                memory: s.memory_limit,
                hit: false,
                current: 0,
                gauges: s.memory_gauges.clone(),
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|st| &mut st.limits);
        // init gets a generous deadline: it may compile regexes or build tables.
        let init_deadline = s.timeout.max(Duration::from_secs(5));
        store.set_epoch_deadline(ticks(init_deadline));
        let instantiate = |e: wasmtime::Error| RuntimeError::Instantiate(format!("{e:#}"));
        let plugin = match &self.pre {
            Pre::V1(pre) => Loaded::V1(pre.instantiate_async(&mut store).await.map_err(instantiate)?),
            Pre::V2(pre) => Loaded::V2(pre.instantiate_async(&mut store).await.map_err(instantiate)?),
        };
        match within(init_deadline, plugin.init(&mut store, &s.config_json)).await {
            Ok(Ok(())) => {
                self.live.fetch_add(1, Ordering::Relaxed);
                Ok(Instance {
                    store,
                    plugin,
                    seq: 0,
                    live: self.live.clone(),
                })
            }
            Ok(Err(message)) => Err(RuntimeError::ConfigRejected(message)),
            Err(e) => Err(RuntimeError::Instantiate(format!("init trapped: {e:#}"))),
        }
    }

    async fn call(&self, tree: Tree) -> RunOutcome {
        let popped = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut inst = match popped {
            Some(i) => i,
            None => match self.instantiate().await {
                Ok(i) => i,
                Err(e) => return (Some(tree), Err(Failure::trap(format!("cannot instantiate: {e}")))),
            },
        };
        inst.seq += 1;
        let signal = weir_plugin_sdk::BatchAccess::signal(&tree);
        let store = &mut inst.store;
        store.data_mut().limits.hit = false;
        store.set_epoch_deadline(ticks(self.settings.timeout));
        let entry = BatchEntry::new(tree);
        let handle = match store.data_mut().table.push(entry) {
            Ok(h) => h,
            Err(e) => return (None, Err(Failure::trap(format!("resource table: {e}")))),
        };
        let borrowed = wasmtime::component::Resource::<BatchEntry>::new_borrow(handle.rep());
        let call = within(
            self.settings.timeout,
            inst.plugin.process(&mut *store, signal, borrowed, inst.seq),
        )
        .await;
        let memory_hit = store.data().limits.hit;
        let entry = store.data_mut().table.delete(handle);
        let Ok(entry) = entry else {
            return (
                None,
                Err(Failure::trap("the batch could not be taken back from the plugin")),
            );
        };
        let outcome = match call {
            Ok(Ok(())) => match entry.invalid {
                Some(why) => Err(Failure::Invalid(why)),
                None => Ok(entry.changes),
            },
            // A refused change list is what failed the plugin, whatever it returned after.
            Ok(Err(message)) => Err(match entry.invalid.or(entry.refused) {
                Some(why) => Failure::Invalid(why),
                None => Failure::Error(message),
            }),
            Err(e) if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => Err(Failure::Timeout),
            Err(_) if memory_hit => Err(Failure::MemoryLimit),
            Err(e) => Err(Failure::Trap {
                cause: e.root_cause().to_string(),
                backtrace: Some(format!("{e:?}")),
            }),
        };
        // A trapped or interrupted instance may be in any state: never reuse it.
        let healthy = !matches!(
            outcome,
            Err(Failure::Trap { .. } | Failure::Timeout | Failure::MemoryLimit)
        );
        if healthy {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < self.settings.max_idle {
                idle.push(inst);
            }
        }
        (Some(entry.tree), outcome)
    }
}

impl Runner for WasmRunner {
    fn instances(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    fn run(&self, tree: Tree) -> BoxFuture<'_, RunOutcome> {
        Box::pin(self.call(tree))
    }
}
