//! # weir-plugin-sample
//!
//! Consistent probabilistic sampling. A span is kept or dropped by its trace
//! id alone, so every span of a trace gets the same decision on every weir
//! instance, with no coordination. The decision follows OpenTelemetry's
//! consistent-probability scheme (the `th`/`rv` tracestate spec): the trace's
//! randomness `R` is the low 56 bits of the trace id (its last 7 bytes,
//! big-endian) — or an explicit `rv` from the W3C tracestate `ot` entry — and a
//! span is kept iff `R >= (1 - rate) * 2^56`. Using the same comparison as the
//! OpenTelemetry SDK samplers makes the samples nest: whatever weir keeps at
//! 10% is a subset of what an upstream 50% sampler kept.
//!
//! Rules pick a different rate by service, span kind or span name (first match
//! wins); `keep_errors` keeps error spans and the rest of their trace in the
//! batch. Logs are sampled by trace id when they have one (so they follow their
//! trace at equal rates), else by a hash of the body; `keep_severity_at_least`
//! keeps important logs. Metrics pass through. See README.md for the options.

use serde::Deserialize;
use weir_plugin_sdk::{Batch, Column, Field, Level, OneOrMany, Plugin, PluginError, parse_config};

use weir_plugin_sdk::glob::Glob;

const TWO_56: u64 = 1 << 56;
const MASK_56: u64 = TWO_56 - 1;
const STATUS_ERROR: u32 = 2;

#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum Severity {
    Number(u32),
    Name(String),
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    service: Option<String>,
    kind: Option<OneOrMany>,
    name: Option<String>,
    rate: f64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct LogsConfig {
    #[serde(default = "one")]
    rate: f64,
    keep_severity_at_least: Option<Severity>,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            rate: 1.0,
            keep_severity_at_least: None,
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "one")]
    rate: f64,
    #[serde(default)]
    keep_errors: bool,
    #[serde(default)]
    rules: Vec<RuleConfig>,
    #[serde(default)]
    logs: LogsConfig,
}

fn one() -> f64 {
    1.0
}

/// The rejection threshold for a keep probability: keep iff `R >= T`.
/// `rate` 1 gives 0 (keep all), `rate` 0 gives 2^56 (keep none).
pub fn threshold(rate: f64) -> u64 {
    let t = ((1.0 - rate) * TWO_56 as f64).round();
    (t.max(0.0) as u64).min(TWO_56)
}

fn check_rate(key: &str, rate: f64) -> Result<u64, String> {
    if !(0.0..=1.0).contains(&rate) {
        return Err(format!(
            "{key}: {rate} is outside 0..=1; give the fraction to keep, e.g. {key} = 0.1 for 10%"
        ));
    }
    Ok(threshold(rate))
}

fn kind_number(name: &str) -> Option<u32> {
    Some(match name {
        "unspecified" => 0,
        "internal" => 1,
        "server" => 2,
        "client" => 3,
        "producer" => 4,
        "consumer" => 5,
        _ => return None,
    })
}

fn severity_number(s: &Severity) -> Result<u32, String> {
    let n = match s {
        Severity::Number(n) => *n,
        Severity::Name(name) => match name.to_ascii_lowercase().as_str() {
            "trace" => 1,
            "debug" => 5,
            "info" => 9,
            "warn" | "warning" => 13,
            "error" => 17,
            "fatal" => 21,
            _ => 0,
        },
    };
    if (1..=24).contains(&n) {
        Ok(n)
    } else {
        let given = match s {
            Severity::Number(n) => n.to_string(),
            Severity::Name(name) => format!("{name:?}"),
        };
        Err(format!(
            "logs.keep_severity_at_least: {given} is not a severity; use an OpenTelemetry severity number \
             1..=24 (e.g. 17 for ERROR) or one of trace, debug, info, warn, error, fatal"
        ))
    }
}

struct Rule {
    service: Option<Glob>,
    /// Bit k set = span kind k matches; 0 = any kind.
    kinds: u8,
    name: Option<Glob>,
    threshold: u64,
}

/// The sampling plugin. Build it with [`Plugin::init`].
pub struct Sample {
    threshold: u64,
    keep_errors: bool,
    rules: Vec<Rule>,
    need_service: bool,
    need_kind: bool,
    need_name: bool,
    log_threshold: u64,
    keep_severity: Option<u32>,
}

/// The trace's randomness from an explicit `rv` in the `ot` tracestate entry
/// (`ot=th:c;rv:9b8233f7e3a151`), if there is one.
fn explicit_rv(trace_state: &str) -> Option<u64> {
    if trace_state.is_empty() {
        return None;
    }
    for member in trace_state.split(',') {
        if let Some(ot) = member.trim().strip_prefix("ot=") {
            for part in ot.split(';') {
                if let Some(hex) = part.strip_prefix("rv:")
                    && hex.len() == 14
                {
                    return u64::from_str_radix(hex, 16).ok();
                }
            }
        }
    }
    None
}

/// The low 56 bits of a 16-byte trace id, big-endian; `None` if there is no
/// valid trace id.
pub fn trace_randomness(trace_id: &[u8]) -> Option<u64> {
    let id: &[u8; 16] = trace_id.try_into().ok()?;
    if id.iter().all(|&b| b == 0) {
        return None;
    }
    let mut buf = [0u8; 8];
    buf[1..].copy_from_slice(&id[9..]);
    Some(u64::from_be_bytes(buf))
}

/// A stable 56-bit hash (FNV-1a, then a SplitMix64 finalizer to spread the bits):
/// the same body gets the same decision on every instance and every version.
fn hash56(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (h ^ (h >> 31)) & MASK_56
}

impl Sample {
    fn from_config(c: Config) -> Result<Self, String> {
        let threshold = check_rate("rate", c.rate)?;
        let mut rules = Vec::with_capacity(c.rules.len());
        for (i, r) in c.rules.iter().enumerate() {
            let key = format!("rules[{i}]");
            if r.service.is_none() && r.kind.is_none() && r.name.is_none() {
                return Err(format!(
                    "{key}: give at least one of `service`, `kind` or `name` to match on \
                     (the top-level `rate` is the default for spans no rule matches)"
                ));
            }
            let mut kinds = 0u8;
            for k in r.kind.as_ref().map_or(&[][..], OneOrMany::items) {
                let n = kind_number(k).ok_or_else(|| {
                    format!(
                        "{key}.kind: unknown span kind {k:?}; use server, client, internal, producer, \
                         consumer or unspecified (or a list of them)"
                    )
                })?;
                kinds |= 1 << n;
            }
            rules.push(Rule {
                service: r.service.as_deref().map(Glob::new),
                kinds,
                name: r.name.as_deref().map(Glob::new),
                threshold: check_rate(&format!("{key}.rate"), r.rate)?,
            });
        }
        Ok(Sample {
            threshold,
            keep_errors: c.keep_errors,
            need_service: rules.iter().any(|r| r.service.is_some()),
            need_kind: rules.iter().any(|r| r.kinds != 0),
            need_name: rules.iter().any(|r| r.name.is_some()),
            rules,
            log_threshold: check_rate("logs.rate", c.logs.rate)?,
            keep_severity: c
                .logs
                .keep_severity_at_least
                .as_ref()
                .map(severity_number)
                .transpose()?,
        })
    }

    fn threshold_for(&self, service: &str, kind: u32, name: &str) -> u64 {
        for r in &self.rules {
            if r.service.as_ref().is_some_and(|g| !g.matches(service)) {
                continue;
            }
            if r.kinds != 0 && (kind > 7 || r.kinds & (1 << kind) == 0) {
                continue;
            }
            if r.name.as_ref().is_some_and(|g| !g.matches(name)) {
                continue;
            }
            return r.threshold;
        }
        self.threshold
    }
}

/// Keep (`false`) or drop (`true`) an item with randomness `r` at threshold `t`.
fn drops(r: Option<u64>, t: u64) -> bool {
    match r {
        _ if t == 0 => false,
        _ if t >= TWO_56 => true,
        Some(r) => r < t,
        // No trace id to decide by: keep rather than lose data at random.
        None => false,
    }
}

impl Plugin for Sample {
    fn init(config: &str) -> Result<Self, String> {
        Sample::from_config(parse_config(config)?)
    }

    fn process_traces(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let n = batch.len();
        if n == 0 || (self.threshold == 0 && self.rules.iter().all(|r| r.threshold == 0)) {
            return Ok(());
        }
        let ids = batch.field(Field::TraceId);
        let states = batch.field(Field::TraceState);
        let services: Option<(Column, Vec<u32>)> = self.need_service.then(|| {
            (
                batch.attribute(Level::Resource, "service.name"),
                batch.item_resources(),
            )
        });
        let kinds = self.need_kind.then(|| batch.field(Field::Kind));
        let names = self.need_name.then(|| batch.field(Field::Name));
        let status = self.keep_errors.then(|| batch.field(Field::StatusCode));

        // Trace ids with an error span in this batch: all their spans are kept.
        let mut error_traces: Vec<&[u8]> = Vec::new();
        if let Some(st) = &status {
            error_traces.extend((0..n).filter(|&i| st.u32(i) == STATUS_ERROR).map(|i| ids.get(i)));
            error_traces.sort_unstable();
            error_traces.dedup();
        }

        for i in 0..n {
            if !error_traces.is_empty() && error_traces.binary_search(&ids.get(i)).is_ok() {
                continue;
            }
            let t = if self.rules.is_empty() {
                self.threshold
            } else {
                let service = services.as_ref().map_or("", |(col, owner)| {
                    let r = owner.get(i).copied().unwrap_or(0) as usize;
                    col.value(r).as_str().unwrap_or("")
                });
                let kind = kinds.as_ref().map_or(0, |c| c.u32(i));
                let name = names.as_ref().map_or("", |c| c.str(i));
                self.threshold_for(service, kind, name)
            };
            let r = explicit_rv(states.str(i)).or_else(|| trace_randomness(ids.get(i)));
            if drops(r, t) {
                batch.drop_item(i);
            }
        }
        Ok(())
    }

    fn process_logs(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let n = batch.len();
        let t = self.log_threshold;
        if n == 0 || t == 0 {
            return Ok(());
        }
        let ids = batch.field(Field::TraceId);
        let severities = self
            .keep_severity
            .map(|min| (min, batch.field(Field::SeverityNumber)));
        let mut bodies: Option<Column> = None;
        for i in 0..n {
            if let Some((min, sev)) = &severities
                && sev.u32(i) >= *min
            {
                continue;
            }
            let r = match trace_randomness(ids.get(i)) {
                Some(r) => Some(r),
                None => {
                    let body = bodies.get_or_insert_with(|| batch.field(Field::Body)).get(i);
                    // Tag and payload together, so "1" and 1 differ; absent bodies stay undecided.
                    (body.len() > 1).then(|| hash56(body))
                }
            };
            if drops(r, t) {
                batch.drop_item(i);
            }
        }
        Ok(())
    }
}

weir_plugin_sdk::export_plugin!(Sample);

// The tests use the SDK's in-memory batch, which exists only natively.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
