//! Validates the protobuf framing of an OTLP export request and counts its items
//! (spans, log records, metric data points) without allocating message trees.
//!
//! The walk descends through the levels that hold items (request → resource →
//! scope → item, and for metrics → metric → data points) and checks the framing of
//! every field on the way, including each item's own fields. It does not check
//! what deeper nested messages contain (e.g. UTF-8 in attribute strings): a
//! destination that decodes fully may still refuse such a request, and weir then
//! counts it as failed with a reason.

use weir_pipeline::Signal;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf: {what} at byte {offset}")]
pub struct WireError {
    pub what: &'static str,
    pub offset: usize,
}

/// One field as read off the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

/// Iterates over the fields of one encoded message.
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0, base: 0 }
    }

    fn nested(buf: &'a [u8], base: usize) -> Self {
        Fields { buf, pos: 0, base }
    }

    fn err(&self, what: &'static str) -> WireError {
        WireError {
            what,
            offset: self.base + self.pos,
        }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err("truncated varint"));
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err("field runs past the end of its message"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next field as (number, value, offset of the value in the whole request).
    pub fn next_field(&mut self) -> Option<Result<(u32, Value<'a>, usize), WireError>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        Some(self.read_field())
    }

    fn read_field(&mut self) -> Result<(u32, Value<'a>, usize), WireError> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| self.err("field number too large"))?;
        if number == 0 {
            return Err(self.err("field number 0"));
        }
        let start = self.base + self.pos;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.array()?)),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| self.err("length too large"))?;
                let start_of_bytes = self.base + self.pos;
                let b = self.take(len)?;
                return Ok((number, Value::Bytes(b), start_of_bytes));
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.array()?)),
            _ => return Err(self.err("unsupported wire type (groups are not used by OTLP)")),
        };
        Ok((number, value, start))
    }
}

/// Walks a message, calling `on` for each length-delimited field `wanted`;
/// every other field is checked for framing only.
fn each<'a>(
    buf: &'a [u8],
    base: usize,
    wanted: u32,
    mut on: impl FnMut(&'a [u8], usize) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let mut fields = Fields::nested(buf, base);
    while let Some(f) = fields.next_field() {
        let (number, value, offset) = f?;
        if number == wanted {
            match value {
                Value::Bytes(b) => on(b, offset)?,
                _ => {
                    return Err(WireError {
                        what: "expected an embedded message",
                        offset,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Checks the framing of a message's fields without looking inside them.
fn shallow(buf: &[u8], base: usize) -> Result<(), WireError> {
    each(buf, base, u32::MAX, |_, _| Ok(()))
}

/// Counts the items in an encoded `Export*ServiceRequest`, validating its framing.
pub fn count_items(signal: Signal, request: &[u8]) -> Result<usize, WireError> {
    let mut n = 0usize;
    // Request(1: Resource*) → Resource*(2: Scope*) → Scope*(2: item).
    each(request, 0, 1, |resource, at| {
        each(resource, at, 2, |scope, at| {
            each(scope, at, 2, |item, at| {
                match signal {
                    Signal::Metrics => n += data_points(item, at)?,
                    Signal::Traces => {
                        check_ids(item, at, SPAN_IDS)?;
                        n += 1;
                    }
                    Signal::Logs => {
                        check_ids(item, at, LOG_IDS)?;
                        n += 1;
                    }
                }
                Ok(())
            })
        })
    })?;
    Ok(n)
}

/// (field number, allowed lengths, what) of the id fields of an item.
type IdRule = (u32, &'static [usize], &'static str);
/// Span: trace_id(1) and span_id(2) are required, parent_span_id(4) optional.
const SPAN_IDS: &[IdRule] = &[
    (1, &[16], "span trace_id must be 16 bytes"),
    (2, &[8], "span span_id must be 8 bytes"),
    (4, &[0, 8], "span parent_span_id must be empty or 8 bytes"),
];
/// Log record: trace_id(9) and span_id(10) are optional.
const LOG_IDS: &[IdRule] = &[
    (9, &[0, 16], "log record trace_id must be empty or 16 bytes"),
    (10, &[0, 8], "log record span_id must be empty or 8 bytes"),
];

/// Checks an item's framing and the lengths of its id fields; a missing
/// required id counts as length 0.
fn check_ids(item: &[u8], base: usize, rules: &[IdRule]) -> Result<(), WireError> {
    let mut seen = [false; 4];
    let mut fields = Fields::nested(item, base);
    while let Some(f) = fields.next_field() {
        let (number, value, offset) = f?;
        if let Some(pos) = rules.iter().position(|r| r.0 == number) {
            let (_, allowed, what) = rules[pos];
            let len = match value {
                Value::Bytes(b) => b.len(),
                _ => usize::MAX,
            };
            if !allowed.contains(&len) {
                return Err(WireError { what, offset });
            }
            seen[pos] = true;
        }
    }
    for (pos, (_, allowed, what)) in rules.iter().enumerate() {
        if !seen[pos] && !allowed.contains(&0) {
            return Err(WireError { what, offset: base });
        }
    }
    Ok(())
}

/// Data points of one `Metric`: its data is one of gauge(5), sum(7),
/// histogram(9), exponential_histogram(10) or summary(11), each holding
/// data_points in field 1.
fn data_points(metric: &[u8], base: usize) -> Result<usize, WireError> {
    let mut n = 0;
    let mut fields = Fields::nested(metric, base);
    while let Some(f) = fields.next_field() {
        let (number, value, offset) = f?;
        if let (5 | 7 | 9 | 10 | 11, Value::Bytes(data)) = (number, value) {
            each(data, offset, 1, |point, at| {
                shallow(point, at)?;
                n += 1;
                Ok(())
            })?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
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
        assert!(err.what.contains("span_id"), "{err}");
        req.resource_spans[0].scope_spans[0].spans[0].span_id = vec![];
        assert!(count_items(Signal::Traces, &req.encode_to_vec()).is_err());
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
}
