//! Array and map values. The contract hands them to plugins as OTLP/JSON text
//! (tag 6): `{"arrayValue":{"values":[{"stringValue":"…"},…]}}` or
//! `{"kvlistValue":{"values":[{"key":"k","value":{…}},…]}}`. Scanning that text
//! as it is would look at escapes rather than characters (after `\n` a detector
//! sees the letter `n` glued to the token) and could only replace the whole
//! value; so it is parsed, the value rules run over every string leaf decoded,
//! the key rules over every map key, and a changed value goes back as OTLP/JSON
//! with everything else — other leaves, their types, the structure — as it was.
//!
//! Only tag-6 values come here, and a cheap look at the raw text skips the parse
//! when no rule could match anything in it.

use serde_json::{Map, Value as J};
use weir_plugin_sdk::Value;

use crate::detect::Stats;
use crate::{KeyAction, Redact};

/// The fields of an OTLP/JSON `AnyValue`; exactly one is set.
const ANY_VALUE_FIELDS: [&str; 7] = [
    "stringValue",
    "boolValue",
    "intValue",
    "doubleValue",
    "arrayValue",
    "kvlistValue",
    "bytesValue",
];

/// Whether `v` is an OTLP/JSON `AnyValue` holding a value (not empty).
fn is_any_value(v: &J) -> bool {
    v.as_object()
        .is_some_and(|o| o.keys().any(|k| ANY_VALUE_FIELDS.contains(&k.as_str())))
}

fn string_value(s: String) -> J {
    let mut m = Map::new();
    m.insert("stringValue".into(), J::String(s));
    J::Object(m)
}

/// Standard or URL-safe base64, padding optional (OTLP/JSON `bytesValue`).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text.trim_end_matches('=').as_bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// JSON text with every escape sequence (`\n`, `\"`, `\u00e9`, …) blanked out
/// by spaces, so detectors see a boundary there instead of a letter.
fn blank_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let width = match chars.next() {
            Some('u') => 6,
            Some(_) => 2,
            None => 1,
        };
        for _ in 2..width {
            chars.next();
        }
        out.extend(std::iter::repeat_n(' ', width));
    }
    out
}

impl Redact {
    /// The redacted form of an array/map value given as OTLP/JSON text, or
    /// `None` if nothing in it changes. `values`: run the value rules over its
    /// strings; the key rules apply to its map keys either way.
    pub(crate) fn redact_json(&mut self, text: &str, values: bool) -> Option<Value> {
        let values = values && !self.rules.is_empty();
        let keys = !self.keys.is_empty() && text.contains("kvlistValue");
        let worth_parsing = keys || (values && self.may_match_json(text));
        if !worth_parsing {
            return None;
        }
        let mut root = match serde_json::from_str::<J>(text) {
            Ok(root) if is_any_value(&root) => root,
            _ => return self.opaque_json(text, values, keys),
        };
        if !self.walk_any(&mut root, values) {
            return None;
        }
        Some(match serde_json::to_string(&root) {
            Ok(out) => Value::Json(out),
            Err(_) => Value::Str(self.mask.clone()),
        })
    }

    /// Whether a value rule could match a string inside the OTLP/JSON `text`,
    /// judged on the text itself: every character the prefilters count (digits,
    /// `.`, `:`, `@`, letters) appears there as it is, unless written as a
    /// `\u` escape.
    fn may_match_json(&self, text: &str) -> bool {
        if text.contains("\\u") {
            return true;
        }
        let stats = if self.builtins {
            Stats::of(text)
        } else {
            Stats::default()
        };
        self.rules.iter().any(|r| r.matcher.may_match(&stats, text))
    }

    /// JSON that is not an OTLP/JSON value (weir never produces it; too deeply
    /// nested to parse, say): it cannot be edited in place, so it is masked
    /// whole if a value rule matches its text or key rules could apply inside.
    fn opaque_json(&mut self, text: &str, values: bool, keys: bool) -> Option<Value> {
        let hit = keys || (values && self.scan(&blank_escapes(text)).is_some());
        hit.then(|| Value::Str(self.mask.clone()))
    }

    /// Redacts inside one `AnyValue`; true if anything changed.
    fn walk_any(&mut self, v: &mut J, values: bool) -> bool {
        let J::Object(fields) = v else {
            return false;
        };
        let mut changed = false;
        for (name, x) in fields.iter_mut() {
            changed |= match name.as_str() {
                "stringValue" if values => match x {
                    J::String(s) => match self.scan(s) {
                        Some((out, _)) => {
                            *s = out;
                            true
                        }
                        None => false,
                    },
                    _ => false,
                },
                "arrayValue" => self.walk_array(x, values),
                "kvlistValue" => self.walk_kvlist(x, values),
                // Ints, doubles, bools and bytes are only touched by key rules.
                _ => false,
            };
        }
        changed
    }

    /// `{"values":[AnyValue, …]}`
    fn walk_array(&mut self, array: &mut J, values: bool) -> bool {
        let Some(J::Array(items)) = array.get_mut("values") else {
            return false;
        };
        let mut changed = false;
        for item in items {
            changed |= self.walk_any(item, values);
        }
        changed
    }

    /// `{"values":[{"key":"k","value":AnyValue}, …]}`: key rules on each key
    /// (as for attribute keys), value rules inside the values they leave.
    fn walk_kvlist(&mut self, kvlist: &mut J, values: bool) -> bool {
        let Some(J::Array(entries)) = kvlist.get_mut("values") else {
            return false;
        };
        let mut changed = false;
        entries.retain_mut(|entry| {
            let key = entry.get("key").and_then(J::as_str).unwrap_or("");
            let selected = self.key_selected(key);
            let Some(v) = entry.get_mut("value") else {
                return true;
            };
            if !selected {
                changed |= self.walk_any(v, values);
                return true;
            }
            if !is_any_value(v) {
                return true; // empty: nothing to redact
            }
            match self.key_action {
                KeyAction::Remove => {
                    changed = true;
                    return false;
                }
                KeyAction::Mask => {
                    let masked = v.as_object().is_some_and(|o| o.len() == 1)
                        && v.get("stringValue").and_then(J::as_str) == Some(self.mask.as_str());
                    if !masked {
                        *v = string_value(self.mask.clone());
                        changed = true;
                    }
                }
                KeyAction::Hash => {
                    let mut out = String::with_capacity(64);
                    self.hash_any_into(v, &mut out);
                    *v = string_value(out);
                    changed = true;
                }
            }
            true
        });
        changed
    }

    /// Hashes an `AnyValue` the way a top-level attribute of that type is
    /// hashed: strings as they are, bytes raw, ints, doubles and bools by their
    /// text form, arrays and maps by their OTLP/JSON text.
    fn hash_any_into(&self, v: &J, out: &mut String) {
        if let Some(s) = v.get("stringValue").and_then(J::as_str) {
            self.hash_into(s.as_bytes(), out);
        } else if let Some(b) = v.get("bytesValue").and_then(J::as_str) {
            match base64_decode(b) {
                Some(raw) => self.hash_into(&raw, out),
                None => self.hash_into(b.as_bytes(), out),
            }
        } else if let Some(i) = v.get("intValue") {
            match i {
                J::String(s) => self.hash_into(s.as_bytes(), out),
                other => self.hash_into(other.to_string().as_bytes(), out),
            }
        } else if let Some(d) = v.get("doubleValue") {
            let text = match d {
                J::String(s) => s.clone(),
                other => other
                    .as_f64()
                    .map_or_else(|| other.to_string(), |f| f.to_string()),
            };
            self.hash_into(text.as_bytes(), out);
        } else if let Some(b) = v.get("boolValue").and_then(J::as_bool) {
            self.hash_into(b.to_string().as_bytes(), out);
        } else {
            let text = serde_json::to_string(v).unwrap_or_default();
            self.hash_into(text.as_bytes(), out);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_standard_and_url_safe() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(base64_decode("-_8").unwrap(), [0xfb, 0xff]);
        assert!(base64_decode("a b").is_none());
    }

    #[test]
    fn escapes_are_blanked() {
        assert_eq!(blank_escapes(r#"a\nb\"c\u00e9d"#), "a  b  c      d");
        assert_eq!(blank_escapes("plain"), "plain");
        assert_eq!(blank_escapes("end\\"), "end ");
    }

    #[test]
    fn any_values_are_recognised() {
        assert!(is_any_value(&serde_json::json!({"arrayValue": {"values": []}})));
        assert!(is_any_value(&serde_json::json!({"stringValue": "x"})));
        assert!(!is_any_value(&serde_json::json!({})));
        assert!(!is_any_value(&serde_json::json!({"secret": "x"})));
        assert!(!is_any_value(&serde_json::json!(["x"])));
    }
}
