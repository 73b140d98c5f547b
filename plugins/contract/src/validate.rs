//! Checking a plugin's changes against the batch they are for, before any of
//! them is applied.
//!
//! The rules: an edit names an entity that exists at its level (an item for a
//! field edit); a field edit sets a field this signal lets plugins set, with
//! the value type that field holds (text, a 32-bit int, or any value for a
//! log body); a `json` value is valid JSON; drops and routes name existing
//! items. One failing rule refuses the whole change list.

use crate::types::{Changes, Edit, Field, Level, Signal, Value};

/// Why a change list was refused; the message names the offending edit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChangeError(pub String);

/// What the checks need to know of a batch: its signal and how many entities
/// each level has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub signal: Signal,
    /// Entities per level, in [`Level::ALL`] order.
    pub counts: [u32; 7],
}

impl Shape {
    pub fn count(&self, level: Level) -> u32 {
        self.counts[level.index()]
    }

    pub fn items(&self) -> u32 {
        self.count(Level::Item)
    }
}

/// The value type a settable field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// UTF-8 text: `Value::Str`.
    Text,
    /// A 32-bit signed int: `Value::Int` within i32 range.
    Int32,
    /// Any value (a log body).
    Any,
}

/// Whether plugins may set `field` on items of `signal`, and with what type.
pub fn settable(signal: Signal, field: Field) -> Option<FieldType> {
    settable_at(signal, Level::Item, field)
}

/// Whether plugins may set `field` on entities at `level` of `signal`, and
/// with what type.
pub fn settable_at(signal: Signal, level: Level, field: Field) -> Option<FieldType> {
    use Field as F;
    match (signal, level, field) {
        (Signal::Traces, Level::Item, F::Name | F::StatusMessage | F::TraceState) => Some(FieldType::Text),
        (Signal::Traces, Level::Item, F::Kind | F::StatusCode) => Some(FieldType::Int32),
        (Signal::Traces, Level::Event, F::Name) => Some(FieldType::Text),
        (Signal::Logs, Level::Item, F::Body) => Some(FieldType::Any),
        (Signal::Logs, Level::Item, F::SeverityText | F::EventName) => Some(FieldType::Text),
        (Signal::Logs, Level::Item, F::SeverityNumber) => Some(FieldType::Int32),
        (Signal::Metrics, Level::Item | Level::Metric, F::Name | F::Unit | F::Description) => {
            Some(FieldType::Text)
        }
        _ => None,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Str(_) => "str",
        Value::Int(_) => "int",
        Value::Double(_) => "double",
        Value::Bool(_) => "boolean",
        Value::Bytes(_) => "bytes",
        Value::Json(_) => "json",
    }
}

/// How deeply a `json` value may nest arrays and objects. Each object level
/// becomes three protobuf message levels (kvlist, key-value, any-value), and an
/// exemplar's attribute already sits 8 levels down: 24 keeps the deepest
/// attribute within the 100 levels prost-based decoders (weir's receivers, the
/// Collector) accept, so an edit cannot make a batch nobody downstream reads.
pub const MAX_JSON_DEPTH: usize = 24;

/// A `json` value must be valid JSON (OTLP/JSON AnyValue form or plain JSON),
/// nested at most [`MAX_JSON_DEPTH`] levels.
pub fn check_value(v: &Value) -> Result<(), ChangeError> {
    if let Value::Json(text) = v {
        let json = serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| ChangeError(format!("json value is not valid JSON: {e}")))?;
        let depth = json_depth(&json);
        if depth > MAX_JSON_DEPTH {
            return Err(ChangeError(format!(
                "json value nests arrays and objects {depth} levels deep, more than the {MAX_JSON_DEPTH} \
                 allowed (OTLP decoders refuse deeper messages); flatten it"
            )));
        }
    }
    Ok(())
}

/// Nesting depth of arrays and objects (a scalar is 0). serde_json's own limit
/// (128) bounds the recursion.
fn json_depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(json_depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Checks one edit against the batch's shape.
pub fn check_edit(shape: &Shape, edit: &Edit) -> Result<(), ChangeError> {
    match edit {
        Edit::Attribute {
            level,
            entity,
            key,
            value,
        } => {
            let count = shape.count(*level);
            if *entity >= count {
                return Err(ChangeError(format!(
                    "attribute edit names {level:?} entity {entity}, but the batch has {count}"
                )));
            }
            if let Some(v) = value {
                check_value(v).map_err(|e| ChangeError(format!("attribute {key:?}: {e}")))?;
            }
        }
        Edit::AttributeMany {
            level,
            entities,
            key,
            value,
        } => {
            let count = shape.count(*level);
            if let Some(e) = entities.iter().find(|&&e| e >= count) {
                return Err(ChangeError(format!(
                    "attribute edit names {level:?} entity {e}, but the batch has {count}"
                )));
            }
            if let Some(v) = value {
                check_value(v).map_err(|e| ChangeError(format!("attribute {key:?}: {e}")))?;
            }
        }
        Edit::Field { field, item, value } => check_field(shape, Level::Item, *item, *field, value)?,
        Edit::EntityField {
            level,
            entity,
            field,
            value,
        } => check_field(shape, *level, *entity, *field, value)?,
    }
    Ok(())
}

fn check_field(
    shape: &Shape,
    level: Level,
    entity: u32,
    field: Field,
    value: &Value,
) -> Result<(), ChangeError> {
    let n = shape.count(level);
    let what = if level == Level::Item {
        "item".to_string()
    } else {
        format!("{level:?} entity")
    };
    if entity >= n {
        return Err(ChangeError(format!(
            "field edit names {what} {entity}, but the batch has {n}"
        )));
    }
    let Some(ty) = settable_at(shape.signal, level, field) else {
        let at = if level == Level::Item {
            String::new()
        } else {
            format!(" {level:?}")
        };
        return Err(ChangeError(format!(
            "field {field:?} cannot be set on {:?}{at}",
            shape.signal
        )));
    };
    let ok = match (ty, value) {
        (FieldType::Text, Value::Str(_)) => true,
        (FieldType::Int32, Value::Int(i)) => i32::try_from(*i).is_ok(),
        (FieldType::Any, v) => {
            check_value(v).map_err(|e| ChangeError(format!("field {field:?}: {e}")))?;
            true
        }
        _ => false,
    };
    if !ok {
        let want = match ty {
            FieldType::Text => "a str",
            FieldType::Int32 => "an int within 32 bits",
            FieldType::Any => "any value",
        };
        let shown = match value {
            Value::Int(i) => format!("int {i}"),
            v => type_name(v).to_string(),
        };
        return Err(ChangeError(format!(
            "field edit of {what} {entity} sets {field:?} to {shown}, but {field:?} takes {want}"
        )));
    }
    Ok(())
}

/// Checks that every index names an item of the batch.
pub fn check_items(shape: &Shape, what: &str, items: &[u32]) -> Result<(), ChangeError> {
    let n = shape.items();
    match items.iter().find(|&&i| i >= n) {
        Some(i) => Err(ChangeError(format!(
            "{what} names item {i}, but the batch has {n}"
        ))),
        None => Ok(()),
    }
}

/// Checks a whole change list. `shape` is the batch the edits, drops and
/// routes apply to: after a `replace`, the replacement's shape.
pub fn check_changes(shape: &Shape, changes: &Changes) -> Result<(), ChangeError> {
    for (i, e) in changes.edits.iter().enumerate() {
        check_edit(shape, e).map_err(|ChangeError(m)| ChangeError(format!("edit {i}: {m}")))?;
    }
    check_items(shape, "drop", &changes.drops)?;
    for (route, items) in &changes.routes {
        check_items(shape, &format!("route {route:?}"), items)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(signal: Signal) -> Shape {
        Shape {
            signal,
            counts: [1, 1, 3, 2, 0, 0, 0],
        }
    }

    fn field(field: Field, item: u32, value: Value) -> Edit {
        Edit::Field { field, item, value }
    }

    #[test]
    fn every_rule_refuses_with_a_message_naming_it() {
        let s = shape(Signal::Traces);
        let cases = [
            (
                field(Field::Name, 3, "x".into()),
                "names item 3, but the batch has 3",
            ),
            (
                field(Field::Name, 0, Value::Int(1)),
                "sets Name to int 1, but Name takes a str",
            ),
            (
                field(Field::Kind, 0, Value::Int(1 << 40)),
                "takes an int within 32 bits",
            ),
            (field(Field::Kind, 0, "server".into()), "sets Kind to str"),
            (field(Field::Body, 0, "x".into()), "cannot be set on Traces"),
            (
                field(Field::TraceId, 0, Value::Bytes(vec![0; 16])),
                "cannot be set",
            ),
            (
                Edit::Attribute {
                    level: Level::Link,
                    entity: 0,
                    key: "k".into(),
                    value: None,
                },
                "Link entity 0, but the batch has 0",
            ),
            (
                Edit::Attribute {
                    level: Level::Item,
                    entity: 0,
                    key: "k".into(),
                    value: Some(Value::Json("{nope".into())),
                },
                "not valid JSON",
            ),
        ];
        for (edit, want) in cases {
            let got = check_edit(&s, &edit).expect_err(want);
            assert!(got.0.contains(want), "{got} should say {want:?}");
        }
    }

    #[test]
    fn good_edits_and_log_bodies_of_any_type_pass() {
        let logs = shape(Signal::Logs);
        for v in [
            Value::Int(7),
            Value::Bool(true),
            Value::Json("[1,2]".into()),
            "x".into(),
        ] {
            check_edit(&logs, &field(Field::Body, 2, v)).expect("any body");
        }
        check_edit(&logs, &field(Field::SeverityNumber, 0, Value::Int(17))).expect("int32");
        let metrics = shape(Signal::Metrics);
        check_edit(&metrics, &field(Field::Unit, 1, "ms".into())).expect("unit");
    }

    #[test]
    fn a_change_list_names_its_bad_edit_and_checks_drops_and_routes() {
        let s = shape(Signal::Traces);
        let mut c = Changes {
            edits: vec![field(Field::Name, 0, "a".into()); 4],
            ..Changes::default()
        };
        c.edits.push(field(Field::Name, 1, Value::Bool(true)));
        let e = check_changes(&s, &c).expect_err("fifth edit");
        assert!(e.0.starts_with("edit 4: "), "{e}");
        c.edits.truncate(4);
        check_changes(&s, &c).expect("valid");
        c.routes.push(("r".into(), vec![0, 5]));
        assert!(
            check_changes(&s, &c)
                .expect_err("route")
                .0
                .contains("route \"r\" names item 5")
        );
        c.routes.clear();
        c.drops = vec![2, 3];
        assert!(
            check_changes(&s, &c)
                .expect_err("drop")
                .0
                .contains("drop names item 3")
        );
    }
}
