//! Removing items (drops) and splitting a batch by route, in place where possible.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric;

use crate::tree::{Otlp, point_count};

/// Keeps the items whose flag is true (flags in entity order), then removes
/// scopes and resources left empty.
pub fn retain(tree: &mut Otlp, keep: &[bool]) {
    let mut k = 0usize;
    let mut next = move || {
        let v = keep.get(k).copied().unwrap_or(true);
        k += 1;
        v
    };
    match tree {
        Otlp::Traces(q) => {
            for rs in &mut q.resource_spans {
                for ss in &mut rs.scope_spans {
                    ss.spans.retain(|_| next());
                }
                rs.scope_spans.retain(|ss| !ss.spans.is_empty());
            }
            q.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
        }
        Otlp::Logs(q) => {
            for rl in &mut q.resource_logs {
                for sl in &mut rl.scope_logs {
                    sl.log_records.retain(|_| next());
                }
                rl.scope_logs.retain(|sl| !sl.log_records.is_empty());
            }
            q.resource_logs.retain(|rl| !rl.scope_logs.is_empty());
        }
        Otlp::Metrics(q) => {
            for rm in &mut q.resource_metrics {
                for sm in &mut rm.scope_metrics {
                    for m in &mut sm.metrics {
                        match &mut m.data {
                            Some(metric::Data::Gauge(g)) => g.data_points.retain(|_| next()),
                            Some(metric::Data::Sum(s)) => s.data_points.retain(|_| next()),
                            Some(metric::Data::Histogram(h)) => h.data_points.retain(|_| next()),
                            Some(metric::Data::ExponentialHistogram(h)) => h.data_points.retain(|_| next()),
                            Some(metric::Data::Summary(s)) => s.data_points.retain(|_| next()),
                            None => {}
                        }
                    }
                    sm.metrics.retain(|m| point_count(m) > 0);
                }
                rm.scope_metrics.retain(|sm| !sm.metrics.is_empty());
            }
            q.resource_metrics.retain(|rm| !rm.scope_metrics.is_empty());
        }
    }
}

/// Splits a batch into `parts` batches, item `i` going to part `part[i]`
/// (items in entity order). Spans and log records are moved, not copied; only
/// the resource and scope headers are cloned into each part that uses them.
/// Metrics (rarely routed, and nested one level deeper) are copied and trimmed.
pub fn split(tree: Otlp, part: &[usize], parts: usize) -> Vec<Otlp> {
    let mut k = 0usize;
    let mut next = move || {
        let p = part.get(k).copied().unwrap_or(0);
        k += 1;
        p
    };
    match tree {
        Otlp::Traces(q) => split_nested(
            q.resource_spans,
            parts,
            &mut next,
            |r| &mut r.scope_spans,
            |s| &mut s.spans,
        )
        .into_iter()
        .map(|resource_spans| Otlp::Traces(ExportTraceServiceRequest { resource_spans }))
        .collect(),
        Otlp::Logs(q) => split_nested(
            q.resource_logs,
            parts,
            &mut next,
            |r| &mut r.scope_logs,
            |s| &mut s.log_records,
        )
        .into_iter()
        .map(|resource_logs| Otlp::Logs(ExportLogsServiceRequest { resource_logs }))
        .collect(),
        Otlp::Metrics(_) => (0..parts)
            .map(|p| {
                let keep: Vec<bool> = part.iter().map(|&x| x == p).collect();
                let mut copy = tree.clone();
                retain(&mut copy, &keep);
                copy
            })
            .collect(),
    }
}

fn empty<T>(n: usize) -> Vec<Vec<T>> {
    (0..n).map(|_| Vec::new()).collect()
}

/// resource → scope → item lists split by `next()` (the part of each item in
/// order); resources and scopes appear in a part only if it has items under them.
fn split_nested<R: Clone, S: Clone, I>(
    resources: Vec<R>,
    parts: usize,
    next: &mut impl FnMut() -> usize,
    scopes_of: impl Fn(&mut R) -> &mut Vec<S>,
    items_of: impl Fn(&mut S) -> &mut Vec<I>,
) -> Vec<Vec<R>> {
    let mut out: Vec<Vec<R>> = empty(parts);
    for mut resource in resources {
        let scopes = std::mem::take(scopes_of(&mut resource));
        let mut per_part: Vec<Vec<S>> = empty(parts);
        for mut scope in scopes {
            let items = std::mem::take(items_of(&mut scope));
            let mut split: Vec<Vec<I>> = empty(parts);
            for item in items {
                let p = next().min(parts - 1);
                split[p].push(item);
            }
            for (p, items) in split.into_iter().enumerate() {
                if !items.is_empty() {
                    // `scope` has no items left: this clones only its header.
                    let mut header = scope.clone();
                    *items_of(&mut header) = items;
                    per_part[p].push(header);
                }
            }
        }
        for (p, scopes) in per_part.into_iter().enumerate() {
            if !scopes.is_empty() {
                let mut header = resource.clone();
                *scopes_of(&mut header) = scopes;
                out[p].push(header);
            }
        }
    }
    out
}

impl Clone for Otlp {
    fn clone(&self) -> Self {
        match self {
            Otlp::Traces(q) => Otlp::Traces(q.clone()),
            Otlp::Logs(q) => Otlp::Logs(q.clone()),
            Otlp::Metrics(q) => Otlp::Metrics(q.clone()),
        }
    }
}
