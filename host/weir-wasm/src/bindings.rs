//! Host bindings of the `weir:plugin` world: the `batch` resource is backed by
//! a [`BatchEntry`] in the store's resource table, and every method reads the
//! decoded batch or queues a change on it.

use wasmtime::component::{Resource, ResourceTable};
use weir_batch::HostBatch as Tree;
use weir_plugin_contract::{ChangeError, Shape, check_edit, check_items};
use weir_plugin_sdk::{BatchAccess, Changes, Edit, Field, Level, Value};

wasmtime::component::bindgen!({
    path: "../../wit/plugin.wit",
    world: "plugin",
    with: { "weir:plugin/types.batch": BatchEntry },
    imports: { default: trappable },
    exports: { default: async },
});

use weir::plugin::types as wit;

/// A batch lent to a plugin for one call, with the changes it queued.
pub struct BatchEntry {
    pub tree: Tree,
    pub changes: Changes,
    /// What queued changes apply to: the batch, or the replacement a
    /// `replace-otlp` queued. Taken on the first change queued: the shape of
    /// a batch in wire form needs its index, which a plugin that changes
    /// nothing must not cost.
    shape: Option<Shape>,
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
            shape: None,
            tree,
            changes: Changes::default(),
            invalid: None,
            refused: None,
        }
    }

    fn shape(&mut self) -> &Shape {
        self.shape.get_or_insert_with(|| self.tree.shape())
    }

    /// Checks every edit against what the queued changes apply to, then
    /// queues them all; on the first bad one queues none and says which.
    /// (Both contract versions; they differ only in what a refusal means.)
    pub fn queue_edits(&mut self, edits: Vec<Edit>) -> Result<(), (usize, ChangeError)> {
        let shape = self.shape();
        if let Some((i, err)) = edits
            .iter()
            .enumerate()
            .find_map(|(i, e)| check_edit(shape, e).err().map(|err| (i, err)))
        {
            return Err((i, err));
        }
        self.changes.edits.extend(edits);
        Ok(())
    }

    /// Queues dropping `items`, unless one does not exist.
    pub fn queue_drops(&mut self, items: Vec<u32>) -> Result<(), String> {
        check_items(self.shape(), "drop-items", &items).map_err(|e| e.0)?;
        self.changes.drops.extend(items);
        Ok(())
    }

    /// Queues routing `items`, unless one does not exist.
    pub fn queue_route(&mut self, route: String, items: Vec<u32>) -> Result<(), String> {
        check_items(self.shape(), "route-items", &items).map_err(|e| e.0)?;
        self.changes.routes.push((route, items));
        Ok(())
    }

    /// Queues replacing the batch, discarding the changes queued before;
    /// refused (and nothing discarded) unless `otlp` is a request of this signal.
    pub fn queue_replace(&mut self, otlp: Vec<u8>) -> Result<(), String> {
        self.shape = Some(
            self.tree
                .shape_of_replacement(&otlp)
                .map_err(|e| format!("replace-otlp: {e}"))?,
        );
        self.changes = Changes {
            replace: Some(otlp),
            ..Changes::default()
        };
        Ok(())
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
        // As the WIT promises: one bad edit refuses the call, and nothing of it
        // is queued; in 0.1.0 the call then counts as invalid whatever the plugin does.
        match entry.queue_edits(edits) {
            Ok(()) => Ok(Ok(())),
            Err((i, err)) => {
                let message = format!("edit {i}: {err}");
                entry.invalid.get_or_insert_with(|| message.clone());
                Ok(Err(message))
            }
        }
    }

    fn drop_items(&mut self, r: Resource<BatchEntry>, items: Vec<u32>) -> wasmtime::Result<()> {
        // 0.1.0 cannot answer an error here: the call counts as invalid instead.
        let entry = self.entry_mut(&r)?;
        if let Err(e) = entry.queue_drops(items) {
            entry.invalid.get_or_insert(e);
        }
        Ok(())
    }

    fn route_items(
        &mut self,
        r: Resource<BatchEntry>,
        route: String,
        items: Vec<u32>,
    ) -> wasmtime::Result<()> {
        let entry = self.entry_mut(&r)?;
        if let Err(e) = entry.queue_route(route, items) {
            entry.invalid.get_or_insert(e);
        }
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
        match entry.queue_replace(otlp) {
            Ok(()) => Ok(Ok(())),
            Err(message) => {
                entry.invalid.get_or_insert_with(|| message.clone());
                Ok(Err(message))
            }
        }
    }

    fn drop(&mut self, _r: Resource<BatchEntry>) -> wasmtime::Result<()> {
        // The host lends batches as borrows and takes them back itself.
        Ok(())
    }
}
