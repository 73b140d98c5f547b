//! # weir plugin SDK (Rust)
//!
//! Builds components of `weir:plugin@0.2.0` (wit/v0.2.0/plugin.wit). Write a
//! plugin as a type implementing [`Plugin`], then export it:
//!
//! ```ignore
//! use weir_plugin_sdk::{Batch, Level, Plugin, PluginError};
//!
//! struct Hello;
//! impl Plugin for Hello {
//!     fn init(_config: &str) -> Result<Self, String> { Ok(Hello) }
//!     fn process_traces(&mut self, batch: &Batch) -> Result<(), PluginError> {
//!         for i in 0..batch.len() {
//!             batch.set_attribute(Level::Item, i, "hello", "world");
//!         }
//!         Ok(())
//!     }
//! }
//! weir_plugin_sdk::export_plugin!(Hello);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the plugin. The SDK turns iteration into
//! bulk column reads and hands every edit to the host in one go after your
//! function returns, so the easy way is also the fast way. The same plugin type
//! also compiles natively (the host can link it in for benchmarks and tests).

pub mod access;
mod batch;
/// Glob patterns (`*`, `?`), as the host matches them.
pub use weir_plugin_contract::glob;
pub use weir_plugin_contract::matcher::{self, Matcher};
/// The contract's types, from the one crate the host uses too.
pub use weir_plugin_contract::types;
/// The rules the host checks a plugin's changes by.
pub use weir_plugin_contract::validate;

/// An in-memory batch for unit-testing plugins natively.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wasm;

pub use access::BatchAccess;
pub use batch::{Attr, Attributes, Batch};
pub use types::{AttributeTable, Changes, Column, Edit, Field, Level, Signal, Value, ValueRef};

/// A plugin failed a batch; its failure policy (pass, drop, reject) applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    pub message: String,
}

impl PluginError {
    pub fn new(message: impl Into<String>) -> Self {
        PluginError {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A weir plugin. Each instance is used by one thread at a time; state kept in
/// `self` lives as long as the instance (weir may replace an instance at any time).
pub trait Plugin: Sized + 'static {
    /// Builds the plugin from its config table, given as JSON text (`{}` if
    /// none). Return a message that names the offending key to reject it.
    fn init(config: &str) -> Result<Self, String>;

    fn process_traces(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let _ = batch;
        Ok(())
    }

    fn process_logs(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let _ = batch;
        Ok(())
    }

    fn process_metrics(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let _ = batch;
        Ok(())
    }

    /// Dispatches on the batch's signal.
    fn process(&mut self, batch: &Batch) -> Result<(), PluginError> {
        match batch.signal() {
            Signal::Traces => self.process_traces(batch),
            Signal::Logs => self.process_logs(batch),
            Signal::Metrics => self.process_metrics(batch),
        }
    }
}

/// Parses a plugin's JSON config into `T`, with an error message naming the key.
pub fn parse_config<T: serde::de::DeserializeOwned>(config: &str) -> Result<T, String> {
    let text = if config.trim().is_empty() { "{}" } else { config };
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("invalid plugin config: {}", e.into_inner())
        } else {
            format!("invalid plugin config: {path}: {}", e.into_inner())
        }
    })
}

/// A config value given as one string or a list of strings
/// (`level = "item"` or `level = ["item", "event"]`).
#[derive(serde::Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings, one or many.
    pub fn items(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// Exports a [`Plugin`] type as the Wasm component's `weir:plugin` world.
/// Natively this expands to nothing, so the same crate builds for both.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct WeirGuest;
            thread_local! {
                static PLUGIN: ::core::cell::RefCell<Option<$ty>> = const { ::core::cell::RefCell::new(None) };
            }
            impl $crate::wasm::Guest for WeirGuest {
                fn init(config: String) -> Result<(), String> {
                    let p = <$ty as $crate::Plugin>::init(&config)?;
                    PLUGIN.with(|cell| *cell.borrow_mut() = Some(p));
                    Ok(())
                }
                fn process_traces(
                    batch: $crate::wasm::BatchRef<'_>,
                    ctx: $crate::wasm::Context,
                ) -> Result<(), $crate::wasm::WitPluginError> {
                    PLUGIN.with(|cell| $crate::wasm::process(&mut *cell.borrow_mut(), batch, ctx))
                }
                fn process_logs(
                    batch: $crate::wasm::BatchRef<'_>,
                    ctx: $crate::wasm::Context,
                ) -> Result<(), $crate::wasm::WitPluginError> {
                    PLUGIN.with(|cell| $crate::wasm::process(&mut *cell.borrow_mut(), batch, ctx))
                }
                fn process_metrics(
                    batch: $crate::wasm::BatchRef<'_>,
                    ctx: $crate::wasm::Context,
                ) -> Result<(), $crate::wasm::WitPluginError> {
                    PLUGIN.with(|cell| $crate::wasm::process(&mut *cell.borrow_mut(), batch, ctx))
                }
            }
            $crate::wasm::export_bindings!(WeirGuest with_types_in $crate::wasm::bindings);
        };
    };
}
