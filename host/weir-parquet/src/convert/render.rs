//! How an OTLP `AnyValue` becomes the string stored in attribute maps and `Body`
//! (the ClickHouse exporter's convention, which keeps every map `Map<String,String>`):
//!
//! - string: as is
//! - bool: `true` / `false`
//! - int: decimal, e.g. `-42`
//! - double: shortest round-trip form, e.g. `0.25`, `1.0`, `1e300`, `NaN`, `inf`
//! - bytes: standard base64 (as OTLP/JSON writes them)
//! - array and kvlist: JSON, e.g. `["a",1,true]`, `{"k":"v","n":2}` (bytes inside
//!   are base64 strings; NaN and infinities are `null`)
//! - an empty value: the map value is null

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use prost::Message as _;

use super::wire::{Field, Reader, WireError, text};

/// An encoded `AnyValue`, read without allocating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnyRef<'a> {
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    StrIndex(i32),
    /// An array or kvlist: the whole encoded `AnyValue`, rendered through prost.
    Nested(&'a [u8]),
}

impl<'a> AnyRef<'a> {
    /// Reads an encoded `AnyValue` (the last member of the oneof wins, as in protobuf).
    pub fn parse(any: &'a [u8]) -> Result<AnyRef<'a>, WireError> {
        let mut out = AnyRef::Empty;
        for f in Reader::new(any) {
            let (n, v) = f?;
            out = match (n, v) {
                (1, Field::Bytes(b)) => AnyRef::Str(text(b)?),
                (2, Field::Varint(b)) => AnyRef::Bool(b != 0),
                (3, Field::Varint(i)) => AnyRef::Int(i as i64),
                (4, Field::Fixed64(d)) => AnyRef::Double(f64::from_bits(d)),
                (5 | 6, Field::Bytes(_)) => AnyRef::Nested(any),
                (7, Field::Bytes(b)) => AnyRef::Bytes(b),
                (8, Field::Varint(i)) => AnyRef::StrIndex(i as i32),
                _ => out,
            };
        }
        Ok(out)
    }

    /// Writes the rendering; `false` (nothing written) for an empty value.
    pub fn write(&self, out: &mut impl std::fmt::Write) -> Result<bool, WireError> {
        let _ = match *self {
            AnyRef::Empty => return Ok(false),
            AnyRef::Str(s) => out.write_str(s),
            AnyRef::Bool(b) => out.write_str(if b { "true" } else { "false" }),
            AnyRef::Int(i) => write!(out, "{i}"),
            AnyRef::Double(d) => write!(out, "{d:?}"),
            AnyRef::Bytes(b) => out.write_str(&STANDARD.encode(b)),
            AnyRef::StrIndex(i) => write!(out, "strindex:{i}"),
            AnyRef::Nested(any) => {
                let decoded = AnyValue::decode(any).map_err(|_| WireError {
                    what: "malformed array or kvlist value",
                    offset: 0,
                })?;
                match decoded.value.as_ref() {
                    Some(v) => {
                        render_into(out, v);
                    }
                    None => return Ok(false),
                }
                Ok(())
            }
        };
        Ok(true)
    }

    /// The rendering as an owned string; `None` for an empty value.
    pub fn to_owned_string(&self) -> Result<Option<String>, WireError> {
        if let AnyRef::Str(s) = self {
            return Ok(Some((*s).to_string()));
        }
        let mut s = String::new();
        Ok(self.write(&mut s)?.then_some(s))
    }
}

/// Writes the rendering of a non-string scalar, array or kvlist value into `out`.
/// Returns `false` for an empty value (nothing written). Strings are handled by
/// the callers, which copy them without going through a buffer.
pub fn render_into(out: &mut impl std::fmt::Write, v: &Value) -> bool {
    let _ = match v {
        Value::StringValue(s) => out.write_str(s),
        Value::BoolValue(b) => out.write_str(if *b { "true" } else { "false" }),
        Value::IntValue(i) => write!(out, "{i}"),
        Value::DoubleValue(d) => write!(out, "{d:?}"),
        Value::BytesValue(b) => out.write_str(&STANDARD.encode(b)),
        Value::ArrayValue(_) | Value::KvlistValue(_) => out.write_str(&json(v).to_string()),
        Value::StringValueStrindex(i) => write!(out, "strindex:{i}"),
    };
    true
}

/// The rendering as an owned string; `None` for an empty value.
pub fn render(v: Option<&AnyValue>) -> Option<String> {
    let value = v?.value.as_ref()?;
    if let Value::StringValue(s) = value {
        return Some(s.clone());
    }
    let mut s = String::new();
    render_into(&mut s, value);
    Some(s)
}

fn json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::StringValue(s) => J::String(s.clone()),
        Value::BoolValue(b) => J::Bool(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Value::BytesValue(b) => J::String(STANDARD.encode(b)),
        Value::ArrayValue(a) => J::Array(a.values.iter().map(json_any).collect()),
        Value::KvlistValue(kv) => J::Object(json_kvs(&kv.values)),
        Value::StringValueStrindex(i) => J::from(*i),
    }
}

fn json_any(v: &AnyValue) -> serde_json::Value {
    v.value.as_ref().map_or(serde_json::Value::Null, json)
}

fn json_kvs(kvs: &[KeyValue]) -> serde_json::Map<String, serde_json::Value> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map_or(serde_json::Value::Null, json_any),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    use super::*;

    fn any(v: Value) -> AnyValue {
        AnyValue { value: Some(v) }
    }

    #[test]
    fn scalars() {
        let r = |v| render(Some(&any(v)));
        assert_eq!(r(Value::StringValue("a b".into())).as_deref(), Some("a b"));
        assert_eq!(r(Value::BoolValue(true)).as_deref(), Some("true"));
        assert_eq!(r(Value::IntValue(-42)).as_deref(), Some("-42"));
        assert_eq!(r(Value::DoubleValue(0.25)).as_deref(), Some("0.25"));
        assert_eq!(r(Value::DoubleValue(1.0)).as_deref(), Some("1.0"));
        assert_eq!(r(Value::DoubleValue(1e300)).as_deref(), Some("1e300"));
        assert_eq!(
            r(Value::BytesValue(vec![0, 1, 2, 255])).as_deref(),
            Some("AAEC/w==")
        );
        assert_eq!(render(Some(&AnyValue { value: None })), None);
        assert_eq!(render(None), None);
    }

    #[test]
    fn arrays_and_maps_are_json() {
        let arr = Value::ArrayValue(ArrayValue {
            values: vec![
                any(Value::StringValue("a\"b".into())),
                any(Value::IntValue(1)),
                any(Value::BoolValue(false)),
                any(Value::DoubleValue(f64::NAN)),
            ],
        });
        assert_eq!(
            render(Some(&any(arr))).as_deref(),
            Some(r#"["a\"b",1,false,null]"#)
        );
        let map = Value::KvlistValue(KeyValueList {
            values: vec![
                KeyValue {
                    key: "k".into(),
                    value: Some(any(Value::StringValue("v".into()))),
                    ..Default::default()
                },
                KeyValue {
                    key: "b".into(),
                    value: Some(any(Value::BytesValue(b"hi".to_vec()))),
                    ..Default::default()
                },
            ],
        });
        let s = render(Some(&any(map))).expect("value");
        let parsed: serde_json::Value = serde_json::from_str(&s).expect("json");
        assert_eq!(parsed, serde_json::json!({"k": "v", "b": "aGk="}));
    }
}
