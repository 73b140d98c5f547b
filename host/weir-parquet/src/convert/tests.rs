//! Conversion of rich OTLP requests (every field set) and a Parquet round trip.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampNanosecondType, UInt32Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use prost::Message;
use weir_pipeline::Signal;

use super::*;
use crate::schema;
use crate::writer::{FileSettings, properties};

pub fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

pub fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

const T0: u64 = 1_735_787_045_123_456_789; // 2025-01-02T03:04:05.123456789Z

pub fn rich_traces() -> ExportTraceServiceRequest {
    let root = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        trace_state: "vendor=abc".into(),
        parent_span_id: vec![],
        flags: 0x301,
        name: "GET /checkout".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: T0,
        end_time_unix_nano: T0 + 1_500_000,
        attributes: vec![
            kv("http.method", s("GET")),
            kv("http.status_code", Value::IntValue(200)),
            kv("sampled", Value::BoolValue(true)),
            kv("ratio", Value::DoubleValue(0.25)),
            kv("raw", Value::BytesValue(vec![0xde, 0xad])),
            kv(
                "tags",
                Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue { value: Some(s("a")) },
                        AnyValue {
                            value: Some(Value::IntValue(7)),
                        },
                    ],
                }),
            ),
            kv(
                "nested",
                Value::KvlistValue(KeyValueList {
                    values: vec![kv("k", s("v"))],
                }),
            ),
            KeyValue {
                key: "empty".into(),
                value: None,
                ..Default::default()
            },
        ],
        dropped_attributes_count: 1,
        events: vec![
            span::Event {
                time_unix_nano: T0 + 10,
                name: "exception".into(),
                attributes: vec![kv("exception.type", s("IOError"))],
                dropped_attributes_count: 2,
            },
            span::Event {
                time_unix_nano: T0 + 20,
                name: "retry".into(),
                attributes: vec![],
                dropped_attributes_count: 0,
            },
        ],
        dropped_events_count: 3,
        links: vec![span::Link {
            trace_id: vec![9; 16],
            span_id: vec![8; 8],
            trace_state: "x=y".into(),
            attributes: vec![kv("link.kind", s("follows"))],
            dropped_attributes_count: 4,
            flags: 1,
        }],
        dropped_links_count: 5,
        status: Some(Status {
            message: "boom".into(),
            code: 2,
        }),
    };
    let child = Span {
        trace_id: vec![1; 16],
        span_id: vec![3; 8],
        parent_span_id: vec![2; 8],
        name: "SELECT".into(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: T0 + 100,
        end_time_unix_nano: T0 + 50,
        ..Default::default()
    };
    let bad = Span {
        trace_id: vec![1; 3],
        span_id: vec![4; 8],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", s("checkout")),
                        kv("host.name", s("node-1")),
                        kv("process.pid", Value::IntValue(42)),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "io.weir.http".into(),
                        version: "1.2.3".into(),
                        attributes: vec![kv("scope.attr", s("on"))],
                        dropped_attributes_count: 0,
                    }),
                    spans: vec![root, bad, child],
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.25.0".into(),
            },
            ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    scope: None,
                    spans: vec![Span {
                        trace_id: vec![5; 16],
                        span_id: vec![6; 8],
                        kind: 99,
                        status: Some(Status {
                            code: 7,
                            message: String::new(),
                        }),
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            },
        ],
    }
}

pub fn rich_logs() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("billing")), kv("k8s.pod.name", s("pod-1"))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "logger".into(),
                    version: "0.9".into(),
                    ..Default::default()
                }),
                log_records: vec![
                    LogRecord {
                        time_unix_nano: T0,
                        observed_time_unix_nano: T0 + 5,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: Some(AnyValue {
                            value: Some(s("payment failed")),
                        }),
                        attributes: vec![kv("order.id", Value::IntValue(123))],
                        dropped_attributes_count: 1,
                        flags: 1,
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        event_name: "payment.failure".into(),
                    },
                    LogRecord {
                        observed_time_unix_nano: T0 + 6,
                        body: Some(AnyValue {
                            value: Some(Value::KvlistValue(KeyValueList {
                                values: vec![kv("msg", s("hi"))],
                            })),
                        }),
                        ..Default::default()
                    },
                    LogRecord {
                        trace_id: vec![1; 5],
                        ..Default::default()
                    },
                ],
                schema_url: "scope-url".into(),
            }],
            schema_url: "resource-url".into(),
        }],
    }
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

fn strs(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let a = col(b, name).as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
        .collect()
}

fn times(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    let a = col(b, name).as_primitive::<TimestampNanosecondType>();
    (0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))).collect()
}

fn u32s(b: &RecordBatch, name: &str) -> Vec<u32> {
    col(b, name).as_primitive::<UInt32Type>().values().to_vec()
}

fn ids(b: &RecordBatch, name: &str) -> Vec<Option<Vec<u8>>> {
    let a = col(b, name).as_fixed_size_binary();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_vec()))
        .collect()
}

pub type Entries = Vec<(String, Option<String>)>;

pub fn map_entries(a: &dyn Array, row: usize) -> Entries {
    let m = a.as_map();
    let e = m.value(row);
    let k = e.column(0).as_string::<i32>();
    let v = e.column(1).as_string::<i32>();
    (0..e.len())
        .map(|i| {
            (
                k.value(i).to_string(),
                v.is_valid(i).then(|| v.value(i).to_string()),
            )
        })
        .collect()
}

fn entries(pairs: &[(&str, Option<&str>)]) -> Entries {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect()
}

fn check_spans(b: &RecordBatch) {
    assert_eq!(b.num_rows(), 3);
    let t0 = T0 as i64;
    assert_eq!(times(b, "Timestamp"), [Some(t0), Some(t0 + 100), Some(0)]);
    assert_eq!(
        col(b, "Duration").as_primitive::<Int64Type>().values().to_vec(),
        [1_500_000, -50, 0]
    );
    assert_eq!(
        ids(b, "TraceId"),
        [Some(vec![1; 16]), Some(vec![1; 16]), Some(vec![5; 16])]
    );
    assert_eq!(
        ids(b, "SpanId"),
        [Some(vec![2; 8]), Some(vec![3; 8]), Some(vec![6; 8])]
    );
    assert_eq!(ids(b, "ParentSpanId"), [None, Some(vec![2; 8]), None]);
    assert_eq!(strs(b, "TraceState")[0].as_deref(), Some("vendor=abc"));
    assert_eq!(u32s(b, "Flags"), [0x301, 0, 0]);
    assert_eq!(
        strs(b, "SpanName"),
        [
            Some("GET /checkout".into()),
            Some("SELECT".into()),
            Some(String::new())
        ]
    );
    assert_eq!(
        strs(b, "SpanKind"),
        [
            Some("SPAN_KIND_SERVER".into()),
            Some("SPAN_KIND_CLIENT".into()),
            Some("99".into())
        ]
    );
    assert_eq!(
        strs(b, "StatusCode"),
        [
            Some("STATUS_CODE_ERROR".into()),
            Some("STATUS_CODE_UNSET".into()),
            Some("7".into())
        ]
    );
    assert_eq!(strs(b, "StatusMessage")[0].as_deref(), Some("boom"));
    assert_eq!(
        map_entries(col(b, "SpanAttributes"), 0),
        entries(&[
            ("http.method", Some("GET")),
            ("http.status_code", Some("200")),
            ("sampled", Some("true")),
            ("ratio", Some("0.25")),
            ("raw", Some("3q0=")),
            ("tags", Some("[\"a\",7]")),
            ("nested", Some("{\"k\":\"v\"}")),
            ("empty", None),
        ])
    );
    assert!(map_entries(col(b, "SpanAttributes"), 1).is_empty());
    assert_eq!(u32s(b, "DroppedAttributesCount"), [1, 0, 0]);
    assert_eq!(u32s(b, "DroppedEventsCount"), [3, 0, 0]);
    assert_eq!(u32s(b, "DroppedLinksCount"), [5, 0, 0]);

    let events = col(b, "Events").as_list::<i32>();
    assert_eq!(events.value_length(0), 2);
    assert_eq!(events.value_length(1), 0);
    let e0 = events.value(0);
    let e0 = e0.as_struct();
    assert_eq!(
        e0.column(0)
            .as_primitive::<TimestampNanosecondType>()
            .values()
            .to_vec(),
        [t0 + 10, t0 + 20]
    );
    assert_eq!(e0.column(1).as_string::<i32>().value(0), "exception");
    assert_eq!(
        map_entries(e0.column(2), 0),
        entries(&[("exception.type", Some("IOError"))])
    );
    assert_eq!(
        e0.column(3).as_primitive::<UInt32Type>().values().to_vec(),
        [2, 0]
    );

    let links = col(b, "Links").as_list::<i32>();
    assert_eq!(links.value_length(0), 1);
    let l0 = links.value(0);
    let l0 = l0.as_struct();
    assert_eq!(l0.column(0).as_fixed_size_binary().value(0), [9; 16]);
    assert_eq!(l0.column(1).as_fixed_size_binary().value(0), [8; 8]);
    assert_eq!(l0.column(2).as_string::<i32>().value(0), "x=y");
    assert_eq!(l0.column(3).as_primitive::<UInt32Type>().value(0), 1);
    assert_eq!(
        map_entries(l0.column(4), 0),
        entries(&[("link.kind", Some("follows"))])
    );
    assert_eq!(l0.column(5).as_primitive::<UInt32Type>().value(0), 4);

    assert_eq!(
        strs(b, "ServiceName"),
        [Some("checkout".into()), Some("checkout".into()), None]
    );
    assert_eq!(
        map_entries(col(b, "ResourceAttributes"), 1),
        entries(&[("host.name", Some("node-1")), ("process.pid", Some("42"))])
    );
    assert_eq!(
        strs(b, "ResourceSchemaUrl")[0].as_deref(),
        Some("https://opentelemetry.io/schemas/1.25.0")
    );
    assert_eq!(
        strs(b, "ScopeName"),
        [
            Some("io.weir.http".into()),
            Some("io.weir.http".into()),
            Some(String::new())
        ]
    );
    assert_eq!(strs(b, "ScopeVersion")[1].as_deref(), Some("1.2.3"));
    assert_eq!(
        map_entries(col(b, "ScopeAttributes"), 0),
        entries(&[("scope.attr", Some("on"))])
    );
    assert_eq!(
        strs(b, "ScopeSchemaUrl")[0].as_deref(),
        Some("https://opentelemetry.io/schemas/1.26.0")
    );
}

#[test]
fn spans_keep_every_field() {
    let c = convert(Signal::Traces, &rich_traces().encode_to_vec(), 4).expect("convert");
    assert_eq!(c.rejected.count, 1);
    assert_eq!(c.rejected.reason, Some("trace_id is not 16 bytes"));
    assert_eq!(c.batch.schema(), schema::spans());
    check_spans(&c.batch);
}

#[test]
fn logs_keep_every_field() {
    let c = convert(Signal::Logs, &rich_logs().encode_to_vec(), 3).expect("convert");
    let b = &c.batch;
    assert_eq!(c.rejected.count, 1);
    assert_eq!(b.num_rows(), 2);
    let t0 = T0 as i64;
    assert_eq!(times(b, "Timestamp"), [Some(t0), None]);
    assert_eq!(times(b, "ObservedTimestamp"), [Some(t0 + 5), Some(t0 + 6)]);
    assert_eq!(
        col(b, "SeverityNumber")
            .as_primitive::<Int32Type>()
            .values()
            .to_vec(),
        [17, 0]
    );
    assert_eq!(
        strs(b, "SeverityText"),
        [Some("ERROR".into()), Some(String::new())]
    );
    assert_eq!(
        strs(b, "Body"),
        [Some("payment failed".into()), Some("{\"msg\":\"hi\"}".into())]
    );
    assert_eq!(strs(b, "EventName")[0].as_deref(), Some("payment.failure"));
    assert_eq!(
        map_entries(col(b, "LogAttributes"), 0),
        entries(&[("order.id", Some("123"))])
    );
    assert_eq!(ids(b, "TraceId"), [Some(vec![1; 16]), None]);
    assert_eq!(ids(b, "SpanId"), [Some(vec![2; 8]), None]);
    assert_eq!(u32s(b, "TraceFlags"), [1, 0]);
    assert_eq!(u32s(b, "DroppedAttributesCount"), [1, 0]);
    assert_eq!(
        strs(b, "ServiceName"),
        [Some("billing".into()), Some("billing".into())]
    );
    assert_eq!(
        map_entries(col(b, "ResourceAttributes"), 0),
        entries(&[("k8s.pod.name", Some("pod-1"))])
    );
    assert_eq!(strs(b, "ResourceSchemaUrl")[0].as_deref(), Some("resource-url"));
    assert_eq!(strs(b, "ScopeName")[0].as_deref(), Some("logger"));
    assert_eq!(strs(b, "ScopeVersion")[0].as_deref(), Some("0.9"));
    assert_eq!(strs(b, "ScopeSchemaUrl")[0].as_deref(), Some("scope-url"));
}

#[test]
fn decodes_payloads_and_refuses_metrics() {
    let payload = Bytes::from(rich_traces().encode_to_vec());
    let c = convert(Signal::Traces, &payload, 0).expect("convert");
    assert_eq!(c.batch.num_rows(), 3);
    let err = convert(Signal::Traces, b"\xff\xff\xff", 1).expect_err("garbage");
    assert!(err.to_string().contains("not a valid OTLP"), "{err}");
    let err = convert(Signal::Logs, &payload[..payload.len() - 3], 1).expect_err("truncated");
    assert!(err.to_string().contains("not a valid OTLP"), "{err}");
    let err = convert(Signal::Metrics, &[], 0).expect_err("metrics");
    assert!(err.to_string().contains("traces and logs only"), "{err}");
}

#[test]
fn parquet_round_trip_keeps_rows_and_metadata() {
    let c = convert(Signal::Traces, &rich_traces().encode_to_vec(), 4).expect("convert");
    let settings = FileSettings {
        max_rows: 100,
        max_bytes: 1 << 20,
        max_age: std::time::Duration::from_secs(60),
        max_open_files: 4,
        row_group_rows: 2,
        zstd_level: 3,
    };
    let props = properties(Signal::Traces, &settings, "test");
    let mut w = ArrowWriter::try_new(Vec::new(), schema::spans(), Some(props)).expect("writer");
    w.write(&c.batch).expect("write");
    let bytes = Bytes::from(w.into_inner().expect("close"));
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).expect("reader");
    let kv = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
    assert_eq!(
        get(schema::SCHEMA_VERSION_KEY).as_deref(),
        Some(schema::SCHEMA_VERSION)
    );
    assert_eq!(get(schema::SIGNAL_KEY).as_deref(), Some("traces"));
    assert_eq!(reader.metadata().num_row_groups(), 2);
    let rg = reader.metadata().row_group(0);
    let column = |path: &str| {
        rg.columns()
            .iter()
            .find(|c| c.column_path().string() == path)
            .unwrap_or_else(|| panic!("no column chunk {path}"))
    };
    let values = column("SpanAttributes.key_value.value");
    assert!(
        values.statistics().is_none(),
        "no min/max on mixed attribute values"
    );
    assert!(
        values.dictionary_page_offset().is_none(),
        "no dictionary on attribute values"
    );
    assert!(
        column("SpanAttributes.key_value.key")
            .dictionary_page_offset()
            .is_some()
    );
    assert!(column("SpanName").dictionary_page_offset().is_some());
    let ts = column("Timestamp");
    assert!(
        ts.statistics().is_some(),
        "timestamps keep statistics for pruning"
    );
    assert!(
        ts.encodings()
            .any(|e| e == parquet::basic::Encoding::DELTA_BINARY_PACKED)
    );
    assert!(column("TraceId").dictionary_page_offset().is_none());
    let batches: Vec<RecordBatch> = reader
        .build()
        .expect("build")
        .collect::<Result<_, _>>()
        .expect("read");
    let back = arrow_select::concat::concat_batches(&schema::spans(), &batches).expect("concat");
    assert_eq!(back.schema(), schema::spans());
    check_spans(&back);
}

/// A request whose spans arrive out of (service, trace, start) order: two
/// resources, the later-sorting service first, traces and starts interleaved.
fn shuffled_traces() -> ExportTraceServiceRequest {
    let span = |trace: u8, id: u8, start: u64| Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        start_time_unix_nano: T0 + start,
        end_time_unix_nano: T0 + start + 1_000 * u64::from(id),
        ..Default::default()
    };
    let resource = |service: &str, spans: Vec<Span>| ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", s(service))],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            resource("web", vec![span(9, 1, 50), span(2, 2, 70), span(9, 3, 10)]),
            ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(1, 4, 0)],
                    ..Default::default()
                }],
                ..Default::default()
            },
            resource("api", vec![span(7, 5, 30), span(7, 6, 20), span(3, 7, 99)]),
        ],
    }
}

#[test]
fn spans_come_out_sorted_by_service_trace_and_start() {
    let payload = shuffled_traces().encode_to_vec();
    let b = convert(Signal::Traces, &payload, 7).expect("convert").batch;
    // api (trace 3, then trace 7 by start), web (trace 2, then 9 by start), no service last.
    let first_bytes: Vec<u8> = ids(&b, "SpanId")
        .iter()
        .map(|id| id.as_ref().map_or(0, |v| v[0]))
        .collect();
    assert_eq!(first_bytes, [7, 6, 5, 2, 3, 1, 4]);
    assert_eq!(
        strs(&b, "ServiceName"),
        [
            Some("api"),
            Some("api"),
            Some("api"),
            Some("web"),
            Some("web"),
            Some("web"),
            None
        ]
        .map(|s| s.map(str::to_string))
    );
    let t0 = T0 as i64;
    assert_eq!(
        times(&b, "Timestamp"),
        [99, 20, 30, 70, 10, 50, 0].map(|t| Some(t0 + t))
    );
    // Durations travel with their rows (end time = Timestamp + Duration).
    let durations = col(&b, "Duration").as_primitive::<Int64Type>().values().to_vec();
    assert_eq!(
        durations,
        first_bytes
            .iter()
            .map(|id| 1_000 * i64::from(*id))
            .collect::<Vec<_>>()
    );
}

#[test]
fn sorting_keeps_every_span_once() {
    let payload = shuffled_traces().encode_to_vec();
    let sorted = spans::SortedSpans::scan(&payload, 7).expect("scan");
    assert_eq!(sorted.count(), 7);
    // Converting in two parts gives the same rows as one.
    let whole = sorted.convert(0..7).expect("convert").batch;
    let a = sorted.convert(0..3).expect("convert").batch;
    let b = sorted.convert(3..7).expect("convert").batch;
    assert_eq!(ids(&whole, "SpanId")[..3], ids(&a, "SpanId")[..]);
    assert_eq!(ids(&whole, "SpanId")[3..], ids(&b, "SpanId")[..]);
}

#[test]
fn equal_resources_sort_together_and_by_trace() {
    // Two requests of one pod (equal resources) and one of another pod of the
    // same service: the first pod's spans merge and sort by trace.
    let span = |trace: u8, id: u8| Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        ..Default::default()
    };
    let pod = |name: &str, spans: Vec<Span>| ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", s("cart")), kv("k8s.pod.name", s(name))],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![
            pod("cart-a", vec![span(5, 1)]),
            pod("cart-b", vec![span(1, 2)]),
            pod("cart-a", vec![span(3, 3)]),
        ],
    };
    let b = convert(Signal::Traces, &request.encode_to_vec(), 3)
        .expect("convert")
        .batch;
    let order: Vec<u8> = ids(&b, "SpanId")
        .iter()
        .map(|id| id.as_ref().map_or(0, |v| v[0]))
        .collect();
    assert_eq!(order, [3, 1, 2]);
}

#[test]
fn chunks_hold_the_sorted_rows_in_order() {
    let payload = shuffled_traces().encode_to_vec();
    let whole = convert(Signal::Traces, &payload, 7).expect("convert").batch;
    let mut sizes = Vec::new();
    let mut span_ids = Vec::new();
    convert_chunks(Signal::Traces, &payload, 7, 3, |c| {
        sizes.push(c.batch.num_rows());
        span_ids.extend(ids(&c.batch, "SpanId"));
        true
    })
    .expect("chunks");
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(span_ids, ids(&whole, "SpanId"));
    // A receiver that stops asking ends the conversion early.
    let mut calls = 0;
    convert_chunks(Signal::Traces, &payload, 7, 3, |_| {
        calls += 1;
        false
    })
    .expect("chunks");
    assert_eq!(calls, 1);
}
