//! Applying a plugin's changes to the wire form: each edited message (a span,
//! a log record, a resource, a scope) is decoded once, edited, and re-encoded;
//! drops and routes only renumber the index.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use prost::Message;
use weir_pipeline::Signal;
use weir_plugin_contract::check_changes;
use weir_plugin_sdk::{Changes, Field, Level, Value};

use super::{Body, WireBatch, n, sub_entities};
use crate::edit::{EditTarget, dispatch, set_log_field, set_span_field};
use crate::{Applied, BatchError};

/// One decoded item.
enum Item {
    Span(Span),
    Log(LogRecord),
}

impl Item {
    fn attributes(&mut self) -> &mut Vec<KeyValue> {
        match self {
            Item::Span(s) => &mut s.attributes,
            Item::Log(l) => &mut l.attributes,
        }
    }

    fn span(&mut self) -> Option<&mut Span> {
        match self {
            Item::Span(s) => Some(s),
            Item::Log(_) => None,
        }
    }
}

/// The messages one change list edits, decoded on first touch.
#[derive(Default)]
struct Touched {
    resources: HashMap<u32, Resource>,
    scopes: HashMap<u32, InstrumentationScope>,
    items: HashMap<u32, Item>,
}

/// The wire form as an [`EditTarget`]: each lookup decodes the message it
/// reaches into `touched` (once).
struct WireTarget<'a> {
    batch: &'a WireBatch,
    touched: &'a mut Touched,
}

impl EditTarget for WireTarget<'_> {
    fn attributes(&mut self, level: Level, entity: u32) -> Result<&mut Vec<KeyValue>, BatchError> {
        self.batch.attributes_mut(self.touched, level, entity)
    }

    fn set_item_field(&mut self, item: u32, field: Field, value: Value) -> Result<(), BatchError> {
        match self.batch.item_mut(self.touched, item)? {
            Item::Span(s) => set_span_field(s, field, value),
            Item::Log(l) => set_log_field(l, field, value),
        }
    }

    fn event(&mut self, entity: u32) -> Result<&mut Event, BatchError> {
        let (span, k) = self.batch.holder(self.touched, Level::Event, entity)?;
        span.events
            .get_mut(k)
            .ok_or_else(|| no_entity(Level::Event, entity))
    }

    fn metric(&mut self, entity: u32) -> Result<&mut Metric, BatchError> {
        // Metrics batches always use the decoded form.
        Err(BatchError::Invalid(format!("no metric {entity}")))
    }
}

fn decode_err(what: &str) -> impl Fn(prost::DecodeError) -> BatchError + '_ {
    move |e| BatchError::Decode(format!("{what}: {e}"))
}

fn no_entity(level: Level, entity: u32) -> BatchError {
    BatchError::Invalid(format!("no {level:?} entity {entity}"))
}

impl WireBatch {
    fn resource_mut<'t>(&self, t: &'t mut Touched, r: u32) -> Result<&'t mut Resource, BatchError> {
        if r as usize >= self.resources.len() {
            return Err(no_entity(Level::Resource, r));
        }
        Ok(match t.resources.entry(r) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v.insert(
                Resource::decode(self.entity(Level::Resource, r as usize)).map_err(decode_err("resource"))?,
            ),
        })
    }

    fn scope_mut<'t>(&self, t: &'t mut Touched, s: u32) -> Result<&'t mut InstrumentationScope, BatchError> {
        if s as usize >= self.scopes.len() {
            return Err(no_entity(Level::Scope, s));
        }
        Ok(match t.scopes.entry(s) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v.insert(
                InstrumentationScope::decode(self.entity(Level::Scope, s as usize))
                    .map_err(decode_err("scope"))?,
            ),
        })
    }

    fn item_mut<'t>(&self, t: &'t mut Touched, it: u32) -> Result<&'t mut Item, BatchError> {
        if it as usize >= self.items.len() {
            return Err(no_entity(Level::Item, it));
        }
        Ok(match t.items.entry(it) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                let bytes = self.entity(Level::Item, it as usize);
                v.insert(match self.signal {
                    Signal::Logs => Item::Log(LogRecord::decode(bytes).map_err(decode_err("log record"))?),
                    _ => Item::Span(Span::decode(bytes).map_err(decode_err("span"))?),
                })
            }
        })
    }

    /// The span holding event or link `e`, and its position there.
    fn holder<'t>(
        &self,
        t: &'t mut Touched,
        level: Level,
        e: u32,
    ) -> Result<(&'t mut Span, usize), BatchError> {
        let entities = if level == Level::Event {
            &self.index.events
        } else {
            &self.index.links
        };
        let [item, k] = *entities.get(e as usize).ok_or_else(|| no_entity(level, e))?;
        let span = self
            .item_mut(t, item)?
            .span()
            .ok_or_else(|| no_entity(level, e))?;
        Ok((span, k as usize))
    }

    fn attributes_mut<'t>(
        &self,
        t: &'t mut Touched,
        level: Level,
        e: u32,
    ) -> Result<&'t mut Vec<KeyValue>, BatchError> {
        Ok(match level {
            Level::Resource => &mut self.resource_mut(t, e)?.attributes,
            Level::Scope => &mut self.scope_mut(t, e)?.attributes,
            Level::Item => self.item_mut(t, e)?.attributes(),
            Level::Event => {
                let (span, k) = self.holder(t, level, e)?;
                &mut span
                    .events
                    .get_mut(k)
                    .ok_or_else(|| no_entity(level, e))?
                    .attributes
            }
            Level::Link => {
                let (span, k) = self.holder(t, level, e)?;
                &mut span
                    .links
                    .get_mut(k)
                    .ok_or_else(|| no_entity(level, e))?
                    .attributes
            }
            Level::Metric | Level::Exemplar => return Err(no_entity(level, e)),
        })
    }

    /// Re-encodes the edited messages in place of their old bytes.
    fn store(&mut self, t: Touched) -> Result<(), BatchError> {
        for (r, m) in t.resources {
            if let Some(h) = self.resources.get_mut(r as usize) {
                h.msg = Some(Body::Owned(m.encode_to_vec().into_boxed_slice()));
            }
        }
        for (s, m) in t.scopes {
            if let Some(h) = self.scopes.get_mut(s as usize) {
                h.msg = Some(Body::Owned(m.encode_to_vec().into_boxed_slice()));
            }
        }
        for (it, item) in t.items {
            let bytes = match item {
                Item::Span(s) => s.encode_to_vec(),
                Item::Log(l) => l.encode_to_vec(),
            };
            let i = it as usize;
            if self.signal == Signal::Traces {
                // Edits change neither how many events nor links a span has, only where they sit.
                let (events, links) = sub_entities(&bytes)?;
                let (e0, e1) = (self.first_event[i] as usize, self.first_event[i + 1] as usize);
                let (l0, l1) = (self.first_link[i] as usize, self.first_link[i + 1] as usize);
                if events.len() != e1 - e0 || links.len() != l1 - l0 {
                    return Err(BatchError::Invalid(
                        "an edit changed a span's events or links".into(),
                    ));
                }
                self.events[e0..e1].copy_from_slice(&events);
                self.links[l0..l1].copy_from_slice(&links);
            }
            self.items[i] = Body::Owned(bytes.into_boxed_slice());
        }
        Ok(())
    }

    /// Applies one plugin's changes: all of them, or (if any is invalid) none.
    pub fn apply(&mut self, changes: Changes) -> Result<Applied, BatchError> {
        if changes.is_empty() {
            return Ok(Applied::default());
        }
        let replaced = match &changes.replace {
            Some(otlp) => {
                weir_otlp::wire::count_items(self.signal, otlp)
                    .map_err(|e| BatchError::Invalid(format!("replace-otlp: {e}")))?;
                Some(WireBatch::build(self.signal, Bytes::from(otlp.clone()))?)
            }
            None => None,
        };
        let target = replaced.as_ref().unwrap_or(self).shape();
        check_changes(&target, &changes).map_err(|e| BatchError::Invalid(e.0))?;
        let Changes {
            edits, drops, routes, ..
        } = changes;
        // Edits are made on decoded copies first, so a failing one leaves the batch as it was.
        let mut touched = Touched::default();
        let applied_edits = edits.len();
        {
            let mut target = WireTarget {
                batch: replaced.as_ref().unwrap_or(self),
                touched: &mut touched,
            };
            for e in edits {
                dispatch(&mut target, e)?;
            }
        }
        if let Some(mut new) = replaced {
            new.route_names = std::mem::take(&mut self.route_names);
            *self = new;
        }
        self.changed = true;
        self.store(touched)?;
        let mut applied = Applied {
            edits: applied_edits,
            ..Applied::default()
        };
        for (name, items) in routes {
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
                if let Some(r) = self.routes.get_mut(i as usize) {
                    *r = id;
                }
            }
        }
        if !drops.is_empty() {
            let mut keep = vec![true; self.items.len()];
            for i in drops {
                if let Some(k) = keep.get_mut(i as usize) {
                    *k = false;
                }
            }
            applied.dropped = keep.iter().filter(|k| !**k).count();
            self.retain(&keep);
        }
        Ok(applied)
    }

    /// Keeps the items whose flag is true, then removes scopes and resources
    /// left empty, and numbers what is left again.
    fn retain(&mut self, keep: &[bool]) {
        let ix = std::mem::take(&mut self.index);
        let old_items = std::mem::take(&mut self.items);
        let old_routes = std::mem::take(&mut self.routes);
        let (old_events, old_links) = (std::mem::take(&mut self.events), std::mem::take(&mut self.links));
        let (first_event, first_link) = (
            std::mem::replace(&mut self.first_event, vec![0]),
            std::mem::replace(&mut self.first_link, vec![0]),
        );
        let old_scopes = std::mem::take(&mut self.scopes);
        let old_resources = std::mem::take(&mut self.resources);
        // Items kept per old scope, and scopes kept per old resource.
        let mut kept_in_scope = vec![0u32; old_scopes.len()];
        for (it, body) in old_items.into_iter().enumerate() {
            if !keep.get(it).copied().unwrap_or(true) {
                continue;
            }
            let [sc, _, _] = ix.items[it];
            let new_item = n(self.items.len());
            let (e0, e1) = (first_event[it] as usize, first_event[it + 1] as usize);
            let (l0, l1) = (first_link[it] as usize, first_link[it + 1] as usize);
            for (k, e) in old_events[e0..e1].iter().enumerate() {
                self.index.events.push([new_item, n(k)]);
                self.events.push(*e);
            }
            for (k, l) in old_links[l0..l1].iter().enumerate() {
                self.index.links.push([new_item, n(k)]);
                self.links.push(*l);
            }
            self.first_event.push(n(self.events.len()));
            self.first_link.push(n(self.links.len()));
            // Scope ids are fixed up below, once the kept scopes are numbered.
            self.index.items.push([sc, kept_in_scope[sc as usize], 0]);
            kept_in_scope[sc as usize] += 1;
            self.items.push(body);
            self.routes.push(old_routes.get(it).copied().unwrap_or(0));
        }
        let mut new_scope = vec![u32::MAX; old_scopes.len()];
        let mut new_resource = vec![u32::MAX; old_resources.len()];
        let mut kept_in_resource = vec![0u32; old_resources.len()];
        for (sc, header) in old_scopes.into_iter().enumerate() {
            if kept_in_scope[sc] == 0 {
                continue;
            }
            let [r, _] = ix.scopes[sc];
            new_scope[sc] = n(self.scopes.len());
            self.index.scopes.push([r, kept_in_resource[r as usize]]);
            kept_in_resource[r as usize] += 1;
            self.scopes.push(header);
        }
        for (r, header) in old_resources.into_iter().enumerate() {
            if kept_in_resource[r] > 0 {
                new_resource[r] = n(self.resources.len());
                self.resources.push(header);
            }
        }
        for s in &mut self.index.scopes {
            s[0] = new_resource[s[0] as usize];
        }
        for it in &mut self.index.items {
            it[0] = new_scope[it[0] as usize];
        }
        self.index.resources = n(self.resources.len());
    }
}
