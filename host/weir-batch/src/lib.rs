//! The host side of a plugin batch.
//!
//! A [`HostBatch`] serves the plugin contract's bulk reads ([`BatchAccess`]),
//! applies each plugin's [`Changes`] natively, and at the end hands back one
//! batch per route — the original bytes untouched when no plugin changed
//! anything. Traces and logs stay in their wire form ([`wire`]): nothing is
//! decoded that no plugin reads, and output splices untouched messages through.
//! Metrics are decoded into message trees ([`decoded`]).

mod columns;
mod decoded;
mod edit;
mod output;
mod tree;
mod wire;

use std::sync::OnceLock;

use weir_pipeline::Batch;
pub use weir_plugin_contract::Matcher;
use weir_plugin_contract::Shape;
use weir_plugin_sdk::{AttributeTable, BatchAccess, Changes, Column, Field, Level, Signal};

use crate::decoded::TreeBatch;
use crate::wire::{LazyWire, WireBatch};

#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    #[error("cannot decode the batch: {0}")]
    Decode(String),
    #[error("invalid change from plugin: {0}")]
    Invalid(String),
}

/// What applying one plugin's changes did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub edits: usize,
    pub dropped: usize,
    pub routed: usize,
}

/// A batch as plugins see it.
pub struct HostBatch(Repr);

enum Repr {
    Wire(Box<LazyWire>),
    Tree(Box<TreeBatch>),
}

/// `WEIR_PLUGIN_BATCH=decoded` makes traces and logs use the decoded form too:
/// a diagnostic, and how the benchmarks compare the two forms in one binary.
fn decoded_only() -> bool {
    static DECODED: OnceLock<bool> = OnceLock::new();
    *DECODED.get_or_init(|| std::env::var_os("WEIR_PLUGIN_BATCH").is_some_and(|v| v == "decoded"))
}

/// Runs `$e` on either form (the wire form indexed on first use).
macro_rules! both {
    ($self:expr, $b:ident => $e:expr) => {
        match $self {
            Repr::Wire(lazy) => {
                let $b = lazy.get();
                $e
            }
            Repr::Tree($b) => $e,
        }
    };
}

impl HostBatch {
    /// Prepares a pipeline batch for plugins: traces and logs stay on the wire
    /// (indexed when a plugin first asks something), metrics are decoded.
    pub fn decode(batch: &Batch) -> Result<Self, BatchError> {
        match batch.signal {
            weir_pipeline::Signal::Traces | weir_pipeline::Signal::Logs if !decoded_only() => {
                Ok(HostBatch(Repr::Wire(Box::new(LazyWire::new(batch)))))
            }
            _ => Self::decode_tree(batch),
        }
    }

    /// The decoded form whatever the signal (tests and benchmarks compare the forms).
    pub fn decode_tree(batch: &Batch) -> Result<Self, BatchError> {
        Ok(HostBatch(Repr::Tree(Box::new(TreeBatch::decode(batch)?))))
    }

    pub fn items(&self) -> usize {
        match &self.0 {
            Repr::Wire(lazy) => lazy.items(),
            Repr::Tree(b) => b.items(),
        }
    }

    /// The batch's signal and entity counts, which a plugin's changes are checked against.
    pub fn shape(&self) -> Shape {
        both!(&self.0, b => b.shape())
    }

    /// The shape of an OTLP request of this batch's signal (what a
    /// `replace-otlp` would make the batch), or why it is not one.
    pub fn shape_of_replacement(&self, otlp: &[u8]) -> Result<Shape, BatchError> {
        match &self.0 {
            Repr::Wire(b) => {
                weir_otlp::wire::count_items(b.signal(), otlp)
                    .map_err(|e| BatchError::Invalid(format!("replace-otlp: {e}")))?;
                Ok(WireBatch::build(b.signal(), bytes::Bytes::copy_from_slice(otlp))?.shape())
            }
            Repr::Tree(b) => b.shape_of_replacement(otlp),
        }
    }

    /// Applies one plugin's changes: all of them, or (if any is invalid) none.
    /// Every change is checked ([`weir_plugin_contract::check_changes`])
    /// before anything is mutated.
    pub fn apply(&mut self, changes: Changes) -> Result<Applied, BatchError> {
        if changes.is_empty() {
            return Ok(Applied::default());
        }
        if let Repr::Wire(lazy) = &mut self.0 {
            let w = lazy.get_mut()?;
            // Most items edited: decode the whole batch once, from here on.
            let decoded = if changes.replace.is_none() && w.edits_most(&changes) {
                Some(w.to_tree()?)
            } else {
                None
            };
            if let Some(tree) = decoded {
                self.0 = Repr::Tree(Box::new(tree));
            }
        }
        match &mut self.0 {
            Repr::Wire(lazy) => lazy.get_mut()?.apply(changes),
            Repr::Tree(b) => b.apply(changes),
        }
    }

    /// The result: one batch per route name used (`None` = default route), with
    /// the original bytes when nothing changed.
    pub fn finish(self) -> Vec<(Option<String>, Batch)> {
        match self.0 {
            Repr::Wire(lazy) => lazy.finish(),
            Repr::Tree(b) => b.finish(),
        }
    }
}

impl BatchAccess for HostBatch {
    fn signal(&self) -> Signal {
        let signal = match &self.0 {
            Repr::Wire(b) => b.signal(),
            Repr::Tree(b) => return BatchAccess::signal(&**b),
        };
        match signal {
            weir_pipeline::Signal::Traces => Signal::Traces,
            weir_pipeline::Signal::Logs => Signal::Logs,
            weir_pipeline::Signal::Metrics => Signal::Metrics,
        }
    }

    fn len(&self) -> u32 {
        let items = match &self.0 {
            Repr::Wire(lazy) => lazy.get().items(),
            Repr::Tree(b) => b.items(),
        };
        u32::try_from(items).unwrap_or(u32::MAX)
    }

    fn count(&self, level: Level) -> u32 {
        match &self.0 {
            Repr::Wire(lazy) => u32::try_from(lazy.get().index().count(level)).unwrap_or(u32::MAX),
            Repr::Tree(b) => b.count(level),
        }
    }

    fn owners(&self, level: Level) -> Vec<u32> {
        both!(&self.0, b => b.owners(level))
    }

    fn read_field(&self, field: Field) -> Column {
        both!(&self.0, b => b.read_field(field))
    }

    fn read_attribute(&self, level: Level, key: &str) -> Column {
        both!(&self.0, b => b.read_attribute(level, key))
    }

    fn read_attributes(&self, level: Level) -> AttributeTable {
        both!(&self.0, b => b.read_attributes(level))
    }

    fn ancestors(&self, level: Level, of: Level) -> Vec<u32> {
        match &self.0 {
            Repr::Wire(_) => weir_plugin_sdk::access::ancestors_by_owners(self, level, of),
            Repr::Tree(b) => b.ancestors(level, of),
        }
    }

    fn read_field_at(&self, level: Level, field: Field) -> Column {
        both!(&self.0, b => b.read_field_at(level, field))
    }

    fn read_attribute_inherited(&self, level: Level, key: &str) -> Column {
        both!(&self.0, b => b.read_attribute_inherited(level, key))
    }

    fn match_field(&self, level: Level, field: Field, m: &Matcher) -> Vec<u32> {
        both!(&self.0, b => b.match_field(level, field, m))
    }

    fn match_attribute(&self, level: Level, key: &str, m: &Matcher, inherited: bool) -> Vec<u32> {
        both!(&self.0, b => b.match_attribute(level, key, m, inherited))
    }

    fn to_otlp(&self) -> Vec<u8> {
        match &self.0 {
            Repr::Wire(lazy) => lazy.to_otlp(),
            Repr::Tree(b) => b.to_otlp(),
        }
    }
}

#[cfg(test)]
mod tests;
