//! What a reload changed, by component, as config keys.

use std::collections::{BTreeMap, BTreeSet};
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

fn diff<V: PartialEq>(
    section: &str,
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    also_changed: &BTreeSet<String>,
    r: &mut Report,
) {
    for (name, v) in new {
        match old.get(name) {
            None => r.added.push(format!("{section}.{name}")),
            Some(o) if o != v || also_changed.contains(name) => r.changed.push(format!("{section}.{name}")),
            Some(_) => {}
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        r.removed.push(format!("{section}.{name}"));
    }
}

impl Report {
    /// The differences from `old` to `new`; `plugin_bytes_changed` names the
    /// plugins whose wasm file changed under an unchanged config.
    pub fn between(old: &Config, new: &Config, plugin_bytes_changed: &BTreeSet<String>) -> Report {
        let mut r = Report::default();
        let none = BTreeSet::new();
        diff("receivers", &old.receivers, &new.receivers, &none, &mut r);
        diff(
            "plugins",
            &old.plugins,
            &new.plugins,
            plugin_bytes_changed,
            &mut r,
        );
        diff("exporters", &old.exporters, &new.exporters, &none, &mut r);
        diff("pipelines", &old.pipelines, &new.pipelines, &none, &mut r);
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
