//! Reads the partial-success part of an Export*ServiceResponse.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use weir_pipeline::{ExportOutcome, Signal};

/// Items the destination rejected, per its response body (empty body: none).
pub fn outcome(signal: Signal, body: &[u8]) -> ExportOutcome {
    if body.is_empty() {
        return ExportOutcome::default();
    }
    let (rejected, message) = match signal {
        Signal::Traces => ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_spans, p.error_message)),
        Signal::Logs => ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_log_records, p.error_message)),
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_data_points, p.error_message)),
    }
    .unwrap_or_default();
    ExportOutcome {
        rejected: usize::try_from(rejected.max(0)).unwrap_or(usize::MAX),
        message: (!message.is_empty()).then_some(message),
    }
}
