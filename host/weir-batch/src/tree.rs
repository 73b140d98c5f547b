//! The decoded OTLP request and an index that numbers its entities per level
//! (resources, scopes, items, events, links) in request order, as the plugin
//! contract defines them.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{Exemplar, Metric, metric};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use weir_plugin_sdk::Level;

pub enum Otlp {
    Traces(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

/// Entity numbering: `scopes[e] = [resource, scope within resource]`,
/// `items[e] = [scope entity, i, j]` (i: item within scope, or the metric for
/// metrics, j: the data point within the metric), `events/links[e] = [item, k]`,
/// `metrics[e] = [scope entity, metric within scope]` with `item_metric[item]`
/// its metric entity, `exemplars[e] = [item, k]`.
#[derive(Default, Debug, Clone)]
pub struct Index {
    pub resources: u32,
    pub scopes: Vec<[u32; 2]>,
    pub items: Vec<[u32; 3]>,
    pub events: Vec<[u32; 2]>,
    pub links: Vec<[u32; 2]>,
    pub metrics: Vec<[u32; 2]>,
    pub item_metric: Vec<u32>,
    pub exemplars: Vec<[u32; 2]>,
}

impl Index {
    pub fn count(&self, level: Level) -> usize {
        match level {
            Level::Resource => self.resources as usize,
            Level::Scope => self.scopes.len(),
            Level::Item => self.items.len(),
            Level::Event => self.events.len(),
            Level::Link => self.links.len(),
            Level::Metric => self.metrics.len(),
            Level::Exemplar => self.exemplars.len(),
        }
    }

    pub fn owners(&self, level: Level) -> Vec<u32> {
        match level {
            Level::Resource => Vec::new(),
            Level::Scope => self.scopes.iter().map(|s| s[0]).collect(),
            Level::Item => self.items.iter().map(|i| i[0]).collect(),
            Level::Event => self.events.iter().map(|e| e[0]).collect(),
            Level::Link => self.links.iter().map(|l| l[0]).collect(),
            Level::Metric => self.metrics.iter().map(|m| m[0]).collect(),
            Level::Exemplar => self.exemplars.iter().map(|x| x[0]).collect(),
        }
    }

    /// Where item `it` sits: (resource, scope within it, item within the
    /// scope or metric within the scope, data point within the metric).
    pub fn item_path(&self, it: u32) -> Option<(usize, usize, usize, usize)> {
        let [sc, i, j] = *self.items.get(it as usize)?;
        let [r, s] = *self.scopes.get(sc as usize)?;
        Some((r as usize, s as usize, i as usize, j as usize))
    }

    /// Where metric entity `e` sits: (resource, scope within it, metric within the scope).
    pub fn metric_path(&self, e: usize) -> Option<(usize, usize, usize)> {
        let [sc, m] = *self.metrics.get(e)?;
        let [r, s] = *self.scopes.get(sc as usize)?;
        Some((r as usize, s as usize, m as usize))
    }

    /// Each data point's (`Item`) or exemplar's metric entity; empty for
    /// other levels. (Other ancestors follow `owners`.)
    pub fn metric_of(&self, level: Level) -> Vec<u32> {
        match level {
            Level::Item => self.item_metric.clone(),
            Level::Exemplar => self
                .exemplars
                .iter()
                .map(|x| self.item_metric.get(x[0] as usize).copied().unwrap_or(0))
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn n(x: usize) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

/// Number of data points of a metric.
pub fn point_count(m: &Metric) -> usize {
    match &m.data {
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

macro_rules! point_field {
    ($m:expr, $p:expr, $get:ident, $field:ident) => {
        match &$m.data {
            Some(metric::Data::Gauge(g)) => g.data_points.$get($p).map(|d| &d.$field),
            Some(metric::Data::Sum(s)) => s.data_points.$get($p).map(|d| &d.$field),
            Some(metric::Data::Histogram(h)) => h.data_points.$get($p).map(|d| &d.$field),
            Some(metric::Data::ExponentialHistogram(h)) => h.data_points.$get($p).map(|d| &d.$field),
            Some(metric::Data::Summary(s)) => s.data_points.$get($p).map(|d| &d.$field),
            None => None,
        }
    };
}

/// Number of exemplars of data point `p` (summaries have none).
pub fn exemplar_count(m: &Metric, p: usize) -> usize {
    exemplars(m, p).map_or(0, <[Exemplar]>::len)
}

pub fn exemplars(m: &Metric, p: usize) -> Option<&[Exemplar]> {
    match &m.data {
        Some(metric::Data::Gauge(g)) => g.data_points.get(p).map(|d| &d.exemplars[..]),
        Some(metric::Data::Sum(s)) => s.data_points.get(p).map(|d| &d.exemplars[..]),
        Some(metric::Data::Histogram(h)) => h.data_points.get(p).map(|d| &d.exemplars[..]),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.get(p).map(|d| &d.exemplars[..]),
        Some(metric::Data::Summary(_)) | None => None,
    }
}

fn exemplars_mut(m: &mut Metric, p: usize) -> Option<&mut Vec<Exemplar>> {
    match &mut m.data {
        Some(metric::Data::Gauge(g)) => g.data_points.get_mut(p).map(|d| &mut d.exemplars),
        Some(metric::Data::Sum(s)) => s.data_points.get_mut(p).map(|d| &mut d.exemplars),
        Some(metric::Data::Histogram(h)) => h.data_points.get_mut(p).map(|d| &mut d.exemplars),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.get_mut(p).map(|d| &mut d.exemplars),
        Some(metric::Data::Summary(_)) | None => None,
    }
}

pub fn point_attrs(m: &Metric, p: usize) -> Option<&Vec<KeyValue>> {
    point_field!(m, p, get, attributes)
}

pub fn point_time(m: &Metric, p: usize) -> u64 {
    point_field!(m, p, get, time_unix_nano).copied().unwrap_or(0)
}

fn point_attrs_mut(m: &mut Metric, p: usize) -> Option<&mut Vec<KeyValue>> {
    match &mut m.data {
        Some(metric::Data::Gauge(g)) => g.data_points.get_mut(p).map(|d| &mut d.attributes),
        Some(metric::Data::Sum(s)) => s.data_points.get_mut(p).map(|d| &mut d.attributes),
        Some(metric::Data::Histogram(h)) => h.data_points.get_mut(p).map(|d| &mut d.attributes),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.get_mut(p).map(|d| &mut d.attributes),
        Some(metric::Data::Summary(s)) => s.data_points.get_mut(p).map(|d| &mut d.attributes),
        None => None,
    }
}

impl Otlp {
    pub fn index(&self) -> Index {
        let mut ix = Index::default();
        match self {
            Otlp::Traces(req) => {
                ix.resources = n(req.resource_spans.len());
                for (r, rs) in req.resource_spans.iter().enumerate() {
                    for (s, ss) in rs.scope_spans.iter().enumerate() {
                        let scope = n(ix.scopes.len());
                        ix.scopes.push([n(r), n(s)]);
                        for (i, span) in ss.spans.iter().enumerate() {
                            let item = n(ix.items.len());
                            ix.items.push([scope, n(i), 0]);
                            ix.events.extend((0..span.events.len()).map(|e| [item, n(e)]));
                            ix.links.extend((0..span.links.len()).map(|l| [item, n(l)]));
                        }
                    }
                }
            }
            Otlp::Logs(req) => {
                ix.resources = n(req.resource_logs.len());
                for (r, rl) in req.resource_logs.iter().enumerate() {
                    for (s, sl) in rl.scope_logs.iter().enumerate() {
                        let scope = n(ix.scopes.len());
                        ix.scopes.push([n(r), n(s)]);
                        ix.items
                            .extend((0..sl.log_records.len()).map(|i| [scope, n(i), 0]));
                    }
                }
            }
            Otlp::Metrics(req) => {
                ix.resources = n(req.resource_metrics.len());
                for (r, rm) in req.resource_metrics.iter().enumerate() {
                    for (s, sm) in rm.scope_metrics.iter().enumerate() {
                        let scope = n(ix.scopes.len());
                        ix.scopes.push([n(r), n(s)]);
                        for (m, metric) in sm.metrics.iter().enumerate() {
                            let metric_entity = n(ix.metrics.len());
                            ix.metrics.push([scope, n(m)]);
                            for p in 0..point_count(metric) {
                                let item = n(ix.items.len());
                                ix.items.push([scope, n(m), n(p)]);
                                ix.item_metric.push(metric_entity);
                                ix.exemplars
                                    .extend((0..exemplar_count(metric, p)).map(|k| [item, n(k)]));
                            }
                        }
                    }
                }
            }
        }
        ix
    }

    /// The attributes of one entity (empty when it has none or does not exist).
    pub fn attrs<'a>(&'a self, ix: &Index, level: Level, e: usize) -> &'a [KeyValue] {
        self.try_attrs(ix, level, e).unwrap_or(&[])
    }

    fn try_attrs<'a>(&'a self, ix: &Index, level: Level, e: usize) -> Option<&'a [KeyValue]> {
        let scope_of = |sc: u32| ix.scopes.get(sc as usize).map(|s| (s[0] as usize, s[1] as usize));
        let item_of = |it: u32| {
            let [sc, i, j] = *ix.items.get(it as usize)?;
            let (r, s) = scope_of(sc)?;
            Some((r, s, i as usize, j as usize))
        };
        match (self, level) {
            (Otlp::Traces(q), Level::Resource) => q
                .resource_spans
                .get(e)?
                .resource
                .as_ref()
                .map(|r| &r.attributes[..]),
            (Otlp::Logs(q), Level::Resource) => q
                .resource_logs
                .get(e)?
                .resource
                .as_ref()
                .map(|r| &r.attributes[..]),
            (Otlp::Metrics(q), Level::Resource) => q
                .resource_metrics
                .get(e)?
                .resource
                .as_ref()
                .map(|r| &r.attributes[..]),
            (Otlp::Traces(q), Level::Scope) => {
                let (r, s) = scope_of(n(e))?;
                q.resource_spans[r].scope_spans[s]
                    .scope
                    .as_ref()
                    .map(|x| &x.attributes[..])
            }
            (Otlp::Logs(q), Level::Scope) => {
                let (r, s) = scope_of(n(e))?;
                q.resource_logs[r].scope_logs[s]
                    .scope
                    .as_ref()
                    .map(|x| &x.attributes[..])
            }
            (Otlp::Metrics(q), Level::Scope) => {
                let (r, s) = scope_of(n(e))?;
                q.resource_metrics[r].scope_metrics[s]
                    .scope
                    .as_ref()
                    .map(|x| &x.attributes[..])
            }
            (Otlp::Traces(q), Level::Item) => {
                let (r, s, i, _) = item_of(n(e))?;
                Some(&q.resource_spans[r].scope_spans[s].spans[i].attributes)
            }
            (Otlp::Logs(q), Level::Item) => {
                let (r, s, i, _) = item_of(n(e))?;
                Some(&q.resource_logs[r].scope_logs[s].log_records[i].attributes)
            }
            (Otlp::Metrics(q), Level::Item) => {
                let (r, s, m, p) = item_of(n(e))?;
                point_attrs(&q.resource_metrics[r].scope_metrics[s].metrics[m], p).map(|v| &v[..])
            }
            (Otlp::Traces(q), Level::Event) => {
                let [it, k] = *ix.events.get(e)?;
                let (r, s, i, _) = item_of(it)?;
                Some(&q.resource_spans[r].scope_spans[s].spans[i].events[k as usize].attributes)
            }
            (Otlp::Traces(q), Level::Link) => {
                let [it, k] = *ix.links.get(e)?;
                let (r, s, i, _) = item_of(it)?;
                Some(&q.resource_spans[r].scope_spans[s].spans[i].links[k as usize].attributes)
            }
            (Otlp::Metrics(_), Level::Metric) => self.metric(ix, e).map(|m| &m.metadata[..]),
            (Otlp::Metrics(_), Level::Exemplar) => self.exemplar(ix, e).map(|x| &x.filtered_attributes[..]),
            _ => None,
        }
    }

    /// The metric of a metric entity.
    pub fn metric(&self, ix: &Index, e: usize) -> Option<&Metric> {
        let Otlp::Metrics(q) = self else { return None };
        let (r, s, m) = ix.metric_path(e)?;
        q.resource_metrics.get(r)?.scope_metrics.get(s)?.metrics.get(m)
    }

    pub fn metric_mut(&mut self, ix: &Index, e: usize) -> Option<&mut Metric> {
        let Otlp::Metrics(q) = self else { return None };
        let (r, s, m) = ix.metric_path(e)?;
        q.resource_metrics
            .get_mut(r)?
            .scope_metrics
            .get_mut(s)?
            .metrics
            .get_mut(m)
    }

    /// One exemplar of a metrics batch.
    pub fn exemplar(&self, ix: &Index, e: usize) -> Option<&Exemplar> {
        let Otlp::Metrics(q) = self else { return None };
        let [it, k] = *ix.exemplars.get(e)?;
        let (r, s, m, p) = ix.item_path(it)?;
        exemplars(&q.resource_metrics[r].scope_metrics[s].metrics[m], p)?.get(k as usize)
    }

    fn exemplar_mut(&mut self, ix: &Index, e: usize) -> Option<&mut Exemplar> {
        let Otlp::Metrics(q) = self else { return None };
        let [it, k] = *ix.exemplars.get(e)?;
        let (r, s, m, p) = ix.item_path(it)?;
        exemplars_mut(&mut q.resource_metrics[r].scope_metrics[s].metrics[m], p)?.get_mut(k as usize)
    }

    /// The span an event or link (`[item, k]`) belongs to.
    fn span_of(&self, ix: &Index, item: u32) -> Option<&Span> {
        let Otlp::Traces(q) = self else { return None };
        let (r, s, i, _) = ix.item_path(item)?;
        Some(&q.resource_spans[r].scope_spans[s].spans[i])
    }

    /// One span event of a traces batch.
    pub fn event(&self, ix: &Index, e: usize) -> Option<&Event> {
        let [it, k] = *ix.events.get(e)?;
        self.span_of(ix, it)?.events.get(k as usize)
    }

    pub fn event_mut(&mut self, ix: &Index, e: usize) -> Option<&mut Event> {
        let Otlp::Traces(q) = self else { return None };
        let [it, k] = *ix.events.get(e)?;
        let (r, s, i, _) = ix.item_path(it)?;
        q.resource_spans[r].scope_spans[s].spans[i]
            .events
            .get_mut(k as usize)
    }

    /// One span link of a traces batch.
    pub fn link(&self, ix: &Index, e: usize) -> Option<&Link> {
        let [it, k] = *ix.links.get(e)?;
        self.span_of(ix, it)?.links.get(k as usize)
    }

    /// Mutable attributes of one entity, creating an empty resource or scope
    /// message if the request had none. `None` if the entity does not exist.
    pub fn attrs_mut(&mut self, ix: &Index, level: Level, e: usize) -> Option<&mut Vec<KeyValue>> {
        let scope_of = |sc: u32| ix.scopes.get(sc as usize).map(|s| (s[0] as usize, s[1] as usize));
        let item_of = |it: u32| {
            let [sc, i, j] = *ix.items.get(it as usize)?;
            let (r, s) = scope_of(sc)?;
            Some((r, s, i as usize, j as usize))
        };
        match level {
            Level::Metric => return self.metric_mut(ix, e).map(|m| &mut m.metadata),
            Level::Exemplar => return self.exemplar_mut(ix, e).map(|x| &mut x.filtered_attributes),
            _ => {}
        }
        match (self, level) {
            (Otlp::Traces(q), Level::Resource) => Some(
                &mut q
                    .resource_spans
                    .get_mut(e)?
                    .resource
                    .get_or_insert_with(Default::default)
                    .attributes,
            ),
            (Otlp::Logs(q), Level::Resource) => Some(
                &mut q
                    .resource_logs
                    .get_mut(e)?
                    .resource
                    .get_or_insert_with(Default::default)
                    .attributes,
            ),
            (Otlp::Metrics(q), Level::Resource) => Some(
                &mut q
                    .resource_metrics
                    .get_mut(e)?
                    .resource
                    .get_or_insert_with(Default::default)
                    .attributes,
            ),
            (Otlp::Traces(q), Level::Scope) => {
                let (r, s) = scope_of(n(e))?;
                Some(
                    &mut q.resource_spans[r].scope_spans[s]
                        .scope
                        .get_or_insert_with(Default::default)
                        .attributes,
                )
            }
            (Otlp::Logs(q), Level::Scope) => {
                let (r, s) = scope_of(n(e))?;
                Some(
                    &mut q.resource_logs[r].scope_logs[s]
                        .scope
                        .get_or_insert_with(Default::default)
                        .attributes,
                )
            }
            (Otlp::Metrics(q), Level::Scope) => {
                let (r, s) = scope_of(n(e))?;
                Some(
                    &mut q.resource_metrics[r].scope_metrics[s]
                        .scope
                        .get_or_insert_with(Default::default)
                        .attributes,
                )
            }
            (Otlp::Traces(q), Level::Item) => {
                let (r, s, i, _) = item_of(n(e))?;
                Some(&mut q.resource_spans[r].scope_spans[s].spans[i].attributes)
            }
            (Otlp::Logs(q), Level::Item) => {
                let (r, s, i, _) = item_of(n(e))?;
                Some(&mut q.resource_logs[r].scope_logs[s].log_records[i].attributes)
            }
            (Otlp::Metrics(q), Level::Item) => {
                let (r, s, m, p) = item_of(n(e))?;
                point_attrs_mut(&mut q.resource_metrics[r].scope_metrics[s].metrics[m], p)
            }
            (Otlp::Traces(q), Level::Event) => {
                let [it, k] = *ix.events.get(e)?;
                let (r, s, i, _) = item_of(it)?;
                Some(&mut q.resource_spans[r].scope_spans[s].spans[i].events[k as usize].attributes)
            }
            (Otlp::Traces(q), Level::Link) => {
                let [it, k] = *ix.links.get(e)?;
                let (r, s, i, _) = item_of(it)?;
                Some(&mut q.resource_spans[r].scope_spans[s].spans[i].links[k as usize].attributes)
            }
            _ => None,
        }
    }
}
