//! Bulk reads: fields and attributes of every entity of a level as columns,
//! encoded as wit/plugin.wit describes.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use weir_plugin_contract::Matcher;
use weir_plugin_contract::matcher::{select_field, select_values};
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
                    Field::Description => out.extend_from_slice(metric.description.as_bytes()),
                    Field::Time => out.extend_from_slice(&point_time(metric, j).to_le_bytes()),
                    _ => {}
                }
            }
        }
        col.end_entry();
    }
    col
}

/// A plain field of every entity at `level` (weir:plugin@0.2.0): items as
/// [`read_field`]; event name and time; link ids, trace state and flags;
/// metric name, description and unit; exemplar time and ids. An entity
/// without the field has an empty entry.
pub fn read_field_at(tree: &Otlp, ix: &Index, level: Level, field: Field) -> Column {
    if level == Level::Item {
        return read_field(tree, ix, field);
    }
    let count = ix.count(level);
    let mut col = Column::with_capacity(count, count * 16);
    for e in 0..count {
        let out = &mut col.data;
        match level {
            Level::Event => {
                if let Some(ev) = tree.event(ix, e) {
                    match field {
                        Field::Name => out.extend_from_slice(ev.name.as_bytes()),
                        Field::Time => out.extend_from_slice(&ev.time_unix_nano.to_le_bytes()),
                        _ => {}
                    }
                }
            }
            Level::Link => {
                if let Some(l) = tree.link(ix, e) {
                    match field {
                        Field::TraceId => out.extend_from_slice(&l.trace_id),
                        Field::SpanId => out.extend_from_slice(&l.span_id),
                        Field::TraceState => out.extend_from_slice(l.trace_state.as_bytes()),
                        Field::Flags => out.extend_from_slice(&l.flags.to_le_bytes()),
                        _ => {}
                    }
                }
            }
            Level::Metric => {
                if let Some(m) = tree.metric(ix, e) {
                    match field {
                        Field::Name => out.extend_from_slice(m.name.as_bytes()),
                        Field::Description => out.extend_from_slice(m.description.as_bytes()),
                        Field::Unit => out.extend_from_slice(m.unit.as_bytes()),
                        _ => {}
                    }
                }
            }
            Level::Exemplar => {
                if let Some(x) = tree.exemplar(ix, e) {
                    match field {
                        Field::Time => out.extend_from_slice(&x.time_unix_nano.to_le_bytes()),
                        Field::TraceId => out.extend_from_slice(&x.trace_id),
                        Field::SpanId => out.extend_from_slice(&x.span_id),
                        _ => {}
                    }
                }
            }
            Level::Resource | Level::Scope | Level::Item => {}
        }
        col.end_entry();
    }
    col
}

/// The levels from `level` up to the resource, each with the index of every
/// `level` entity's ancestor there.
fn chain(ix: &Index, level: Level) -> Vec<(Level, Vec<u32>)> {
    let mut out: Vec<(Level, Vec<u32>)> = vec![(level, (0..ix.count(level) as u32).collect())];
    let mut current = level;
    while let Some(parent) = current.parent() {
        let step = ix.owners(current);
        let up: Vec<u32> = out[out.len() - 1]
            .1
            .iter()
            .map(|&e| step.get(e as usize).copied().unwrap_or(0))
            .collect();
        out.push((parent, up));
        current = parent;
    }
    out
}

/// One attribute of every entity at `level`, from the nearest entity up the
/// tree that has it (tag 0 where none has).
pub fn read_attribute_inherited(tree: &Otlp, ix: &Index, level: Level, key: &str) -> Column {
    let count = ix.count(level);
    let levels = chain(ix, level);
    let mut col = Column::with_capacity(count, count * 16);
    for e in 0..count {
        let found = levels.iter().find_map(|(l, anc)| {
            let at = *anc.get(e)? as usize;
            find(tree.attrs(ix, *l, at), key)
        });
        encode_any(found, &mut col.data);
        col.end_entry();
    }
    col
}

/// The entities at `level` whose field matches.
pub fn match_field(tree: &Otlp, ix: &Index, level: Level, field: Field, m: &Matcher) -> Vec<u32> {
    select_field(&read_field_at(tree, ix, level, field), field, m)
}

/// The entities at `level` whose attribute `key` (inherited when asked) matches.
pub fn match_attribute(
    tree: &Otlp,
    ix: &Index,
    level: Level,
    key: &str,
    m: &Matcher,
    inherited: bool,
) -> Vec<u32> {
    let col = if inherited {
        read_attribute_inherited(tree, ix, level, key)
    } else {
        read_attribute(tree, ix, level, key)
    };
    select_values(&col, m)
}
