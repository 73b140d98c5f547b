//! Inputs the `wire_count_items` fuzz target (fuzz/, docs/fuzzing.md) found:
//! the first byte picks the signal (0 traces, 1 logs, 2 metrics), the rest is
//! the request given to `wire::count_items`.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use weir_otlp::wire::count_items;
use weir_pipeline::Signal;

/// A metric with a `gauge` and then a `sum` (one data point each): `data` is
/// a oneof, so decoders keep only the sum, but weir counted 2 data points.
#[test]
fn a_replaced_metric_data_oneof_counts_only_what_decoders_keep() {
    let input = include_bytes!("../../../fuzz/regressions/wire_count_items/metric-data-oneof-replaced");
    assert_eq!(input[0], 2, "a metrics request");
    let request = &input[1..];
    assert_eq!(count_items(Signal::Metrics, request), Ok(1));
    let decoded = ExportMetricsServiceRequest::decode(request).expect("prost decodes it");
    let metric = &decoded.resource_metrics[0].scope_metrics[0].metrics[0];
    assert!(matches!(metric.data, Some(Data::Sum(_))), "{metric:?}");

    // The same kind twice merges into one: both points count.
    let point = ld(1, &[]);
    let metric = [ld(1, b"m"), ld(5, &point), ld(5, &point)].concat();
    let twice = ld(1, &ld(2, &ld(2, &metric)));
    assert_eq!(count_items(Signal::Metrics, &twice), Ok(2));
    let decoded = ExportMetricsServiceRequest::decode(twice.as_slice()).expect("prost decodes it");
    let Some(Data::Gauge(g)) = &decoded.resource_metrics[0].scope_metrics[0].metrics[0].data else {
        panic!("a gauge: {decoded:?}");
    };
    assert_eq!(g.data_points.len(), 2);
}

/// A length-delimited field (all lengths here are under 128).
fn ld(field: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![field << 3 | 2, u8::try_from(payload.len()).expect("short")];
    out.extend_from_slice(payload);
    out
}
