//! The example processor in Rust: every resource gets a `tenant` attribute
//! from `tenant.id` (found on the span, its scope or its resource), and health
//! checks (`GET /health*` spans) are dropped. The same processor exists in
//! Python (examples/plugins/python/tenant); both pass examples/plugins/conformance.

use std::collections::BTreeMap;

use serde::Deserialize;
use weir_plugin_sdk::glob::GlobSet;
use weir_plugin_sdk::{Batch, Field, Level, Matcher, Plugin, PluginError, Signal, parse_config};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    from: String,
    to: String,
    drop_names: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            from: "tenant.id".into(),
            to: "tenant".into(),
            drop_names: vec!["GET /health*".into()],
        }
    }
}

pub struct Tenant {
    config: Config,
    drop: Matcher,
}

impl Plugin for Tenant {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = parse_config(config)?;
        let drop = Matcher::Glob(GlobSet::new(&config.drop_names));
        Ok(Tenant { config, drop })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let ids = batch.attribute_inherited(Level::Item, &self.config.from);
        let mut tenant_of: BTreeMap<u32, String> = BTreeMap::new();
        for (item, resource) in batch
            .ancestors(Level::Item, Level::Resource)
            .into_iter()
            .enumerate()
        {
            if let Some(id) = ids.value(item).to_text() {
                tenant_of.entry(resource).or_insert(id);
            }
        }
        for (resource, tenant) in tenant_of {
            batch.set_attribute(Level::Resource, resource as usize, &self.config.to, tenant);
        }
        if batch.signal() == Signal::Traces && !self.config.drop_names.is_empty() {
            for item in batch.match_field(Level::Item, Field::Name, &self.drop) {
                batch.drop_item(item as usize);
            }
        }
        Ok(())
    }
}

weir_plugin_sdk::export_plugin!(Tenant);

#[cfg(test)]
mod tests {
    use weir_plugin_sdk::testing::MemoryBatch;

    use super::*;

    #[test]
    fn tenants_are_set_and_health_checks_dropped() {
        let mut b = MemoryBatch::traces();
        b.resource().attr("tenant.id", "acme");
        b.span("GET /cart");
        b.span("GET /healthz");
        b.resource().attr("service.name", "billing");
        b.span("charge").attr("tenant.id", "globex");
        let mut p = Tenant::init("{}").expect("init");
        b.process(&mut p).expect("process");
        assert_eq!(b.attr_str(Level::Resource, 0, "tenant"), Some("acme"));
        assert_eq!(b.attr_str(Level::Resource, 1, "tenant"), Some("globex"));
        assert!(b.items()[1].dropped && !b.items()[0].dropped && !b.items()[2].dropped);
    }
}
