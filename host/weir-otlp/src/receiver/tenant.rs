//! Setting a resource attribute (the authenticated tenant) on every resource
//! of an OTLP export request, on the encoded bytes: the request is already
//! validated, and only the envelopes are rewritten. A value the client sent
//! under the same key is dropped, so a tenant cannot be claimed, only granted.
//!
//! All three requests share the shape: field 1 of the request is a
//! Resource{Spans,Logs,Metrics}, whose field 1 is the Resource, whose field 1
//! is a KeyValue (key = 1, value = 2: AnyValue with string_value = 1).

const LEN: u64 = 2;

#[derive(Debug, thiserror::Error)]
#[error("malformed OTLP envelope at byte {0}")]
pub struct Malformed(usize);

fn varint(b: &[u8], at: &mut usize) -> Result<u64, Malformed> {
    let start = *at;
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at).ok_or(Malformed(start))?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err(Malformed(start))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One field: (number, wire type, its content for LEN fields, the whole raw field).
struct Field<'a> {
    number: u64,
    wire: u64,
    content: &'a [u8],
    raw: &'a [u8],
}

fn fields(b: &[u8]) -> impl Iterator<Item = Result<Field<'_>, Malformed>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= b.len() {
            return None;
        }
        Some(next(b, &mut at))
    })
}

fn next<'a>(b: &'a [u8], at: &mut usize) -> Result<Field<'a>, Malformed> {
    let start = *at;
    let tag = varint(b, at)?;
    let (number, wire) = (tag >> 3, tag & 7);
    let content_start;
    match wire {
        0 => {
            varint(b, at)?;
            content_start = *at;
        }
        1 | 5 => {
            *at += if wire == 1 { 8 } else { 4 };
            content_start = *at;
        }
        LEN => {
            let len = usize::try_from(varint(b, at)?).map_err(|_| Malformed(start))?;
            content_start = *at;
            *at = at.checked_add(len).ok_or(Malformed(start))?;
        }
        _ => return Err(Malformed(start)),
    }
    if *at > b.len() {
        return Err(Malformed(start));
    }
    Ok(Field {
        number,
        wire,
        content: &b[content_start.min(*at)..*at],
        raw: &b[start..*at],
    })
}

fn put_len(out: &mut Vec<u8>, number: u64, content: &[u8]) {
    put_varint(out, (number << 3) | LEN);
    put_varint(out, content.len() as u64);
    out.extend_from_slice(content);
}

/// A KeyValue{key, value: AnyValue{string_value}}.
fn key_value(key: &str, value: &str) -> Vec<u8> {
    let mut any = Vec::new();
    put_len(&mut any, 1, value.as_bytes());
    let mut kv = Vec::new();
    put_len(&mut kv, 1, key.as_bytes());
    put_len(&mut kv, 2, &any);
    kv
}

fn kv_key(kv: &[u8]) -> Result<Option<&[u8]>, Malformed> {
    for f in fields(kv) {
        let f = f?;
        if f.number == 1 && f.wire == LEN {
            return Ok(Some(f.content));
        }
    }
    Ok(None)
}

/// The Resource with `key` dropped from its attributes and `kv` added.
fn resource(b: &[u8], key: &str, kv: &[u8]) -> Result<Vec<u8>, Malformed> {
    let mut out = Vec::with_capacity(b.len() + kv.len() + 4);
    for f in fields(b) {
        let f = f?;
        if f.number == 1 && f.wire == LEN && kv_key(f.content)? == Some(key.as_bytes()) {
            continue;
        }
        out.extend_from_slice(f.raw);
    }
    put_len(&mut out, 1, kv);
    Ok(out)
}

fn resource_x(b: &[u8], key: &str, kv: &[u8]) -> Result<Vec<u8>, Malformed> {
    let mut out = Vec::with_capacity(b.len() + kv.len() + 8);
    let mut seen = false;
    for f in fields(b) {
        let f = f?;
        if f.number == 1 && f.wire == LEN && !seen {
            seen = true;
            put_len(&mut out, 1, &resource(f.content, key, kv)?);
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    if !seen {
        put_len(&mut out, 1, &resource(&[], key, kv)?);
    }
    Ok(out)
}

/// `request` with `key` = `value` on every resource.
pub fn set_resource_attribute(request: &[u8], key: &str, value: &str) -> Result<Vec<u8>, Malformed> {
    let kv = key_value(key, value);
    let mut out = Vec::with_capacity(request.len() + 64);
    for f in fields(request) {
        let f = f?;
        if f.number == 1 && f.wire == LEN {
            put_len(&mut out, 1, &resource_x(f.content, key, &kv)?);
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    use super::*;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn attrs(r: &Option<Resource>) -> Vec<(String, String)> {
        r.iter()
            .flat_map(|r| &r.attributes)
            .map(|a| {
                let v = match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(Value::StringValue(s)) => s.clone(),
                    other => format!("{other:?}"),
                };
                (a.key.clone(), v)
            })
            .collect()
    }

    #[test]
    fn every_resource_gets_the_tenant_and_a_claimed_one_is_replaced() {
        let span = Span {
            name: "s".into(),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", "a"), kv("tenant", "forged")],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans: vec![span.clone()],
                        ..Default::default()
                    }],
                    schema_url: "u".into(),
                },
                ResourceSpans {
                    resource: None,
                    scope_spans: vec![ScopeSpans {
                        spans: vec![span],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        };
        let out = set_resource_attribute(&req.encode_to_vec(), "tenant", "team-a").expect("rewrite");
        let got = ExportTraceServiceRequest::decode(out.as_slice()).expect("decode");
        assert_eq!(
            attrs(&got.resource_spans[0].resource),
            [
                ("service.name".into(), "a".into()),
                ("tenant".into(), "team-a".into())
            ]
        );
        assert_eq!(
            attrs(&got.resource_spans[1].resource),
            [("tenant".into(), "team-a".into())]
        );
        assert_eq!(got.resource_spans[0].schema_url, "u");
        assert_eq!(got.resource_spans[1].scope_spans[0].spans[0].name, "s");
        assert_eq!(
            crate::wire::count_items(weir_pipeline::Signal::Traces, &out).expect("valid"),
            2
        );

        let logs = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs::default()],
        };
        let out = set_resource_attribute(&logs.encode_to_vec(), "t", "x").expect("rewrite");
        let got = ExportLogsServiceRequest::decode(out.as_slice()).expect("decode");
        assert_eq!(attrs(&got.resource_logs[0].resource), [("t".into(), "x".into())]);
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert!(set_resource_attribute(&[0x0a, 0x05, 0x0a], "t", "x").is_err());
        assert!(set_resource_attribute(&[0x0f], "t", "x").is_err());
    }
}
