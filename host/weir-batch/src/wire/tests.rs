//! The wire form against the decoded form as the reference: random requests
//! and random change lists must read, apply and come out the same (compared
//! decoded, since the wire form keeps untouched bytes and field order).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use weir_pipeline::{Batch, Signal};
use weir_plugin_sdk::{BatchAccess, Changes, Edit, Field, Level, Value};

use crate::{HostBatch, Matcher};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const KEYS: [&str; 6] = [
    "service.name",
    "user.email",
    "http.route",
    "k",
    "db.statement",
    "tenant",
];

fn value(rng: &mut Rng, depth: u32) -> Option<AnyValue> {
    use any_value::Value as V;
    let v = match rng.below(if depth > 1 { 6 } else { 8 }) {
        0 => None,
        1 => Some(V::IntValue(rng.next() as i64)),
        2 => Some(V::BoolValue(rng.chance(50))),
        3 => Some(V::DoubleValue(rng.below(1000) as f64 / 7.0)),
        4 => Some(V::BytesValue(vec![rng.below(255) as u8; rng.below(4) as usize])),
        6 => Some(V::ArrayValue(ArrayValue {
            values: (0..rng.below(3)).filter_map(|_| value(rng, depth + 1)).collect(),
        })),
        7 => Some(V::KvlistValue(KeyValueList {
            values: attributes(rng, 2, depth + 1),
        })),
        _ => Some(V::StringValue(format!("v{}@x.io", rng.below(5)))),
    };
    Some(AnyValue { value: v })
}

fn attributes(rng: &mut Rng, max: u64, depth: u32) -> Vec<KeyValue> {
    (0..rng.below(max + 1))
        .map(|_| KeyValue {
            key: KEYS[rng.below(KEYS.len() as u64) as usize].into(),
            value: if rng.chance(90) { value(rng, depth) } else { None },
            ..Default::default()
        })
        .collect()
}

fn resource(rng: &mut Rng) -> Option<Resource> {
    rng.chance(85).then(|| Resource {
        attributes: attributes(rng, 4, 0),
        dropped_attributes_count: rng.below(2) as u32,
        ..Default::default()
    })
}

fn scope(rng: &mut Rng) -> Option<InstrumentationScope> {
    rng.chance(80).then(|| InstrumentationScope {
        name: format!("lib{}", rng.below(3)),
        version: "1.0".into(),
        attributes: attributes(rng, 2, 0),
        ..Default::default()
    })
}

fn span(rng: &mut Rng) -> Span {
    Span {
        trace_id: vec![rng.below(256) as u8; 16],
        span_id: vec![rng.below(256) as u8; 8],
        parent_span_id: if rng.chance(50) { vec![7; 8] } else { Vec::new() },
        trace_state: if rng.chance(20) {
            "a=b".into()
        } else {
            String::new()
        },
        name: format!("op{}", rng.below(4)),
        kind: rng.below(6) as i32,
        start_time_unix_nano: rng.next(),
        end_time_unix_nano: rng.next(),
        attributes: attributes(rng, 5, 0),
        events: (0..rng.below(3))
            .map(|_| Event {
                time_unix_nano: rng.next(),
                name: format!("ev{}", rng.below(3)),
                attributes: attributes(rng, 2, 0),
                ..Default::default()
            })
            .collect(),
        links: (0..rng.below(3))
            .map(|_| Link {
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                trace_state: "t".into(),
                attributes: attributes(rng, 2, 0),
                flags: rng.below(3) as u32,
                ..Default::default()
            })
            .collect(),
        status: rng.chance(70).then(|| Status {
            message: if rng.chance(50) {
                "boom".into()
            } else {
                String::new()
            },
            code: rng.below(3) as i32,
        }),
        flags: rng.below(2) as u32,
        ..Default::default()
    }
}

fn log(rng: &mut Rng) -> LogRecord {
    LogRecord {
        time_unix_nano: rng.next(),
        observed_time_unix_nano: rng.next(),
        severity_number: rng.below(24) as i32,
        severity_text: "INFO".into(),
        body: if rng.chance(80) { value(rng, 0) } else { None },
        attributes: attributes(rng, 5, 0),
        flags: rng.below(2) as u32,
        trace_id: if rng.chance(50) { vec![3; 16] } else { Vec::new() },
        span_id: if rng.chance(50) { vec![4; 8] } else { Vec::new() },
        event_name: if rng.chance(30) { "e".into() } else { String::new() },
        ..Default::default()
    }
}

fn traces(rng: &mut Rng) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: (0..1 + rng.below(3))
            .map(|_| ResourceSpans {
                resource: resource(rng),
                scope_spans: (0..rng.below(3))
                    .map(|_| ScopeSpans {
                        scope: scope(rng),
                        spans: (0..rng.below(5)).map(|_| span(rng)).collect(),
                        schema_url: if rng.chance(30) {
                            "https://s/1".into()
                        } else {
                            String::new()
                        },
                    })
                    .collect(),
                schema_url: if rng.chance(30) {
                    "https://r/1".into()
                } else {
                    String::new()
                },
            })
            .collect(),
    }
    .encode_to_vec()
}

fn logs(rng: &mut Rng) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: (0..1 + rng.below(3))
            .map(|_| ResourceLogs {
                resource: resource(rng),
                scope_logs: (0..rng.below(3))
                    .map(|_| ScopeLogs {
                        scope: scope(rng),
                        log_records: (0..rng.below(5)).map(|_| log(rng)).collect(),
                        schema_url: String::new(),
                    })
                    .collect(),
                schema_url: String::new(),
            })
            .collect(),
    }
    .encode_to_vec()
}

const LEVELS: [Level; 5] = [
    Level::Resource,
    Level::Scope,
    Level::Item,
    Level::Event,
    Level::Link,
];
const FIELDS: [Field; 17] = [
    Field::Name,
    Field::TraceId,
    Field::SpanId,
    Field::ParentSpanId,
    Field::Kind,
    Field::StatusCode,
    Field::StatusMessage,
    Field::StartTime,
    Field::EndTime,
    Field::TraceState,
    Field::Flags,
    Field::Body,
    Field::SeverityText,
    Field::SeverityNumber,
    Field::Time,
    Field::ObservedTime,
    Field::EventName,
];

fn random_value(rng: &mut Rng) -> Value {
    match rng.below(6) {
        0 => Value::Int(rng.below(5) as i64),
        1 => Value::Bool(true),
        2 => Value::Double(0.5),
        3 => Value::Bytes(vec![1, 2]),
        4 => Value::Json(r#"{"a":[1,"x"]}"#.into()),
        _ => Value::Str("***".into()),
    }
}

fn random_changes(rng: &mut Rng, hb: &HostBatch) -> Changes {
    let mut c = Changes::default();
    let count = |l: Level| u64::from(hb.count(l));
    for _ in 0..rng.below(6) {
        let level = LEVELS[rng.below(LEVELS.len() as u64) as usize];
        // Now and then an entity out of range, which must refuse the whole list.
        let extra = u64::from(rng.chance(5));
        let entity = rng.below(count(level) + extra) as u32;
        let key = KEYS[rng.below(KEYS.len() as u64) as usize].to_string();
        c.edits.push(match rng.below(5) {
            0 => Edit::AttributeMany {
                level,
                entities: {
                    let n = count(level) as u32;
                    (0..n).filter(|_| rng.chance(50)).collect()
                },
                key,
                value: Some(random_value(rng)),
            },
            1 => Edit::Attribute {
                level,
                entity,
                key,
                value: None,
            },
            2 => Edit::Field {
                field: FIELDS[rng.below(FIELDS.len() as u64) as usize],
                item: rng.below(count(Level::Item)) as u32,
                value: if rng.chance(50) {
                    Value::Str("renamed".into())
                } else {
                    Value::Int(2)
                },
            },
            3 => Edit::EntityField {
                level: Level::Event,
                entity: rng.below(count(Level::Event)) as u32,
                field: Field::Name,
                value: Value::Str("event!".into()),
            },
            _ => Edit::Attribute {
                level,
                entity,
                key,
                value: Some(random_value(rng)),
            },
        });
    }
    let items = count(Level::Item) as u32;
    if rng.chance(40) {
        c.drops = (0..items).filter(|_| rng.chance(40)).collect();
    }
    if rng.chance(40) {
        for name in ["a", "b"] {
            let picked: Vec<u32> = (0..items).filter(|_| rng.chance(30)).collect();
            c.routes.push((name.into(), picked));
        }
    }
    c
}

/// Every read the contract offers, at every level.
fn reads(hb: &HostBatch) -> Vec<String> {
    let mut out = vec![format!("{:?}", hb.shape().counts)];
    let m = Matcher::AnyOf(vec!["v1@x.io".into()]);
    for level in LEVELS {
        out.push(format!("{:?}", hb.owners(level)));
        out.push(format!("{:?}", hb.read_attributes(level)));
        for key in KEYS {
            out.push(format!("{:?}", hb.read_attribute(level, key)));
            out.push(format!("{:?}", hb.read_attribute_inherited(level, key)));
            out.push(format!("{:?}", hb.match_attribute(level, key, &m, true)));
        }
        for field in FIELDS {
            out.push(format!("{:?}", hb.read_field_at(level, field)));
        }
        for of in LEVELS {
            out.push(format!("{:?}", hb.ancestors(level, of)));
        }
    }
    out
}

fn decoded(signal: Signal, bytes: &[u8]) -> String {
    match signal {
        Signal::Traces => format!("{:?}", ExportTraceServiceRequest::decode(bytes).expect("traces")),
        _ => format!("{:?}", ExportLogsServiceRequest::decode(bytes).expect("logs")),
    }
}

fn outputs(hb: HostBatch, signal: Signal) -> Vec<(Option<String>, usize, String)> {
    hb.finish()
        .into_iter()
        .map(|(route, b)| (route, b.items, decoded(signal, &b.payload)))
        .collect()
}

fn same_behaviour(signal: Signal, seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let bytes = match signal {
        Signal::Traces => traces(&mut rng),
        _ => logs(&mut rng),
    };
    let batch = Batch::new(signal, bytes::Bytes::from(bytes), 0);
    let mut wire = HostBatch::decode(&batch).expect("wire form");
    let mut tree = HostBatch::decode_tree(&batch).expect("decoded form");
    assert!(matches!(wire.0, crate::Repr::Wire(_)));
    for round in 0..3 {
        assert_eq!(
            reads(&wire),
            reads(&tree),
            "seed {seed}, reads before round {round}"
        );
        let changes = random_changes(&mut rng, &tree);
        let (w, t) = (wire.apply(changes.clone()), tree.apply(changes.clone()));
        assert_eq!(
            w.is_ok(),
            t.is_ok(),
            "seed {seed} round {round}: {w:?} vs {t:?} for {changes:?}"
        );
        if let (Ok(w), Ok(t)) = (w, t) {
            assert_eq!(w, t, "seed {seed} round {round}");
        }
        assert_eq!(
            decoded(signal, &wire.to_otlp()),
            decoded(signal, &tree.to_otlp()),
            "seed {seed} round {round}"
        );
    }
    assert_eq!(outputs(wire, signal), outputs(tree, signal), "seed {seed}");
}

#[test]
fn traces_read_apply_and_split_as_the_decoded_form_does() {
    for seed in 0..400 {
        same_behaviour(Signal::Traces, seed);
    }
}

#[test]
fn logs_read_apply_and_split_as_the_decoded_form_does() {
    for seed in 0..400 {
        same_behaviour(Signal::Logs, seed);
    }
}

#[test]
fn an_unchanged_batch_leaves_as_its_own_bytes() {
    let mut rng = Rng(7);
    let bytes = bytes::Bytes::from(traces(&mut rng));
    let hb = HostBatch::decode(&Batch::new(Signal::Traces, bytes.clone(), 0)).expect("wire");
    let _ = hb.read_attributes(Level::Item);
    for (_, b) in hb.finish() {
        assert_eq!(b.payload.as_ptr(), bytes.as_ptr(), "the same buffer, not a copy");
    }
}

#[test]
fn untouched_spans_are_spliced_through_byte_for_byte() {
    let mut rng = Rng(11);
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(&mut rng),
            scope_spans: vec![ScopeSpans {
                scope: scope(&mut rng),
                spans: (0..4).map(|_| span(&mut rng)).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    let bytes = request.encode_to_vec();
    let spans: Vec<Vec<u8>> = request.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .map(|s| s.encode_to_vec())
        .collect();
    let mut hb = HostBatch::decode(&Batch::new(Signal::Traces, bytes.into(), 4)).expect("wire");
    let changes = Changes {
        edits: vec![Edit::Attribute {
            level: Level::Item,
            entity: 1,
            key: "k".into(),
            value: Some(Value::Str("x".into())),
        }],
        drops: vec![2],
        ..Changes::default()
    };
    hb.apply(changes).expect("valid");
    let out = hb.finish();
    let payload = &out[0].1.payload;
    let contains = |needle: &[u8]| payload.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(&spans[0]) && contains(&spans[3]),
        "untouched spans copied as they were"
    );
    assert!(!contains(&spans[1]), "the edited span re-encoded");
    assert!(!contains(&spans[2]), "the dropped span gone");
    assert_eq!(out[0].1.items, 3);
}

#[test]
fn a_change_list_editing_most_items_decodes_the_batch_once() {
    let mut rng = Rng(5);
    let bytes = traces(&mut rng);
    let batch = Batch::new(Signal::Traces, bytes::Bytes::from(bytes), 0);
    let mut hb = HostBatch::decode(&batch).expect("wire");
    let mut reference = HostBatch::decode_tree(&batch).expect("decoded");
    let few = Changes {
        edits: vec![Edit::Attribute {
            level: Level::Item,
            entity: 0,
            key: "k".into(),
            value: Some(Value::Int(1)),
        }],
        ..Changes::default()
    };
    let n = hb.count(Level::Item);
    assert!(n >= 8, "the seed gives a batch big enough ({n} items)");
    hb.apply(few.clone()).expect("valid");
    reference.apply(few).expect("valid");
    assert!(
        matches!(hb.0, crate::Repr::Wire(_)),
        "one edit: still on the wire"
    );
    let most = Changes {
        edits: vec![Edit::AttributeMany {
            level: Level::Item,
            entities: (0..n).collect(),
            key: "k".into(),
            value: Some(Value::Str("all".into())),
        }],
        routes: vec![("a".into(), vec![1, 2])],
        ..Changes::default()
    };
    hb.apply(most.clone()).expect("valid");
    reference.apply(most).expect("valid");
    assert!(matches!(hb.0, crate::Repr::Tree(_)), "every item edited: decoded");
    assert_eq!(reads(&hb), reads(&reference));
    assert_eq!(outputs(hb, Signal::Traces), outputs(reference, Signal::Traces));
}

#[test]
fn a_request_that_is_not_protobuf_reads_empty_passes_through_and_refuses_changes() {
    let bytes = bytes::Bytes::from_static(&[0x0a, 0x05, 1]);
    let mut hb = HostBatch::decode(&Batch::new(Signal::Traces, bytes.clone(), 1)).expect("lazy");
    assert_eq!(hb.count(Level::Item), 0);
    let edit = Changes {
        drops: vec![0],
        ..Changes::default()
    };
    assert!(matches!(hb.apply(edit), Err(crate::BatchError::Decode(_))));
    assert!(
        hb.apply(Changes::default()).is_ok(),
        "no changes: nothing to refuse"
    );
    let out = hb.finish();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.payload, bytes, "untouched, as it came");
}

#[test]
fn a_batch_nobody_reads_is_not_even_indexed() {
    let mut rng = Rng(9);
    let bytes = bytes::Bytes::from(traces(&mut rng));
    let hb = HostBatch::decode(&Batch::new(Signal::Traces, bytes.clone(), 3)).expect("lazy");
    let crate::Repr::Wire(lazy) = &hb.0 else {
        panic!("traces stay on the wire")
    };
    assert_eq!(lazy.items(), 3, "the receiver's count, nothing walked");
    let out = hb.finish();
    assert_eq!(out[0].1.payload.as_ptr(), bytes.as_ptr());
    assert_eq!(out[0].1.items, 3);
}
