//! A `weir:plugin@0.2.0` plugin written against the WIT alone, as a plugin
//! author in another language would. Config `{"mode": ...}`:
//!
//! - `tenant` (the example processor of the SDK docs): every resource gets a
//!   `tenant` attribute from `tenant.id`, read at item level with inheritance;
//!   `GET /health*` spans are dropped through host-side matching; span event
//!   names and exemplar attributes holding an `@` are masked with one
//!   many-entity edit each; metric descriptions are masked.
//! - `bad-edit`: sends two valid edits and a third whose value has the wrong
//!   type, then tags every item with `probe.refused-edit` = the index the host
//!   reported, so a test sees that the refused list queued nothing.

#[cfg(target_arch = "wasm32")]
// The generated bindings export functions by name (`export_name`), which the
// workspace's `unsafe_code` lint counts as unsafe.
#[allow(unsafe_code)]
mod guest {
    use std::sync::OnceLock;

    use weir::plugin::types::{
        AttributeEdit, AttributeManyEdit, Edit, Field, FieldEdit, Level, Matcher, Value,
    };

    wit_bindgen::generate!({
        path: "../../../wit/v0.2.0/plugin.wit",
        world: "plugin",
    });

    static MODE: OnceLock<String> = OnceLock::new();

    struct Probe;

    fn err(message: impl Into<String>) -> PluginError {
        PluginError {
            message: message.into(),
        }
    }

    fn text(column: &weir::plugin::types::Column, i: usize) -> Option<String> {
        let (a, b) = (
            *column.offsets.get(i)? as usize,
            *column.offsets.get(i + 1)? as usize,
        );
        let bytes = column.data.get(a..b)?;
        // Tagged: 1 = string.
        match bytes.split_first() {
            Some((1, rest)) => String::from_utf8(rest.to_vec()).ok(),
            _ => None,
        }
    }

    fn mask_many(batch: &Batch, level: Level, key: &str) -> Result<(), PluginError> {
        let hits = batch.match_attribute(level, key, &Matcher::Glob(vec!["*@*".into()]), false);
        if hits.is_empty() {
            return Ok(());
        }
        batch
            .apply(&[Edit::AttributeMany(AttributeManyEdit {
                level,
                entities: hits,
                key: key.into(),
                value: Some(Value::Str("***".into())),
            })])
            .map_err(|e| err(e.message))
    }

    fn tenant(batch: &Batch) -> Result<(), PluginError> {
        // Each item's tenant.id, from the item or anything above it.
        let ids = batch.read_attribute_inherited(Level::Item, "tenant.id");
        let resources = batch.ancestors(Level::Item, Level::Resource);
        let mut edits = Vec::new();
        let mut done = vec![false; batch.count(Level::Resource) as usize];
        for (item, &r) in resources.iter().enumerate() {
            if let Some(id) = text(&ids, item)
                && !std::mem::replace(&mut done[r as usize], true)
            {
                edits.push(Edit::Attribute(AttributeEdit {
                    level: Level::Resource,
                    entity: r,
                    key: "tenant".into(),
                    value: Some(Value::Str(id)),
                }));
            }
        }
        let events = batch.match_field(Level::Event, Field::Name, &Matcher::Glob(vec!["*@*".into()]));
        for e in events {
            edits.push(Edit::Field(FieldEdit {
                level: Level::Event,
                entity: e,
                field: Field::Name,
                value: Value::Str("***".into()),
            }));
        }
        for m in 0..batch.count(Level::Metric) {
            edits.push(Edit::Field(FieldEdit {
                level: Level::Metric,
                entity: m,
                field: Field::Description,
                value: Value::Str("***".into()),
            }));
        }
        batch
            .apply(&edits)
            .map_err(|e| err(format!("edit {}: {}", e.edit, e.message)))?;
        mask_many(batch, Level::Exemplar, "user.email")?;
        let health = batch.match_field(
            Level::Item,
            Field::Name,
            &Matcher::Glob(vec!["GET /health*".into()]),
        );
        batch.drop_items(&health).map_err(err)?;
        Ok(())
    }

    fn bad_edit(batch: &Batch) -> Result<(), PluginError> {
        let set = |item: u32, value: Value| {
            Edit::Field(FieldEdit {
                level: Level::Item,
                entity: item,
                field: Field::Name,
                value,
            })
        };
        let refused = batch.apply(&[
            set(0, Value::Str("renamed".into())),
            set(0, Value::Str("renamed again".into())),
            set(0, Value::Int(7)),
        ]);
        let index = match refused {
            Ok(()) => return Err(err("the host accepted a span name of type int")),
            Err(e) => e.edit,
        };
        Ok(()).and_then(|()| {
            batch
                .apply(&[Edit::AttributeMany(AttributeManyEdit {
                    level: Level::Item,
                    entities: (0..batch.len()).collect(),
                    key: "probe.refused-edit".into(),
                    value: Some(Value::Int(i64::from(index))),
                })])
                .map_err(|e| err(e.message))
        })
    }

    fn process(batch: &Batch, _ctx: Context) -> Result<(), PluginError> {
        match MODE.get().map(String::as_str) {
            Some("bad-edit") => bad_edit(batch),
            _ => tenant(batch),
        }
    }

    impl Guest for Probe {
        fn init(config: String) -> Result<(), String> {
            let mode = if config.contains("bad-edit") {
                "bad-edit"
            } else {
                "tenant"
            };
            let _ = MODE.set(mode.into());
            Ok(())
        }

        fn process_traces(batch: &Batch, ctx: Context) -> Result<(), PluginError> {
            process(batch, ctx)
        }

        fn process_logs(batch: &Batch, ctx: Context) -> Result<(), PluginError> {
            process(batch, ctx)
        }

        fn process_metrics(batch: &Batch, ctx: Context) -> Result<(), PluginError> {
            process(batch, ctx)
        }
    }

    export!(Probe);
}
