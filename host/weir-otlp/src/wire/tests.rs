use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use super::*;

fn traces(per_scope: &[usize]) -> Vec<u8> {
    let scope_spans = per_scope
        .iter()
        .map(|&n| ScopeSpans {
            spans: (0..n)
                .map(|i| Span {
                    name: format!("span-{i}"),
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                scope_spans,
                ..Default::default()
            },
            ResourceSpans::default(),
        ],
    }
    .encode_to_vec()
}

#[test]
fn counts_spans_across_resources_and_scopes() {
    assert_eq!(count_items(Signal::Traces, &traces(&[3, 0, 4])), Ok(7));
    assert_eq!(count_items(Signal::Traces, &[]), Ok(0));
}

#[test]
fn concatenated_requests_count_as_one() {
    let mut two = traces(&[2]);
    two.extend(traces(&[5]));
    assert_eq!(count_items(Signal::Traces, &two), Ok(7));
    assert_eq!(
        ExportTraceServiceRequest::decode(&two[..]).map(|r| r.resource_spans.len()),
        Ok(4)
    );
}

#[test]
fn counts_metric_data_points() {
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "g".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint::default(); 3],
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "h".into(),
                        data: Some(metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint::default(); 2],
                            aggregation_temporality: 1,
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(count_items(Signal::Metrics, &req.encode_to_vec()), Ok(5));
}

#[test]
fn rejects_wrong_id_lengths() {
    let mut req = ExportTraceServiceRequest::decode(&traces(&[1])[..]).expect("valid");
    req.resource_spans[0].scope_spans[0].spans[0].span_id = vec![1; 4];
    let err = count_items(Signal::Traces, &req.encode_to_vec()).expect_err("short span id");
    assert_eq!(
        err.to_string(),
        "resource_spans[0].scope_spans[0].spans[0].span_id: must be 8 bytes (4 bytes) at byte 26"
    );
    req.resource_spans[0].scope_spans[0].spans[0].span_id = vec![];
    let err = count_items(Signal::Traces, &req.encode_to_vec()).expect_err("no span id");
    assert_eq!(
        (err.path.as_str(), err.what, err.note.as_deref()),
        (
            "resource_spans[0].scope_spans[0].spans[0].span_id",
            "must be 8 bytes",
            Some("missing")
        )
    );
}

#[test]
fn rejects_garbage_and_truncation() {
    let good = traces(&[3]);
    assert!(count_items(Signal::Traces, &good[..good.len() - 3]).is_err());
    assert!(count_items(Signal::Traces, b"\xff\xff\xff\xff").is_err());
    assert!(count_items(Signal::Traces, b"this is not protobuf at all").is_err());
    // A group wire type is never valid OTLP.
    assert!(count_items(Signal::Traces, &[0x0b]).is_err());
}

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValueList, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

use super::fixtures;

/// Whether prost decodes `b` as the signal's request.
fn prost_accepts(signal: Signal, b: &[u8]) -> bool {
    match signal {
        Signal::Traces => ExportTraceServiceRequest::decode(b).is_ok(),
        Signal::Logs => ExportLogsServiceRequest::decode(b).is_ok(),
        Signal::Metrics => ExportMetricsServiceRequest::decode(b).is_ok(),
    }
}

fn full(signal: Signal) -> (Vec<u8>, Vec<(String, String)>) {
    match signal {
        Signal::Traces => (fixtures::traces().encode_to_vec(), fixtures::trace_paths()),
        Signal::Logs => (fixtures::logs().encode_to_vec(), fixtures::log_paths()),
        Signal::Metrics => (fixtures::metrics().encode_to_vec(), fixtures::metric_paths()),
    }
}

#[test]
fn full_requests_are_valid() {
    for signal in Signal::ALL {
        let (b, _) = full(signal);
        let want = match signal {
            Signal::Traces => 2,
            Signal::Logs => 2,
            Signal::Metrics => 6,
        };
        assert_eq!(count_items(signal, &b), Ok(want), "{signal:?}");
    }
}

/// Every string field of the schema: invalid UTF-8 there is refused by prost,
/// and by `count_items` with the field's path and the bad byte's offset.
#[test]
fn invalid_utf8_in_every_string_field_is_refused_with_its_path() {
    for signal in Signal::ALL {
        let (good, paths) = full(signal);
        for (tag, path) in paths {
            let marker = format!("<{tag}>");
            let hits: Vec<usize> = good
                .windows(marker.len())
                .enumerate()
                .filter(|(_, w)| *w == marker.as_bytes())
                .map(|(i, _)| i)
                .collect();
            assert_eq!(hits.len(), 1, "{signal:?}: marker {marker} must occur once");
            let mut bad = good.clone();
            // A continuation byte with no lead byte: invalid UTF-8 at the marker's 2nd byte.
            bad[hits[0] + 1] = 0x80;
            assert!(
                !prost_accepts(signal, &bad),
                "{signal:?} {path}: prost accepts it"
            );
            let err = count_items(signal, &bad).expect_err(&path);
            assert_eq!(
                (err.path.as_str(), err.what, err.offset),
                (path.as_str(), "invalid UTF-8", hits[0] + 1),
                "{signal:?}: {err}"
            );
        }
    }
}

#[test]
fn error_names_the_attribute_by_key() {
    let mut req = fixtures::traces();
    let spans = &mut req.resource_spans[0].scope_spans[0].spans;
    spans[1].attributes = vec![fixtures::kv("http.url", fixtures::string("<bad>"))];
    let mut b = req.encode_to_vec();
    let at = b.windows(5).position(|w| w == b"<bad>").expect("marker");
    b[at] = 0xff;
    let err = count_items(Signal::Traces, &b).expect_err("bad UTF-8");
    assert_eq!(
        err.to_string(),
        format!(
            "resource_spans[0].scope_spans[0].spans[1].attributes[\"http.url\"].value.string_value: invalid UTF-8 at byte {at}"
        )
    );
}

/// A request `[field 1: ResourceX [field 2: ScopeX [field 2: item]]]` around an
/// encoded item, built by hand so tests can put anything in the item.
fn wrap(item: &[u8]) -> Vec<u8> {
    let mut b = item.to_vec();
    for _ in 0..2 {
        b = field(2, &b);
    }
    field(1, &b)
}

fn field(number: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    cursor::put_varint(&mut out, (number << 3) | 2);
    cursor::put_varint(&mut out, body.len() as u64);
    out.extend_from_slice(body);
    out
}

#[test]
fn unknown_fields_are_accepted_at_every_level() {
    // Field 900 as varint, 64-bit, length-delimited and 32-bit.
    let unknown: &[u8] = &[
        0xa0, 0x38, 0x05, 0xa1, 0x38, 1, 2, 3, 4, 5, 6, 7, 8, 0xa2, 0x38, 0x02, 0xff, 0xfe, 0xa5, 0x38, 1, 2,
        3, 4,
    ];
    let span = fixtures::full_span().encode_to_vec();
    let mut item = span.clone();
    item.extend_from_slice(unknown);
    let mut scope = field(2, &item);
    scope.extend_from_slice(unknown);
    let mut resource = field(2, &scope);
    resource.extend_from_slice(unknown);
    let mut request = field(1, &resource);
    request.extend_from_slice(unknown);
    assert!(prost_accepts(Signal::Traces, &request));
    assert_eq!(count_items(Signal::Traces, &request), Ok(1));
    // And inside an attribute's AnyValue.
    let mut any = fixtures::string("x").encode_to_vec();
    any.extend_from_slice(unknown);
    let mut kv = field(1, b"k");
    kv.extend(field(2, &any));
    let mut span = span;
    span.extend(field(9, &kv));
    assert_eq!(count_items(Signal::Traces, &wrap(&span)), Ok(1));
}

#[test]
fn known_fields_with_the_wrong_wire_type_are_refused() {
    let span = fixtures::plain_span(1).encode_to_vec();
    // name (5) as a varint; kind (6) as length-delimited; flags (16) as a varint.
    for extra in [&[0x28, 0x01][..], &[0x32, 0x00], &[0x80, 0x01, 0x01]] {
        let mut item = span.clone();
        item.extend_from_slice(extra);
        let b = wrap(&item);
        assert!(!prost_accepts(Signal::Traces, &b), "{extra:?}");
        let err = count_items(Signal::Traces, &b).expect_err("wrong wire type");
        assert!(err.what.contains("wire type"), "{err}");
        assert!(
            err.path.starts_with("resource_spans[0].scope_spans[0].spans[0]."),
            "{err}"
        );
    }
}

#[test]
fn packed_repeated_fields_are_checked() {
    let mut req = fixtures::metrics();
    let good = req.encode_to_vec();
    assert!(count_items(Signal::Metrics, &good).is_ok());
    // Unpacked elements are valid too.
    let point = HistogramDataPoint {
        bucket_counts: vec![1],
        ..Default::default()
    }
    .encode_to_vec();
    let mut unpacked = point.clone();
    unpacked.extend_from_slice(&[0x31, 1, 0, 0, 0, 0, 0, 0, 0]);
    let histogram = |p: &[u8]| {
        let mut metric = field(9, &field(1, p));
        metric.extend(field(1, b"h"));
        wrap(&metric)
    };
    assert!(prost_accepts(Signal::Metrics, &histogram(&unpacked)));
    assert_eq!(count_items(Signal::Metrics, &histogram(&unpacked)), Ok(1));
    // A packed fixed64 run that is not a multiple of 8 bytes.
    let mut ragged = point;
    ragged.extend(field(6, &[1, 2, 3]));
    assert!(!prost_accepts(Signal::Metrics, &histogram(&ragged)));
    let err = count_items(Signal::Metrics, &histogram(&ragged)).expect_err("ragged packed field");
    assert!(
        err.path.ends_with("histogram.data_points[0].bucket_counts"),
        "{err}"
    );
    // A truncated varint in exponential histogram bucket counts.
    req.resource_metrics[0].scope_metrics[0].metrics.truncate(0);
    let buckets = field(2, &[0x80]);
    let mut point = field(8, &buckets);
    point.extend_from_slice(&[0x30, 0x01]);
    let mut metric = field(10, &field(1, &point));
    metric.extend(field(1, b"e"));
    let b = wrap(&metric);
    assert!(!prost_accepts(Signal::Metrics, &b));
    let err = count_items(Signal::Metrics, &b).expect_err("truncated varint");
    assert!(err.path.ends_with("positive.bucket_counts"), "{err}");
}

#[test]
fn id_lengths_are_checked_on_links_and_exemplars() {
    let mut req = fixtures::traces();
    req.resource_spans[0].scope_spans[0].spans[1].links[0].trace_id = vec![1; 5];
    let err = count_items(Signal::Traces, &req.encode_to_vec()).expect_err("short link trace_id");
    assert!(err.path.ends_with("spans[1].links[0].trace_id"), "{err}");
    assert!(
        err.to_string()
            .contains("trace_id: must be empty or 16 bytes (5 bytes) at byte"),
        "{err}"
    );
    req.resource_spans[0].scope_spans[0].spans[1].links[0].trace_id = Vec::new();
    req.resource_spans[0].scope_spans[0].spans[1].links[0].span_id = Vec::new();
    assert_eq!(count_items(Signal::Traces, &req.encode_to_vec()), Ok(2));

    let mut req = fixtures::metrics();
    let metric = &mut req.resource_metrics[0].scope_metrics[0].metrics[0];
    let Some(metric::Data::Gauge(gauge)) = &mut metric.data else {
        panic!("fixture's first metric is a gauge");
    };
    gauge.data_points[0].exemplars[0].span_id = vec![1; 3];
    let err = count_items(Signal::Metrics, &req.encode_to_vec()).expect_err("short exemplar span_id");
    assert!(
        err.path.ends_with("gauge.data_points[0].exemplars[0].span_id"),
        "{err}"
    );
    gauge_exemplar_ids(&mut req, Vec::new(), vec![2; 17]);
    let err = count_items(Signal::Metrics, &req.encode_to_vec()).expect_err("long exemplar trace_id");
    assert!(err.path.ends_with("exemplars[0].trace_id"), "{err}");
    gauge_exemplar_ids(&mut req, Vec::new(), Vec::new());
    assert_eq!(count_items(Signal::Metrics, &req.encode_to_vec()), Ok(6));
}

fn gauge_exemplar_ids(req: &mut ExportMetricsServiceRequest, span_id: Vec<u8>, trace_id: Vec<u8>) {
    if let Some(metric::Data::Gauge(g)) = &mut req.resource_metrics[0].scope_metrics[0].metrics[0].data {
        g.data_points[0].exemplars[0].span_id = span_id;
        g.data_points[0].exemplars[0].trace_id = trace_id;
    }
}

fn nested_arrays(levels: usize) -> AnyValue {
    let mut v = fixtures::string("leaf");
    for _ in 0..levels {
        v = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![v] })),
        };
    }
    v
}

fn nested_kvlists(levels: usize) -> AnyValue {
    let mut v = fixtures::string("leaf");
    for _ in 0..levels {
        v = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![fixtures::kv("k", v)],
            })),
        };
    }
    v
}

/// `count_items` draws the nesting line exactly where prost does, wherever the
/// AnyValue sits.
#[test]
fn anyvalue_nesting_limit_matches_prost() {
    let log_body = |v: AnyValue| {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        body: Some(v),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    };
    let span_attr = |v: AnyValue| {
        let mut req = ExportTraceServiceRequest::decode(&traces(&[1])[..]).expect("valid");
        req.resource_spans[0].scope_spans[0].spans[0].attributes = vec![fixtures::kv("deep", v)];
        req.encode_to_vec()
    };
    let exemplar_attr = |v: AnyValue| {
        let mut req = fixtures::metrics();
        if let Some(metric::Data::Gauge(g)) = &mut req.resource_metrics[0].scope_metrics[0].metrics[0].data {
            g.data_points[0].exemplars[0].filtered_attributes = vec![fixtures::kv("deep", v)];
        }
        req.encode_to_vec()
    };
    type Build<'a> = &'a dyn Fn(AnyValue) -> Vec<u8>;
    let cases: [(Signal, Build); 3] = [
        (Signal::Logs, &log_body),
        (Signal::Traces, &span_attr),
        (Signal::Metrics, &exemplar_attr),
    ];
    for (signal, build) in cases {
        for (nest, span_limit) in [(nested_arrays as fn(usize) -> AnyValue, 48), (nested_kvlists, 32)] {
            let mut limit = None;
            for levels in 20..60 {
                let b = build(nest(levels));
                let prost = prost_accepts(signal, &b);
                let ours = count_items(signal, &b);
                assert_eq!(prost, ours.is_ok(), "{signal:?}, {levels} levels: {ours:?}");
                if !prost && limit.is_none() {
                    limit = Some(levels);
                    let err = ours.expect_err("too deep");
                    assert!(err.what.contains("nested too deep"), "{err}");
                    assert!(err.to_string().len() < 1000, "path is elided: {err}");
                }
            }
            assert!(limit.is_some(), "{signal:?}: prost's limit was not reached");
            if signal == Signal::Traces {
                // As MAX_MESSAGE_DEPTH's docs say: 47 arrays or 31 kvlists in a span attribute.
                assert_eq!(limit, Some(span_limit));
            }
        }
    }
}

#[test]
fn the_tenth_varint_byte_may_not_overflow() {
    // Span dropped_attributes_count (10) as a 10-byte varint whose last byte is 2.
    let mut span = fixtures::plain_span(1).encode_to_vec();
    span.push(0x50);
    span.extend_from_slice(&[0xff; 9]);
    span.push(0x02);
    assert!(!prost_accepts(Signal::Traces, &wrap(&span)));
    assert!(count_items(Signal::Traces, &wrap(&span)).is_err());
    *span.last_mut().expect("non-empty") = 0x01;
    assert!(prost_accepts(Signal::Traces, &wrap(&span)));
    assert_eq!(count_items(Signal::Traces, &wrap(&span)), Ok(1));
}

/// Random corruptions of valid requests: whatever prost refuses, `count_items`
/// refuses too (it may refuse more: id lengths, groups).
#[test]
fn refuses_whatever_prost_refuses_under_random_corruption() {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move |n: usize| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % n as u64) as usize
    };
    let mut refused_by_prost = 0;
    for signal in Signal::ALL {
        let (good, _) = full(signal);
        for round in 0..3000 {
            let mut b = good.clone();
            for _ in 0..1 + round % 3 {
                let at = rand(b.len());
                match rand(4) {
                    0 => b[at] = rand(256) as u8,
                    1 => b[at] ^= 1 << rand(8),
                    2 => b.insert(at, rand(256) as u8),
                    _ => {
                        b.remove(at);
                    }
                }
            }
            if !prost_accepts(signal, &b) {
                refused_by_prost += 1;
                assert!(
                    count_items(signal, &b).is_err(),
                    "{signal:?} round {round}: {b:?}"
                );
            }
        }
    }
    assert!(
        refused_by_prost > 1000,
        "the corruptions should often break the request"
    );
}
