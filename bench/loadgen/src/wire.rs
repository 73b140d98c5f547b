//! Minimal protobuf wire walking: count the repeated leaf messages of an OTLP
//! export request (spans, log records, metric data points) without decoding
//! them.

use std::fmt;

/// Field paths from an export request down to the counted items. Each level
/// lists the field numbers (all length-delimited) to descend into.
pub const SPANS_PATH: &[&[u32]] = &[&[1], &[2], &[2]];
pub const LOG_RECORDS_PATH: &[&[u32]] = &[&[1], &[2], &[2]];
/// ResourceMetrics → ScopeMetrics → Metric → {gauge, sum, histogram,
/// exponential_histogram, summary} → data_points.
pub const DATA_POINTS_PATH: &[&[u32]] = &[&[1], &[2], &[2], &[5, 7, 9, 10, 11], &[1]];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError(&'static str);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed protobuf: {}", self.0)
    }
}

impl std::error::Error for WireError {}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or(WireError("truncated varint"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError("varint too long"))
}

fn skip(buf: &[u8], pos: &mut usize, len: usize) -> Result<(), WireError> {
    let end = pos
        .checked_add(len)
        .filter(|&end| end <= buf.len())
        .ok_or(WireError("field overruns message"))?;
    *pos = end;
    Ok(())
}

/// Counts the messages reached by following `path` from the message `buf`.
pub fn count(buf: &[u8], path: &[&[u32]]) -> Result<u64, WireError> {
    let Some((fields, rest)) = path.split_first() else {
        return Ok(1);
    };
    let mut total = 0;
    let mut pos = 0;
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos)?;
        let field = u32::try_from(key >> 3).map_err(|_| WireError("field number too large"))?;
        match key & 7 {
            0 => {
                read_varint(buf, &mut pos)?;
            }
            1 => skip(buf, &mut pos, 8)?,
            5 => skip(buf, &mut pos, 4)?,
            2 => {
                let len = usize::try_from(read_varint(buf, &mut pos)?)
                    .map_err(|_| WireError("length too large"))?;
                let start = pos;
                skip(buf, &mut pos, len)?;
                if fields.contains(&field) {
                    total += if rest.is_empty() {
                        1
                    } else {
                        count(&buf[start..pos], rest)?
                    };
                }
            }
            _ => return Err(WireError("unsupported wire type")),
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric,
    };
    use prost::Message;

    #[test]
    fn counts_generated_spans() {
        let requests = crate::traces::build_pool(3, 7, 1, 0);
        for req in &requests {
            assert_eq!(count(req, SPANS_PATH), Ok(7));
        }
    }

    #[test]
    fn counts_log_records() {
        let scope = ScopeLogs {
            log_records: vec![LogRecord::default(); 4],
            ..Default::default()
        };
        let req = ExportLogsServiceRequest {
            resource_logs: vec![
                ResourceLogs {
                    scope_logs: vec![scope.clone(), scope.clone()],
                    ..Default::default()
                },
                ResourceLogs {
                    scope_logs: vec![scope],
                    ..Default::default()
                },
            ],
        };
        assert_eq!(count(&req.encode_to_vec(), LOG_RECORDS_PATH), Ok(12));
    }

    #[test]
    fn counts_metric_data_points() {
        let gauge = Metric {
            name: "g".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint::default(); 3],
            })),
            ..Default::default()
        };
        let histogram = Metric {
            name: "h".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint::default(); 2],
                aggregation_temporality: 1,
            })),
            ..Default::default()
        };
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![gauge, histogram],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(count(&req.encode_to_vec(), DATA_POINTS_PATH), Ok(5));
    }

    #[test]
    fn rejects_truncated_input() {
        let requests = crate::traces::build_pool(1, 2, 2, 0);
        let req = &requests[0];
        assert!(count(&req[..req.len() - 3], SPANS_PATH).is_err());
        assert_eq!(count(&[], SPANS_PATH), Ok(0));
    }
}
