//! The decoded form of a plugin batch: the whole request as prost message
//! trees. Metrics batches use it (their data points sit one level deeper than
//! spans and log records, under a metric's oneof), and it is the reference the
//! wire form ([`crate::wire`]) is tested against.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use weir_pipeline::Batch;
use weir_plugin_contract::{Matcher, Shape, check_changes};
use weir_plugin_sdk::{AttributeTable, BatchAccess, Changes, Column, Field, Level, Signal};

use crate::tree::{Index, Otlp};
use crate::{Applied, BatchError, columns, edit, output};

fn shape(tree: &Otlp, index: &Index) -> Shape {
    let signal = match tree {
        Otlp::Traces(_) => Signal::Traces,
        Otlp::Logs(_) => Signal::Logs,
        Otlp::Metrics(_) => Signal::Metrics,
    };
    Shape {
        signal,
        counts: Level::ALL.map(|l| u32::try_from(index.count(l)).unwrap_or(u32::MAX)),
    }
}

pub struct TreeBatch {
    signal: weir_pipeline::Signal,
    /// The request as received, while nothing has changed it.
    original: Option<Bytes>,
    tree: Otlp,
    index: Index,
    /// Route id per item (0 = the pipeline's default route).
    routes: Vec<u16>,
    route_names: Vec<String>,
}

/// A plugin's `replace-otlp` request, held to what weir's receivers accept (the
/// wire walk: UTF-8, id lengths, nesting), not only to what prost decodes, so a
/// plugin cannot hand on a batch that the next OTLP hop refuses.
fn decode_replacement(signal: weir_pipeline::Signal, bytes: &[u8]) -> Result<Otlp, BatchError> {
    weir_otlp::wire::count_items(signal, bytes)
        .map_err(|e| BatchError::Invalid(format!("replace-otlp: {e}")))?;
    decode(signal, bytes)
}

fn decode(signal: weir_pipeline::Signal, bytes: &[u8]) -> Result<Otlp, BatchError> {
    let err = |e: prost::DecodeError| BatchError::Decode(e.to_string());
    Ok(match signal {
        weir_pipeline::Signal::Traces => Otlp::Traces(ExportTraceServiceRequest::decode(bytes).map_err(err)?),
        weir_pipeline::Signal::Logs => Otlp::Logs(ExportLogsServiceRequest::decode(bytes).map_err(err)?),
        weir_pipeline::Signal::Metrics => {
            Otlp::Metrics(ExportMetricsServiceRequest::decode(bytes).map_err(err)?)
        }
    })
}

fn encode(tree: &Otlp) -> Bytes {
    Bytes::from(match tree {
        Otlp::Traces(q) => q.encode_to_vec(),
        Otlp::Logs(q) => q.encode_to_vec(),
        Otlp::Metrics(q) => q.encode_to_vec(),
    })
}

impl TreeBatch {
    pub fn decode(batch: &Batch) -> Result<Self, BatchError> {
        let tree = decode(batch.signal, &batch.payload)?;
        let index = tree.index();
        Ok(TreeBatch {
            signal: batch.signal,
            original: Some(batch.payload.clone()),
            routes: vec![0; index.items.len()],
            tree,
            index,
            route_names: Vec::new(),
        })
    }

    /// The decoded form of a batch the wire form has held so far: its
    /// current bytes, whether they are still the original, and its routes.
    pub(crate) fn from_wire(
        signal: weir_pipeline::Signal,
        bytes: Bytes,
        unchanged: bool,
        routes: Vec<u16>,
        route_names: Vec<String>,
    ) -> Result<Self, BatchError> {
        let tree = decode(signal, &bytes)?;
        let index = tree.index();
        if routes.len() != index.items.len() {
            return Err(BatchError::Invalid(
                "the batch's items changed while it was decoded".into(),
            ));
        }
        Ok(TreeBatch {
            signal,
            original: unchanged.then_some(bytes),
            routes,
            tree,
            index,
            route_names,
        })
    }

    pub fn items(&self) -> usize {
        self.index.items.len()
    }

    /// The batch's signal and entity counts, which a plugin's changes are checked against.
    pub fn shape(&self) -> Shape {
        shape(&self.tree, &self.index)
    }

    /// The shape of an OTLP request of this batch's signal (what a
    /// `replace-otlp` would make the batch), or why it is not one.
    pub fn shape_of_replacement(&self, otlp: &[u8]) -> Result<Shape, BatchError> {
        let tree = decode_replacement(self.signal, otlp)?;
        let index = tree.index();
        Ok(shape(&tree, &index))
    }

    /// Applies one plugin's changes: all of them, or (if any is invalid) none.
    /// Every change is checked ([`weir_plugin_contract::check_changes`])
    /// before anything is mutated.
    pub fn apply(&mut self, changes: Changes) -> Result<Applied, BatchError> {
        if changes.is_empty() {
            return Ok(Applied::default());
        }
        let replaced = match &changes.replace {
            Some(otlp) => {
                let tree = decode_replacement(self.signal, otlp)?;
                let index = tree.index();
                Some((tree, index))
            }
            None => None,
        };
        {
            let target = match &replaced {
                Some((t, i)) => shape(t, i),
                None => self.shape(),
            };
            check_changes(&target, &changes).map_err(|e| BatchError::Invalid(e.0))?;
        }
        self.original = None;
        if let Some((tree, index)) = replaced {
            self.routes = vec![0; index.items.len()];
            self.tree = tree;
            self.index = index;
        }
        let mut applied = Applied {
            edits: changes.edits.len(),
            ..Applied::default()
        };
        for e in changes.edits {
            edit::apply(&mut self.tree, &self.index, e)?;
        }
        for (name, items) in changes.routes {
            let id = match self.route_names.iter().position(|r| *r == name) {
                Some(p) => p + 1,
                None => {
                    self.route_names.push(name);
                    self.route_names.len()
                }
            };
            let id = u16::try_from(id).map_err(|_| BatchError::Invalid("too many route names".into()))?;
            applied.routed += items.len();
            for i in items {
                self.routes[i as usize] = id;
            }
        }
        if !changes.drops.is_empty() {
            let mut keep = vec![true; self.index.items.len()];
            for i in changes.drops {
                keep[i as usize] = false;
            }
            applied.dropped = keep.iter().filter(|k| !**k).count();
            output::retain(&mut self.tree, &keep);
            let mut k = 0;
            self.routes.retain(|_| {
                let v = keep[k];
                k += 1;
                v
            });
            self.index = self.tree.index();
        }
        Ok(applied)
    }

    /// The result: one batch per route name used (`None` = default route), with
    /// the original bytes when nothing changed.
    pub fn finish(self) -> Vec<(Option<String>, Batch)> {
        let signal = self.signal;
        let items = self.index.items.len();
        if items == 0 {
            return Vec::new();
        }
        if let Some(original) = self.original {
            return vec![(None, Batch::new(signal, original, items))];
        }
        let mut ids: Vec<u16> = self.routes.clone();
        ids.sort_unstable();
        ids.dedup();
        let name = |id: u16| (id > 0).then(|| self.route_names[id as usize - 1].clone());
        if let [only] = ids[..] {
            return vec![(name(only), Batch::new(signal, encode(&self.tree), items))];
        }
        // Part of each item = position of its route id in `ids`.
        let part: Vec<usize> = self
            .routes
            .iter()
            .map(|r| ids.binary_search(r).unwrap_or(0))
            .collect();
        let mut counts = vec![0usize; ids.len()];
        for &p in &part {
            counts[p] += 1;
        }
        let names: Vec<Option<String>> = ids.iter().map(|&id| name(id)).collect();
        output::split(self.tree, &part, ids.len())
            .into_iter()
            .zip(names.into_iter().zip(counts))
            .map(|(tree, (name, n))| (name, Batch::new(signal, encode(&tree), n)))
            .collect()
    }
}

impl BatchAccess for TreeBatch {
    fn signal(&self) -> Signal {
        match self.signal {
            weir_pipeline::Signal::Traces => Signal::Traces,
            weir_pipeline::Signal::Logs => Signal::Logs,
            weir_pipeline::Signal::Metrics => Signal::Metrics,
        }
    }

    fn len(&self) -> u32 {
        u32::try_from(self.index.items.len()).unwrap_or(u32::MAX)
    }

    fn count(&self, level: Level) -> u32 {
        u32::try_from(self.index.count(level)).unwrap_or(u32::MAX)
    }

    fn owners(&self, level: Level) -> Vec<u32> {
        self.index.owners(level)
    }

    fn read_field(&self, field: Field) -> Column {
        columns::read_field(&self.tree, &self.index, field)
    }

    fn read_attribute(&self, level: Level, key: &str) -> Column {
        columns::read_attribute(&self.tree, &self.index, level, key)
    }

    fn read_attributes(&self, level: Level) -> AttributeTable {
        columns::read_attributes(&self.tree, &self.index, level)
    }

    fn ancestors(&self, level: Level, of: Level) -> Vec<u32> {
        if of == Level::Metric {
            return self.index.metric_of(level);
        }
        weir_plugin_sdk::access::ancestors_by_owners(self, level, of)
    }

    fn read_field_at(&self, level: Level, field: Field) -> Column {
        columns::read_field_at(&self.tree, &self.index, level, field)
    }

    fn read_attribute_inherited(&self, level: Level, key: &str) -> Column {
        columns::read_attribute_inherited(&self.tree, &self.index, level, key)
    }

    fn match_field(&self, level: Level, field: Field, m: &Matcher) -> Vec<u32> {
        columns::match_field(&self.tree, &self.index, level, field, m)
    }

    fn match_attribute(&self, level: Level, key: &str, m: &Matcher, inherited: bool) -> Vec<u32> {
        columns::match_attribute(&self.tree, &self.index, level, key, m, inherited)
    }

    fn to_otlp(&self) -> Vec<u8> {
        match &self.original {
            Some(b) => b.to_vec(),
            None => encode(&self.tree).to_vec(),
        }
    }
}
