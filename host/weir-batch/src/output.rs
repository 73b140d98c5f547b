//! Removing items (drops) and splitting a batch by route, in place where possible.

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

impl Clone for Otlp {
    fn clone(&self) -> Self {
        match self {
            Otlp::Traces(q) => Otlp::Traces(q.clone()),
            Otlp::Logs(q) => Otlp::Logs(q.clone()),
            Otlp::Metrics(q) => Otlp::Metrics(q.clone()),
        }
    }
}
