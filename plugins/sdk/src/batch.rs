//! The batch as plugin authors see it: bulk reads behind idiomatic iterators,
//! and edits that are queued locally and handed to the host in one go.
//!
//! ```ignore
//! for attr in batch.attributes(Level::Item).iter() {
//!     if attr.value().as_str().is_some_and(|v| v.contains('@')) {
//!         attr.mask("***");
//!     }
//! }
//! ```

use std::cell::RefCell;

use crate::access::BatchAccess;
use crate::matcher::Matcher;
use crate::types::{AttributeTable, Changes, Column, Edit, Field, Level, Signal, Value, ValueRef};

pub struct Batch<'a> {
    access: &'a dyn BatchAccess,
    changes: RefCell<Changes>,
}

impl<'a> Batch<'a> {
    pub fn new(access: &'a dyn BatchAccess) -> Self {
        Batch {
            access,
            changes: RefCell::new(Changes::default()),
        }
    }

    pub fn signal(&self) -> Signal {
        self.access.signal()
    }

    /// Number of items (spans, log records or metric data points).
    pub fn len(&self) -> usize {
        self.access.len() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of entities at a level.
    pub fn count(&self, level: Level) -> usize {
        self.access.count(level) as usize
    }

    /// For each entity at `level`, its parent's index (scope → resource,
    /// item → scope, event/link → item).
    pub fn owners(&self, level: Level) -> Vec<u32> {
        self.access.owners(level)
    }

    /// For each item, the index of its resource.
    pub fn item_resources(&self) -> Vec<u32> {
        let scope_of_item = self.owners(Level::Item);
        let resource_of_scope = self.owners(Level::Scope);
        scope_of_item
            .iter()
            .map(|&s| resource_of_scope.get(s as usize).copied().unwrap_or(0))
            .collect()
    }

    /// A plain field of every item.
    pub fn field(&self, field: Field) -> Column {
        self.access.read_field(field)
    }

    /// A plain field of every entity at `level`: event names, metric names,
    /// descriptions and units, exemplar ids and times, link ids...
    pub fn field_at(&self, level: Level, field: Field) -> Column {
        self.access.read_field_at(level, field)
    }

    /// Each entity's ancestor at level `of` (e.g. every item's resource), in
    /// one host call.
    pub fn ancestors(&self, level: Level, of: Level) -> Vec<u32> {
        self.access.ancestors(level, of)
    }

    /// One attribute of every entity at `level`, from the nearest entity up
    /// the tree that has it (item, then scope, then resource).
    pub fn attribute_inherited(&self, level: Level, key: &str) -> Column {
        self.access.read_attribute_inherited(level, key)
    }

    /// The entities at `level` whose field `m` selects, matched by the host.
    pub fn match_field(&self, level: Level, field: Field, m: &Matcher) -> Vec<u32> {
        self.access.match_field(level, field, m)
    }

    /// The entities at `level` whose attribute `key` (inherited from above
    /// when `inherited`) `m` selects, matched by the host.
    pub fn match_attribute(&self, level: Level, key: &str, m: &Matcher, inherited: bool) -> Vec<u32> {
        self.access.match_attribute(level, key, m, inherited)
    }

    /// One attribute of every entity at `level`.
    pub fn attribute(&self, level: Level, key: &str) -> Column {
        self.access.read_attribute(level, key)
    }

    /// Every attribute at `level`, to iterate and edit.
    pub fn attributes(&self, level: Level) -> Attributes<'_, 'a> {
        Attributes {
            batch: self,
            level,
            table: self.access.read_attributes(level),
        }
    }

    /// Span attributes (or log record / data point attributes).
    pub fn item_attributes(&self) -> Attributes<'_, 'a> {
        self.attributes(Level::Item)
    }

    pub fn resource_attributes(&self) -> Attributes<'_, 'a> {
        self.attributes(Level::Resource)
    }

    /// Sets an attribute (adding it if missing).
    pub fn set_attribute(&self, level: Level, entity: usize, key: &str, value: impl Into<Value>) {
        self.edit(Edit::Attribute {
            level,
            entity: entity as u32,
            key: key.into(),
            value: Some(value.into()),
        });
    }

    pub fn remove_attribute(&self, level: Level, entity: usize, key: &str) {
        self.edit(Edit::Attribute {
            level,
            entity: entity as u32,
            key: key.into(),
            value: None,
        });
    }

    /// Sets (`Some`) or removes (`None`) one attribute on many entities: one edit.
    pub fn set_attribute_many(&self, level: Level, entities: Vec<u32>, key: &str, value: Option<Value>) {
        if !entities.is_empty() {
            self.edit(Edit::AttributeMany {
                level,
                entities,
                key: key.into(),
                value,
            });
        }
    }

    /// Sets a plain field of any entity: a span event's name, a metric's
    /// name, description or unit, or an item's field.
    pub fn set_field_at(&self, level: Level, entity: usize, field: Field, value: impl Into<Value>) {
        self.edit(Edit::EntityField {
            level,
            entity: entity as u32,
            field,
            value: value.into(),
        });
    }

    /// Sets a plain field (name, body, severity text, status message...) of one item.
    pub fn set_field(&self, field: Field, item: usize, value: impl Into<Value>) {
        self.edit(Edit::Field {
            field,
            item: item as u32,
            value: value.into(),
        });
    }

    pub fn edit(&self, edit: Edit) {
        self.changes.borrow_mut().edits.push(edit);
    }

    /// Drops one item from the batch.
    pub fn drop_item(&self, item: usize) {
        self.changes.borrow_mut().drops.push(item as u32);
    }

    /// Gives items a route name (mapped to exporters by the pipeline config).
    pub fn route(&self, route: &str, items: Vec<u32>) {
        if !items.is_empty() {
            self.changes.borrow_mut().routes.push((route.into(), items));
        }
    }

    /// Escape hatch: the batch as an OTLP protobuf export request.
    pub fn to_otlp(&self) -> Vec<u8> {
        self.access.to_otlp()
    }

    /// Escape hatch: replaces the batch with an OTLP protobuf export request,
    /// discarding changes queued so far.
    pub fn replace_otlp(&self, otlp: Vec<u8>) {
        let mut c = self.changes.borrow_mut();
        *c = Changes::default();
        c.replace = Some(otlp);
    }

    /// The queued changes, for the glue that hands them to the host.
    pub fn into_changes(self) -> Changes {
        self.changes.into_inner()
    }
}

/// Every attribute at one level of a batch.
pub struct Attributes<'b, 'a> {
    batch: &'b Batch<'a>,
    level: Level,
    table: AttributeTable,
}

impl<'b, 'a> Attributes<'b, 'a> {
    /// Number of attribute entries.
    pub fn len(&self) -> usize {
        self.table.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn table(&self) -> &AttributeTable {
        &self.table
    }

    pub fn iter(&self) -> impl Iterator<Item = Attr<'_, 'b, 'a>> + '_ {
        let offsets = &self.table.entity_offsets;
        (0..offsets.len().saturating_sub(1)).flat_map(move |entity| {
            let (a, b) = (offsets[entity] as usize, offsets[entity + 1] as usize);
            (a..b).map(move |j| Attr {
                attrs: self,
                entity,
                index: j,
            })
        })
    }
}

/// One attribute of one entity, with ways to change it.
pub struct Attr<'t, 'b, 'a> {
    attrs: &'t Attributes<'b, 'a>,
    entity: usize,
    index: usize,
}

impl Attr<'_, '_, '_> {
    pub fn level(&self) -> Level {
        self.attrs.level
    }

    /// Index of the entity (resource, scope, item, event or link) it belongs to.
    pub fn entity(&self) -> usize {
        self.entity
    }

    pub fn key(&self) -> &str {
        self.attrs.table.keys.str(self.index)
    }

    pub fn value(&self) -> ValueRef<'_> {
        self.attrs.table.values.value(self.index)
    }

    /// Replaces the value.
    pub fn set(&self, value: impl Into<Value>) {
        self.attrs
            .batch
            .set_attribute(self.attrs.level, self.entity, self.key(), value);
    }

    /// Replaces the value with a fixed string.
    pub fn mask(&self, with: &str) {
        self.set(with);
    }

    pub fn remove(&self) {
        self.attrs
            .batch
            .remove_attribute(self.attrs.level, self.entity, self.key());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::tag;

    /// A two-span batch held in plain columns, standing in for a host.
    struct Fake;

    impl BatchAccess for Fake {
        fn signal(&self) -> Signal {
            Signal::Traces
        }
        fn len(&self) -> u32 {
            2
        }
        fn count(&self, level: Level) -> u32 {
            if level == Level::Item { 2 } else { 1 }
        }
        fn owners(&self, _: Level) -> Vec<u32> {
            vec![0, 0]
        }
        fn read_field(&self, _: Field) -> Column {
            let mut c = Column::default();
            c.push(b"a");
            c.push(b"b");
            c
        }
        fn read_attribute(&self, _: Level, _: &str) -> Column {
            Column::default()
        }
        fn read_attributes(&self, _: Level) -> AttributeTable {
            let mut keys = Column::default();
            let mut values = Column::default();
            keys.push(b"user.email");
            values.push(&[&[tag::STRING][..], b"a@b.c"].concat());
            keys.push(b"n");
            values.push(&[&[tag::INT][..], &7i64.to_le_bytes()].concat());
            AttributeTable {
                entity_offsets: vec![0, 1, 2],
                keys,
                values,
            }
        }
        fn to_otlp(&self) -> Vec<u8> {
            Vec::new()
        }
    }

    #[test]
    fn iterating_and_masking_queues_edits() {
        let batch = Batch::new(&Fake);
        for attr in batch.item_attributes().iter() {
            if attr.value().as_str().is_some_and(|v| v.contains('@')) {
                attr.mask("***");
            }
        }
        batch.drop_item(1);
        let changes = batch.into_changes();
        assert_eq!(
            changes.edits,
            vec![Edit::Attribute {
                level: Level::Item,
                entity: 0,
                key: "user.email".into(),
                value: Some(Value::Str("***".into())),
            }]
        );
        assert_eq!(changes.drops, vec![1]);
    }

    #[test]
    fn values_decode_by_tag() {
        let table = Fake.read_attributes(Level::Item);
        assert_eq!(table.values.value(0), ValueRef::Str("a@b.c"));
        assert_eq!(table.values.value(1), ValueRef::Int(7));
    }
}
