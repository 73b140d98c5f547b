//! The wire form of a plugin batch, for traces and logs: the request's bytes as
//! received plus an index of where each resource, scope, item, event and link
//! sits in them. Nothing is decoded up front:
//!
//! - reads ([`read`]) walk only the messages a plugin asks about, with
//!   weir-otlp's field walker, and copy values straight into columns;
//! - an edit ([`apply`]) decodes just the message it touches (one span, one
//!   resource…) and re-encodes it;
//! - output ([`encode`]) rebuilds only the envelope and splices every untouched
//!   message's bytes through, so a batch that no plugin changed leaves as the
//!   bytes it arrived as, and a sampled or routed one is copied, not re-encoded.

mod apply;
mod encode;
mod lazy;
mod read;

pub use lazy::LazyWire;

use bytes::Bytes;
use weir_otlp::wire::{Fields, Value};
use weir_pipeline::{Batch, Signal};
use weir_plugin_contract::Shape;
use weir_plugin_sdk::Level;

use crate::BatchError;
use crate::tree::Index;

/// One message's bytes: a range of the request, or re-encoded after an edit.
#[derive(Debug, Clone)]
enum Body {
    Range(u32, u32),
    Owned(Box<[u8]>),
}

/// A resource or scope container (`ResourceSpans`, `ScopeLogs`...): its
/// `Resource` / `InstrumentationScope` message and its other fields.
#[derive(Debug, Clone, Default)]
struct Header {
    /// None when the container has no such message.
    msg: Option<Body>,
    /// Every other field (schema_url, fields newer than weir), whole: copied as is.
    rest: Vec<(u32, u32)>,
}

pub struct WireBatch {
    signal: Signal,
    /// The request as received; every `Body::Range` points into it.
    buf: Bytes,
    /// Whether a plugin changed anything (else the output is `buf` itself).
    changed: bool,
    resources: Vec<Header>,
    scopes: Vec<Header>,
    items: Vec<Body>,
    /// Events and links as ranges of their span's bytes, in entity order;
    /// item `i`'s are `first_event[i]..first_event[i + 1]` (and the same for links).
    events: Vec<(u32, u32)>,
    first_event: Vec<u32>,
    links: Vec<(u32, u32)>,
    first_link: Vec<u32>,
    index: Index,
    /// Route id per item (0 = the pipeline's default route).
    routes: Vec<u16>,
    route_names: Vec<String>,
}

fn n(x: usize) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

fn malformed(e: weir_otlp::wire::FieldError) -> BatchError {
    BatchError::Decode(e.to_string())
}

fn not_a_message(what: &str) -> BatchError {
    BatchError::Decode(format!(
        "{what}: wrong wire type; the OTLP schema has a message here"
    ))
}

/// Field numbers shared by traces and logs: a request holds resource
/// containers (1), a resource container its resource (1) and scope containers
/// (2), a scope container its scope (1) and items (2).
const CONTAINER_HEADER: u32 = 1;
const CONTAINER_CHILDREN: u32 = 2;
const SPAN_EVENTS: u32 = 11;
const SPAN_LINKS: u32 = 13;

impl WireBatch {
    /// A batch without entities.
    pub fn empty(signal: Signal) -> Self {
        WireBatch {
            signal,
            buf: Bytes::new(),
            changed: false,
            resources: Vec::new(),
            scopes: Vec::new(),
            items: Vec::new(),
            events: Vec::new(),
            first_event: vec![0],
            links: Vec::new(),
            first_link: vec![0],
            index: Index::default(),
            routes: Vec::new(),
            route_names: Vec::new(),
        }
    }

    /// Indexes a traces or logs request (framing checked down to the items).
    pub fn build(signal: Signal, buf: Bytes) -> Result<Self, BatchError> {
        let mut b = WireBatch::empty(signal);
        let mut request = Fields::new(&buf);
        while let Some(field) = request.next_field() {
            let (number, value, at) = field.map_err(malformed)?;
            if number != 1 {
                // Unknown request fields: prost drops them as well.
                continue;
            }
            let Value::Bytes(container) = value else {
                return Err(not_a_message("resource container"));
            };
            b.resource(&buf, at, container.len())?;
        }
        b.index.resources = n(b.resources.len());
        b.routes = vec![0; b.items.len()];
        b.buf = buf;
        Ok(b)
    }

    fn resource(&mut self, buf: &[u8], at: usize, len: usize) -> Result<(), BatchError> {
        let r = n(self.resources.len());
        let mut header = Header::default();
        let mut scopes_in_resource = 0u32;
        let mut fields = Fields::new(&buf[at..at + len]);
        loop {
            let key_at = at + fields.position();
            let Some(field) = fields.next_field() else { break };
            let (number, value, off) = field.map_err(malformed)?;
            match (number, value) {
                (CONTAINER_HEADER, Value::Bytes(m)) => merge(&mut header.msg, buf, at + off, m.len()),
                (CONTAINER_CHILDREN, Value::Bytes(m)) => {
                    self.scope(buf, r, scopes_in_resource, at + off, m.len())?;
                    scopes_in_resource += 1;
                }
                (CONTAINER_HEADER | CONTAINER_CHILDREN, _) => return Err(not_a_message("resource or scope")),
                _ => header.rest.push((n(key_at), n(at + fields.position()))),
            }
        }
        self.resources.push(header);
        Ok(())
    }

    fn scope(&mut self, buf: &[u8], r: u32, s: u32, at: usize, len: usize) -> Result<(), BatchError> {
        let sc = n(self.scopes.len());
        self.index.scopes.push([r, s]);
        let mut header = Header::default();
        let mut items_in_scope = 0u32;
        let mut fields = Fields::new(&buf[at..at + len]);
        loop {
            let key_at = at + fields.position();
            let Some(field) = fields.next_field() else { break };
            let (number, value, off) = field.map_err(malformed)?;
            match (number, value) {
                (CONTAINER_HEADER, Value::Bytes(m)) => merge(&mut header.msg, buf, at + off, m.len()),
                (CONTAINER_CHILDREN, Value::Bytes(item)) => {
                    let start = at + off;
                    self.push_item(
                        sc,
                        items_in_scope,
                        Body::Range(n(start), n(start + item.len())),
                        item,
                    )?;
                    items_in_scope += 1;
                }
                (CONTAINER_HEADER | CONTAINER_CHILDREN, _) => return Err(not_a_message("scope or item")),
                _ => header.rest.push((n(key_at), n(at + fields.position()))),
            }
        }
        self.scopes.push(header);
        Ok(())
    }

    fn push_item(&mut self, sc: u32, i: u32, body: Body, bytes: &[u8]) -> Result<(), BatchError> {
        let item = n(self.items.len());
        self.index.items.push([sc, i, 0]);
        self.items.push(body);
        if self.signal == Signal::Traces {
            let (events, links) = sub_entities(bytes)?;
            for (k, e) in events.into_iter().enumerate() {
                self.index.events.push([item, n(k)]);
                self.events.push(e);
            }
            for (k, l) in links.into_iter().enumerate() {
                self.index.links.push([item, n(k)]);
                self.links.push(l);
            }
        }
        self.first_event.push(n(self.events.len()));
        self.first_link.push(n(self.links.len()));
        Ok(())
    }

    fn bytes<'a>(&'a self, body: &'a Body) -> &'a [u8] {
        match body {
            Body::Range(a, b) => self.buf.get(*a as usize..*b as usize).unwrap_or(&[]),
            Body::Owned(v) => v,
        }
    }

    pub fn items(&self) -> usize {
        self.items.len()
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn shape(&self) -> Shape {
        let signal = match self.signal {
            Signal::Traces => weir_plugin_sdk::Signal::Traces,
            Signal::Logs => weir_plugin_sdk::Signal::Logs,
            Signal::Metrics => weir_plugin_sdk::Signal::Metrics,
        };
        Shape {
            signal,
            counts: Level::ALL.map(|l| n(self.index.count(l))),
        }
    }

    /// Whether `changes` edit so many items that decoding the whole batch once
    /// costs less than decoding and re-encoding each edited message alone.
    pub fn edits_most(&self, changes: &weir_plugin_sdk::Changes) -> bool {
        use weir_plugin_sdk::Edit;
        let items = self.items.len();
        let refs: usize = changes
            .edits
            .iter()
            .map(|e| match e {
                Edit::AttributeMany { entities, .. } => entities.len(),
                _ => 1,
            })
            .sum();
        if refs * 4 < items {
            return false;
        }
        let mut touched = vec![false; items];
        let mut mark = |level: Level, e: u32| {
            let item = match level {
                Level::Item => Some(e),
                Level::Event => self.index.events.get(e as usize).map(|x| x[0]),
                Level::Link => self.index.links.get(e as usize).map(|x| x[0]),
                _ => None,
            };
            if let Some(t) = item.and_then(|i| touched.get_mut(i as usize)) {
                *t = true;
            }
        };
        for edit in &changes.edits {
            match edit {
                Edit::Attribute { level, entity, .. } | Edit::EntityField { level, entity, .. } => {
                    mark(*level, *entity)
                }
                Edit::AttributeMany { level, entities, .. } => {
                    entities.iter().for_each(|&e| mark(*level, e));
                }
                Edit::Field { item, .. } => mark(Level::Item, *item),
            }
        }
        touched.iter().filter(|t| **t).count() * 4 >= items
    }

    /// The decoded form of this batch as it stands.
    pub fn to_tree(&self) -> Result<crate::decoded::TreeBatch, BatchError> {
        let bytes = if self.changed {
            Bytes::from(self.encode(None))
        } else {
            self.buf.clone()
        };
        crate::decoded::TreeBatch::from_wire(
            self.signal,
            bytes,
            !self.changed,
            self.routes.clone(),
            self.route_names.clone(),
        )
    }

    /// The request as it stands: the original bytes while nothing changed it.
    pub fn to_otlp(&self) -> Vec<u8> {
        if self.changed {
            self.encode(None)
        } else {
            self.buf.to_vec()
        }
    }

    /// The result: one batch per route name used (`None` = default route),
    /// with the original bytes when nothing changed.
    pub fn finish(self) -> Vec<(Option<String>, Batch)> {
        let items = self.items.len();
        if items == 0 {
            return Vec::new();
        }
        if !self.changed {
            return vec![(None, Batch::new(self.signal, self.buf, items))];
        }
        let mut ids: Vec<u16> = self.routes.clone();
        ids.sort_unstable();
        ids.dedup();
        let name = |id: u16| (id > 0).then(|| self.route_names[id as usize - 1].clone());
        if let [only] = ids[..] {
            return vec![(
                name(only),
                Batch::new(self.signal, Bytes::from(self.encode(None)), items),
            )];
        }
        let part: Vec<usize> = self
            .routes
            .iter()
            .map(|r| ids.binary_search(r).unwrap_or(0))
            .collect();
        (0..ids.len())
            .map(|p| {
                let count = part.iter().filter(|&&x| x == p).count();
                let bytes = self.encode(Some((&part, p)));
                (name(ids[p]), Batch::new(self.signal, Bytes::from(bytes), count))
            })
            .collect()
    }
}

/// A second `resource` or `scope` field in one container merges with the first
/// (protobuf semantics), which is what concatenating their encodings does.
fn merge(slot: &mut Option<Body>, buf: &[u8], at: usize, len: usize) {
    *slot = Some(match slot.take() {
        None => Body::Range(n(at), n(at + len)),
        Some(Body::Range(a, b)) => {
            let mut joined = buf[a as usize..b as usize].to_vec();
            joined.extend_from_slice(&buf[at..at + len]);
            Body::Owned(joined.into_boxed_slice())
        }
        Some(Body::Owned(prev)) => {
            let mut joined = prev.into_vec();
            joined.extend_from_slice(&buf[at..at + len]);
            Body::Owned(joined.into_boxed_slice())
        }
    });
}

type Ranges = Vec<(u32, u32)>;

/// A span's events and links, as ranges of its bytes; checks the span's framing.
fn sub_entities(span: &[u8]) -> Result<(Ranges, Ranges), BatchError> {
    let (mut events, mut links) = (Vec::new(), Vec::new());
    let mut fields = Fields::new(span);
    while let Some(field) = fields.next_field() {
        let (number, value, off) = field.map_err(malformed)?;
        match (number, value) {
            (SPAN_EVENTS, Value::Bytes(e)) => events.push((n(off), n(off + e.len()))),
            (SPAN_LINKS, Value::Bytes(l)) => links.push((n(off), n(off + l.len()))),
            (SPAN_EVENTS | SPAN_LINKS, _) => return Err(not_a_message("span event or link")),
            _ => {}
        }
    }
    Ok((events, links))
}

#[cfg(test)]
mod tests;
