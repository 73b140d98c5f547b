//! Plugins compiled into the host (the same plugin crates, built natively), so
//! the Wasm chain can be measured against the identical chain without Wasm.

use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, PoisonError};

use weir_batch::HostBatch as Tree;
use weir_plugin_sdk::{Batch, Plugin};

use futures::future::BoxFuture;

use crate::{Failure, RunOutcome, Runner, RuntimeError};

pub struct NativeRunner<P: Plugin> {
    config_json: String,
    idle: Mutex<Vec<P>>,
    _p: PhantomData<fn() -> P>,
}

impl<P: Plugin> NativeRunner<P> {
    pub fn new(config_json: String) -> Result<Self, RuntimeError> {
        let first = P::init(&config_json).map_err(RuntimeError::ConfigRejected)?;
        Ok(NativeRunner {
            config_json,
            idle: Mutex::new(vec![first]),
            _p: PhantomData,
        })
    }

    fn run_now(&self, tree: Tree) -> RunOutcome {
        let popped = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut plugin = match popped {
            Some(p) => p,
            None => match P::init(&self.config_json) {
                Ok(p) => p,
                Err(e) => return (Some(tree), Err(Failure::Error(e))),
            },
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            let view = Batch::new(&tree);
            plugin.process(&view).map(|()| view.into_changes())
        }));
        match result {
            Ok(Ok(changes)) => {
                self.idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(plugin);
                (Some(tree), Ok(changes))
            }
            Ok(Err(e)) => {
                self.idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(plugin);
                (Some(tree), Err(Failure::Error(e.message)))
            }
            Err(_) => (Some(tree), Err(Failure::trap("native plugin panicked"))),
        }
    }
}

impl<P: Plugin + Send> Runner for NativeRunner<P> {
    fn run(&self, tree: Tree) -> BoxFuture<'_, RunOutcome> {
        // Native code has nothing to await: run it now.
        Box::pin(std::future::ready(self.run_now(tree)))
    }
}

/// The reference plugins this build links natively, by name.
#[cfg(feature = "native-plugins")]
pub fn builtin(name: &str, config_json: String) -> Result<Box<dyn Runner>, RuntimeError> {
    Ok(match name {
        "redact" => Box::new(NativeRunner::<weir_plugin_redact::Redact>::new(config_json)?),
        "sample" => Box::new(NativeRunner::<weir_plugin_sample::Sample>::new(config_json)?),
        "enrich" => Box::new(NativeRunner::<weir_plugin_enrich::Enrich>::new(config_json)?),
        "route" => Box::new(NativeRunner::<weir_plugin_route::Route>::new(config_json)?),
        other => {
            return Err(RuntimeError::Builtin(format!(
                "unknown built-in plugin {other:?}; built-ins are redact, sample, enrich, route"
            )));
        }
    })
}

#[cfg(not(feature = "native-plugins"))]
pub fn builtin(name: &str, _config_json: String) -> Result<Box<dyn Runner>, RuntimeError> {
    Err(RuntimeError::Builtin(format!(
        "built-in plugin {name:?} needs a weir built with `--features native-plugins`; use `path` to load the .wasm instead"
    )))
}
