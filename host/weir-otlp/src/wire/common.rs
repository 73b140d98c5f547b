//! Messages shared by the three signals (opentelemetry/proto/common/v1 and
//! resource/v1): Resource, InstrumentationScope, KeyValue, AnyValue, EntityRef.

use super::cursor::{Cursor, I64, LEN, VARINT, is_ascii};
use super::fault::{Res, Seg, Within, fault};

/// The deepest message nesting accepted, counting the request as level 0: prost
/// (which weir's plugin host and Rust destinations decode with) refuses a
/// message nested deeper than its recursion limit of 100. Only AnyValue's
/// array_value / kvlist_value can nest without bound, so this is the limit on
/// AnyValue nesting: e.g. a span attribute's value can hold 47 nested arrays, or
/// 31 nested kvlists. Go protobuf and the Collector allow far more.
pub const MAX_MESSAGE_DEPTH: usize = 100;

#[cold]
fn too_deep(at: usize, depth: usize) -> Box<super::fault::Fault> {
    fault(
        "AnyValue nested too deep: prost-based decoders refuse messages nested more than 100 levels; flatten the value",
        at,
    )
    .note(format!("message level {depth}"))
}

/// Resource, at message level 2.
pub(crate) fn resource(b: &[u8], at: usize) -> Res<()> {
    let mut c = Cursor::new(b, at);
    let (mut attrs, mut refs) = (0, 0);
    while let Some((n, wt)) = c.key()? {
        match n {
            1 => {
                let (kv, at) = c.len(wt, "attributes")?;
                attribute(kv, at, 3, "attributes", attrs)?;
                attrs += 1;
            }
            2 => c.scalar(wt, VARINT, "dropped_attributes_count")?,
            3 => {
                let (e, at) = c.len(wt, "entity_refs")?;
                entity_ref(e, at).within(Seg::Index("entity_refs", refs))?;
                refs += 1;
            }
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}

fn entity_ref(b: &[u8], at: usize) -> Res<()> {
    let mut c = Cursor::new(b, at);
    while let Some((n, wt)) = c.key()? {
        match n {
            1 => c.string(wt, "schema_url")?,
            2 => c.string(wt, "type")?,
            3 => c.string(wt, "id_keys")?,
            4 => c.string(wt, "description_keys")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}

/// InstrumentationScope, at message level 3.
pub(crate) fn scope(b: &[u8], at: usize) -> Res<()> {
    let mut c = Cursor::new(b, at);
    let mut attrs = 0;
    while let Some((n, wt)) = c.key()? {
        match n {
            1 => c.string(wt, "name")?,
            2 => c.string(wt, "version")?,
            3 => {
                let (kv, at) = c.len(wt, "attributes")?;
                attribute(kv, at, 4, "attributes", attrs)?;
                attrs += 1;
            }
            4 => c.scalar(wt, VARINT, "dropped_attributes_count")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}

/// One KeyValue of the repeated field `list`, at message level `depth`; an
/// error names the attribute by its key when the key is readable.
///
/// Most attributes are a short ASCII key and string value: when the whole
/// encoded KeyValue is ASCII (its framing bytes are then ASCII too), every
/// string in it is valid UTF-8, and one `is_ascii` pass replaces a UTF-8 check
/// per string.
#[inline]
pub(crate) fn attribute(b: &[u8], at: usize, depth: usize, list: &'static str, index: usize) -> Res<()> {
    let ascii = is_ascii(b);
    if ascii && is_plain_string_attribute(b) {
        return Ok(());
    }
    nested_attribute(b, at, depth, list, index, ascii)
}

/// Whether an all-ASCII KeyValue is exactly `key = string_value` as every SDK
/// encodes it: `0a klen key 12 vlen 0a slen string`. ASCII means each length is
/// one byte, so the layout is fixed and a few comparisons prove the framing.
#[inline]
fn is_plain_string_attribute(b: &[u8]) -> bool {
    let [0x0a, klen, rest @ ..] = b else {
        return false;
    };
    let Some([0x12, vlen, 0x0a, slen, string @ ..]) = rest.get(usize::from(*klen)..) else {
        return false;
    };
    usize::from(*vlen) == usize::from(*slen) + 2 && string.len() == usize::from(*slen)
}

/// An attribute inside an AnyValue: `ascii` is inherited from the outermost
/// KeyValue, never recomputed, so deep nesting cannot rescan the same bytes.
#[inline]
fn nested_attribute(
    b: &[u8],
    at: usize,
    depth: usize,
    list: &'static str,
    index: usize,
    ascii: bool,
) -> Res<()> {
    key_value(b, at, depth, ascii).map_err(|f| f.at(attribute_seg(b, list, index)))
}

#[cold]
fn attribute_seg(kv: &[u8], list: &'static str, index: usize) -> Seg {
    match key_of(kv) {
        Some(key) => Seg::Key(list, key),
        None => Seg::Index(list, index),
    }
}

/// The key of an encoded KeyValue, if it has a readable one.
fn key_of(kv: &[u8]) -> Option<String> {
    let mut c = Cursor::new(kv, 0);
    let mut key = None;
    while let Ok(Some((n, wt))) = c.key() {
        if n == 1 && wt == LEN {
            let (b, _) = c.len(wt, "key").ok()?;
            key = Some(std::str::from_utf8(b).ok()?.to_owned());
        } else if c.skip(wt).is_err() {
            break;
        }
    }
    key
}

fn key_value(b: &[u8], at: usize, depth: usize, ascii: bool) -> Res<()> {
    if depth > MAX_MESSAGE_DEPTH {
        return Err(too_deep(at, depth));
    }
    let mut c = Cursor::new(b, at);
    while let Some((n, wt)) = c.key()? {
        match n {
            1 if ascii => {
                c.len(wt, "key")?;
            }
            1 => c.string(wt, "key")?,
            2 => {
                let (v, at) = c.len(wt, "value")?;
                any_value(v, at, depth + 1, ascii).within(Seg::Field("value"))?;
            }
            3 => c.scalar(wt, VARINT, "key_strindex")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}

/// AnyValue at message level `depth`; `ascii`: its bytes are known to be ASCII.
pub(crate) fn any_value(b: &[u8], at: usize, depth: usize, ascii: bool) -> Res<()> {
    if depth > MAX_MESSAGE_DEPTH {
        return Err(too_deep(at, depth));
    }
    let mut c = Cursor::new(b, at);
    while let Some((n, wt)) = c.key()? {
        match n {
            1 if ascii => {
                c.len(wt, "string_value")?;
            }
            1 => c.string(wt, "string_value")?,
            2 => c.scalar(wt, VARINT, "bool_value")?,
            3 => c.scalar(wt, VARINT, "int_value")?,
            4 => c.scalar(wt, I64, "double_value")?,
            5 => {
                let (v, at) = c.len(wt, "array_value")?;
                array(v, at, depth + 1, ascii).within(Seg::Field("array_value"))?;
            }
            6 => {
                let (v, at) = c.len(wt, "kvlist_value")?;
                kv_list(v, at, depth + 1, ascii).within(Seg::Field("kvlist_value"))?;
            }
            7 => {
                c.len(wt, "bytes_value")?;
            }
            8 => c.scalar(wt, VARINT, "string_value_strindex")?,
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}

fn array(b: &[u8], at: usize, depth: usize, ascii: bool) -> Res<()> {
    if depth > MAX_MESSAGE_DEPTH {
        return Err(too_deep(at, depth));
    }
    let mut c = Cursor::new(b, at);
    let mut i = 0;
    while let Some((n, wt)) = c.key()? {
        match n {
            1 => {
                let (v, at) = c.len(wt, "values")?;
                any_value(v, at, depth + 1, ascii).within(Seg::Index("values", i))?;
                i += 1;
            }
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}

fn kv_list(b: &[u8], at: usize, depth: usize, ascii: bool) -> Res<()> {
    if depth > MAX_MESSAGE_DEPTH {
        return Err(too_deep(at, depth));
    }
    let mut c = Cursor::new(b, at);
    let mut i = 0;
    while let Some((n, wt)) = c.key()? {
        match n {
            1 => {
                let (kv, at) = c.len(wt, "values")?;
                nested_attribute(kv, at, depth + 1, "values", i, ascii)?;
                i += 1;
            }
            _ => c.skip(wt)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::wire::fixtures;

    /// The fast path for `key = "string"` attributes accepts exactly what the
    /// full walk accepts, on mutations of such an attribute.
    #[test]
    fn plain_attribute_fast_path_agrees_with_the_full_walk() {
        let good = fixtures::kv("http.route", fixtures::string("/api/v1/users")).encode_to_vec();
        assert!(is_plain_string_attribute(&good));
        let mut s = 0x1234_5678_9abc_def1u64;
        let mut rand = move |n: usize| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % n as u64) as usize
        };
        let mut fast = 0;
        for _ in 0..20_000 {
            let mut b = good.clone();
            let at = rand(b.len());
            match rand(3) {
                0 => b[at] = rand(128) as u8,
                1 => b.insert(at, rand(128) as u8),
                _ => {
                    b.remove(at);
                }
            }
            if is_ascii(&b) && is_plain_string_attribute(&b) {
                fast += 1;
                assert!(key_value(&b, 0, 4, false).is_ok(), "{b:?}");
            }
            assert_eq!(
                attribute(&b, 0, 4, "attributes", 0).is_ok(),
                key_value(&b, 0, 4, false).is_ok(),
                "{b:?}"
            );
        }
        assert!(fast > 100, "some mutations keep the plain shape");
    }
}
