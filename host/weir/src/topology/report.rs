//! What a reload changed, by component, as config keys.

use std::collections::BTreeMap;
use std::fmt;

use weir_pipeline::config::Config;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    /// Settings that changed but apply only at the next start.
    pub restart_required: Vec<String>,
}

fn diff<V: PartialEq>(section: &str, old: &BTreeMap<String, V>, new: &BTreeMap<String, V>, r: &mut Report) {
    for (name, v) in new {
        match old.get(name) {
            None => r.added.push(format!("{section}.{name}")),
            Some(o) if o != v => r.changed.push(format!("{section}.{name}")),
            Some(_) => {}
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        r.removed.push(format!("{section}.{name}"));
    }
}

impl Report {
    /// The differences of the config values from `old` to `new`.
    pub fn between(old: &Config, new: &Config) -> Report {
        let mut r = Report::default();
        diff("receivers", &old.receivers, &new.receivers, &mut r);
        diff("plugins", &old.plugins, &new.plugins, &mut r);
        diff("exporters", &old.exporters, &new.exporters, &mut r);
        diff("pipelines", &old.pipelines, &new.pipelines, &mut r);
        let (a, b) = (&old.service, &new.service);
        for (changed, key) in [
            (old.admin != new.admin, "admin"),
            (
                a.processing_threads != b.processing_threads,
                "service.processing_threads",
            ),
            (
                a.plugin_cache_dir != b.plugin_cache_dir,
                "service.plugin_cache_dir",
            ),
            (a.reload != b.reload, "service.reload"),
        ] {
            if changed {
                r.restart_required.push(key.into());
            }
        }
        r
    }
}

impl Report {
    /// Counts as changed the plugins rebuilt because their wasm file changed
    /// under an unchanged config (the config diff cannot see that).
    pub fn plugins_rebuilt(&mut self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        // Keep the section order of `between`: receivers, plugins, exporters, pipelines.
        let (mut plugins, mut rest): (Vec<String>, Vec<String>) = std::mem::take(&mut self.changed)
            .into_iter()
            .partition(|c| c.starts_with("plugins."));
        plugins.extend(names.iter().map(|n| format!("plugins.{n}")));
        plugins.sort();
        plugins.dedup();
        let at = rest
            .iter()
            .position(|c| !c.starts_with("receivers."))
            .unwrap_or(rest.len());
        rest.splice(at..at, plugins);
        self.changed = rest;
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(" ")
            }
        };
        write!(
            f,
            "added: {}; removed: {}; changed: {}",
            list(&self.added),
            list(&self.removed),
            list(&self.changed)
        )?;
        if !self.restart_required.is_empty() {
            write!(
                f,
                "; needs a restart to apply: {}",
                self.restart_required.join(" ")
            )?;
        }
        Ok(())
    }
}
