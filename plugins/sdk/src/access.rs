//! The read side of a batch, as the host provides it. Under Wasm each call is
//! one call across the component boundary; natively it is a direct call.
//!
//! The methods weir:plugin@0.2.0 added have default implementations on top of
//! the 0.1.0 ones, with the contract's own matching rules, so an in-memory
//! batch gets them for free; the Wasm glue and the host call the host's.

use crate::matcher::{Matcher, select_field, select_values};
use crate::types::{AttributeTable, Column, Field, Level, Signal};

pub trait BatchAccess {
    fn signal(&self) -> Signal;
    fn len(&self) -> u32;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn count(&self, level: Level) -> u32;
    fn owners(&self, level: Level) -> Vec<u32>;
    fn read_field(&self, field: Field) -> Column;
    fn read_attribute(&self, level: Level, key: &str) -> Column;
    fn read_attributes(&self, level: Level) -> AttributeTable;
    fn to_otlp(&self) -> Vec<u8>;

    /// Each entity's ancestor at level `of` (empty unless `of` is above `level`).
    fn ancestors(&self, level: Level, of: Level) -> Vec<u32> {
        ancestors_by_owners(self, level, of)
    }

    /// A plain field of every entity at `level`.
    fn read_field_at(&self, level: Level, field: Field) -> Column {
        if level == Level::Item {
            return self.read_field(field);
        }
        let mut c = Column::with_capacity(self.count(level) as usize, 0);
        for _ in 0..self.count(level) {
            c.end_entry();
        }
        c
    }

    /// One attribute of every entity at `level`, from the nearest entity up
    /// the tree that has it.
    fn read_attribute_inherited(&self, level: Level, key: &str) -> Column {
        let own = self.read_attribute(level, key);
        let mut above = Vec::new();
        let mut current = level;
        while let Some(parent) = current.parent() {
            above.push((self.ancestors(level, parent), self.read_attribute(parent, key)));
            current = parent;
        }
        let mut out = Column::with_capacity(own.len(), own.data.len());
        for e in 0..own.len() {
            let from_above = || {
                above.iter().find_map(|(anc, col)| {
                    let a = *anc.get(e)? as usize;
                    (!col.value(a).is_absent()).then(|| col.get(a))
                })
            };
            let entry = if own.value(e).is_absent() {
                from_above().unwrap_or(&[0])
            } else {
                own.get(e)
            };
            out.push(entry);
        }
        out
    }

    /// The entities at `level` whose field `m` selects.
    fn match_field(&self, level: Level, field: Field, m: &Matcher) -> Vec<u32> {
        select_field(&self.read_field_at(level, field), field, m)
    }

    /// The entities at `level` whose attribute `key` (inherited from above
    /// when `inherited`) `m` selects.
    fn match_attribute(&self, level: Level, key: &str, m: &Matcher, inherited: bool) -> Vec<u32> {
        let col = if inherited {
            self.read_attribute_inherited(level, key)
        } else {
            self.read_attribute(level, key)
        };
        select_values(&col, m)
    }
}

/// `ancestors` by walking `owners` up the tree (a data point's metric is not
/// on that path: hosts answer it themselves).
pub fn ancestors_by_owners<A: BatchAccess + ?Sized>(access: &A, level: Level, of: Level) -> Vec<u32> {
    let mut current = level;
    let mut up: Option<Vec<u32>> = None;
    while let Some(parent) = current.parent() {
        let step = access.owners(current);
        up = Some(match up {
            None => step,
            Some(prev) => prev
                .iter()
                .map(|&e| step.get(e as usize).copied().unwrap_or(0))
                .collect(),
        });
        if parent == of {
            return up.unwrap_or_default();
        }
        current = parent;
    }
    Vec::new()
}
