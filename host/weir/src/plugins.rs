//! Loading every configured plugin (compile, link, init) before anything runs,
//! reporting failures against the plugin's config key.

use std::collections::BTreeMap;
use std::sync::Arc;

use weir_pipeline::Metrics;
use weir_pipeline::config::{Config, ConfigError};
use weir_wasm::{PluginRuntime, Runner};

pub struct LoadedPlugins {
    pub runtime: PluginRuntime,
    pub runners: BTreeMap<String, Arc<dyn Runner>>,
}

/// Loads all plugins; `None` when the config defines none.
pub fn load(config: &Config, metrics: &Arc<Metrics>) -> Result<Option<LoadedPlugins>, Vec<ConfigError>> {
    if config.plugins.is_empty() {
        return Ok(None);
    }
    let runtime = PluginRuntime::new(metrics, config.service.plugin_cache_dir.clone())
        .map_err(|e| vec![ConfigError::new("plugins", e.to_string())])?;
    let base = std::env::current_dir().unwrap_or_default();
    let mut runners = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, pc) in &config.plugins {
        match runtime.load(name, pc, &base) {
            Ok(r) => {
                runners.insert(name.clone(), r);
            }
            Err(e) => errors.push(ConfigError::new(format!("plugins.{name}"), e.to_string())),
        }
    }
    if errors.is_empty() {
        Ok(Some(LoadedPlugins { runtime, runners }))
    } else {
        Err(errors)
    }
}
