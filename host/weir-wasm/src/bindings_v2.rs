//! Host bindings of the `weir:plugin@0.2.0` world (wit/v0.2.0/plugin.wit). The
//! `batch` resource is the same [`BatchEntry`] as 0.1.0's, so both versions
//! share the runner, the checks and the way changes are applied; 0.2.0 adds
//! the host-side bulk helpers and the metric and exemplar levels.

use wasmtime::component::Resource;
use weir_batch::Matcher;
use weir_plugin_sdk::glob::GlobSet;
use weir_plugin_sdk::{BatchAccess, Edit, Field, Level, Value};

use crate::bindings::{BatchEntry, State};

wasmtime::component::bindgen!({
    path: "../../wit/v0.2.0/plugin.wit",
    world: "plugin",
    with: { "weir:plugin/types.batch": crate::bindings::BatchEntry },
    imports: { default: trappable },
    exports: { default: async },
});

use weir::plugin::types as wit;

fn level(l: wit::Level) -> Level {
    match l {
        wit::Level::Resource => Level::Resource,
        wit::Level::Scope => Level::Scope,
        wit::Level::Item => Level::Item,
        wit::Level::Event => Level::Event,
        wit::Level::Link => Level::Link,
        wit::Level::Metric => Level::Metric,
        wit::Level::Exemplar => Level::Exemplar,
    }
}

fn field(f: wit::Field) -> Field {
    match f {
        wit::Field::Name => Field::Name,
        wit::Field::TraceId => Field::TraceId,
        wit::Field::SpanId => Field::SpanId,
        wit::Field::ParentSpanId => Field::ParentSpanId,
        wit::Field::Kind => Field::Kind,
        wit::Field::StatusCode => Field::StatusCode,
        wit::Field::StatusMessage => Field::StatusMessage,
        wit::Field::StartTime => Field::StartTime,
        wit::Field::EndTime => Field::EndTime,
        wit::Field::TraceState => Field::TraceState,
        wit::Field::Flags => Field::Flags,
        wit::Field::Body => Field::Body,
        wit::Field::SeverityText => Field::SeverityText,
        wit::Field::SeverityNumber => Field::SeverityNumber,
        wit::Field::Time => Field::Time,
        wit::Field::ObservedTime => Field::ObservedTime,
        wit::Field::EventName => Field::EventName,
        wit::Field::Unit => Field::Unit,
        wit::Field::Description => Field::Description,
    }
}

fn value(v: wit::Value) -> Value {
    match v {
        wit::Value::Str(s) => Value::Str(s),
        wit::Value::Int(i) => Value::Int(i),
        wit::Value::Double(d) => Value::Double(d),
        wit::Value::Boolean(b) => Value::Bool(b),
        wit::Value::Bytes(b) => Value::Bytes(b),
        wit::Value::Json(s) => Value::Json(s),
    }
}

fn edit(e: wit::Edit) -> Edit {
    match e {
        wit::Edit::Attribute(a) => Edit::Attribute {
            level: level(a.level),
            entity: a.entity,
            key: a.key,
            value: a.value.map(value),
        },
        wit::Edit::AttributeMany(a) => Edit::AttributeMany {
            level: level(a.level),
            entities: a.entities,
            key: a.key,
            value: a.value.map(value),
        },
        wit::Edit::Field(f) => Edit::EntityField {
            level: level(f.level),
            entity: f.entity,
            field: field(f.field),
            value: value(f.value),
        },
    }
}

fn matcher(m: wit::Matcher) -> Matcher {
    match m {
        wit::Matcher::AnyOf(v) => Matcher::AnyOf(v),
        wit::Matcher::Glob(g) => Matcher::Glob(GlobSet::new(&g)),
        wit::Matcher::Present => Matcher::Present,
        wit::Matcher::Absent => Matcher::Absent,
    }
}

fn column(c: weir_plugin_sdk::Column) -> wit::Column {
    wit::Column {
        data: c.data,
        offsets: c.offsets,
    }
}

fn entry<'a>(s: &'a State, r: &Resource<BatchEntry>) -> wasmtime::Result<&'a BatchEntry> {
    Ok(s.table.get(r)?)
}

fn entry_mut<'a>(s: &'a mut State, r: &Resource<BatchEntry>) -> wasmtime::Result<&'a mut BatchEntry> {
    Ok(s.table.get_mut(r)?)
}

/// A queued change's answer to the plugin; a refusal is remembered, so that
/// if the plugin then fails, it fails as "invalid".
fn refusal(
    entry: &mut BatchEntry,
    queue: impl FnOnce(&mut BatchEntry) -> Result<(), String>,
) -> Result<(), String> {
    queue(entry).inspect_err(|message| {
        entry.refused.get_or_insert_with(|| message.clone());
    })
}

impl wit::Host for State {}

impl wit::HostBatch for State {
    fn signal(&mut self, r: Resource<BatchEntry>) -> wasmtime::Result<wit::Signal> {
        Ok(match entry(self, &r)?.tree.signal() {
            weir_plugin_sdk::Signal::Traces => wit::Signal::Traces,
            weir_plugin_sdk::Signal::Logs => wit::Signal::Logs,
            weir_plugin_sdk::Signal::Metrics => wit::Signal::Metrics,
        })
    }

    fn len(&mut self, r: Resource<BatchEntry>) -> wasmtime::Result<u32> {
        Ok(entry(self, &r)?.tree.len())
    }

    fn count(&mut self, r: Resource<BatchEntry>, l: wit::Level) -> wasmtime::Result<u32> {
        Ok(entry(self, &r)?.tree.count(level(l)))
    }

    fn owners(&mut self, r: Resource<BatchEntry>, l: wit::Level) -> wasmtime::Result<Vec<u32>> {
        Ok(entry(self, &r)?.tree.owners(level(l)))
    }

    fn ancestors(
        &mut self,
        r: Resource<BatchEntry>,
        l: wit::Level,
        of: wit::Level,
    ) -> wasmtime::Result<Vec<u32>> {
        Ok(entry(self, &r)?.tree.ancestors(level(l), level(of)))
    }

    fn read_field(
        &mut self,
        r: Resource<BatchEntry>,
        l: wit::Level,
        f: wit::Field,
    ) -> wasmtime::Result<wit::Column> {
        Ok(column(entry(self, &r)?.tree.read_field_at(level(l), field(f))))
    }

    fn read_attribute(
        &mut self,
        r: Resource<BatchEntry>,
        l: wit::Level,
        key: String,
    ) -> wasmtime::Result<wit::Column> {
        Ok(column(entry(self, &r)?.tree.read_attribute(level(l), &key)))
    }

    fn read_attribute_inherited(
        &mut self,
        r: Resource<BatchEntry>,
        l: wit::Level,
        key: String,
    ) -> wasmtime::Result<wit::Column> {
        Ok(column(
            entry(self, &r)?.tree.read_attribute_inherited(level(l), &key),
        ))
    }

    fn read_attributes(
        &mut self,
        r: Resource<BatchEntry>,
        l: wit::Level,
    ) -> wasmtime::Result<wit::AttributeTable> {
        let t = entry(self, &r)?.tree.read_attributes(level(l));
        Ok(wit::AttributeTable {
            entity_offsets: t.entity_offsets,
            keys: column(t.keys),
            values: column(t.values),
        })
    }

    fn match_field(
        &mut self,
        r: Resource<BatchEntry>,
        l: wit::Level,
        f: wit::Field,
        m: wit::Matcher,
    ) -> wasmtime::Result<Vec<u32>> {
        Ok(entry(self, &r)?.tree.match_field(level(l), field(f), &matcher(m)))
    }

    fn match_attribute(
        &mut self,
        r: Resource<BatchEntry>,
        l: wit::Level,
        key: String,
        m: wit::Matcher,
        inherited: bool,
    ) -> wasmtime::Result<Vec<u32>> {
        Ok(entry(self, &r)?
            .tree
            .match_attribute(level(l), &key, &matcher(m), inherited))
    }

    fn apply(
        &mut self,
        r: Resource<BatchEntry>,
        edits: Vec<wit::Edit>,
    ) -> wasmtime::Result<Result<(), wit::ChangeError>> {
        let entry = entry_mut(self, &r)?;
        // 0.2.0 returns the refusal to the plugin, which decides what to do;
        // the call fails for it only if the plugin then fails.
        match entry.queue_edits(edits.into_iter().map(edit).collect()) {
            Ok(()) => Ok(Ok(())),
            Err((i, err)) => {
                entry.refused.get_or_insert_with(|| format!("edit {i}: {err}"));
                Ok(Err(wit::ChangeError {
                    edit: u32::try_from(i).unwrap_or(u32::MAX),
                    message: err.0,
                }))
            }
        }
    }

    fn drop_items(
        &mut self,
        r: Resource<BatchEntry>,
        items: Vec<u32>,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(refusal(entry_mut(self, &r)?, |e| e.queue_drops(items)))
    }

    fn route_items(
        &mut self,
        r: Resource<BatchEntry>,
        route: String,
        items: Vec<u32>,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(refusal(entry_mut(self, &r)?, |e| e.queue_route(route, items)))
    }

    fn to_otlp(&mut self, r: Resource<BatchEntry>) -> wasmtime::Result<Vec<u8>> {
        Ok(entry(self, &r)?.tree.to_otlp())
    }

    fn replace_otlp(
        &mut self,
        r: Resource<BatchEntry>,
        otlp: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(refusal(entry_mut(self, &r)?, |e| e.queue_replace(otlp)))
    }

    fn drop(&mut self, _r: Resource<BatchEntry>) -> wasmtime::Result<()> {
        // The host lends batches as borrows and takes them back itself.
        Ok(())
    }
}
