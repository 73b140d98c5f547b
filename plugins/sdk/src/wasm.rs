//! Glue between the component model bindings and the [`Plugin`](crate::Plugin)
//! trait; used by [`export_plugin!`](crate::export_plugin).

pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/plugin.wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "weir_plugin_sdk::wasm::bindings",
    });
}

pub use bindings::Guest;
pub use bindings::export_bindings;
use bindings::weir::plugin::types as wit;
pub use wit::{Context, PluginError as WitPluginError};

use crate::types::{AttributeTable, Column, Edit, Field, Level, Signal, Value};
use crate::{Batch, BatchAccess, Plugin};

pub type BatchRef<'a> = &'a wit::Batch;

struct Host<'a>(&'a wit::Batch);

/// The 0.1.0 level, if 0.1.0 has it (metrics and exemplars came with 0.2.0).
fn level(l: Level) -> Option<wit::Level> {
    Some(match l {
        Level::Resource => wit::Level::Resource,
        Level::Scope => wit::Level::Scope,
        Level::Item => wit::Level::Item,
        Level::Event => wit::Level::Event,
        Level::Link => wit::Level::Link,
        Level::Metric | Level::Exemplar => return None,
    })
}

fn field(f: Field) -> Option<wit::Field> {
    Some(match f {
        Field::Name => wit::Field::Name,
        Field::TraceId => wit::Field::TraceId,
        Field::SpanId => wit::Field::SpanId,
        Field::ParentSpanId => wit::Field::ParentSpanId,
        Field::Kind => wit::Field::Kind,
        Field::StatusCode => wit::Field::StatusCode,
        Field::StatusMessage => wit::Field::StatusMessage,
        Field::StartTime => wit::Field::StartTime,
        Field::EndTime => wit::Field::EndTime,
        Field::TraceState => wit::Field::TraceState,
        Field::Flags => wit::Field::Flags,
        Field::Body => wit::Field::Body,
        Field::SeverityText => wit::Field::SeverityText,
        Field::SeverityNumber => wit::Field::SeverityNumber,
        Field::Time => wit::Field::Time,
        Field::ObservedTime => wit::Field::ObservedTime,
        Field::EventName => wit::Field::EventName,
        Field::Unit => wit::Field::Unit,
        Field::Description => return None,
    })
}

/// A column of `n` empty entries: what 0.1.0 would answer for a field it lacks.
fn empty_column(n: u32) -> Column {
    let mut c = Column::with_capacity(n as usize, 0);
    for _ in 0..n {
        c.end_entry();
    }
    c
}

fn column(c: wit::Column) -> Column {
    Column {
        data: c.data,
        offsets: c.offsets,
    }
}

fn value(v: Value) -> wit::Value {
    match v {
        Value::Str(s) => wit::Value::Str(s),
        Value::Int(i) => wit::Value::Int(i),
        Value::Double(d) => wit::Value::Double(d),
        Value::Bool(b) => wit::Value::Boolean(b),
        Value::Bytes(b) => wit::Value::Bytes(b),
        Value::Json(s) => wit::Value::Json(s),
    }
}

impl BatchAccess for Host<'_> {
    fn signal(&self) -> Signal {
        match self.0.signal() {
            wit::Signal::Traces => Signal::Traces,
            wit::Signal::Logs => Signal::Logs,
            wit::Signal::Metrics => Signal::Metrics,
        }
    }
    fn len(&self) -> u32 {
        self.0.len()
    }
    fn count(&self, l: Level) -> u32 {
        level(l).map_or(0, |l| self.0.count(l))
    }
    fn owners(&self, l: Level) -> Vec<u32> {
        level(l).map_or_else(Vec::new, |l| self.0.owners(l))
    }
    fn read_field(&self, f: Field) -> Column {
        match field(f) {
            Some(f) => column(self.0.read_field(f)),
            None => empty_column(self.0.len()),
        }
    }
    fn read_attribute(&self, l: Level, key: &str) -> Column {
        match level(l) {
            Some(l) => column(self.0.read_attribute(l, key)),
            None => Column::default(),
        }
    }
    fn read_attributes(&self, l: Level) -> AttributeTable {
        let Some(l) = level(l) else {
            return AttributeTable {
                entity_offsets: vec![0],
                ..AttributeTable::default()
            };
        };
        let t = self.0.read_attributes(l);
        AttributeTable {
            entity_offsets: t.entity_offsets,
            keys: column(t.keys),
            values: column(t.values),
        }
    }
    fn to_otlp(&self) -> Vec<u8> {
        self.0.to_otlp()
    }
}

/// Runs the plugin on a batch and hands its queued changes to the host.
pub fn process<P: Plugin>(
    plugin: &mut Option<P>,
    batch: BatchRef<'_>,
    _ctx: Context,
) -> Result<(), WitPluginError> {
    let Some(plugin) = plugin.as_mut() else {
        return Err(WitPluginError {
            message: "process called before init".into(),
        });
    };
    let host = Host(batch);
    let view = Batch::new(&host);
    plugin
        .process(&view)
        .map_err(|e| WitPluginError { message: e.message })?;
    let changes = view.into_changes();
    let fail = |message: String| WitPluginError { message };
    if let Some(otlp) = changes.replace {
        batch.replace_otlp(&otlp).map_err(fail)?;
    }
    if !changes.edits.is_empty() {
        let mut edits: Vec<wit::Edit> = Vec::with_capacity(changes.edits.len());
        let newer = |what: &str| WitPluginError {
            message: format!("{what} needs weir:plugin@0.2.0; this plugin was built against 0.1.0"),
        };
        for e in changes.edits {
            match e {
                Edit::Attribute {
                    level: l,
                    entity,
                    key,
                    value: v,
                } => edits.push(wit::Edit::Attribute(wit::AttributeEdit {
                    level: level(l).ok_or_else(|| newer("an edit of a metric or an exemplar"))?,
                    entity,
                    key,
                    value: v.map(value),
                })),
                Edit::AttributeMany {
                    level: l,
                    entities,
                    key,
                    value: v,
                } => {
                    let l = level(l).ok_or_else(|| newer("an edit of a metric or an exemplar"))?;
                    for entity in entities {
                        edits.push(wit::Edit::Attribute(wit::AttributeEdit {
                            level: l,
                            entity,
                            key: key.clone(),
                            value: v.clone().map(value),
                        }));
                    }
                }
                Edit::Field {
                    field: f,
                    item,
                    value: v,
                }
                | Edit::EntityField {
                    level: Level::Item,
                    entity: item,
                    field: f,
                    value: v,
                } => edits.push(wit::Edit::Field(wit::FieldEdit {
                    field: field(f).ok_or_else(|| newer("setting a description"))?,
                    item,
                    value: value(v),
                })),
                Edit::EntityField { .. } => return Err(newer("setting a field of an event or a metric")),
            }
        }
        batch.apply(&edits).map_err(fail)?;
    }
    if !changes.drops.is_empty() {
        batch.drop_items(&changes.drops);
    }
    for (route, items) in &changes.routes {
        batch.route_items(route, items);
    }
    Ok(())
}
