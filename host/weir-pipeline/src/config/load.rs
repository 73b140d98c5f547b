//! Reading a config file: TOML parsing, `${env:..}`/`${file:..}` expansion inside
//! string values, typed sections, then the
//! cross-references between them. Each stage collects every error it finds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::env::{self, Expanded};
use super::model::*;
use super::{ConfigError, ConfigErrors};
use crate::Signal;

const SECTIONS: &[&str] = &[
    "service",
    "admin",
    "receivers",
    "plugins",
    "exporters",
    "pipelines",
];

pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_str(&name, &text),
        Err(e) => Err(ConfigErrors {
            source_name: name,
            errors: vec![ConfigError::new("", format!("cannot read the config file: {e}"))],
        }),
    }
}

pub fn parse_str(source_name: &str, text: &str) -> Result<Config, ConfigErrors> {
    let fail = |errors| ConfigErrors {
        source_name: source_name.to_string(),
        errors,
    };
    // Parse first, expand after: an environment value lands inside one string and
    // can neither add keys nor appear in a syntax error.
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| fail(vec![ConfigError::new("", invalid_toml(&e, text))]))?;
    let mut expand_errors = Vec::new();
    let expanded = env::expand_table(&mut table, &mut expand_errors);
    if !expand_errors.is_empty() {
        return Err(fail(expand_errors));
    }
    let exp = &expanded;

    let mut errors = Vec::new();
    for key in table.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            errors.push(ConfigError::new(
                key.as_str(),
                format!("unknown section; expected one of: {}", SECTIONS.join(", ")),
            ));
        }
    }
    let service = section::<ServiceConfig>(&table, "service", exp, &mut errors);
    let admin = section::<AdminConfig>(&table, "admin", exp, &mut errors);
    let receivers = named(&table, "receivers", exp, &mut errors, receiver);
    let plugins = named(&table, "plugins", exp, &mut errors, plugin);
    let exporters = named(&table, "exporters", exp, &mut errors, exporter);
    let pipelines = named(&table, "pipelines", exp, &mut errors, typed::<PipelineConfig>);
    if !table.contains_key("pipelines") {
        errors.push(ConfigError::new(
            "pipelines",
            "missing; define at least one, e.g. [pipelines.traces] with receivers and exporters",
        ));
    }

    let config = Config {
        service: service.unwrap_or_default(),
        admin: admin.unwrap_or_default(),
        receivers,
        plugins,
        exporters,
        pipelines,
    };
    validate(&config, &table, &mut errors);
    if config.service.reload.poll_interval.0 < std::time::Duration::from_millis(100) {
        errors.push(ConfigError::new(
            "service.reload.poll_interval",
            "must be at least 100ms (comparing the content hashes the config and every plugin file)",
        ));
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        // No message shows a value that came from the environment or a file.
        for e in &mut errors {
            e.message = expanded.redact(&e.message);
        }
        Err(fail(errors))
    }
}

/// The TOML parser's message (location and the raw line, which holds references,
/// not their values), with a hint for a reference written outside a string.
fn invalid_toml(e: &toml::de::Error, text: &str) -> String {
    let unquoted = text.lines().any(|l| {
        l.split_once('=')
            .is_some_and(|(_, v)| v.trim_start().starts_with("${"))
    });
    let hint = if unquoted {
        "\n    ${env:...} and ${file:...} references go inside strings: port = \"${env:PORT}\""
    } else {
        ""
    };
    format!("invalid TOML: {e}{hint}")
}

/// Deserializes an optional single-table section such as `[service]`.
fn section<T: DeserializeOwned>(
    table: &toml::Table,
    key: &str,
    exp: &Expanded,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    let value = table.get(key)?;
    typed(value, key, exp, errors)
}

/// Deserializes a section of named entries such as `[exporters.NAME]`, one entry at
/// a time so that an error in one does not hide errors in the others.
fn named<T>(
    table: &toml::Table,
    key: &str,
    exp: &Expanded,
    errors: &mut Vec<ConfigError>,
    parse: impl Fn(&toml::Value, &str, &Expanded, &mut Vec<ConfigError>) -> Option<T>,
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    let Some(value) = table.get(key) else {
        return out;
    };
    let Some(entries) = value.as_table() else {
        errors.push(ConfigError::new(
            key,
            format!("must be a table of named entries, e.g. [{key}.NAME]"),
        ));
        return out;
    };
    for (name, entry) in entries {
        if let Some(v) = parse(entry, &format!("{key}.{name}"), exp, errors) {
            out.insert(name.clone(), v);
        }
    }
    out
}

/// Splits off the `type` key of a receiver or exporter table, so that the variant's
/// own struct is deserialized directly and errors keep their full key path.
fn tagged<'a>(
    value: &toml::Value,
    prefix: &str,
    types: &[&'a str],
    errors: &mut Vec<ConfigError>,
) -> Option<(&'a str, toml::Value)> {
    let Some(table) = value.as_table() else {
        errors.push(ConfigError::new(prefix, "must be a table"));
        return None;
    };
    let mut rest = table.clone();
    let kind = match rest.remove("type") {
        Some(toml::Value::String(t)) => t,
        _ => {
            errors.push(ConfigError::new(
                format!("{prefix}.type"),
                format!(
                    "missing or not a string; set type to one of: {}",
                    types.join(", ")
                ),
            ));
            return None;
        }
    };
    match types.iter().find(|t| **t == kind) {
        Some(t) => Some((t, toml::Value::Table(rest))),
        None => {
            errors.push(ConfigError::new(
                format!("{prefix}.type"),
                format!("unknown type {kind:?}; expected one of: {}", types.join(", ")),
            ));
            None
        }
    }
}

fn receiver(
    value: &toml::Value,
    prefix: &str,
    exp: &Expanded,
    errors: &mut Vec<ConfigError>,
) -> Option<ReceiverConfig> {
    let (_, rest) = tagged(value, prefix, &["otlp"], errors)?;
    typed(&rest, prefix, exp, errors).map(ReceiverConfig::Otlp)
}

fn exporter(
    value: &toml::Value,
    prefix: &str,
    exp: &Expanded,
    errors: &mut Vec<ConfigError>,
) -> Option<ExporterConfig> {
    let (kind, rest) = tagged(
        value,
        prefix,
        &["otlp_grpc", "otlp_http", "console", "parquet"],
        errors,
    )?;
    match kind {
        "otlp_grpc" => typed(&rest, prefix, exp, errors).map(ExporterConfig::OtlpGrpc),
        "otlp_http" => typed(&rest, prefix, exp, errors).map(ExporterConfig::OtlpHttp),
        "parquet" => {
            let c: super::parquet::ParquetExporterConfig = typed(&rest, prefix, exp, errors)?;
            for (key, message) in c.problems() {
                errors.push(ConfigError::new(format!("{prefix}.{key}"), message));
            }
            Some(ExporterConfig::Parquet(c))
        }
        _ => typed(&rest, prefix, exp, errors).map(ExporterConfig::Console),
    }
}

/// `path = "builtin:NAME"`: a reference plugin embedded in the binary.
pub const EMBEDDED_PREFIX: &str = "builtin:";

fn plugin(
    value: &toml::Value,
    prefix: &str,
    exp: &Expanded,
    errors: &mut Vec<ConfigError>,
) -> Option<PluginConfig> {
    let raw: PluginConfigToml = typed(value, prefix, exp, errors)?;
    let source = match (raw.path, raw.builtin) {
        (Some(path), None) => match path.to_str().and_then(|p| p.strip_prefix(EMBEDDED_PREFIX)) {
            Some(name) => PluginSource::Embedded {
                name: name.to_string(),
                sha256: raw.sha256.clone(),
            },
            None => PluginSource::Path {
                path,
                sha256: raw.sha256.clone(),
            },
        },
        (None, Some(name)) => PluginSource::Builtin(name),
        (Some(_), Some(_)) => {
            errors.push(ConfigError::new(
                prefix,
                "set either path (a .wasm file) or builtin, not both",
            ));
            return None;
        }
        (None, None) => {
            errors.push(ConfigError::new(
                format!("{prefix}.path"),
                "missing; give the plugin's .wasm file, e.g. path = \"plugins/redact.wasm\"",
            ));
            return None;
        }
    };
    if raw.instances == 0 {
        errors.push(ConfigError::new(
            format!("{prefix}.instances"),
            "must be at least 1",
        ));
    }
    if let Some(sha) = raw
        .sha256
        .as_deref()
        .filter(|_| matches!(source, PluginSource::Builtin(_)))
    {
        errors.push(ConfigError::new(
            format!("{prefix}.sha256"),
            format!("{sha:?} pins a file; builtins have none"),
        ));
    }
    Some(PluginConfig {
        source,
        on_error: raw.on_error,
        memory_limit: raw.memory_limit,
        timeout: raw.timeout,
        instances: raw.instances,
        config: raw.config,
    })
}

/// Deserializes one table, reporting every bad key in it: after an error the
/// offending key is removed and the table is read again (up to a bound), so one
/// typo does not hide the next problem. Returns the value read without the bad
/// keys, so that cross-checks still run on the rest (the load fails anyway).
fn typed<T: DeserializeOwned>(
    value: &toml::Value,
    prefix: &str,
    exp: &Expanded,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    let mut value = value.clone();
    let mut seen: Vec<String> = Vec::new();
    let mut converted: Vec<String> = Vec::new();
    for _ in 0..32 {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => return Some(v),
            Err(e) => {
                let segments: Vec<serde_path_to_error::Segment> = e.path().iter().cloned().collect();
                let path = e.path().to_string();
                let key = if path == "." || path.is_empty() {
                    prefix.to_string()
                } else {
                    format!("{prefix}.{path}")
                };
                // `port = "${env:PORT}"`: the whole string was one reference and
                // the key wants a number or boolean; read the value as one.
                if let Some(reference) = exp.whole_reference(&key)
                    && !converted.contains(&key)
                {
                    converted.push(key.clone());
                    let scalar = at_path(&mut value, &segments)
                        .and_then(|v| v.as_str().and_then(super::env::scalar).map(|s| (v, s)));
                    if let Some((slot, s)) = scalar {
                        *slot = s;
                        continue;
                    }
                    let inner = e.into_inner();
                    errors.push(ConfigError::new(
                        key.clone(),
                        format!(
                            "{} (the value comes from {reference})",
                            hint(inner.message().trim().to_string())
                        ),
                    ));
                    seen.push(key);
                    let keys = map_keys(&segments);
                    if keys.is_empty() || !remove_path(&mut value, &keys) {
                        return None;
                    }
                    continue;
                }
                if seen.contains(&key) {
                    return None;
                }
                seen.push(key.clone());
                let inner = e.into_inner();
                errors.push(ConfigError::new(key, hint(inner.message().trim().to_string())));
                let keys = map_keys(&segments);
                if keys.is_empty() || !remove_path(&mut value, &keys) {
                    return None;
                }
            }
        }
    }
    None
}

fn map_keys(segments: &[serde_path_to_error::Segment]) -> Vec<String> {
    segments
        .iter()
        .filter_map(|s| match s {
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            _ => None,
        })
        .collect()
}

/// The value at a path of table keys and array indices.
fn at_path<'v>(
    value: &'v mut toml::Value,
    path: &[serde_path_to_error::Segment],
) -> Option<&'v mut toml::Value> {
    let mut cur = value;
    for segment in path {
        cur = match segment {
            serde_path_to_error::Segment::Map { key } => cur.as_table_mut()?.get_mut(key)?,
            serde_path_to_error::Segment::Seq { index } => cur.as_array_mut()?.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Removes the key at `path` (table keys) from a TOML value; false if absent.
fn remove_path(value: &mut toml::Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = value;
    for p in parents {
        match cur.get_mut(p.as_str()) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    cur.as_table_mut().and_then(|t| t.remove(last)).is_some()
}

/// Adds the fix to serde's terse messages where it is not obvious.
fn hint(message: String) -> String {
    if message.starts_with("unknown field") {
        return format!("{message}; remove the key or fix its spelling");
    }
    message
}

fn validate(config: &Config, table: &toml::Table, errors: &mut Vec<ConfigError>) {
    let mut check_addr = |key: String, addr: &str| {
        if let Err(e) = addr.parse::<SocketAddr>() {
            errors.push(ConfigError::new(
                key,
                format!("invalid address {addr:?} ({e}); write IP:PORT, e.g. \"0.0.0.0:4317\" or \"127.0.0.1:4318\""),
            ));
        }
    };
    if table.contains_key("admin") {
        check_addr("admin.address".into(), &config.admin.address);
    }
    for (name, receiver) in &config.receivers {
        let ReceiverConfig::Otlp(otlp) = receiver;
        if let Some(g) = &otlp.grpc {
            check_addr(format!("receivers.{name}.grpc.address"), &g.address);
        }
        if let Some(h) = &otlp.http {
            check_addr(format!("receivers.{name}.http.address"), &h.address);
        }
    }
    if let Some(a) = &config.admin.auth {
        a.validate("admin.auth", errors);
    }
    for (name, receiver) in &config.receivers {
        let ReceiverConfig::Otlp(otlp) = receiver;
        if let Some(a) = &otlp.auth {
            a.validate(&format!("receivers.{name}.auth"), errors);
        }
    }
    for (name, exporter) in &config.exporters {
        let key = format!("exporters.{name}");
        if let ExporterConfig::OtlpGrpc(c) | ExporterConfig::OtlpHttp(c) = exporter {
            check_endpoint(&format!("{key}.endpoint"), &c.endpoint, errors);
            if let Some(tls) = &c.tls {
                tls.validate(&format!("{key}.tls"), &c.endpoint, errors);
            }
        }
        let stage = exporter.stage();
        if stage.batch.max_items == 0 {
            errors.push(ConfigError::new(
                format!("{key}.batch.max_items"),
                "must be at least 1",
            ));
        }
        if stage.queue.capacity == 0 || stage.queue.capacity > u32::MAX as usize {
            errors.push(ConfigError::new(
                format!("{key}.queue.capacity"),
                "must be between 1 and 4294967295 items",
            ));
        }
        if stage.queue.concurrency == 0 {
            errors.push(ConfigError::new(
                format!("{key}.queue.concurrency"),
                "must be at least 1",
            ));
        }
        check_limits(&key, &stage, config, errors);
    }
    for (name, pipeline) in &config.pipelines {
        let key = format!("pipelines.{name}");
        if pipeline_signal(name).is_none() {
            errors.push(ConfigError::new(
                key.clone(),
                "a pipeline is named after its signal: traces, logs or metrics, optionally with a suffix such as traces/tenant-a",
            ));
        }
        let defined = |section: &str, name: &str| {
            table
                .get(section)
                .and_then(|v| v.as_table())
                .is_some_and(|t| t.contains_key(name))
        };
        check_refs(
            &key,
            "receivers",
            &pipeline.receivers,
            |r| defined("receivers", r),
            errors,
        );
        check_refs(
            &key,
            "exporters",
            &pipeline.exporters,
            |e| defined("exporters", e),
            errors,
        );
        for (i, p) in pipeline.plugins.iter().enumerate() {
            if !defined("plugins", p) {
                errors.push(ConfigError::new(
                    format!("{key}.plugins[{i}]"),
                    format!(
                        "refers to {p:?}, which is not defined; add a [plugins.{p}] section or fix the name"
                    ),
                ));
            }
        }
        for (route, exporters) in &pipeline.routes {
            for (i, e) in exporters.iter().enumerate() {
                if !defined("exporters", e) {
                    errors.push(ConfigError::new(
                        format!("{key}.routes.{route}[{i}]"),
                        format!("refers to {e:?}, which is not defined; add an [exporters.{e}] section or fix the name"),
                    ));
                }
            }
        }
        if pipeline_signal(name) == Some(Signal::Metrics) {
            let all = pipeline
                .exporters
                .iter()
                .chain(pipeline.routes.values().flatten());
            for e in all {
                if matches!(config.exporters.get(e), Some(ExporterConfig::Parquet(_))) {
                    errors.push(ConfigError::new(
                        format!("{key}.exporters"),
                        format!("{e:?} is a parquet archive, which takes traces and logs only"),
                    ));
                }
            }
        }
    }
}

/// Byte limits, the disk queue and the circuit breaker of one exporter.
fn check_limits(key: &str, stage: &StageConfig, config: &Config, errors: &mut Vec<ConfigError>) {
    let batch_bytes = stage.batch.max_bytes.0;
    if batch_bytes < 1024 {
        errors.push(ConfigError::new(
            format!("{key}.batch.max_bytes"),
            "must be at least 1KiB; the default, 4MiB less 1KiB, suits gRPC's default receive limit",
        ));
    }
    let queue_bytes = stage.queue.byte_capacity();
    if queue_bytes < batch_bytes {
        errors.push(ConfigError::new(
            format!("{key}.queue.max_bytes"),
            format!(
                "{queue_bytes} bytes is less than batch.max_bytes ({batch_bytes}); the queue must hold at least one full batch"
            ),
        ));
    }
    if stage.circuit_breaker.enabled && stage.circuit_breaker.failure_threshold == 0 {
        errors.push(ConfigError::new(
            format!("{key}.circuit_breaker.failure_threshold"),
            "must be at least 1 (or set circuit_breaker.enabled = false)",
        ));
    }
    let q = &stage.queue;
    if q.kind != QueueKind::Disk {
        for (set, name) in [
            (q.directory.is_some(), "directory"),
            (q.fsync != FsyncPolicy::default(), "fsync"),
        ] {
            if set {
                errors.push(ConfigError::new(
                    format!("{key}.queue.{name}"),
                    "applies to disk queues only; add queue.type = \"disk\" or remove it",
                ));
            }
        }
        return;
    }
    if q.directory.is_none() && config.service.data_dir.is_none() {
        errors.push(ConfigError::new(
            format!("{key}.queue.directory"),
            "a disk queue needs a directory: set queue.directory, or service.data_dir (the queue then lives in <data_dir>/queue/<exporter>)",
        ));
    }
    if q.fsync == FsyncPolicy::Interval && q.fsync_interval.0.is_zero() {
        errors.push(ConfigError::new(
            format!("{key}.queue.fsync_interval"),
            "must be more than 0 (or use fsync = \"always\")",
        ));
    }
    if q.segment_size.0 < (1 << 20) || q.segment_size.0 > queue_bytes {
        errors.push(ConfigError::new(
            format!("{key}.queue.segment_size"),
            format!("must be between 1MiB and queue.max_bytes ({queue_bytes} bytes)"),
        ));
    }
}

fn check_refs(
    key: &str,
    kind: &str,
    names: &[String],
    exists: impl Fn(&str) -> bool,
    errors: &mut Vec<ConfigError>,
) {
    if names.is_empty() {
        errors.push(ConfigError::new(
            format!("{key}.{kind}"),
            format!("must list at least one of the [{kind}.NAME] entries"),
        ));
    }
    for (i, n) in names.iter().enumerate() {
        if !exists(n) {
            errors.push(ConfigError::new(
                format!("{key}.{kind}[{i}]"),
                format!("refers to {n:?}, which is not defined; add a [{kind}.{n}] section or fix the name"),
            ));
        }
    }
}

fn check_endpoint(key: &str, endpoint: &str, errors: &mut Vec<ConfigError>) {
    // https:// is verified against the system's roots unless `tls` says otherwise.
    let rest = if let Some(r) = endpoint.strip_prefix("http://") {
        r
    } else if let Some(r) = endpoint.strip_prefix("https://") {
        r
    } else {
        errors.push(ConfigError::new(
            key,
            format!("invalid endpoint {endpoint:?}; write a URL such as \"http://127.0.0.1:4317\""),
        ));
        return;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || !authority.contains(':') {
        errors.push(ConfigError::new(
            key,
            format!("endpoint {endpoint:?} needs a host and a port, e.g. \"http://127.0.0.1:4317\""),
        ));
    }
}

/// `traces`, `logs`, `metrics`, or one of those with a `/suffix`.
pub fn pipeline_signal(name: &str) -> Option<Signal> {
    Signal::parse(name.split('/').next().unwrap_or(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[receivers.otlp]
type = "otlp"

[exporters.backend]
type = "otlp_grpc"
endpoint = "http://127.0.0.1:14317"

[pipelines.traces]
receivers = ["otlp"]
exporters = ["backend"]
"#;

    fn keys(text: &str) -> Vec<String> {
        parse_str("t.toml", text)
            .expect_err("invalid config")
            .errors
            .into_iter()
            .map(|e| e.key)
            .collect()
    }

    /// A config whose values come from files (the tests may not set env vars).
    fn with_secret(secret: &str, body: impl Fn(&str) -> String) -> Result<Config, ConfigErrors> {
        let f = std::env::temp_dir().join(format!(
            "weir-load-secret-{}-{}",
            std::process::id(),
            secret.len()
        ));
        std::fs::write(&f, secret).expect("write");
        let r = parse_str("t.toml", &body(&format!("${{file:{}}}", f.display())));
        std::fs::remove_file(&f).ok();
        r
    }

    #[test]
    fn a_secret_with_quotes_adds_no_header() {
        let c = with_secret("x\", \"x-injected\" = \"yes", |r| {
            GOOD.replace(
                "endpoint = \"http://127.0.0.1:14317\"",
                &format!("endpoint = \"http://127.0.0.1:14317\"\nheaders = {{ authorization = \"{r}\" }}"),
            )
        })
        .expect("loads");
        let ExporterConfig::OtlpGrpc(e) = &c.exporters["backend"] else {
            panic!("grpc")
        };
        assert_eq!(e.headers.len(), 1);
        assert_eq!(e.headers["authorization"], "x\", \"x-injected\" = \"yes");
    }

    #[test]
    fn a_whole_reference_reads_as_a_number_where_one_is_expected() {
        let c = with_secret("7", |r| {
            format!("[service]\nprocessing_threads = \"{r}\"\n{GOOD}")
        })
        .expect("loads");
        assert_eq!(c.service.processing_threads.map(|n| n.get()), Some(7));
    }

    #[test]
    fn errors_never_show_a_substituted_value() {
        let secret = "hunter2\"\n${nested}";
        let errs = with_secret(secret, |r| {
            format!("[service]\nprocessing_threads = \"{r}\"\n{GOOD}")
        })
        .expect_err("not a number");
        let text = errs.to_string();
        assert!(text.contains("service.processing_threads"), "{text}");
        assert!(text.contains("the value comes from ${file:"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let errs =
            with_secret(secret, |r| GOOD.replace("http://127.0.0.1:14317", r)).expect_err("bad endpoint");
        assert!(!errs.to_string().contains("hunter2"), "{errs}");
    }

    #[test]
    fn a_reference_outside_a_string_gets_a_hint() {
        let errs = parse_str("t.toml", "[service]\nprocessing_threads = ${env:N}\n").expect_err("invalid");
        assert!(errs.to_string().contains("go inside strings"), "{errs}");
    }

    #[test]
    fn good_config_loads_with_defaults() {
        let c = parse_str("t.toml", GOOD).expect("valid");
        let ReceiverConfig::Otlp(r) = &c.receivers["otlp"];
        assert_eq!(r.listeners(), (Some("127.0.0.1:4317"), Some("127.0.0.1:4318")));
        assert_eq!(c.exporters["backend"].stage().batch.max_items, 8192);
    }

    #[test]
    fn reports_every_error_with_its_key() {
        let text = r#"
[receivers.otlp]
type = "otlp"
grpc = { address = "nowhere:99999" }

[exporters.backend]
type = "otlp_grpc"
endpoint = "http://127.0.0.1:14317"
timeout = "5 parsecs"

[exporters.other]
type = "console"
colour = "blue"

[pipelines.traces]
receivers = ["otlp"]
exporters = ["backend", "missing"]
"#;
        let k = keys(text);
        assert_eq!(k.len(), 4, "{k:?}");
        assert!(k.contains(&"receivers.otlp.grpc.address".to_string()), "{k:?}");
        assert!(k.contains(&"exporters.backend.timeout".to_string()), "{k:?}");
        assert!(k.contains(&"exporters.other.colour".to_string()), "{k:?}");
        assert!(!k.contains(&"pipelines.traces.exporters[0]".to_string()), "{k:?}");
        assert!(k.contains(&"pipelines.traces.exporters[1]".to_string()), "{k:?}");
    }

    #[test]
    fn byte_limits_and_disk_queues_are_checked() {
        let c = parse_str("t.toml", GOOD).expect("valid");
        let stage = c.exporters["backend"].stage();
        assert_eq!(stage.batch.max_bytes.0, (4 << 20) - 1024);
        assert_eq!(stage.queue.byte_capacity(), 64 << 20);
        let disk = GOOD.replace(
            "endpoint = \"http://127.0.0.1:14317\"",
            "endpoint = \"http://127.0.0.1:14317\"\nqueue = { type = \"disk\" }\nbatch = { max_bytes = \"100\" }",
        );
        assert_eq!(
            keys(&disk),
            vec![
                "exporters.backend.batch.max_bytes",
                "exporters.backend.queue.directory"
            ]
        );
        let ok = format!(
            "[service]\ndata_dir = \"/var/lib/weir\"\n{}",
            disk.replace("max_bytes = \"100\"", "max_bytes = \"1MiB\"")
        );
        let c = parse_str("t.toml", &ok).expect("valid");
        assert_eq!(c.exporters["backend"].stage().queue.byte_capacity(), 1 << 30);
        let misplaced = GOOD.replace(
            "endpoint = \"http://127.0.0.1:14317\"",
            "endpoint = \"http://127.0.0.1:14317\"\nqueue = { directory = \"/q\", max_bytes = \"1MiB\" }",
        );
        assert_eq!(
            keys(&misplaced),
            vec![
                "exporters.backend.queue.max_bytes",
                "exporters.backend.queue.directory"
            ]
        );
    }

    #[test]
    fn processing_threads_must_be_positive() {
        let c = parse_str("t.toml", &format!("[service]\nprocessing_threads = 3\n{GOOD}")).expect("valid");
        assert_eq!(c.service.processing_threads.map(|n| n.get()), Some(3));
        let k = keys(&format!("[service]\nprocessing_threads = 0\n{GOOD}"));
        assert_eq!(k, vec!["service.processing_threads"]);
    }

    #[test]
    fn an_unknown_key_does_not_hide_a_bad_address_in_the_same_table() {
        let k = keys(&GOOD.replace(
            "type = \"otlp\"",
            "type = \"otlp\"\nbogus = 1\ngrpc = { address = \"nowhere\" }",
        ));
        assert_eq!(k, vec!["receivers.otlp.bogus", "receivers.otlp.grpc.address"]);
    }

    #[test]
    fn messages_are_single_lines() {
        let err = parse_str(
            "t.toml",
            &GOOD.replace("type = \"otlp\"", "type = \"otlp\"\nbogus = 1"),
        )
        .expect_err("invalid");
        assert!(
            !err.errors[0].message.contains('\n'),
            "{:?}",
            err.errors[0].message
        );
    }

    #[test]
    fn plugin_and_route_references_are_checked() {
        let text = GOOD.replace(
            "exporters = [\"backend\"]\n",
            "exporters = [\"backend\"]\nplugins = [\"nope\"]\nroutes = { a = [\"gone\"] }\n",
        );
        assert_eq!(
            keys(&text),
            vec!["pipelines.traces.plugins[0]", "pipelines.traces.routes.a[0]"]
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse_str(
            "t.toml",
            &GOOD.replace("type = \"otlp\"", "type = \"otlp\"\nbogus = 1"),
        )
        .expect_err("invalid");
        assert_eq!(err.errors[0].key, "receivers.otlp.bogus");
        assert!(
            err.errors[0].message.contains("bogus"),
            "{}",
            err.errors[0].message
        );
    }

    #[test]
    fn pipeline_names_must_start_with_a_signal() {
        assert_eq!(
            keys(&GOOD.replace("pipelines.traces", "pipelines.spans")),
            vec!["pipelines.spans"]
        );
        assert_eq!(pipeline_signal("logs/tenant-a"), Some(Signal::Logs));
    }
}
