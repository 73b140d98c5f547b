//! Loading every configured plugin (compile, link, init) the way `weir run`
//! and a reload do, for `weir validate`, reporting failures against the
//! plugin's config key.

use std::sync::Arc;

use weir_pipeline::Metrics;
use weir_pipeline::config::{Config, ConfigError};
use weir_wasm::PluginRuntime;

/// Loads all plugins once and drops them; the errors name their keys.
pub fn check(config: &Config, metrics: &Arc<Metrics>) -> Result<(), Vec<ConfigError>> {
    if config.plugins.is_empty() {
        return Ok(());
    }
    let runtime = PluginRuntime::new(metrics, config.service.effective_plugin_cache_dir())
        .map_err(|e| vec![ConfigError::new("plugins", e.to_string())])?;
    let base = crate::reload::watch::plugin_base_dir();
    let errors: Vec<ConfigError> = config
        .plugins
        .iter()
        .filter_map(|(name, pc)| {
            runtime
                .load_blocking(name, pc, &base)
                .err()
                .map(|e| ConfigError::new(format!("plugins.{name}"), e.to_string()))
        })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}
