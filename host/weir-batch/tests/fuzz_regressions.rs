//! What the `plugin_changes` fuzz target (fuzz/, docs/fuzzing.md) found in
//! the host's apply path: an edit whose value nests so deep that the batch
//! weir hands on cannot be decoded any more.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use weir_batch::{BatchError, HostBatch};
use weir_pipeline::{Batch, Signal};
use weir_plugin_contract::validate::MAX_JSON_DEPTH;
use weir_plugin_contract::{Changes, Edit, Level, Value};

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

fn set(level: Level, json: String) -> Changes {
    Changes {
        edits: vec![Edit::Attribute {
            level,
            entity: 0,
            key: "deep".into(),
            value: Some(Value::Json(json)),
        }],
        ..Changes::default()
    }
}

fn one_span() -> Batch {
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: "s".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Batch::new(Signal::Traces, req.encode_to_vec().into(), 1)
}

/// The deepest place an attribute lives: an exemplar of a data point.
fn one_exemplar() -> Batch {
    let point = NumberDataPoint {
        exemplars: vec![Exemplar::default()],
        ..Default::default()
    };
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "m".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![point],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Batch::new(Signal::Metrics, req.encode_to_vec().into(), 1)
}

#[test]
fn a_span_attribute_nested_100_deep_is_refused_before_anything_changes() {
    let mut b = HostBatch::decode(&one_span()).expect("decode");
    let e = b
        .apply(set(Level::Item, nested_objects(100)))
        .expect_err("too deep");
    assert!(
        matches!(&e, BatchError::Invalid(m) if m.contains("json value nests")),
        "{e}"
    );
    let out = b.finish();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.payload, one_span().payload, "the batch is untouched");
}

#[test]
fn the_deepest_value_allowed_at_the_deepest_level_still_decodes() {
    let mut b = HostBatch::decode(&one_exemplar()).expect("decode");
    b.apply(set(Level::Exemplar, nested_objects(MAX_JSON_DEPTH)))
        .expect("at the limit");
    let out = b.finish();
    assert_eq!(out.len(), 1);
    let req = ExportMetricsServiceRequest::decode(out[0].1.payload.as_ref())
        .expect("prost (recursion limit 100) decodes what the host encoded");
    let m = &req.resource_metrics[0].scope_metrics[0].metrics[0];
    let Some(metric::Data::Gauge(g)) = &m.data else {
        panic!("gauge kept: {m:?}");
    };
    assert_eq!(g.data_points[0].exemplars[0].filtered_attributes[0].key, "deep");
}

/// Found by reading the `plugin_changes` target: prost takes a 3-byte trace
/// id, weir's receivers (and the Collector) do not, so a replacement carrying
/// one must be refused before it replaces anything.
#[test]
fn a_replacement_the_wire_walk_refuses_is_refused() {
    let mut b = HostBatch::decode(&one_span()).expect("decode");
    let bad = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 3],
                    span_id: vec![2; 8],
                    name: "x".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let e = b.shape_of_replacement(&bad).expect_err("refused");
    assert!(e.to_string().contains("replace-otlp"), "{e}");
    let changes = Changes {
        replace: Some(bad),
        ..Changes::default()
    };
    assert!(matches!(b.apply(changes), Err(BatchError::Invalid(_))));
    assert_eq!(b.items(), 1, "the batch is as it was");
}
