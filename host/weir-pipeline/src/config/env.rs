//! `${env:NAME}`, `${env:NAME:-default}` and `${file:/path}` references,
//! expanded inside the string values of the parsed document — never in the raw
//! text — so no value can add keys or tables or break the syntax. `$${` writes a
//! literal `${`. A string that is one reference and nothing else may also stand
//! for a number or boolean where the key expects one (`port = "${env:PORT}"`).
//!
//! Every value that came from the environment or a file is remembered, so that
//! error messages can be scrubbed of it ([`Expanded::redact`]).

use std::collections::BTreeMap;

use super::ConfigError;

/// What expansion substituted, by key path (`exporters.x.headers.authorization`,
/// array elements as `key[2]`).
#[derive(Debug, Default)]
pub struct Expanded {
    /// Every substituted value, for scrubbing messages.
    values: Vec<String>,
    /// Key paths whose whole value was one reference, with that reference.
    whole: BTreeMap<String, String>,
}

impl Expanded {
    /// The reference (`${env:PORT}`) when the whole value at `key` was one.
    pub fn whole_reference(&self, key: &str) -> Option<&str> {
        self.whole.get(key).map(String::as_str)
    }

    /// `message` with every substituted value replaced by `<redacted>`. Values
    /// shorter than 3 characters are left alone: they cannot be secrets worth the
    /// name, and replacing them would garble the message.
    pub fn redact(&self, message: &str) -> String {
        let mut out = message.to_string();
        let mut values: Vec<&String> = self.values.iter().filter(|v| v.chars().count() >= 3).collect();
        // Longest first, so a value containing another is replaced whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for v in values {
            out = out.replace(v.as_str(), "<redacted>");
            // serde quotes strings with Rust escapes; catch those spellings too.
            let escaped = format!("{v:?}");
            let escaped = &escaped[1..escaped.len() - 1];
            if escaped != v.as_str() {
                out = out.replace(escaped, "<redacted>");
            }
        }
        out
    }
}

/// Expands every string value of `table` in place.
pub fn expand_table(table: &mut toml::Table, errors: &mut Vec<ConfigError>) -> Expanded {
    let mut out = Expanded::default();
    for (key, value) in table.iter_mut() {
        walk(value, key.clone(), &mut out, errors);
    }
    out
}

fn walk(value: &mut toml::Value, path: String, out: &mut Expanded, errors: &mut Vec<ConfigError>) {
    match value {
        toml::Value::String(s) => {
            if let Some(expanded) = expand_str(s, &path, out, errors) {
                *s = expanded;
            }
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, format!("{path}[{i}]"), out, errors);
            }
        }
        toml::Value::Table(t) => {
            for (key, item) in t.iter_mut() {
                walk(item, format!("{path}.{key}"), out, errors);
            }
        }
        _ => {}
    }
}

/// The expanded string, or None when `s` has no reference (nothing to replace).
fn expand_str(s: &str, key: &str, out: &mut Expanded, errors: &mut Vec<ConfigError>) -> Option<String> {
    if !s.contains("${") {
        return None;
    }
    let mut result = String::with_capacity(s.len());
    let mut rest = s;
    let mut references = 0;
    let mut literal = false;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('$') {
            // `$${` is an escaped, literal `${`.
            result.push_str(&rest[..start - 1]);
            result.push_str("${");
            rest = &rest[start + 2..];
            literal = true;
            continue;
        }
        result.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            errors.push(ConfigError::new(
                key,
                "unterminated ${...} reference; close it with '}' (write $${ for a literal ${)",
            ));
            return None;
        };
        let spec = &after[..end];
        match resolve(spec) {
            Ok(v) => {
                result.push_str(&v);
                out.values.push(v);
            }
            Err(message) => errors.push(ConfigError::new(key, message)),
        }
        references += 1;
        rest = &after[end + 1..];
    }
    if references == 1
        && !literal
        && s.starts_with("${")
        && s.ends_with('}')
        && s.find('}') == Some(s.len() - 1)
    {
        out.whole.insert(key.to_string(), s.to_string());
    }
    result.push_str(rest);
    Some(result)
}

/// The value of one reference (the text between `${` and `}`).
fn resolve(spec: &str) -> Result<String, String> {
    if let Some(var) = spec.strip_prefix("env:") {
        let (name, default) = match var.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (var, None),
        };
        return match (std::env::var(name), default) {
            (Ok(v), _) => Ok(v),
            (Err(_), Some(d)) => Ok(d.to_string()),
            (Err(std::env::VarError::NotUnicode(_)), None) => {
                Err(format!("environment variable {name} is not valid UTF-8"))
            }
            (Err(std::env::VarError::NotPresent), None) => Err(format!(
                "environment variable {name} is not set; set it or give a default with ${{env:{name}:-value}}"
            )),
        };
    }
    if let Some(path) = spec.strip_prefix("file:") {
        return match std::fs::read_to_string(path) {
            // One trailing newline is not part of the value (`echo token > file`).
            Ok(v) => Ok(v
                .strip_suffix("\r\n")
                .or_else(|| v.strip_suffix('\n'))
                .unwrap_or(&v)
                .to_string()),
            Err(e) => Err(format!(
                "cannot read {path} for ${{file:{path}}}: {e}; mount the file or fix the path"
            )),
        };
    }
    Err(format!(
        "unknown reference ${{{}}}; use ${{env:NAME}}, ${{env:NAME:-default}} or ${{file:/path}} (write $${{ for a literal ${{)",
        spec.split(':').next().unwrap_or(spec)
    ))
}

/// A whole-reference value read as the TOML scalar it spells, for keys that expect
/// a number or boolean; None if it spells none.
pub fn scalar(text: &str) -> Option<toml::Value> {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(toml::Value::Integer(i));
    }
    if let Ok(f) = t.parse::<f64>() {
        return Some(toml::Value::Float(f));
    }
    match t {
        "true" => Some(toml::Value::Boolean(true)),
        "false" => Some(toml::Value::Boolean(false)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(text: &str) -> (Result<toml::Table, Vec<ConfigError>>, Expanded) {
        let mut table: toml::Table = toml::from_str(text).expect("toml");
        let mut errors = Vec::new();
        let exp = expand_table(&mut table, &mut errors);
        (if errors.is_empty() { Ok(table) } else { Err(errors) }, exp)
    }

    #[test]
    fn expands_defaults_and_reports_missing() {
        let (ok, _) = expand("a = \"${env:WEIR_SURELY_UNSET_X:-http://x:1}/v1\"");
        assert_eq!(ok.expect("default")["a"].as_str(), Some("http://x:1/v1"));
        let (errs, _) = expand("[s]\nb = [\"${env:WEIR_SURELY_UNSET_Y}\"]");
        let errs = errs.expect_err("missing");
        assert_eq!(errs[0].key, "s.b[0]");
        assert!(errs[0].message.contains("WEIR_SURELY_UNSET_Y"));
    }

    #[test]
    fn a_value_cannot_add_keys_and_is_kept_verbatim() {
        // (A file, not the environment: tests may not mutate the process env.)
        let f = std::env::temp_dir().join(format!("weir-env-inject-{}", std::process::id()));
        std::fs::write(&f, "x\", \"x-injected\" = \"yes").expect("write");
        let (t, exp) = expand(&format!("[h]\nauthorization = \"${{file:{}}}\"", f.display()));
        std::fs::remove_file(&f).ok();
        let t = t.expect("expands");
        let h = t["h"].as_table().expect("table");
        assert_eq!(h.len(), 1, "no key was added: {h:?}");
        assert_eq!(h["authorization"].as_str(), Some("x\", \"x-injected\" = \"yes"));
        assert!(
            exp.whole_reference("h.authorization")
                .is_some_and(|r| r.starts_with("${file:"))
        );
        let msg = exp.redact("invalid type: string \"x\\\", \\\"x-injected\\\" = \\\"yes\", expected u16");
        assert!(!msg.contains("injected"), "{msg}");
    }

    #[test]
    fn files_and_escapes() {
        let dir = std::env::temp_dir().join(format!("weir-env-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("token");
        std::fs::write(&f, "s3cret\n").expect("write");
        let text = format!("a = \"Bearer ${{file:{}}}\"\nb = \"$${{env:X}}\"", f.display());
        let (t, exp) = expand(&text);
        let t = t.expect("expands");
        assert_eq!(t["a"].as_str(), Some("Bearer s3cret"));
        assert_eq!(t["b"].as_str(), Some("${env:X}"));
        assert_eq!(exp.whole_reference("a"), None);
        assert_eq!(exp.redact("got Bearer s3cret"), "got Bearer <redacted>");
        let (errs, _) = expand("a = \"${file:/nonexistent/weir}\"\nb = \"${vault:x}\"");
        let errs = errs.expect_err("errors");
        assert!(
            errs[0].message.contains("cannot read /nonexistent/weir"),
            "{errs:?}"
        );
        assert!(errs[1].message.contains("unknown reference ${vault}"), "{errs:?}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn scalars() {
        assert_eq!(scalar("8080"), Some(toml::Value::Integer(8080)));
        assert_eq!(scalar("true"), Some(toml::Value::Boolean(true)));
        assert_eq!(scalar("0.5"), Some(toml::Value::Float(0.5)));
        assert_eq!(scalar("5s"), None);
    }
}
