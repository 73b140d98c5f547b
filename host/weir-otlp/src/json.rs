//! OTLP/JSON at the edge: JSON request bodies are transcoded once into protobuf,
//! so everything behind the receiver sees one representation.
//!
//! The OTLP/JSON rules (hex ids, lowerCamelCase, integer enums, int64 as string or
//! number, unknown fields ignored) come from opentelemetry-proto's serde support;
//! the tests below pin the cases the spec's own example files use.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use weir_pipeline::Signal;

#[derive(Debug, thiserror::Error)]
#[error("malformed OTLP/JSON: {0}")]
pub struct JsonError(String);

/// Transcodes an OTLP/JSON export request into protobuf, with its item count.
pub fn to_protobuf(signal: Signal, body: &[u8]) -> Result<(Bytes, usize), JsonError> {
    let err = |e: serde_json::Error| JsonError(e.to_string());
    let bytes = match signal {
        Signal::Traces => serde_json::from_slice::<ExportTraceServiceRequest>(body)
            .map_err(err)?
            .encode_to_vec(),
        Signal::Logs => serde_json::from_slice::<ExportLogsServiceRequest>(body)
            .map_err(err)?
            .encode_to_vec(),
        Signal::Metrics => serde_json::from_slice::<ExportMetricsServiceRequest>(body)
            .map_err(err)?
            .encode_to_vec(),
    };
    // Count (and check ids) with the same rules as protobuf requests.
    let n = crate::wire::count_items(signal, &bytes).map_err(|e| JsonError(e.to_string()))?;
    Ok((Bytes::from(bytes), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like opentelemetry-proto's examples/trace.json, with int64 values
    /// both as strings and as JSON numbers, and an unknown field.
    const TRACE: &str = r#"{
      "resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
        "scopeSpans": [{
          "scope": {"name": "my.library", "version": "1.0.0"},
          "spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174",
            "parentSpanId": "eee19b7ec3c1b173",
            "name": "I'm a server span",
            "startTimeUnixNano": "1544712660000000000",
            "endTimeUnixNano": 1544712661000000000,
            "kind": 2,
            "someFutureField": {"x": 1},
            "attributes": [{"key": "my.span.attr", "value": {"intValue": 42}},
                           {"key": "s", "value": {"intValue": "43"}}]
          }]
        }]
      }]
    }"#;

    #[test]
    fn transcodes_the_spec_example() {
        let (bytes, n) = to_protobuf(Signal::Traces, TRACE.as_bytes()).expect("valid");
        assert_eq!(n, 1);
        let r = ExportTraceServiceRequest::decode(bytes).expect("protobuf");
        let span = &r.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(hex::encode(&span.trace_id), "5b8efff798038103d269b633813fc60c");
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.kind, 2);
        assert_eq!(span.attributes.len(), 2);
    }

    #[test]
    fn malformed_json_is_an_error() {
        assert!(to_protobuf(Signal::Traces, b"{\"resourceSpans\": [").is_err());
        assert!(to_protobuf(Signal::Logs, b"not json").is_err());
    }
}
