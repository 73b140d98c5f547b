//! Bulk reads: fields and attributes of every entity of a level as columns,
//! encoded as wit/plugin.wit describes.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use weir_plugin_sdk::types::tag;
use weir_plugin_sdk::{AttributeTable, Column, Field, Level};

use crate::tree::{Index, Otlp, point_time};

/// Appends the tagged encoding of an OTLP value.
pub fn encode_any(v: Option<&AnyValue>, out: &mut Vec<u8>) {
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(any_value::Value::StringValueStrindex(_)) => out.push(tag::ABSENT),
        Some(any_value::Value::StringValue(s)) => {
            out.push(tag::STRING);
            out.extend_from_slice(s.as_bytes());
        }
        Some(any_value::Value::IntValue(i)) => {
            out.push(tag::INT);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Some(any_value::Value::DoubleValue(d)) => {
            out.push(tag::DOUBLE);
            out.extend_from_slice(&d.to_le_bytes());
        }
        Some(any_value::Value::BoolValue(b)) => {
            out.push(tag::BOOL);
            out.push(u8::from(*b));
        }
        Some(any_value::Value::BytesValue(b)) => {
            out.push(tag::BYTES);
            out.extend_from_slice(b);
        }
        Some(any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_)) => {
            out.push(tag::JSON);
            // OTLP/JSON form; the derive cannot fail on these plain data types.
            if let Some(v) = v
                && let Ok(text) = serde_json::to_string(v)
            {
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

pub fn read_attribute(tree: &Otlp, ix: &Index, level: Level, key: &str) -> Column {
    let count = ix.count(level);
    let mut col = Column::with_capacity(count, count * 16);
    for e in 0..count {
        encode_any(find(tree.attrs(ix, level, e), key), &mut col.data);
        col.end_entry();
    }
    col
}

pub fn read_attributes(tree: &Otlp, ix: &Index, level: Level) -> AttributeTable {
    let count = ix.count(level);
    let mut entity_offsets = Vec::with_capacity(count + 1);
    entity_offsets.push(0u32);
    let mut keys = Column::with_capacity(count * 8, count * 8 * 16);
    let mut values = Column::with_capacity(count * 8, count * 8 * 24);
    for e in 0..count {
        for kv in tree.attrs(ix, level, e) {
            keys.data.extend_from_slice(kv.key.as_bytes());
            keys.end_entry();
            encode_any(kv.value.as_ref(), &mut values.data);
            values.end_entry();
        }
        entity_offsets.push(u32::try_from(keys.len()).unwrap_or(u32::MAX));
    }
    AttributeTable {
        entity_offsets,
        keys,
        values,
    }
}

pub fn read_field(tree: &Otlp, ix: &Index, field: Field) -> Column {
    let count = ix.items.len();
    let mut col = Column::with_capacity(count, count * 16);
    for &[sc, i, j] in &ix.items {
        let [r, s] = ix.scopes[sc as usize];
        let (r, s, i, j) = (r as usize, s as usize, i as usize, j as usize);
        let out = &mut col.data;
        match tree {
            Otlp::Traces(q) => {
                let span = &q.resource_spans[r].scope_spans[s].spans[i];
                match field {
                    Field::Name => out.extend_from_slice(span.name.as_bytes()),
                    Field::TraceId => out.extend_from_slice(&span.trace_id),
                    Field::SpanId => out.extend_from_slice(&span.span_id),
                    Field::ParentSpanId => out.extend_from_slice(&span.parent_span_id),
                    Field::Kind => out.extend_from_slice(&span.kind.to_le_bytes()),
                    Field::StatusCode => {
                        out.extend_from_slice(&span.status.as_ref().map_or(0, |s| s.code).to_le_bytes())
                    }
                    Field::StatusMessage => {
                        out.extend_from_slice(span.status.as_ref().map_or("", |s| &s.message).as_bytes())
                    }
                    Field::StartTime => out.extend_from_slice(&span.start_time_unix_nano.to_le_bytes()),
                    Field::EndTime => out.extend_from_slice(&span.end_time_unix_nano.to_le_bytes()),
                    Field::TraceState => out.extend_from_slice(span.trace_state.as_bytes()),
                    Field::Flags => out.extend_from_slice(&span.flags.to_le_bytes()),
                    _ => {}
                }
            }
            Otlp::Logs(q) => {
                let log = &q.resource_logs[r].scope_logs[s].log_records[i];
                match field {
                    Field::Body => encode_any(log.body.as_ref(), out),
                    Field::SeverityText => out.extend_from_slice(log.severity_text.as_bytes()),
                    Field::SeverityNumber => out.extend_from_slice(&log.severity_number.to_le_bytes()),
                    Field::TraceId => out.extend_from_slice(&log.trace_id),
                    Field::SpanId => out.extend_from_slice(&log.span_id),
                    Field::Time => out.extend_from_slice(&log.time_unix_nano.to_le_bytes()),
                    Field::ObservedTime => out.extend_from_slice(&log.observed_time_unix_nano.to_le_bytes()),
                    Field::EventName => out.extend_from_slice(log.event_name.as_bytes()),
                    Field::Flags => out.extend_from_slice(&log.flags.to_le_bytes()),
                    _ => {}
                }
            }
            Otlp::Metrics(q) => {
                let metric = &q.resource_metrics[r].scope_metrics[s].metrics[i];
                match field {
                    Field::Name => out.extend_from_slice(metric.name.as_bytes()),
                    Field::Unit => out.extend_from_slice(metric.unit.as_bytes()),
                    Field::Time => out.extend_from_slice(&point_time(metric, j).to_le_bytes()),
                    _ => {}
                }
            }
        }
        col.end_entry();
    }
    col
}
