//! Host bindings of the `weir:plugin` world: the `batch` resource is backed by
//! a [`BatchEntry`] in the store's resource table, and every method reads the
//! decoded batch or queues a change on it.

use wasmtime::component::{Resource, ResourceTable};
use weir_batch::HostBatch as Tree;
use weir_plugin_contract::{Shape, check_edit, check_items};
use weir_plugin_sdk::{BatchAccess, Changes, Edit, Field, Level, Value};

wasmtime::component::bindgen!({
    path: "../../wit/plugin.wit",
    world: "plugin",
    with: { "weir:plugin/types.batch": BatchEntry },
    imports: { default: trappable },
});

use weir::plugin::types as wit;

/// A batch lent to a plugin for one call, with the changes it queued.
pub struct BatchEntry {
    pub tree: Tree,
    pub changes: Changes,
    /// What queued changes apply to: the batch, or the replacement a
    /// `replace-otlp` queued.
    pub shape: Shape,
    /// Set when the plugin queued something invalid (a refused `apply` or
    /// `replace-otlp`, out-of-range items in drop/route); the call then
    /// counts as failed with outcome "invalid", and nothing it queued is applied.
    pub invalid: Option<String>,
    /// Set when 0.2.0 refused a change and told the plugin so: the plugin may
    /// carry on, but if it then fails, the refusal is why (outcome "invalid").
    pub refused: Option<String>,
}

impl BatchEntry {
    pub fn new(tree: Tree) -> Self {
        BatchEntry {
            shape: tree.shape(),
            tree,
            changes: Changes::default(),
            invalid: None,
            refused: None,
        }
    }
}

/// Everything a plugin instance's store holds.
pub struct State {
    pub wasi: wasmtime_wasi::WasiCtx,
    pub table: ResourceTable,
    pub limits: crate::runner::Limits,
}

impl wasmtime_wasi::WasiView for State {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn level(l: wit::Level) -> Level {
    match l {
        wit::Level::Resource => Level::Resource,
        wit::Level::Scope => Level::Scope,
        wit::Level::Item => Level::Item,
        wit::Level::Event => Level::Event,
        wit::Level::Link => Level::Link,
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

fn column(c: weir_plugin_sdk::Column) -> wit::Column {
    wit::Column {
        data: c.data,
        offsets: c.offsets,
    }
}

impl State {
    fn entry(&self, r: &Resource<BatchEntry>) -> wasmtime::Result<&BatchEntry> {
        Ok(self.table.get(r)?)
    }
    fn entry_mut(&mut self, r: &Resource<BatchEntry>) -> wasmtime::Result<&mut BatchEntry> {
        Ok(self.table.get_mut(r)?)
    }
}

impl wit::Host for State {}

impl wit::HostBatch for State {
    fn signal(&mut self, r: Resource<BatchEntry>) -> wasmtime::Result<wit::Signal> {
        Ok(match self.entry(&r)?.tree.signal() {
            weir_plugin_sdk::Signal::Traces => wit::Signal::Traces,
            weir_plugin_sdk::Signal::Logs => wit::Signal::Logs,
            weir_plugin_sdk::Signal::Metrics => wit::Signal::Metrics,
        })
    }

    fn len(&mut self, r: Resource<BatchEntry>) -> wasmtime::Result<u32> {
        Ok(self.entry(&r)?.tree.len())
    }

    fn count(&mut self, r: Resource<BatchEntry>, l: wit::Level) -> wasmtime::Result<u32> {
        Ok(self.entry(&r)?.tree.count(level(l)))
    }

    fn owners(&mut self, r: Resource<BatchEntry>, l: wit::Level) -> wasmtime::Result<Vec<u32>> {
        Ok(self.entry(&r)?.tree.owners(level(l)))
    }

    fn read_field(&mut self, r: Resource<BatchEntry>, f: wit::Field) -> wasmtime::Result<wit::Column> {
        Ok(column(self.entry(&r)?.tree.read_field(field(f))))
    }

    fn read_attribute(
        &mut self,
        r: Resource<BatchEntry>,
        l: wit::Level,
        key: String,
    ) -> wasmtime::Result<wit::Column> {
        Ok(column(self.entry(&r)?.tree.read_attribute(level(l), &key)))
    }

    fn read_attributes(
        &mut self,
        r: Resource<BatchEntry>,
        l: wit::Level,
    ) -> wasmtime::Result<wit::AttributeTable> {
        let t = self.entry(&r)?.tree.read_attributes(level(l));
        Ok(wit::AttributeTable {
            entity_offsets: t.entity_offsets,
            keys: column(t.keys),
            values: column(t.values),
        })
    }

    fn apply(
        &mut self,
        r: Resource<BatchEntry>,
        edits: Vec<wit::Edit>,
    ) -> wasmtime::Result<Result<(), String>> {
        let entry = self.entry_mut(&r)?;
        let edits: Vec<Edit> = edits
            .into_iter()
            .map(|e| match e {
                wit::Edit::Attribute(a) => Edit::Attribute {
                    level: level(a.level),
                    entity: a.entity,
                    key: a.key,
                    value: a.value.map(value),
                },
                wit::Edit::Field(f) => Edit::Field {
                    field: field(f.field),
                    item: f.item,
                    value: value(f.value),
                },
            })
            .collect();
        // As the WIT promises: one bad edit refuses the call, and nothing of it is queued.
        for (i, e) in edits.iter().enumerate() {
            if let Err(err) = check_edit(&entry.shape, e) {
                let message = format!("edit {i}: {err}");
                // The call counts as invalid even if the plugin goes on and succeeds.
                entry.invalid.get_or_insert_with(|| message.clone());
                return Ok(Err(message));
            }
        }
        entry.changes.edits.extend(edits);
        Ok(Ok(()))
    }

    fn drop_items(&mut self, r: Resource<BatchEntry>, items: Vec<u32>) -> wasmtime::Result<()> {
        let entry = self.entry_mut(&r)?;
        if let Err(e) = check_items(&entry.shape, "drop-items", &items) {
            entry.invalid = Some(e.0);
        }
        entry.changes.drops.extend(items);
        Ok(())
    }

    fn route_items(
        &mut self,
        r: Resource<BatchEntry>,
        route: String,
        items: Vec<u32>,
    ) -> wasmtime::Result<()> {
        let entry = self.entry_mut(&r)?;
        if let Err(e) = check_items(&entry.shape, "route-items", &items) {
            entry.invalid = Some(e.0);
        }
        entry.changes.routes.push((route, items));
        Ok(())
    }

    fn to_otlp(&mut self, r: Resource<BatchEntry>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.entry(&r)?.tree.to_otlp())
    }

    fn replace_otlp(
        &mut self,
        r: Resource<BatchEntry>,
        otlp: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        let entry = self.entry_mut(&r)?;
        // Refused (and nothing discarded) unless it is a request of this signal.
        let shape = match entry.tree.shape_of_replacement(&otlp) {
            Ok(s) => s,
            Err(e) => {
                let message = format!("replace-otlp: {e}");
                entry.invalid.get_or_insert_with(|| message.clone());
                return Ok(Err(message));
            }
        };
        entry.shape = shape;
        entry.changes = Changes {
            replace: Some(otlp),
            ..Changes::default()
        };
        Ok(Ok(()))
    }

    fn drop(&mut self, _r: Resource<BatchEntry>) -> wasmtime::Result<()> {
        // The host lends batches as borrows and takes them back itself.
        Ok(())
    }
}
