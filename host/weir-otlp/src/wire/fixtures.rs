//! Test requests that set every string field of the OTLP schema, each to a
//! unique marker `<tag>`, so tests can corrupt one field and know its path.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint, exemplar, metric,
    number_data_point, summary_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};

pub fn m(tag: &str) -> String {
    format!("<{tag}>")
}

pub fn string(v: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    }
}

pub fn kv(key: impl Into<String>, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(value),
        ..Default::default()
    }
}

/// An attribute `<{p}k>` = `<{p}v>`.
pub fn attr(p: &str) -> KeyValue {
    kv(m(&format!("{p}k")), string(m(&format!("{p}v"))))
}

pub fn resource() -> Resource {
    Resource {
        attributes: vec![
            attr("r"),
            kv(
                m("ra"),
                AnyValue {
                    value: Some(any_value::Value::ArrayValue(ArrayValue {
                        values: vec![
                            string(m("rav")),
                            AnyValue {
                                value: Some(any_value::Value::KvlistValue(KeyValueList {
                                    values: vec![attr("rl")],
                                })),
                            },
                        ],
                    })),
                },
            ),
        ],
        dropped_attributes_count: 1,
        entity_refs: vec![EntityRef {
            schema_url: m("es"),
            r#type: m("et"),
            id_keys: vec![m("ei")],
            description_keys: vec![m("ed")],
        }],
    }
}

pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: m("sn"),
        version: m("sver"),
        attributes: vec![attr("s")],
        dropped_attributes_count: 2,
    }
}

/// Paths of the markers of [`resource`] and [`scope`] under `res` and `scope`.
pub fn envelope_paths(res: &str, scope: &str) -> Vec<(String, String)> {
    let r = format!("{res}.resource");
    let s = format!("{scope}.scope");
    [
        ("rk", format!("{r}.attributes[0].key")),
        ("rv", format!("{r}.attributes[\"<rk>\"].value.string_value")),
        ("ra", format!("{r}.attributes[1].key")),
        ("rav", format!("{r}.attributes[\"<ra>\"].value.array_value.values[0].string_value")),
        (
            "rlk",
            format!("{r}.attributes[\"<ra>\"].value.array_value.values[1].kvlist_value.values[0].key"),
        ),
        (
            "rlv",
            format!(
                "{r}.attributes[\"<ra>\"].value.array_value.values[1].kvlist_value.values[\"<rlk>\"].value.string_value"
            ),
        ),
        ("es", format!("{r}.entity_refs[0].schema_url")),
        ("et", format!("{r}.entity_refs[0].type")),
        ("ei", format!("{r}.entity_refs[0].id_keys")),
        ("ed", format!("{r}.entity_refs[0].description_keys")),
        ("rs", format!("{res}.schema_url")),
        ("sn", format!("{s}.name")),
        ("sver", format!("{s}.version")),
        ("sk", format!("{s}.attributes[0].key")),
        ("sv", format!("{s}.attributes[\"<sk>\"].value.string_value")),
        ("ss", format!("{scope}.schema_url")),
    ]
    .into_iter()
    .map(|(t, p)| (t.to_string(), p))
    .collect()
}

pub fn plain_span(i: u8) -> Span {
    Span {
        trace_id: vec![i; 16],
        span_id: vec![i + 1; 8],
        name: format!("plain-{i}"),
        ..Default::default()
    }
}

pub fn full_span() -> Span {
    Span {
        trace_id: vec![7; 16],
        span_id: vec![8; 8],
        trace_state: m("ts"),
        parent_span_id: vec![9; 8],
        flags: 0x301,
        name: m("n"),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        attributes: vec![attr("a")],
        dropped_attributes_count: 3,
        events: vec![span::Event {
            time_unix_nano: 3,
            name: m("en"),
            attributes: vec![attr("e")],
            dropped_attributes_count: 4,
        }],
        dropped_events_count: 5,
        links: vec![span::Link {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            trace_state: m("lt"),
            attributes: vec![attr("l")],
            dropped_attributes_count: 6,
            flags: 1,
        }],
        dropped_links_count: 7,
        status: Some(Status {
            message: m("sm"),
            code: 2,
        }),
    }
}

pub fn traces() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource()),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans: vec![plain_span(1), full_span()],
                schema_url: m("ss"),
            }],
            schema_url: m("rs"),
        }],
    }
}

pub fn trace_paths() -> Vec<(String, String)> {
    let s = "resource_spans[0].scope_spans[0].spans[1]";
    let mut paths = envelope_paths("resource_spans[0]", "resource_spans[0].scope_spans[0]");
    for (t, p) in [
        ("ts", "trace_state"),
        ("n", "name"),
        ("ak", "attributes[0].key"),
        ("av", "attributes[\"<ak>\"].value.string_value"),
        ("en", "events[0].name"),
        ("ek", "events[0].attributes[0].key"),
        ("ev", "events[0].attributes[\"<ek>\"].value.string_value"),
        ("lt", "links[0].trace_state"),
        ("lk", "links[0].attributes[0].key"),
        ("lv", "links[0].attributes[\"<lk>\"].value.string_value"),
        ("sm", "status.message"),
    ] {
        paths.push((t.into(), format!("{s}.{p}")));
    }
    paths
}

pub fn log_record(i: u8) -> LogRecord {
    LogRecord {
        time_unix_nano: 1,
        observed_time_unix_nano: 2,
        severity_number: 9,
        severity_text: if i == 0 { m("st") } else { "INFO".into() },
        body: Some(if i == 0 {
            AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: vec![attr("b")],
                })),
            }
        } else {
            string(format!("record {i}"))
        }),
        attributes: if i == 0 { vec![attr("a")] } else { Vec::new() },
        dropped_attributes_count: 1,
        flags: 1,
        trace_id: vec![3; 16],
        span_id: vec![4; 8],
        event_name: if i == 0 { m("evn") } else { String::new() },
    }
}

pub fn logs() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource()),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: vec![log_record(1), log_record(0)],
                schema_url: m("ss"),
            }],
            schema_url: m("rs"),
        }],
    }
}

pub fn log_paths() -> Vec<(String, String)> {
    let s = "resource_logs[0].scope_logs[0].log_records[1]";
    let mut paths = envelope_paths("resource_logs[0]", "resource_logs[0].scope_logs[0]");
    for (t, p) in [
        ("st", "severity_text"),
        ("bk", "body.kvlist_value.values[0].key"),
        ("bv", "body.kvlist_value.values[\"<bk>\"].value.string_value"),
        ("ak", "attributes[0].key"),
        ("av", "attributes[\"<ak>\"].value.string_value"),
        ("evn", "event_name"),
    ] {
        paths.push((t.into(), format!("{s}.{p}")));
    }
    paths
}

fn exemplars(p: &str) -> Vec<Exemplar> {
    vec![Exemplar {
        filtered_attributes: vec![attr(p)],
        time_unix_nano: 1,
        span_id: vec![1; 8],
        trace_id: vec![2; 16],
        value: Some(exemplar::Value::AsInt(4)),
    }]
}

pub fn number_point(p: &str) -> NumberDataPoint {
    NumberDataPoint {
        attributes: vec![attr(p)],
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        exemplars: exemplars(&format!("{p}x")),
        flags: 1,
        value: Some(number_data_point::Value::AsDouble(1.5)),
    }
}

pub fn metrics() -> ExportMetricsServiceRequest {
    let metric = |i: usize, data| Metric {
        name: if i == 0 { m("mn") } else { format!("metric-{i}") },
        description: if i == 0 { m("md") } else { String::new() },
        unit: if i == 0 { m("mu") } else { "1".into() },
        metadata: if i == 0 { vec![attr("mm")] } else { Vec::new() },
        data: Some(data),
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics: vec![
                    metric(
                        0,
                        metric::Data::Gauge(Gauge {
                            data_points: vec![number_point("g")],
                        }),
                    ),
                    metric(
                        1,
                        metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                attributes: vec![attr("h")],
                                count: 3,
                                sum: Some(2.0),
                                bucket_counts: vec![1, 2],
                                explicit_bounds: vec![0.5],
                                exemplars: exemplars("hx"),
                                min: Some(0.1),
                                max: Some(1.0),
                                ..Default::default()
                            }],
                            aggregation_temporality: 2,
                        }),
                    ),
                    metric(
                        2,
                        metric::Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                attributes: vec![attr("x")],
                                count: 2,
                                scale: -3,
                                positive: Some(Default::default()),
                                negative: Some(
                                    opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets {
                                        offset: -2,
                                        bucket_counts: vec![1, 300, 70_000],
                                    },
                                ),
                                exemplars: exemplars("xx"),
                                zero_threshold: 0.25,
                                ..Default::default()
                            }],
                            aggregation_temporality: 1,
                        }),
                    ),
                    metric(
                        3,
                        metric::Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                attributes: vec![attr("q")],
                                count: 1,
                                sum: 2.0,
                                quantile_values: vec![summary_data_point::ValueAtQuantile {
                                    quantile: 0.5,
                                    value: 1.0,
                                }],
                                ..Default::default()
                            }],
                        }),
                    ),
                    metric(
                        4,
                        metric::Data::Sum(Sum {
                            data_points: vec![number_point("u"), number_point("u2")],
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        }),
                    ),
                ],
                schema_url: m("ss"),
            }],
            schema_url: m("rs"),
        }],
    }
}

pub fn metric_paths() -> Vec<(String, String)> {
    let s = "resource_metrics[0].scope_metrics[0].metrics";
    let mut paths = envelope_paths("resource_metrics[0]", "resource_metrics[0].scope_metrics[0]");
    let attr_paths = |p: &str, at: &str| {
        vec![
            (format!("{p}k"), format!("{at}[0].key")),
            (format!("{p}v"), format!("{at}[\"<{p}k>\"].value.string_value")),
        ]
    };
    paths.push(("mn".into(), format!("{s}[0].name")));
    paths.push(("md".into(), format!("{s}[0].description")));
    paths.push(("mu".into(), format!("{s}[0].unit")));
    paths.extend(attr_paths("mm", &format!("{s}[0].metadata")));
    for (p, point) in [
        ("g", "[0].gauge.data_points[0]"),
        ("h", "[1].histogram.data_points[0]"),
        ("x", "[2].exponential_histogram.data_points[0]"),
        ("q", "[3].summary.data_points[0]"),
        ("u2", "[4].sum.data_points[1]"),
    ] {
        paths.extend(attr_paths(p, &format!("{s}{point}.attributes")));
        if p != "q" {
            paths.extend(attr_paths(
                &format!("{p}x"),
                &format!("{s}{point}.exemplars[0].filtered_attributes"),
            ));
        }
    }
    paths
}
