//! `${env:NAME}` and `${env:NAME:-default}` expansion, applied to the raw text
//! before TOML parsing (as the Collector does).

use super::ConfigError;

pub fn expand(text: &str) -> Result<String, Vec<ConfigError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${env:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        let Some(end) = after.find('}') else {
            let line = line_of(text, text.len() - rest.len() + start);
            errors.push(ConfigError::new(
                format!("line {line}"),
                "unterminated ${env:...} reference; close it with '}'",
            ));
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let spec = &after[..end];
        let (name, default) = match spec.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (spec, None),
        };
        match (std::env::var(name), default) {
            (Ok(v), _) => out.push_str(&v),
            (Err(_), Some(d)) => out.push_str(d),
            (Err(_), None) => {
                let line = line_of(text, text.len() - rest.len() + start);
                errors.push(ConfigError::new(
                    format!("line {line}"),
                    format!(
                        "environment variable {name} is not set; set it or give a default with ${{env:{name}:-value}}"
                    ),
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_defaults_and_reports_missing() {
        let ok = expand("a = \"${env:WEIR_SURELY_UNSET_X:-http://x:1}\"").expect("default");
        assert_eq!(ok, "a = \"http://x:1\"");
        let errs = expand("\n b = \"${env:WEIR_SURELY_UNSET_Y}\"").expect_err("missing");
        assert_eq!(errs[0].key, "line 2");
        assert!(errs[0].message.contains("WEIR_SURELY_UNSET_Y"));
    }
}
