//! Glue between the component model bindings of `weir:plugin@0.2.0`
//! (wit/v0.2.0/plugin.wit) and the [`Plugin`](crate::Plugin) trait; used by
//! [`export_plugin!`](crate::export_plugin).

pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.2.0/plugin.wit",
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

use crate::matcher::Matcher;
use crate::types::{AttributeTable, Column, Edit, Field, Level, Signal, Value};
use crate::{Batch, BatchAccess, Plugin};

pub type BatchRef<'a> = &'a wit::Batch;

struct Host<'a>(&'a wit::Batch);

fn level(l: Level) -> wit::Level {
    match l {
        Level::Resource => wit::Level::Resource,
        Level::Scope => wit::Level::Scope,
        Level::Item => wit::Level::Item,
        Level::Event => wit::Level::Event,
        Level::Link => wit::Level::Link,
        Level::Metric => wit::Level::Metric,
        Level::Exemplar => wit::Level::Exemplar,
    }
}

fn field(f: Field) -> wit::Field {
    match f {
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
        Field::Description => wit::Field::Description,
    }
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

fn matcher(m: &Matcher) -> wit::Matcher {
    match m {
        Matcher::AnyOf(v) => wit::Matcher::AnyOf(v.clone()),
        Matcher::Glob(g) => wit::Matcher::Glob(g.patterns().to_vec()),
        Matcher::Present => wit::Matcher::Present,
        Matcher::Absent => wit::Matcher::Absent,
    }
}

fn edit(e: Edit) -> wit::Edit {
    match e {
        Edit::Attribute {
            level: l,
            entity,
            key,
            value: v,
        } => wit::Edit::Attribute(wit::AttributeEdit {
            level: level(l),
            entity,
            key,
            value: v.map(value),
        }),
        Edit::AttributeMany {
            level: l,
            entities,
            key,
            value: v,
        } => wit::Edit::AttributeMany(wit::AttributeManyEdit {
            level: level(l),
            entities,
            key,
            value: v.map(value),
        }),
        Edit::Field {
            field: f,
            item,
            value: v,
        } => wit::Edit::Field(wit::FieldEdit {
            level: wit::Level::Item,
            entity: item,
            field: field(f),
            value: value(v),
        }),
        Edit::EntityField {
            level: l,
            entity,
            field: f,
            value: v,
        } => wit::Edit::Field(wit::FieldEdit {
            level: level(l),
            entity,
            field: field(f),
            value: value(v),
        }),
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
        self.0.count(level(l))
    }
    fn owners(&self, l: Level) -> Vec<u32> {
        self.0.owners(level(l))
    }
    fn read_field(&self, f: Field) -> Column {
        column(self.0.read_field(wit::Level::Item, field(f)))
    }
    fn read_attribute(&self, l: Level, key: &str) -> Column {
        column(self.0.read_attribute(level(l), key))
    }
    fn read_attributes(&self, l: Level) -> AttributeTable {
        let t = self.0.read_attributes(level(l));
        AttributeTable {
            entity_offsets: t.entity_offsets,
            keys: column(t.keys),
            values: column(t.values),
        }
    }
    fn to_otlp(&self) -> Vec<u8> {
        self.0.to_otlp()
    }
    fn ancestors(&self, l: Level, of: Level) -> Vec<u32> {
        self.0.ancestors(level(l), level(of))
    }
    fn read_field_at(&self, l: Level, f: Field) -> Column {
        column(self.0.read_field(level(l), field(f)))
    }
    fn read_attribute_inherited(&self, l: Level, key: &str) -> Column {
        column(self.0.read_attribute_inherited(level(l), key))
    }
    fn match_field(&self, l: Level, f: Field, m: &Matcher) -> Vec<u32> {
        self.0.match_field(level(l), field(f), &matcher(m))
    }
    fn match_attribute(&self, l: Level, key: &str, m: &Matcher, inherited: bool) -> Vec<u32> {
        self.0.match_attribute(level(l), key, &matcher(m), inherited)
    }
}

/// Runs the plugin on a batch and hands its queued changes to the host. A
/// change the host refuses fails the call: the SDK's edits are all or nothing.
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
        let edits: Vec<wit::Edit> = changes.edits.into_iter().map(edit).collect();
        batch
            .apply(&edits)
            .map_err(|e| fail(format!("edit {}: {}", e.edit, e.message)))?;
    }
    if !changes.drops.is_empty() {
        batch.drop_items(&changes.drops).map_err(fail)?;
    }
    for (route, items) in &changes.routes {
        batch.route_items(route, items).map_err(fail)?;
    }
    Ok(())
}
