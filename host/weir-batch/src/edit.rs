//! Applying a plugin's edits natively, and converting contract values to OTLP.

use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use weir_plugin_sdk::{Edit, Field, Level, Value};

use crate::BatchError;
use crate::tree::{Index, Otlp};

pub fn to_any(v: Value) -> Result<AnyValue, BatchError> {
    let value = match v {
        Value::Str(s) => any_value::Value::StringValue(s),
        Value::Int(i) => any_value::Value::IntValue(i),
        Value::Double(d) => any_value::Value::DoubleValue(d),
        Value::Bool(b) => any_value::Value::BoolValue(b),
        Value::Bytes(b) => any_value::Value::BytesValue(b),
        Value::Json(text) => {
            // OTLP/JSON form first ({"arrayValue": ...}), else plain JSON.
            if let Ok(any) = serde_json::from_str::<AnyValue>(&text)
                && any.value.is_some()
            {
                return Ok(any);
            }
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| BatchError::Invalid(format!("json value is not valid JSON: {e}")))?;
            return Ok(from_json(json));
        }
    };
    Ok(AnyValue { value: Some(value) })
}

fn from_json(v: serde_json::Value) -> AnyValue {
    use serde_json::Value as J;
    let value = match v {
        J::Null => None,
        J::Bool(b) => Some(any_value::Value::BoolValue(b)),
        J::Number(n) => match n.as_i64() {
            Some(i) => Some(any_value::Value::IntValue(i)),
            None => Some(any_value::Value::DoubleValue(n.as_f64().unwrap_or(0.0))),
        },
        J::String(s) => Some(any_value::Value::StringValue(s)),
        J::Array(a) => Some(any_value::Value::ArrayValue(ArrayValue {
            values: a.into_iter().map(from_json).collect(),
        })),
        J::Object(o) => Some(any_value::Value::KvlistValue(KeyValueList {
            values: o
                .into_iter()
                .map(|(key, v)| KeyValue {
                    key,
                    value: Some(from_json(v)),
                    ..Default::default()
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

fn as_i32(v: &Value, what: &str) -> Result<i32, BatchError> {
    match v {
        Value::Int(i) => i32::try_from(*i).map_err(|_| BatchError::Invalid(format!("{what} out of range"))),
        _ => Err(BatchError::Invalid(format!("{what} must be an int"))),
    }
}

fn as_string(v: Value, what: &str) -> Result<String, BatchError> {
    match v {
        Value::Str(s) => Ok(s),
        _ => Err(BatchError::Invalid(format!("{what} must be a string"))),
    }
}

/// What an edit needs of a batch form: where an entity's attributes, an
/// item's fields, an event and a metric are. [`dispatch`] decides which of
/// these an edit goes to, once for both forms (the decoded tree here, the wire
/// view in wire/apply.rs).
pub(crate) trait EditTarget {
    /// The attribute list of entity `entity` at `level`.
    fn attributes(&mut self, level: Level, entity: u32) -> Result<&mut Vec<KeyValue>, BatchError>;
    /// Sets a field of item `item` (a span, log record or metric).
    fn set_item_field(&mut self, item: u32, field: Field, value: Value) -> Result<(), BatchError>;
    fn event(&mut self, entity: u32) -> Result<&mut Event, BatchError>;
    fn metric(&mut self, entity: u32) -> Result<&mut Metric, BatchError>;
}

/// Applies one edit to `target`; `HostBatch::apply` has checked it (contract
/// rules), so an error here means the batch and its index disagree.
pub(crate) fn dispatch(target: &mut impl EditTarget, edit: Edit) -> Result<(), BatchError> {
    match edit {
        Edit::Attribute {
            level,
            entity,
            key,
            value,
        } => {
            let any = value.map(to_any).transpose()?;
            set_attribute_in(target.attributes(level, entity)?, key, any);
            Ok(())
        }
        Edit::AttributeMany {
            level,
            entities,
            key,
            value,
        } => {
            let any = value.map(to_any).transpose()?;
            for entity in entities {
                set_attribute_in(target.attributes(level, entity)?, key.clone(), any.clone());
            }
            Ok(())
        }
        Edit::Field { field, item, value }
        | Edit::EntityField {
            level: Level::Item,
            entity: item,
            field,
            value,
        } => target.set_item_field(item, field, value),
        Edit::EntityField {
            level: Level::Event,
            entity,
            field: Field::Name,
            value,
        } => {
            target.event(entity)?.name = as_string(value, "event name")?;
            Ok(())
        }
        Edit::EntityField {
            level: Level::Metric,
            entity,
            field,
            value,
        } => set_metric_field(target.metric(entity)?, field, value),
        Edit::EntityField { level, field, .. } => Err(BatchError::Invalid(format!(
            "field {field:?} cannot be set on {level:?}"
        ))),
    }
}

/// Applies one edit to the decoded tree (see [`dispatch`]).
pub fn apply(tree: &mut Otlp, ix: &Index, edit: Edit) -> Result<(), BatchError> {
    dispatch(&mut TreeTarget { tree, ix }, edit)
}

struct TreeTarget<'a> {
    tree: &'a mut Otlp,
    ix: &'a Index,
}

impl EditTarget for TreeTarget<'_> {
    fn attributes(&mut self, level: Level, entity: u32) -> Result<&mut Vec<KeyValue>, BatchError> {
        self.tree
            .attrs_mut(self.ix, level, entity as usize)
            .ok_or_else(|| BatchError::Invalid(format!("no {level:?} entity {entity}")))
    }

    fn set_item_field(&mut self, item: u32, field: Field, value: Value) -> Result<(), BatchError> {
        set_item_field(self.tree, self.ix, item, field, value)
    }

    fn event(&mut self, entity: u32) -> Result<&mut Event, BatchError> {
        self.tree
            .event_mut(self.ix, entity as usize)
            .ok_or_else(|| BatchError::Invalid(format!("no event {entity}")))
    }

    fn metric(&mut self, entity: u32) -> Result<&mut Metric, BatchError> {
        self.tree
            .metric_mut(self.ix, entity as usize)
            .ok_or_else(|| BatchError::Invalid(format!("no metric {entity}")))
    }
}

/// Sets (or with `None` removes) attribute `key` in a list of attributes.
fn set_attribute_in(attrs: &mut Vec<KeyValue>, key: String, value: Option<AnyValue>) {
    match value {
        Some(any) => match attrs.iter_mut().find(|kv| kv.key == key) {
            Some(kv) => kv.value = Some(any),
            None => attrs.push(KeyValue {
                key,
                value: Some(any),
                ..Default::default()
            }),
        },
        None => attrs.retain(|kv| kv.key != key),
    }
}

fn set_metric_field(metric: &mut Metric, field: Field, value: Value) -> Result<(), BatchError> {
    match field {
        Field::Name => metric.name = as_string(value, "name")?,
        Field::Unit => metric.unit = as_string(value, "unit")?,
        Field::Description => metric.description = as_string(value, "description")?,
        _ => {
            return Err(BatchError::Invalid(format!(
                "field {field:?} cannot be set on a metric"
            )));
        }
    }
    Ok(())
}

fn set_item_field(
    tree: &mut Otlp,
    ix: &Index,
    item: u32,
    field: Field,
    value: Value,
) -> Result<(), BatchError> {
    let [sc, i, _] = *ix
        .items
        .get(item as usize)
        .ok_or_else(|| BatchError::Invalid(format!("no item {item}")))?;
    let [r, s] = ix.scopes[sc as usize];
    let (r, s, i) = (r as usize, s as usize, i as usize);
    match tree {
        Otlp::Traces(q) => set_span_field(&mut q.resource_spans[r].scope_spans[s].spans[i], field, value),
        Otlp::Logs(q) => set_log_field(&mut q.resource_logs[r].scope_logs[s].log_records[i], field, value),
        Otlp::Metrics(q) => set_metric_field(
            &mut q.resource_metrics[r].scope_metrics[s].metrics[i],
            field,
            value,
        ),
    }
}

/// Sets a span's field (the fields a plugin may set; others are ignored).
pub(crate) fn set_span_field(span: &mut Span, field: Field, value: Value) -> Result<(), BatchError> {
    match field {
        Field::Name => span.name = as_string(value, "name")?,
        Field::Kind => span.kind = as_i32(&value, "kind")?,
        Field::StatusCode => {
            span.status.get_or_insert_with(Status::default).code = as_i32(&value, "status code")?
        }
        Field::StatusMessage => {
            span.status.get_or_insert_with(Status::default).message = as_string(value, "status message")?
        }
        Field::TraceState => span.trace_state = as_string(value, "trace state")?,
        _ => {}
    }
    Ok(())
}

/// Sets a log record's field (the fields a plugin may set; others are ignored).
pub(crate) fn set_log_field(log: &mut LogRecord, field: Field, value: Value) -> Result<(), BatchError> {
    match field {
        Field::Body => log.body = Some(to_any(value)?),
        Field::SeverityText => log.severity_text = as_string(value, "severity text")?,
        Field::SeverityNumber => log.severity_number = as_i32(&value, "severity number")?,
        Field::EventName => log.event_name = as_string(value, "event name")?,
        _ => {}
    }
    Ok(())
}
