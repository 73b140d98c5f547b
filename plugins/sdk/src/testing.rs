//! An in-memory batch for unit-testing plugins natively, without a host.
//!
//! Build a batch with the small builder API, run a plugin over it, then assert
//! on the result. Columns, attribute tables and owners are encoded exactly as
//! wit/plugin.wit describes, and changes are checked and applied the way weir
//! applies them (all or nothing; only settable fields; last route wins).
//!
//! ```ignore
//! use weir_plugin_sdk::testing::MemoryBatch;
//! use weir_plugin_sdk::{Level, Value};
//!
//! let mut batch = MemoryBatch::traces();
//! batch.resource().attr("service.name", "checkout");
//! batch.scope();
//! batch.span("GET /users").trace(0x42).kind(2).attr("user.email", "a@example.com");
//! batch.event().attr("exception.message", "boom");
//!
//! let mut plugin = MyPlugin::init("{}").unwrap();
//! batch.process(&mut plugin).unwrap();
//! assert_eq!(batch.attr(Level::Item, 0, "user.email"), Some(&Value::from("***")));
//! ```
//!
//! Unlike the host, applying changes keeps every index stable: dropped items stay
//! in the batch (and in its columns) and are only flagged, so tests can keep
//! using the indices they built with. [`MemoryBatch::kept`] lists the survivors.

use crate::access::{BatchAccess, ancestors_by_owners};
use crate::types::{AttributeTable, Changes, Column, Edit, Field, Level, Signal, Value, ValueRef};
use crate::validate::{Shape, check_changes};
use crate::{Batch, Plugin, PluginError};

/// A resource, scope, span event, span link, metric or exemplar: its parent
/// and attributes (and the name a span event or a metric has).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    /// Index of the parent entity (0 for resources).
    pub owner: u32,
    pub attributes: Vec<(String, Value)>,
    /// A span event's or a metric's name.
    pub name: String,
    /// A metric's description and unit.
    pub description: String,
    pub unit: String,
}

/// One span, log record or metric data point, with every plain field of every
/// signal (the batch's signal decides which ones are visible).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Item {
    /// Index of the scope it belongs to.
    pub owner: u32,
    pub attributes: Vec<(String, Value)>,
    /// Span name, or the data point's metric name.
    pub name: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    pub kind: i32,
    pub status_code: i32,
    pub status_message: String,
    pub start_time: u64,
    pub end_time: u64,
    pub trace_state: String,
    pub flags: u32,
    /// Log body (`None` = absent).
    pub body: Option<Value>,
    pub severity_text: String,
    pub severity_number: i32,
    pub time: u64,
    pub observed_time: u64,
    pub event_name: String,
    pub unit: String,
    /// The data point's metric description.
    pub description: String,
    /// The data point's metric entity, when the batch has metric entities.
    pub metric: Option<u32>,
    /// Set when a plugin dropped the item.
    pub dropped: bool,
    /// The last route a plugin gave the item (`None` = default route).
    pub route: Option<String>,
}

/// A batch held in memory, implementing [`BatchAccess`] like a host would.
#[derive(Debug, Clone)]
pub struct MemoryBatch {
    signal: Signal,
    resources: Vec<Node>,
    scopes: Vec<Node>,
    items: Vec<Item>,
    events: Vec<Node>,
    links: Vec<Node>,
    metrics: Vec<Node>,
    exemplars: Vec<Node>,
    replaced: Option<Vec<u8>>,
}

/// Adds attributes to a resource, scope, event or link just built.
pub struct NodeBuilder<'a> {
    node: &'a mut Node,
}

impl NodeBuilder<'_> {
    /// Adds an attribute (`&str`/`String` become strings; pass a [`Value`] for others).
    pub fn attr(self, key: &str, value: impl Into<Value>) -> Self {
        self.node.attributes.push((key.to_string(), value.into()));
        self
    }

    /// A span event's or a metric's name.
    pub fn name(self, name: &str) -> Self {
        self.node.name = name.to_string();
        self
    }

    /// A metric's description.
    pub fn description(self, description: &str) -> Self {
        self.node.description = description.to_string();
        self
    }
}

/// Sets the fields of an item just built.
pub struct ItemBuilder<'a> {
    item: &'a mut Item,
}

impl ItemBuilder<'_> {
    /// Adds an attribute (`&str`/`String` become strings; pass a [`Value`] for others).
    pub fn attr(self, key: &str, value: impl Into<Value>) -> Self {
        self.item.attributes.push((key.to_string(), value.into()));
        self
    }

    pub fn name(self, name: &str) -> Self {
        self.item.name = name.to_string();
        self
    }

    /// Raw trace id bytes (16 bytes, or empty for none).
    pub fn trace_id(self, id: &[u8]) -> Self {
        self.item.trace_id = id.to_vec();
        self
    }

    /// Trace id from a number, big-endian (so `0x42` is `000…0042` in hex).
    pub fn trace(self, id: u128) -> Self {
        self.item.trace_id = id.to_be_bytes().to_vec();
        self
    }

    /// Raw span id bytes (8 bytes, or empty for none).
    pub fn span_id(self, id: &[u8]) -> Self {
        self.item.span_id = id.to_vec();
        self
    }

    pub fn parent_span_id(self, id: &[u8]) -> Self {
        self.item.parent_span_id = id.to_vec();
        self
    }

    /// Span kind as OTLP numbers it: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub fn kind(self, kind: i32) -> Self {
        self.item.kind = kind;
        self
    }

    /// Status code: 0 unset, 1 ok, 2 error.
    pub fn status(self, code: i32) -> Self {
        self.item.status_code = code;
        self
    }

    pub fn status_message(self, message: &str) -> Self {
        self.item.status_message = message.to_string();
        self
    }

    pub fn times(self, start: u64, end: u64) -> Self {
        self.item.start_time = start;
        self.item.end_time = end;
        self
    }

    pub fn trace_state(self, state: &str) -> Self {
        self.item.trace_state = state.to_string();
        self
    }

    pub fn flags(self, flags: u32) -> Self {
        self.item.flags = flags;
        self
    }

    pub fn body(self, body: impl Into<Value>) -> Self {
        self.item.body = Some(body.into());
        self
    }

    /// Removes the body (it reads as tag 0, absent).
    pub fn no_body(self) -> Self {
        self.item.body = None;
        self
    }

    /// Severity number (9 INFO, 13 WARN, 17 ERROR, 21 FATAL) and text.
    pub fn severity(self, number: i32, text: &str) -> Self {
        self.item.severity_number = number;
        self.item.severity_text = text.to_string();
        self
    }

    pub fn time(self, time: u64) -> Self {
        self.item.time = time;
        self
    }

    pub fn observed_time(self, time: u64) -> Self {
        self.item.observed_time = time;
        self
    }

    pub fn event_name(self, name: &str) -> Self {
        self.item.event_name = name.to_string();
        self
    }

    pub fn unit(self, unit: &str) -> Self {
        self.item.unit = unit.to_string();
        self
    }
}

fn push<T>(v: &mut Vec<T>, x: T) -> &mut T {
    v.push(x);
    let last = v.len() - 1;
    &mut v[last]
}

fn value_ref(v: &Value) -> ValueRef<'_> {
    match v {
        Value::Str(s) => ValueRef::Str(s),
        Value::Int(i) => ValueRef::Int(*i),
        Value::Double(d) => ValueRef::Double(*d),
        Value::Bool(b) => ValueRef::Bool(*b),
        Value::Bytes(b) => ValueRef::Bytes(b),
        Value::Json(s) => ValueRef::Json(s),
    }
}

fn encode(v: Option<&Value>, out: &mut Vec<u8>) {
    match v {
        Some(v) => value_ref(v).encode_into(out),
        None => ValueRef::Absent.encode_into(out),
    }
}

fn to_i32(v: &Value, what: &str) -> Result<i32, String> {
    match v {
        Value::Int(i) => i32::try_from(*i).map_err(|_| format!("{what} out of range")),
        _ => Err(format!("{what} must be an int")),
    }
}

fn to_string(v: &Value, what: &str) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(format!("{what} must be a string")),
    }
}

impl MemoryBatch {
    pub fn new(signal: Signal) -> Self {
        MemoryBatch {
            signal,
            resources: Vec::new(),
            scopes: Vec::new(),
            items: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            metrics: Vec::new(),
            exemplars: Vec::new(),
            replaced: None,
        }
    }

    pub fn traces() -> Self {
        Self::new(Signal::Traces)
    }

    pub fn logs() -> Self {
        Self::new(Signal::Logs)
    }

    pub fn metrics() -> Self {
        Self::new(Signal::Metrics)
    }

    /// Starts a new resource; scopes built next belong to it.
    pub fn resource(&mut self) -> NodeBuilder<'_> {
        let node = push(&mut self.resources, Node::default());
        NodeBuilder { node }
    }

    /// Starts a new scope in the last resource (adding a resource if there is none).
    pub fn scope(&mut self) -> NodeBuilder<'_> {
        if self.resources.is_empty() {
            self.resources.push(Node::default());
        }
        let owner = (self.resources.len() - 1) as u32;
        let node = push(
            &mut self.scopes,
            Node {
                owner,
                ..Node::default()
            },
        );
        NodeBuilder { node }
    }

    /// Adds an item to the last scope, first adding a scope if the last
    /// resource has none yet (and a resource if there is none).
    pub fn item(&mut self) -> ItemBuilder<'_> {
        let last_resource = self.resources.len().checked_sub(1);
        if self.scopes.last().map(|s| s.owner as usize) != last_resource || last_resource.is_none() {
            self.scope();
        }
        let owner = (self.scopes.len() - 1) as u32;
        let item = push(
            &mut self.items,
            Item {
                owner,
                ..Item::default()
            },
        );
        ItemBuilder { item }
    }

    /// Adds a span with this name.
    pub fn span(&mut self, name: &str) -> ItemBuilder<'_> {
        self.item().name(name)
    }

    /// Adds a log record with this body.
    pub fn log(&mut self, body: impl Into<Value>) -> ItemBuilder<'_> {
        self.item().body(body)
    }

    /// Adds a data point of the metric with this name.
    /// Adds a data point of `metric`: of the last metric added with
    /// [`MemoryBatch::metric`] if it has that name, else of no metric entity.
    pub fn point(&mut self, metric: &str) -> ItemBuilder<'_> {
        let of = self
            .metrics
            .iter()
            .rposition(|m| m.name == metric)
            .map(|m| m as u32);
        let b = self.item().name(metric);
        b.item.metric = of;
        b
    }

    /// Adds a span event to the last item.
    pub fn event(&mut self) -> NodeBuilder<'_> {
        let owner = self.items.len().saturating_sub(1) as u32;
        let node = push(
            &mut self.events,
            Node {
                owner,
                ..Node::default()
            },
        );
        NodeBuilder { node }
    }

    /// Adds a metric to the last scope (its data points are items, added
    /// with [`MemoryBatch::point`]).
    pub fn metric(&mut self, name: &str) -> NodeBuilder<'_> {
        let owner = self.scopes.len().saturating_sub(1) as u32;
        let node = push(
            &mut self.metrics,
            Node {
                owner,
                name: name.to_string(),
                ..Node::default()
            },
        );
        NodeBuilder { node }
    }

    /// Adds an exemplar to the last item (a data point).
    pub fn exemplar(&mut self) -> NodeBuilder<'_> {
        let owner = self.items.len().saturating_sub(1) as u32;
        let node = push(
            &mut self.exemplars,
            Node {
                owner,
                ..Node::default()
            },
        );
        NodeBuilder { node }
    }

    /// Adds a span link to the last item.
    pub fn link(&mut self) -> NodeBuilder<'_> {
        let owner = self.items.len().saturating_sub(1) as u32;
        let node = push(
            &mut self.links,
            Node {
                owner,
                ..Node::default()
            },
        );
        NodeBuilder { node }
    }

    /// Runs a plugin over the batch as weir would (dispatching on the signal),
    /// applies the changes it queued, and returns them.
    pub fn process<P: Plugin>(&mut self, plugin: &mut P) -> Result<Changes, PluginError> {
        let changes = {
            let view = Batch::new(self);
            plugin.process(&view)?;
            view.into_changes()
        };
        self.apply(&changes)
            .map_err(|e| PluginError::new(format!("invalid change from plugin: {e}")))?;
        Ok(changes)
    }

    /// Checks and applies changes: all of them, or (if any is invalid) none,
    /// by the same rules as the host ([`crate::validate`]). Edits apply in
    /// order; drops only flag items; the last route given wins.
    pub fn apply(&mut self, changes: &Changes) -> Result<(), String> {
        check_changes(&self.shape(), changes).map_err(|e| e.0)?;
        if let Some(otlp) = &changes.replace {
            // No OTLP decoder here: remember the bytes so a test can look at them.
            self.replaced = Some(otlp.clone());
        }
        for edit in &changes.edits {
            self.apply_edit(edit)?;
        }
        for (route, items) in &changes.routes {
            for &i in items {
                self.items[i as usize].route = Some(route.clone());
            }
        }
        for &i in &changes.drops {
            self.items[i as usize].dropped = true;
        }
        Ok(())
    }

    /// The batch's signal and entity counts, for the checks.
    pub fn shape(&self) -> Shape {
        Shape {
            signal: self.signal,
            counts: Level::ALL.map(|l| self.count(l)),
        }
    }

    fn apply_edit(&mut self, edit: &Edit) -> Result<(), String> {
        match edit {
            Edit::Attribute {
                level,
                entity,
                key,
                value,
            } => self.set_attr(*level, *entity as usize, key, value.as_ref()),
            Edit::AttributeMany {
                level,
                entities,
                key,
                value,
            } => {
                for &e in entities {
                    self.set_attr(*level, e as usize, key, value.as_ref());
                }
            }
            Edit::Field { field, item, value } => self.set_item_field(*item as usize, *field, value)?,
            Edit::EntityField {
                level: Level::Item,
                entity,
                field,
                value,
            } => self.set_item_field(*entity as usize, *field, value)?,
            Edit::EntityField {
                level,
                entity,
                field,
                value,
            } => {
                let text = to_string(value, &format!("{field:?}"))?;
                let node = match level {
                    Level::Event => &mut self.events[*entity as usize],
                    Level::Metric => &mut self.metrics[*entity as usize],
                    _ => return Err(format!("field {field:?} cannot be set on {level:?}")),
                };
                match field {
                    Field::Name => node.name = text,
                    Field::Description => node.description = text,
                    Field::Unit => node.unit = text,
                    _ => return Err(format!("field {field:?} cannot be set on {level:?}")),
                }
            }
        }
        Ok(())
    }

    fn set_attr(&mut self, level: Level, entity: usize, key: &str, value: Option<&Value>) {
        let attrs = self.attrs_mut(level, entity);
        match value {
            Some(v) => match attrs.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = v.clone(),
                None => attrs.push((key.to_string(), v.clone())),
            },
            None => attrs.retain(|(k, _)| k != key),
        }
    }

    fn set_item_field(&mut self, item: usize, field: Field, value: &Value) -> Result<(), String> {
        let it = &mut self.items[item];
        let what = format!("{field:?}");
        match field {
            Field::Name => it.name = to_string(value, &what)?,
            Field::Kind => it.kind = to_i32(value, &what)?,
            Field::StatusCode => it.status_code = to_i32(value, &what)?,
            Field::StatusMessage => it.status_message = to_string(value, &what)?,
            Field::TraceState => it.trace_state = to_string(value, &what)?,
            Field::Body => it.body = Some(value.clone()),
            Field::SeverityText => it.severity_text = to_string(value, &what)?,
            Field::SeverityNumber => it.severity_number = to_i32(value, &what)?,
            Field::EventName => it.event_name = to_string(value, &what)?,
            Field::Unit => it.unit = to_string(value, &what)?,
            Field::Description => it.description = to_string(value, &what)?,
            _ => return Err(format!("field {field:?} cannot be set")),
        }
        Ok(())
    }

    fn nodes(&self, level: Level) -> &[Node] {
        match level {
            Level::Resource => &self.resources,
            Level::Scope => &self.scopes,
            Level::Event => &self.events,
            Level::Link => &self.links,
            Level::Metric => &self.metrics,
            Level::Exemplar => &self.exemplars,
            Level::Item => &[],
        }
    }

    fn attrs_mut(&mut self, level: Level, entity: usize) -> &mut Vec<(String, Value)> {
        match level {
            Level::Resource => &mut self.resources[entity].attributes,
            Level::Scope => &mut self.scopes[entity].attributes,
            Level::Item => &mut self.items[entity].attributes,
            Level::Event => &mut self.events[entity].attributes,
            Level::Link => &mut self.links[entity].attributes,
            Level::Metric => &mut self.metrics[entity].attributes,
            Level::Exemplar => &mut self.exemplars[entity].attributes,
        }
    }

    /// Every attribute of one entity (empty if it does not exist).
    pub fn attrs(&self, level: Level, entity: usize) -> &[(String, Value)] {
        match level {
            Level::Item => self.items.get(entity).map_or(&[], |i| &i.attributes),
            _ => self.nodes(level).get(entity).map_or(&[], |n| &n.attributes),
        }
    }

    /// One attribute of one entity.
    pub fn attr(&self, level: Level, entity: usize, key: &str) -> Option<&Value> {
        self.attrs(level, entity)
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// One attribute of one entity as text, if it is a string.
    pub fn attr_str(&self, level: Level, entity: usize, key: &str) -> Option<&str> {
        match self.attr(level, entity, key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// Item `i` (panics if out of range, as a test should).
    pub fn item_at(&self, i: usize) -> &Item {
        &self.items[i]
    }

    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Indices of items not dropped.
    pub fn kept(&self) -> Vec<usize> {
        (0..self.items.len())
            .filter(|&i| !self.items[i].dropped)
            .collect()
    }

    /// Indices of dropped items.
    pub fn dropped(&self) -> Vec<usize> {
        (0..self.items.len()).filter(|&i| self.items[i].dropped).collect()
    }

    /// The route of item `i` (`None` = default).
    pub fn route_of(&self, i: usize) -> Option<&str> {
        self.items.get(i).and_then(|it| it.route.as_deref())
    }

    /// The OTLP bytes a plugin replaced the batch with, if it did.
    pub fn replaced(&self) -> Option<&[u8]> {
        self.replaced.as_deref()
    }

    fn has_field(&self, field: Field) -> bool {
        match self.signal {
            Signal::Traces => matches!(
                field,
                Field::Name
                    | Field::TraceId
                    | Field::SpanId
                    | Field::ParentSpanId
                    | Field::Kind
                    | Field::StatusCode
                    | Field::StatusMessage
                    | Field::StartTime
                    | Field::EndTime
                    | Field::TraceState
                    | Field::Flags
            ),
            Signal::Logs => matches!(
                field,
                Field::Body
                    | Field::SeverityText
                    | Field::SeverityNumber
                    | Field::TraceId
                    | Field::SpanId
                    | Field::Time
                    | Field::ObservedTime
                    | Field::EventName
                    | Field::Flags
            ),
            Signal::Metrics => matches!(
                field,
                Field::Name | Field::Unit | Field::Description | Field::Time
            ),
        }
    }
}

impl BatchAccess for MemoryBatch {
    fn signal(&self) -> Signal {
        self.signal
    }

    fn ancestors(&self, level: Level, of: Level) -> Vec<u32> {
        match (level, of) {
            (Level::Item, Level::Metric) => self.items.iter().map(|i| i.metric.unwrap_or(0)).collect(),
            (Level::Exemplar, Level::Metric) => self
                .exemplars
                .iter()
                .map(|x| {
                    self.items
                        .get(x.owner as usize)
                        .and_then(|i| i.metric)
                        .unwrap_or(0)
                })
                .collect(),
            _ => ancestors_by_owners(self, level, of),
        }
    }

    fn read_field_at(&self, level: Level, field: Field) -> Column {
        if level == Level::Item {
            return self.read_field(field);
        }
        let nodes = self.nodes(level);
        let mut col = Column::with_capacity(nodes.len(), nodes.len() * 16);
        for n in nodes {
            let text = match (level, field) {
                (Level::Event | Level::Metric, Field::Name) => n.name.as_str(),
                (Level::Metric, Field::Description) => n.description.as_str(),
                (Level::Metric, Field::Unit) => n.unit.as_str(),
                _ => "",
            };
            col.push(text.as_bytes());
        }
        col
    }

    fn len(&self) -> u32 {
        self.items.len() as u32
    }

    fn count(&self, level: Level) -> u32 {
        match level {
            Level::Item => self.items.len() as u32,
            _ => self.nodes(level).len() as u32,
        }
    }

    fn owners(&self, level: Level) -> Vec<u32> {
        match level {
            Level::Resource => Vec::new(),
            Level::Item => self.items.iter().map(|i| i.owner).collect(),
            _ => self.nodes(level).iter().map(|n| n.owner).collect(),
        }
    }

    fn read_field(&self, field: Field) -> Column {
        let mut col = Column::with_capacity(self.items.len(), self.items.len() * 16);
        let present = self.has_field(field);
        for it in &self.items {
            if present {
                let out = &mut col.data;
                match field {
                    Field::Name => out.extend_from_slice(it.name.as_bytes()),
                    Field::TraceId => out.extend_from_slice(&it.trace_id),
                    Field::SpanId => out.extend_from_slice(&it.span_id),
                    Field::ParentSpanId => out.extend_from_slice(&it.parent_span_id),
                    Field::Kind => out.extend_from_slice(&it.kind.to_le_bytes()),
                    Field::StatusCode => out.extend_from_slice(&it.status_code.to_le_bytes()),
                    Field::StatusMessage => out.extend_from_slice(it.status_message.as_bytes()),
                    Field::StartTime => out.extend_from_slice(&it.start_time.to_le_bytes()),
                    Field::EndTime => out.extend_from_slice(&it.end_time.to_le_bytes()),
                    Field::TraceState => out.extend_from_slice(it.trace_state.as_bytes()),
                    Field::Flags => out.extend_from_slice(&it.flags.to_le_bytes()),
                    Field::Body => encode(it.body.as_ref(), out),
                    Field::SeverityText => out.extend_from_slice(it.severity_text.as_bytes()),
                    Field::SeverityNumber => out.extend_from_slice(&it.severity_number.to_le_bytes()),
                    Field::Time => out.extend_from_slice(&it.time.to_le_bytes()),
                    Field::ObservedTime => out.extend_from_slice(&it.observed_time.to_le_bytes()),
                    Field::EventName => out.extend_from_slice(it.event_name.as_bytes()),
                    Field::Unit => out.extend_from_slice(it.unit.as_bytes()),
                    Field::Description => out.extend_from_slice(it.description.as_bytes()),
                }
            }
            col.end_entry();
        }
        col
    }

    fn read_attribute(&self, level: Level, key: &str) -> Column {
        let count = self.count(level) as usize;
        let mut col = Column::with_capacity(count, count * 16);
        for e in 0..count {
            let v = self
                .attrs(level, e)
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v);
            encode(v, &mut col.data);
            col.end_entry();
        }
        col
    }

    fn read_attributes(&self, level: Level) -> AttributeTable {
        let count = self.count(level) as usize;
        let mut entity_offsets = Vec::with_capacity(count + 1);
        entity_offsets.push(0u32);
        let mut keys = Column::with_capacity(count * 4, count * 64);
        let mut values = Column::with_capacity(count * 4, count * 64);
        for e in 0..count {
            for (k, v) in self.attrs(level, e) {
                keys.push(k.as_bytes());
                encode(Some(v), &mut values.data);
                values.end_entry();
            }
            entity_offsets.push(keys.len() as u32);
        }
        AttributeTable {
            entity_offsets,
            keys,
            values,
        }
    }

    fn to_otlp(&self) -> Vec<u8> {
        // No OTLP encoder in the SDK; plugins using the escape hatch need the host.
        Vec::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::types::tag;

    fn sample() -> MemoryBatch {
        let mut b = MemoryBatch::traces();
        b.resource().attr("service.name", "a");
        b.scope().attr("lib", "x");
        b.span("s0")
            .trace(1)
            .kind(2)
            .attr("k", "v")
            .attr("n", Value::Int(7));
        b.event().attr("e", "0");
        b.span("s1").status(2);
        b.link().attr("l", "1");
        b.link();
        b.resource().attr("service.name", "b");
        b.scope();
        b.span("s2");
        b
    }

    #[test]
    fn counts_and_owners_follow_the_tree() {
        let b = sample();
        assert_eq!(b.len(), 3);
        assert_eq!(b.count(Level::Resource), 2);
        assert_eq!(b.count(Level::Scope), 2);
        assert_eq!(b.count(Level::Event), 1);
        assert_eq!(b.count(Level::Link), 2);
        assert_eq!(b.owners(Level::Resource), Vec::<u32>::new());
        assert_eq!(b.owners(Level::Scope), vec![0, 1]);
        assert_eq!(b.owners(Level::Item), vec![0, 0, 1]);
        assert_eq!(b.owners(Level::Event), vec![0]);
        assert_eq!(b.owners(Level::Link), vec![1, 1]);
        assert_eq!(Batch::new(&b).item_resources(), vec![0, 0, 1]);
        // An item after a new resource gets a new scope in that resource.
        let mut b = MemoryBatch::logs();
        b.log("a");
        b.resource();
        b.log("b");
        assert_eq!(b.owners(Level::Scope), vec![0, 1]);
        assert_eq!(b.owners(Level::Item), vec![0, 1]);
    }

    #[test]
    fn fields_are_encoded_per_the_contract() {
        let b = sample();
        let names = b.read_field(Field::Name);
        assert_eq!((names.str(0), names.str(2)), ("s0", "s2"));
        let ids = b.read_field(Field::TraceId);
        assert_eq!(ids.get(0).len(), 16);
        assert_eq!(ids.get(0)[15], 1);
        assert!(ids.get(1).is_empty());
        assert_eq!(b.read_field(Field::Kind).u32(0), 2);
        assert_eq!(b.read_field(Field::StatusCode).u32(1), 2);
        assert_eq!(b.read_field(Field::StartTime).get(0).len(), 8);
        // A field the signal lacks: a column of empty values.
        let body = b.read_field(Field::Body);
        assert_eq!(body.len(), 3);
        assert!(body.get(0).is_empty());
    }

    #[test]
    fn attributes_are_tagged_and_grouped_by_entity() {
        let b = sample();
        let t = b.read_attributes(Level::Item);
        assert_eq!(t.entity_offsets, vec![0, 2, 2, 2]);
        assert_eq!(t.keys.str(1), "n");
        assert_eq!(t.values.get(0), &[tag::STRING, b'v'][..]);
        assert_eq!(t.values.value(1), ValueRef::Int(7));
        let c = b.read_attribute(Level::Resource, "service.name");
        assert_eq!(c.value(1), ValueRef::Str("b"));
        let missing = b.read_attribute(Level::Item, "k");
        assert_eq!(missing.get(1), &[tag::ABSENT][..]);
    }

    #[test]
    fn logs_bodies_are_tagged() {
        let mut b = MemoryBatch::logs();
        b.log("hello").severity(17, "ERROR");
        b.log(Value::Json("{\"a\":1}".into()));
        b.item();
        let body = b.read_field(Field::Body);
        assert_eq!(body.value(0), ValueRef::Str("hello"));
        assert_eq!(body.value(1), ValueRef::Json("{\"a\":1}"));
        assert_eq!(body.get(2), &[tag::ABSENT][..]);
        assert_eq!(b.read_field(Field::SeverityNumber).u32(0), 17);
        assert!(b.read_field(Field::Name).get(0).is_empty());
    }

    #[test]
    fn changes_apply_all_or_nothing() {
        let mut b = sample();
        let changes = Changes {
            edits: vec![
                Edit::Attribute {
                    level: Level::Item,
                    entity: 0,
                    key: "k".into(),
                    value: Some("w".into()),
                },
                Edit::Attribute {
                    level: Level::Item,
                    entity: 0,
                    key: "n".into(),
                    value: None,
                },
                Edit::Attribute {
                    level: Level::Resource,
                    entity: 1,
                    key: "new".into(),
                    value: Some(Value::Bool(true)),
                },
                Edit::Field {
                    field: Field::Name,
                    item: 1,
                    value: "renamed".into(),
                },
            ],
            drops: vec![2],
            routes: vec![("a".into(), vec![0, 1]), ("b".into(), vec![1])],
            replace: None,
        };
        b.apply(&changes).unwrap();
        assert_eq!(b.attr_str(Level::Item, 0, "k"), Some("w"));
        assert_eq!(b.attr(Level::Item, 0, "n"), None);
        assert_eq!(b.attr(Level::Resource, 1, "new"), Some(&Value::Bool(true)));
        assert_eq!(b.item_at(1).name, "renamed");
        assert_eq!(b.kept(), vec![0, 1]);
        assert_eq!(b.dropped(), vec![2]);
        assert_eq!(
            (b.route_of(0), b.route_of(1), b.route_of(2)),
            (Some("a"), Some("b"), None)
        );

        let before = b.clone().items().to_vec();
        let bad = Changes {
            edits: vec![
                Edit::Attribute {
                    level: Level::Item,
                    entity: 0,
                    key: "k".into(),
                    value: Some("x".into()),
                },
                Edit::Field {
                    field: Field::Body,
                    item: 0,
                    value: "no bodies on spans".into(),
                },
            ],
            ..Changes::default()
        };
        assert!(b.apply(&bad).unwrap_err().contains("Body"));
        assert_eq!(b.items(), &before[..]);
        let out_of_range = Changes {
            drops: vec![9],
            ..Changes::default()
        };
        assert!(b.apply(&out_of_range).is_err());
        let bad_json = Changes {
            edits: vec![Edit::Attribute {
                level: Level::Item,
                entity: 0,
                key: "j".into(),
                value: Some(Value::Json("{nope".into())),
            }],
            ..Changes::default()
        };
        assert!(b.apply(&bad_json).is_err());
    }

    struct Tagger;
    impl Plugin for Tagger {
        fn init(_: &str) -> Result<Self, String> {
            Ok(Tagger)
        }
        fn process_traces(&mut self, batch: &Batch) -> Result<(), PluginError> {
            for a in batch.item_attributes().iter() {
                if a.key() == "k" {
                    a.mask("***");
                }
            }
            batch.route("r", vec![2]);
            Ok(())
        }
    }

    #[test]
    fn process_runs_a_plugin_and_applies_its_changes() {
        let mut b = sample();
        let mut p = Tagger::init("{}").unwrap();
        let changes = b.process(&mut p).unwrap();
        assert_eq!(changes.edits.len(), 1);
        assert_eq!(b.attr_str(Level::Item, 0, "k"), Some("***"));
        assert_eq!(b.route_of(2), Some("r"));
        // Logs go to process_logs, which Tagger does not implement.
        let mut logs = MemoryBatch::logs();
        logs.log("x").attr("k", "v");
        assert!(logs.process(&mut p).unwrap().is_empty());
    }
}
