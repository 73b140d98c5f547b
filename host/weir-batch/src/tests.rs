use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use weir_plugin_sdk::{Edit, Value, ValueRef};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::*;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn span(name: &str, id: u8) -> Span {
    Span {
        name: name.into(),
        trace_id: vec![id; 16],
        span_id: vec![id; 8],
        kind: 2,
        attributes: vec![kv("n", name), kv("user.email", "a@b.c")],
        events: vec![Event {
            name: "ev".into(),
            attributes: vec![kv("secret", "s")],
            ..Default::default()
        }],
        links: vec![Link {
            attributes: vec![kv("l", "x")],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Two resources (svc-a with spans a1, a2; svc-b with b1).
fn batch() -> Batch {
    let rs = |svc: &str, spans: Vec<Span>| ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", svc)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    };
    let req = ExportTraceServiceRequest {
        resource_spans: vec![
            rs("svc-a", vec![span("a1", 1), span("a2", 2)]),
            rs("svc-b", vec![span("b1", 3)]),
        ],
    };
    Batch::new(weir_pipeline::Signal::Traces, Bytes::from(req.encode_to_vec()), 3)
}

fn decode_traces(b: &Batch) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(b.payload.clone()).expect("valid")
}

#[test]
fn numbers_entities_and_reads_columns() {
    let hb = HostBatch::decode(&batch()).expect("decode");
    assert_eq!(hb.len(), 3);
    assert_eq!(hb.count(Level::Resource), 2);
    assert_eq!(hb.count(Level::Event), 3);
    assert_eq!(hb.owners(Level::Item), vec![0, 0, 1]);
    assert_eq!(hb.owners(Level::Scope), vec![0, 1]);
    let names = hb.read_field(Field::Name);
    assert_eq!((names.str(0), names.str(1), names.str(2)), ("a1", "a2", "b1"));
    assert_eq!(hb.read_field(Field::TraceId).get(2), &[3u8; 16][..]);
    assert_eq!(hb.read_field(Field::Kind).u32(0), 2);
    let svc = hb.read_attribute(Level::Resource, "service.name");
    assert_eq!(svc.value(1), ValueRef::Str("svc-b"));
    assert_eq!(
        hb.read_attribute(Level::Item, "missing").value(0),
        ValueRef::Absent
    );
    let t = hb.read_attributes(Level::Item);
    assert_eq!(t.entity_offsets, vec![0, 2, 4, 6]);
    assert_eq!(t.keys.str(1), "user.email");
}

#[test]
fn untouched_batch_keeps_its_bytes() {
    let b = batch();
    let hb = HostBatch::decode(&b).expect("decode");
    let out = hb.finish();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.payload, b.payload);
}

#[test]
fn edits_drops_and_routes_apply_natively() {
    let mut hb = HostBatch::decode(&batch()).expect("decode");
    let applied = hb
        .apply(Changes {
            edits: vec![
                Edit::Attribute {
                    level: Level::Item,
                    entity: 0,
                    key: "user.email".into(),
                    value: Some(Value::Str("***".into())),
                },
                Edit::Attribute {
                    level: Level::Event,
                    entity: 2,
                    key: "secret".into(),
                    value: None,
                },
                Edit::Attribute {
                    level: Level::Resource,
                    entity: 1,
                    key: "team".into(),
                    value: Some(Value::Json("[1, \"x\"]".into())),
                },
                Edit::Field {
                    field: Field::Name,
                    item: 2,
                    value: Value::Str("renamed".into()),
                },
            ],
            drops: vec![1],
            routes: vec![("tenant-b".into(), vec![2])],
            replace: None,
        })
        .expect("valid");
    assert_eq!(applied.dropped, 1);
    assert_eq!(hb.len(), 2);
    let out = hb.finish();
    assert_eq!(out.len(), 2);
    let (default, routed) = (&out[0], &out[1]);
    assert_eq!(default.0, None);
    assert_eq!(routed.0.as_deref(), Some("tenant-b"));
    let d = decode_traces(&default.1);
    let a1 = &d.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(d.resource_spans.len(), 1);
    assert_eq!(a1.attributes[1], kv("user.email", "***"));
    let r = decode_traces(&routed.1);
    let b1 = &r.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(b1.name, "renamed");
    assert!(b1.events[0].attributes.is_empty());
    let team = &r.resource_spans[0]
        .resource
        .as_ref()
        .expect("resource")
        .attributes[1];
    assert!(matches!(
        team.value.as_ref().and_then(|v| v.value.as_ref()),
        Some(any_value::Value::ArrayValue(a)) if a.values.len() == 2
    ));
    assert_eq!((default.1.items, routed.1.items), (1, 1));
}

#[test]
fn invalid_changes_change_nothing() {
    let b = batch();
    let mut hb = HostBatch::decode(&b).expect("decode");
    let bad = Changes {
        edits: vec![Edit::Attribute {
            level: Level::Item,
            entity: 0,
            key: "k".into(),
            value: Some(Value::Str("v".into())),
        }],
        drops: vec![99],
        ..Changes::default()
    };
    assert!(hb.apply(bad).is_err());
    let field = Changes {
        edits: vec![Edit::Field {
            field: Field::Body,
            item: 0,
            value: Value::Str("x".into()),
        }],
        ..Changes::default()
    };
    assert!(hb.apply(field).is_err());
    assert_eq!(hb.finish()[0].1.payload, b.payload);
}

#[test]
fn replace_swaps_the_whole_batch() {
    let mut hb = HostBatch::decode(&batch()).expect("decode");
    let one = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span("only", 9)],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    hb.apply(Changes {
        replace: Some(one.encode_to_vec()),
        ..Changes::default()
    })
    .expect("valid");
    assert_eq!(hb.len(), 1);
    assert!(
        hb.apply(Changes {
            replace: Some(b"\xff\xff".to_vec()),
            ..Changes::default()
        })
        .is_err()
    );
}

#[test]
fn dropping_everything_yields_nothing() {
    let mut hb = HostBatch::decode(&batch()).expect("decode");
    hb.apply(Changes {
        drops: vec![0, 1, 2],
        ..Changes::default()
    })
    .expect("valid");
    assert!(hb.finish().is_empty());
}

#[test]
fn routing_splits_within_a_scope_and_keeps_headers() {
    let mut hb = HostBatch::decode(&batch()).expect("decode");
    hb.apply(Changes {
        routes: vec![("r1".into(), vec![0, 2]), ("r2".into(), vec![1])],
        ..Changes::default()
    })
    .expect("valid");
    let out = hb.finish();
    let names: Vec<Option<&str>> = out.iter().map(|(n, _)| n.as_deref()).collect();
    assert_eq!(names, [Some("r1"), Some("r2")]);
    let spans = |b: &Batch| -> Vec<(String, String)> {
        decode_traces(b)
            .resource_spans
            .iter()
            .flat_map(|rs| {
                let svc = rs.resource.as_ref().expect("resource").attributes[0].clone();
                let svc = match svc.value.and_then(|v| v.value) {
                    Some(any_value::Value::StringValue(s)) => s,
                    other => panic!("service.name {other:?}"),
                };
                rs.scope_spans
                    .iter()
                    .flat_map(|ss| ss.spans.iter())
                    .map(move |s| (svc.clone(), s.name.clone()))
            })
            .collect()
    };
    assert_eq!(
        spans(&out[0].1),
        [("svc-a".into(), "a1".into()), ("svc-b".into(), "b1".into())]
    );
    assert_eq!(spans(&out[1].1), [("svc-a".into(), "a2".into())]);
    assert_eq!((out[0].1.items, out[1].1.items), (2, 1));
    // Nothing lost or duplicated: the parts hold every span once, with its attributes.
    let a2 = &decode_traces(&out[1].1).resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(a2, &span("a2", 2));
}

#[test]
fn a_change_list_with_one_wrong_type_applies_nothing() {
    let b = batch();
    let mut hb = HostBatch::decode(&b).expect("decode");
    let mut changes = Changes::default();
    for i in 0..3 {
        changes.edits.push(Edit::Attribute {
            level: Level::Item,
            entity: i,
            key: "tagged".into(),
            value: Some(Value::Str("yes".into())),
        });
    }
    changes.edits.push(Edit::Field {
        field: Field::Name,
        item: 1,
        value: Value::Str("renamed".into()),
    });
    changes.edits.push(Edit::Field {
        field: Field::Kind,
        item: 0,
        value: Value::Str("server".into()),
    });
    changes.drops.push(2);
    let err = hb.apply(changes).expect_err("refused");
    assert!(
        err.to_string()
            .contains("edit 4: field edit of item 0 sets Kind to str"),
        "{err}"
    );
    // Nothing was applied: the batch leaves as the bytes it arrived as.
    let out = hb.finish();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.payload, b.payload);
}

#[test]
fn a_replacement_of_another_signal_is_refused_before_anything_is_discarded() {
    let b = batch();
    let hb = HostBatch::decode(&b).expect("decode");
    assert!(hb.shape_of_replacement(b"\xff\xff not protobuf").is_err());
    let shape = hb.shape_of_replacement(&b.payload).expect("same signal");
    assert_eq!(shape, hb.shape());
    assert_eq!(shape.items(), 3);
}

mod v0_2 {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::metrics::v1::{
        Exemplar, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric,
    };

    use super::*;
    use crate::Matcher;

    fn metrics_batch() -> Batch {
        let point = |n: u8| NumberDataPoint {
            attributes: vec![kv("p", &n.to_string())],
            exemplars: vec![Exemplar {
                filtered_attributes: vec![kv("user.email", "a@b.c")],
                trace_id: vec![n; 16],
                ..Default::default()
            }],
            ..Default::default()
        };
        let metric = |name: &str, points: Vec<NumberDataPoint>| Metric {
            name: name.into(),
            description: format!("{name} described"),
            unit: "ms".into(),
            metadata: vec![kv("owner", "team-a")],
            data: Some(metric::Data::Gauge(Gauge { data_points: points })),
        };
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "svc"), kv("tier", "gold")],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        attributes: vec![kv("tier", "silver")],
                        ..Default::default()
                    }),
                    metrics: vec![
                        metric("m1", vec![point(1), point(2)]),
                        metric("m2", vec![point(3)]),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Batch::new(
            weir_pipeline::Signal::Metrics,
            Bytes::from(req.encode_to_vec()),
            3,
        )
    }

    #[test]
    fn metrics_and_exemplars_are_levels_with_fields_and_attributes() {
        let hb = HostBatch::decode(&metrics_batch()).expect("decode");
        let shape = hb.shape();
        assert_eq!(shape.count(Level::Metric), 2);
        assert_eq!(shape.count(Level::Exemplar), 3);
        assert_eq!(hb.owners(Level::Metric), vec![0, 0]);
        assert_eq!(hb.owners(Level::Exemplar), vec![0, 1, 2]);
        assert_eq!(hb.ancestors(Level::Item, Level::Metric), vec![0, 0, 1]);
        assert_eq!(hb.ancestors(Level::Exemplar, Level::Metric), vec![0, 0, 1]);
        assert_eq!(hb.ancestors(Level::Exemplar, Level::Resource), vec![0, 0, 0]);
        let desc = hb.read_field_at(Level::Metric, Field::Description);
        assert_eq!((desc.str(0), desc.str(1)), ("m1 described", "m2 described"));
        assert_eq!(hb.read_field(Field::Description).str(2), "m2 described");
        let ex = hb.read_attribute(Level::Exemplar, "user.email");
        assert_eq!(ex.value(2), ValueRef::Str("a@b.c"));
        assert_eq!(
            hb.read_attribute(Level::Metric, "owner").value(1),
            ValueRef::Str("team-a")
        );
        assert_eq!(
            hb.read_field_at(Level::Exemplar, Field::TraceId).get(1),
            &[2u8; 16]
        );
    }

    #[test]
    fn inherited_reads_and_matches_run_on_the_host() {
        let hb = HostBatch::decode(&metrics_batch()).expect("decode");
        // tier: the scope's "silver" hides the resource's "gold"; service.name comes from the resource.
        let tier = hb.read_attribute_inherited(Level::Item, "tier");
        assert!((0..3).all(|i| tier.value(i) == ValueRef::Str("silver")));
        let svc = hb.read_attribute_inherited(Level::Exemplar, "service.name");
        assert_eq!(svc.value(0), ValueRef::Str("svc"));
        let absent = hb.read_attribute_inherited(Level::Item, "nope");
        assert_eq!(absent.get(0), &[0u8], "absent is exactly the byte 0");
        let any = |v: &[&str]| Matcher::AnyOf(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            hb.match_attribute(Level::Item, "p", &any(&["1", "3"]), false),
            vec![0, 2]
        );
        assert_eq!(
            hb.match_attribute(Level::Item, "tier", &any(&["silver"]), true),
            vec![0, 1, 2]
        );
        assert_eq!(
            hb.match_attribute(Level::Item, "tier", &Matcher::Absent, false),
            vec![0, 1, 2]
        );
        assert_eq!(
            hb.match_field(
                Level::Metric,
                Field::Name,
                &Matcher::Glob(weir_plugin_sdk::glob::GlobSet::new(&["m2*"]))
            ),
            vec![1]
        );
    }

    #[test]
    fn edits_reach_metrics_exemplars_and_event_names() {
        let mut hb = HostBatch::decode(&metrics_batch()).expect("decode");
        let changes = Changes {
            edits: vec![
                Edit::AttributeMany {
                    level: Level::Exemplar,
                    entities: vec![0, 1, 2],
                    key: "user.email".into(),
                    value: Some(Value::Str("***".into())),
                },
                Edit::EntityField {
                    level: Level::Metric,
                    entity: 1,
                    field: Field::Description,
                    value: Value::Str("redacted".into()),
                },
            ],
            ..Changes::default()
        };
        hb.apply(changes).expect("valid");
        assert!(
            (0..3).all(|i| hb.read_attribute(Level::Exemplar, "user.email").value(i) == ValueRef::Str("***"))
        );
        assert_eq!(
            hb.read_field_at(Level::Metric, Field::Description).str(1),
            "redacted"
        );

        let mut traces = HostBatch::decode(&batch()).expect("decode");
        let rename = Changes {
            edits: vec![Edit::EntityField {
                level: Level::Event,
                entity: 2,
                field: Field::Name,
                value: Value::Str("hidden".into()),
            }],
            ..Changes::default()
        };
        traces.apply(rename).expect("valid");
        let names = traces.read_field_at(Level::Event, Field::Name);
        assert_eq!((names.str(0), names.str(2)), ("ev", "hidden"));
        let bad = Changes {
            edits: vec![Edit::EntityField {
                level: Level::Link,
                entity: 0,
                field: Field::Name,
                value: Value::Str("x".into()),
            }],
            ..Changes::default()
        };
        let err = traces.apply(bad).expect_err("links have no settable name");
        assert!(err.to_string().contains("cannot be set on Traces Link"), "{err}");
    }
}
