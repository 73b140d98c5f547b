//! {{name}}: a weir plugin in Rust (weir:plugin@0.2.0). It masks email
//! addresses in span attributes and drops health-check spans; change `process`.

use serde::Deserialize;
use weir_plugin_sdk::glob::GlobSet;
use weir_plugin_sdk::{Batch, Field, Level, Matcher, Plugin, PluginError, Value, parse_config};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    drop_names: Vec<String>,
    mask: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            drop_names: vec!["GET /health*".into()],
            mask: "***".into(),
        }
    }
}

pub struct Main {
    drop: Matcher,
    mask: String,
}

impl Plugin for Main {
    fn init(config: &str) -> Result<Self, String> {
        let c: Config = parse_config(config)?;
        Ok(Main {
            drop: Matcher::Glob(GlobSet::new(&c.drop_names)),
            mask: c.mask,
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let emails = batch.match_attribute(Level::Item, "user.email", &Matcher::Glob(GlobSet::new(&["*@*"])), false);
        batch.set_attribute_many(Level::Item, emails, "user.email", Some(Value::Str(self.mask.clone())));
        for item in batch.match_field(Level::Item, Field::Name, &self.drop) {
            batch.drop_item(item as usize);
        }
        Ok(())
    }
}

weir_plugin_sdk::export_plugin!(Main);

#[cfg(test)]
mod tests {
    use weir_plugin_sdk::testing::MemoryBatch;

    use super::*;

    #[test]
    fn masks_emails_and_drops_health_checks() {
        let mut b = MemoryBatch::traces();
        b.resource().attr("service.name", "shop");
        b.span("GET /cart").attr("user.email", "ada@example.com");
        b.span("GET /healthz");
        let mut p = Main::init("{}").expect("init");
        b.process(&mut p).expect("process");
        assert_eq!(b.attr_str(Level::Item, 0, "user.email"), Some("***"));
        assert!(b.items()[1].dropped && !b.items()[0].dropped);
    }
}
