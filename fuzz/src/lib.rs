//! Helpers shared by the fuzz targets: picking a signal from a byte, and an
//! independent count of an OTLP request's items through prost, to check the
//! wire walk against the decoder everything downstream of weir uses.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use weir_pipeline::Signal;

/// The signal a selector byte stands for (its low bits).
pub fn signal_of(b: u8) -> Signal {
    match b % 3 {
        0 => Signal::Traces,
        1 => Signal::Logs,
        _ => Signal::Metrics,
    }
}

/// Decodes `bytes` with prost and counts spans, log records or data points.
pub fn prost_count(signal: Signal, bytes: &[u8]) -> Result<usize, prost::DecodeError> {
    Ok(match signal {
        Signal::Traces => ExportTraceServiceRequest::decode(bytes)?
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum(),
        Signal::Logs => ExportLogsServiceRequest::decode(bytes)?
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum(),
        Signal::Metrics => ExportMetricsServiceRequest::decode(bytes)?
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| match &m.data {
                None => 0,
                Some(Data::Gauge(g)) => g.data_points.len(),
                Some(Data::Sum(s)) => s.data_points.len(),
                Some(Data::Histogram(h)) => h.data_points.len(),
                Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                Some(Data::Summary(s)) => s.data_points.len(),
            })
            .sum(),
    })
}

/// The check every target makes on bytes weir accepted as an OTLP request:
/// prost (and so the plugin host, and the Collector behind an exporter)
/// decodes them, and finds as many items as weir counted.
pub fn assert_downstream_agrees(signal: Signal, bytes: &[u8], counted: usize) {
    match prost_count(signal, bytes) {
        Ok(n) => assert_eq!(
            n, counted,
            "{signal:?}: weir counted {counted} items, prost decodes {n}"
        ),
        Err(e) => panic!("{signal:?}: weir accepted a request prost refuses: {e}"),
    }
}
