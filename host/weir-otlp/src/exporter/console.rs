//! Prints what passes through, for humans trying weir out.

use std::fmt::Write as _;
use std::io::Write as _;

use futures::future::BoxFuture;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric;
use prost::Message;
use weir_pipeline::config::Verbosity;
use weir_pipeline::{Batch, ExportError, ExportOutcome, Exporter, Signal};

pub struct ConsoleExporter {
    verbosity: Verbosity,
}

impl ConsoleExporter {
    pub fn new(verbosity: Verbosity) -> Self {
        ConsoleExporter { verbosity }
    }
}

impl Exporter for ConsoleExporter {
    fn export<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
        Box::pin(async move {
            let text = render(batch, self.verbosity)
                .map_err(|e| ExportError::permanent(format!("cannot decode the batch for printing: {e}")))?;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| ExportError::retryable(format!("writing to stdout failed: {e}")))?;
            Ok(ExportOutcome::default())
        })
    }
}

fn render(batch: &Batch, verbosity: Verbosity) -> Result<String, prost::DecodeError> {
    let mut s = format!("{}: {} {}\n", batch.signal, batch.items, batch.signal.item_noun());
    if verbosity == Verbosity::Basic {
        return Ok(s);
    }
    match batch.signal {
        Signal::Traces => {
            let req = ExportTraceServiceRequest::decode(batch.payload.clone())?;
            for rs in &req.resource_spans {
                let res = rs
                    .resource
                    .as_ref()
                    .map(|r| attrs(&r.attributes))
                    .unwrap_or_default();
                let _ = writeln!(s, "  resource {{{res}}}");
                for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                    let dur_ms =
                        span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) as f64 / 1e6;
                    let _ = writeln!(
                        s,
                        "    span {} trace={} span={} kind={} {dur_ms:.3}ms {{{}}}",
                        quote(&span.name),
                        hex::encode(&span.trace_id),
                        hex::encode(&span.span_id),
                        span.kind,
                        attrs(&span.attributes)
                    );
                }
            }
        }
        Signal::Logs => {
            let req = ExportLogsServiceRequest::decode(batch.payload.clone())?;
            for rl in &req.resource_logs {
                let res = rl
                    .resource
                    .as_ref()
                    .map(|r| attrs(&r.attributes))
                    .unwrap_or_default();
                let _ = writeln!(s, "  resource {{{res}}}");
                for log in rl.scope_logs.iter().flat_map(|sl| &sl.log_records) {
                    let body = log.body.as_ref().map(value).unwrap_or_default();
                    let _ = writeln!(
                        s,
                        "    log {} {body} {{{}}}",
                        if log.severity_text.is_empty() {
                            "-"
                        } else {
                            &log.severity_text
                        },
                        attrs(&log.attributes)
                    );
                }
            }
        }
        Signal::Metrics => {
            let req = ExportMetricsServiceRequest::decode(batch.payload.clone())?;
            for rm in &req.resource_metrics {
                let res = rm
                    .resource
                    .as_ref()
                    .map(|r| attrs(&r.attributes))
                    .unwrap_or_default();
                let _ = writeln!(s, "  resource {{{res}}}");
                for m in rm.scope_metrics.iter().flat_map(|sm| &sm.metrics) {
                    let kind = match &m.data {
                        Some(metric::Data::Gauge(_)) => "gauge",
                        Some(metric::Data::Sum(_)) => "sum",
                        Some(metric::Data::Histogram(_)) => "histogram",
                        Some(metric::Data::ExponentialHistogram(_)) => "exponential_histogram",
                        Some(metric::Data::Summary(_)) => "summary",
                        None => "empty",
                    };
                    let _ = writeln!(s, "    metric {} {kind} {}", quote(&m.name), m.unit);
                }
            }
        }
    }
    Ok(s)
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

fn attrs(kvs: &[KeyValue]) -> String {
    kvs.iter()
        .map(|kv| format!("{}={}", kv.key, kv.value.as_ref().map(value).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn value(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => quote(s),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => format!("0x{}", hex::encode(b)),
        Some(any_value::Value::ArrayValue(a)) => {
            format!("[{}]", a.values.iter().map(value).collect::<Vec<_>>().join(", "))
        }
        Some(any_value::Value::KvlistValue(kv)) => format!("{{{}}}", attrs(&kv.values)),
        Some(any_value::Value::StringValueStrindex(i)) => format!("strindex:{i}"),
        None => "null".into(),
    }
}
