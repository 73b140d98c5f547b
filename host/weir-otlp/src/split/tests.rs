use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use weir_pipeline::{Batch, RequestSplitter, Signal, SplitError};

use super::OtlpSplitter;
use crate::wire::count_items;
use crate::wire::fixtures;

/// A deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }

    fn text(&mut self, max: usize) -> String {
        let len = self.below(max + 1);
        (0..len)
            .map(|i| char::from(b'a' + ((i + self.below(26)) % 26) as u8))
            .collect()
    }
}

fn attrs(rng: &mut Rng) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    (0..rng.below(4))
        .map(|i| fixtures::kv(format!("k{i}"), fixtures::string(rng.text(300))))
        .collect()
}

fn resource(rng: &mut Rng) -> Option<opentelemetry_proto::tonic::resource::v1::Resource> {
    (rng.below(4) > 0).then(|| opentelemetry_proto::tonic::resource::v1::Resource {
        attributes: attrs(rng),
        ..Default::default()
    })
}

fn scope(rng: &mut Rng) -> Option<opentelemetry_proto::tonic::common::v1::InstrumentationScope> {
    (rng.below(4) > 0).then(|| opentelemetry_proto::tonic::common::v1::InstrumentationScope {
        name: rng.text(20),
        attributes: attrs(rng),
        ..Default::default()
    })
}

fn traces(rng: &mut Rng) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: (0..1 + rng.below(3))
            .map(|_| ResourceSpans {
                resource: resource(rng),
                scope_spans: (0..rng.below(4))
                    .map(|_| ScopeSpans {
                        scope: scope(rng),
                        spans: (0..rng.below(7))
                            .map(|i| Span {
                                name: rng.text(40),
                                attributes: attrs(rng),
                                ..fixtures::plain_span(i as u8)
                            })
                            .collect(),
                        schema_url: rng.text(10),
                    })
                    .collect(),
                schema_url: rng.text(10),
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
                scope_logs: (0..rng.below(4))
                    .map(|_| ScopeLogs {
                        scope: scope(rng),
                        log_records: (0..rng.below(7))
                            .map(|i| {
                                let mut r = fixtures::log_record(1 + i as u8);
                                r.body = Some(fixtures::string(rng.text(400)));
                                r.attributes = attrs(rng);
                                r
                            })
                            .collect(),
                        schema_url: rng.text(10),
                    })
                    .collect(),
                schema_url: rng.text(10),
            })
            .collect(),
    }
    .encode_to_vec()
}

fn gauge(rng: &mut Rng, points: usize) -> Metric {
    Metric {
        name: rng.text(20),
        unit: "ms".into(),
        metadata: attrs(rng),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: (0..points)
                .map(|_| NumberDataPoint {
                    attributes: attrs(rng),
                    ..fixtures::number_point("p")
                })
                .collect(),
        })),
        ..Default::default()
    }
}

fn metrics(rng: &mut Rng) -> Vec<u8> {
    let mut req = ExportMetricsServiceRequest {
        resource_metrics: (0..1 + rng.below(3))
            .map(|_| ResourceMetrics {
                resource: resource(rng),
                scope_metrics: (0..rng.below(4))
                    .map(|_| ScopeMetrics {
                        scope: scope(rng),
                        metrics: (0..rng.below(5))
                            .map(|_| {
                                let n = rng.below(6);
                                gauge(rng, n)
                            })
                            .collect(),
                        schema_url: rng.text(10),
                    })
                    .collect(),
                schema_url: rng.text(10),
            })
            .collect(),
    };
    if rng.below(3) == 0 {
        // The fixture holds every kind of data point.
        req.resource_metrics.extend(fixtures::metrics().resource_metrics);
    }
    req.encode_to_vec()
}

fn request(signal: Signal, rng: &mut Rng) -> Vec<u8> {
    let one = |rng: &mut Rng| match signal {
        Signal::Traces => traces(rng),
        Signal::Logs => logs(rng),
        Signal::Metrics => metrics(rng),
    };
    let mut b = one(rng);
    // Batches are concatenated requests.
    if rng.below(2) == 0 {
        b.extend(one(rng));
    }
    b
}

/// One entry per item (per data point for metrics), and per empty resource or
/// scope: (resource without its scopes, scope without its items, item).
type Flat = Vec<(Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>)>;

fn flatten(signal: Signal, b: &[u8]) -> Flat {
    let mut out = Flat::new();
    match signal {
        Signal::Traces => {
            for mut r in ExportTraceServiceRequest::decode(b)
                .expect("decodes")
                .resource_spans
            {
                let scopes = std::mem::take(&mut r.scope_spans);
                let rk = r.encode_to_vec();
                if scopes.is_empty() {
                    out.push((rk.clone(), None, None));
                }
                for mut s in scopes {
                    let items = std::mem::take(&mut s.spans);
                    let sk = s.encode_to_vec();
                    if items.is_empty() {
                        out.push((rk.clone(), Some(sk.clone()), None));
                    }
                    for i in items {
                        out.push((rk.clone(), Some(sk.clone()), Some(i.encode_to_vec())));
                    }
                }
            }
        }
        Signal::Logs => {
            for mut r in ExportLogsServiceRequest::decode(b)
                .expect("decodes")
                .resource_logs
            {
                let scopes = std::mem::take(&mut r.scope_logs);
                let rk = r.encode_to_vec();
                if scopes.is_empty() {
                    out.push((rk.clone(), None, None));
                }
                for mut s in scopes {
                    let items = std::mem::take(&mut s.log_records);
                    let sk = s.encode_to_vec();
                    if items.is_empty() {
                        out.push((rk.clone(), Some(sk.clone()), None));
                    }
                    for i in items {
                        out.push((rk.clone(), Some(sk.clone()), Some(i.encode_to_vec())));
                    }
                }
            }
        }
        Signal::Metrics => {
            for mut r in ExportMetricsServiceRequest::decode(b)
                .expect("decodes")
                .resource_metrics
            {
                let scopes = std::mem::take(&mut r.scope_metrics);
                let rk = r.encode_to_vec();
                if scopes.is_empty() {
                    out.push((rk.clone(), None, None));
                }
                for mut s in scopes {
                    let items = std::mem::take(&mut s.metrics);
                    let sk = s.encode_to_vec();
                    if items.is_empty() {
                        out.push((rk.clone(), Some(sk.clone()), None));
                    }
                    for m in items {
                        // (the metric without its points, one point)
                        for (shell, point) in metric_points(m) {
                            let mut item = shell;
                            item.extend(point);
                            out.push((rk.clone(), Some(sk.clone()), Some(item)));
                        }
                    }
                }
            }
        }
    }
    out
}

/// A metric as (encoding without data points, one data point) per point, or
/// one entry with no point when it has none.
fn metric_points(mut m: Metric) -> Vec<(Vec<u8>, Vec<u8>)> {
    use metric::Data;
    let points: Vec<Vec<u8>> = match &mut m.data {
        Some(Data::Gauge(d)) => std::mem::take(&mut d.data_points)
            .iter()
            .map(|p| p.encode_to_vec())
            .collect(),
        Some(Data::Sum(d)) => std::mem::take(&mut d.data_points)
            .iter()
            .map(|p| p.encode_to_vec())
            .collect(),
        Some(Data::Histogram(d)) => std::mem::take(&mut d.data_points)
            .iter()
            .map(|p| p.encode_to_vec())
            .collect(),
        Some(Data::ExponentialHistogram(d)) => std::mem::take(&mut d.data_points)
            .iter()
            .map(|p| p.encode_to_vec())
            .collect(),
        Some(Data::Summary(d)) => std::mem::take(&mut d.data_points)
            .iter()
            .map(|p| p.encode_to_vec())
            .collect(),
        None => Vec::new(),
    };
    let shell = m.encode_to_vec();
    if points.is_empty() {
        return vec![(shell, Vec::new())];
    }
    points.into_iter().map(|p| (shell.clone(), p)).collect()
}

/// Splits and checks the properties every split must have.
fn check(signal: Signal, payload: &[u8], max: usize) -> Result<Vec<Batch>, SplitError> {
    let items = count_items(signal, payload).expect("valid request");
    let batch = Batch::new(signal, Bytes::copy_from_slice(payload), items);
    let pieces = OtlpSplitter.split(&batch, max)?;
    let mut joined = Vec::new();
    for p in &pieces {
        assert!(
            p.payload.len() <= max,
            "{signal:?}: piece of {} > {max}",
            p.payload.len()
        );
        assert_eq!(
            count_items(signal, &p.payload),
            Ok(p.items),
            "{signal:?}: piece's item count"
        );
        assert!(
            !flatten(signal, &p.payload).is_empty(),
            "{signal:?}: an empty piece"
        );
        joined.extend_from_slice(&p.payload);
    }
    assert_eq!(
        pieces.iter().map(|p| p.items).sum::<usize>(),
        items,
        "{signal:?}: items"
    );
    assert_eq!(
        flatten(signal, &joined),
        flatten(signal, payload),
        "{signal:?}: content and order"
    );
    Ok(pieces)
}

#[test]
fn pieces_decode_to_the_original_in_order_within_the_limit() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut split_some = 0;
    for signal in Signal::ALL {
        for _ in 0..150 {
            let payload = request(signal, &mut rng);
            for max in [64, 200, 700, 1500, 5000, payload.len().max(1) - 1, payload.len()] {
                match check(signal, &payload, max) {
                    Ok(pieces) => split_some += usize::from(pieces.len() > 1),
                    Err(SplitError::ItemTooLarge { bytes, limit, .. }) => {
                        assert!(bytes > limit && limit == max, "{bytes} {limit}")
                    }
                    Err(e) => panic!("{signal:?}: {e}"),
                }
            }
        }
    }
    assert!(
        split_some > 500,
        "most cases should actually split ({split_some})"
    );
}

#[test]
fn a_batch_that_fits_is_returned_as_it_is() {
    let payload = Bytes::from(fixtures::traces().encode_to_vec());
    let batch = Batch::new(Signal::Traces, payload.clone(), 2);
    let pieces = OtlpSplitter.split(&batch, payload.len()).expect("fits");
    assert_eq!(pieces.len(), 1);
    assert_eq!(pieces[0].payload.as_ptr(), payload.as_ptr(), "no copy");
    assert_eq!(pieces[0].items, 2);
}

#[test]
fn envelopes_and_unknown_fields_are_copied_into_every_piece() {
    // Field 99 (unknown) in the request, the resource and the scope, as
    // length-delimited fields with unique contents.
    let unknown = |tag: &[u8]| {
        let mut f = vec![0x9a, 0x06, tag.len() as u8];
        f.extend_from_slice(tag);
        f
    };
    let spans: Vec<u8> = (0..20u8)
        .flat_map(|i| {
            let s = Span {
                name: format!("span-{i}-{}", "x".repeat(40)),
                ..fixtures::plain_span(i)
            }
            .encode_to_vec();
            let mut f = vec![0x12, s.len() as u8];
            f.extend(s);
            f
        })
        .collect();
    let mut scope = fixtures::scope().encode_to_vec();
    scope.splice(0..0, [0x0a, scope.len() as u8]);
    scope.extend(unknown(b"SCOPE-X"));
    scope.extend(spans);
    let mut resource = fixtures::resource().encode_to_vec();
    resource.splice(0..0, [0x0a, resource.len() as u8]);
    resource.extend(unknown(b"RESOURCE-X"));
    let mut scope_field = vec![0x12];
    crate::wire::cursor::put_varint(&mut scope_field, scope.len() as u64);
    scope_field.extend(scope);
    resource.extend(scope_field);
    let mut request = vec![0x0a];
    crate::wire::cursor::put_varint(&mut request, resource.len() as u64);
    request.extend(resource);
    request.extend(unknown(b"REQUEST-X"));

    let pieces = check(Signal::Traces, &request, 600).expect("splits");
    assert!(pieces.len() >= 4, "{} pieces", pieces.len());
    for p in &pieces {
        for tag in [&b"SCOPE-X"[..], b"RESOURCE-X", b"REQUEST-X"] {
            let f = unknown(tag);
            let n = p.payload.windows(f.len()).filter(|w| *w == &f[..]).count();
            assert_eq!(n, 1, "{:?} once in each piece", String::from_utf8_lossy(tag));
        }
        let decoded = ExportTraceServiceRequest::decode(&p.payload[..]).expect("decodes");
        let r = &decoded.resource_spans[0];
        assert_eq!(r.resource, Some(fixtures::resource()));
        assert_eq!(r.scope_spans[0].scope, Some(fixtures::scope()));
    }
}

#[test]
fn an_item_too_large_alone_is_refused() {
    let mut req = fixtures::traces();
    req.resource_spans[0].scope_spans[0].spans[1].name = "n".repeat(5000);
    let payload = req.encode_to_vec();
    let err = check(Signal::Traces, &payload, 4000).expect_err("one span is larger than the limit");
    let SplitError::ItemTooLarge { noun, bytes, limit } = err else {
        panic!("{err}");
    };
    assert_eq!((noun, limit), ("span", 4000));
    // The span with its resource and scope: more than the span, less than the request.
    assert!(bytes > 5000 && bytes < payload.len(), "{bytes}");
    assert!(
        err.to_string().contains("one span in this request takes"),
        "{err}"
    );
}

#[test]
fn a_metric_too_large_alone_is_cut_between_its_data_points() {
    let mut rng = Rng(7);
    let metric = gauge(&mut rng, 40);
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(fixtures::resource()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(fixtures::scope()),
                metrics: vec![metric.clone()],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let payload = req.encode_to_vec();
    let max = payload.len() / 5;
    let pieces = check(Signal::Metrics, &payload, max).expect("cut between data points");
    assert!(pieces.len() >= 5, "{}", pieces.len());
    for p in &pieces {
        let decoded = ExportMetricsServiceRequest::decode(&p.payload[..]).expect("decodes");
        let m = &decoded.resource_metrics[0].scope_metrics[0].metrics;
        assert_eq!(m.len(), 1);
        assert_eq!(
            (&m[0].name, &m[0].unit, &m[0].metadata),
            (&metric.name, &metric.unit, &metric.metadata)
        );
    }
    // One data point larger than the limit cannot be cut.
    let err = check(Signal::Metrics, &payload, 300).expect_err("a data point is too large");
    assert!(
        matches!(
            err,
            SplitError::ItemTooLarge {
                noun: "metric data point",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn whole_metrics_stay_together_when_they_fit() {
    let mut rng = Rng(11);
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: (0..10).map(|_| gauge(&mut rng, 3)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let payload = req.encode_to_vec();
    let pieces = check(Signal::Metrics, &payload, payload.len() / 3).expect("splits");
    let names: Vec<String> = pieces
        .iter()
        .flat_map(|p| {
            ExportMetricsServiceRequest::decode(&p.payload[..])
                .expect("decodes")
                .resource_metrics[0]
                .scope_metrics[0]
                .metrics
                .iter()
                .map(|m| m.name.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    let original: Vec<String> = req.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| m.name.clone())
        .collect();
    assert_eq!(names, original, "each metric in one piece, in order");
}

#[test]
fn malformed_requests_are_reported() {
    let batch = Batch::new(Signal::Traces, Bytes::from_static(b"\x0a\x05\x12\x09"), 1);
    let err = OtlpSplitter.split(&batch, 2).expect_err("truncated");
    assert!(matches!(err, SplitError::Malformed(_)), "{err}");
}
