//! # weir-plugin-redact
//!
//! Masks or hashes sensitive data in spans, logs and metrics before it leaves:
//! attributes chosen by key (block list or allow list, with globs), and values
//! that look like emails, payment cards, bearer tokens, JWTs, IP addresses or
//! anything a custom regex finds — in attributes at every level (strings nested
//! in array and map values included), span names, span status messages, log
//! bodies and log event names. See README.md for the options.
//!
//! Performance: one bulk read per attribute level (and one per field), a
//! one-pass prefilter so most strings skip most detectors, no allocation for
//! values left alone, JSON parsing only for array/map values that could hold a
//! match, and edits only for values that change.

mod detect;
mod json;

use regex::Regex;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use weir_plugin_sdk::{
    Attr, Batch, Field, Level, Plugin, PluginError, Signal, Value, ValueRef, parse_config,
};

use crate::detect::Stats;
use weir_plugin_sdk::glob::GlobSet;

#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Action {
    #[default]
    Mask,
    Hash,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum KeyAction {
    Mask,
    Hash,
    Remove,
}

#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum KeyMode {
    /// The listed keys are redacted.
    #[default]
    Block,
    /// Only the listed keys are kept; all others are redacted.
    Allow,
}

/// A built-in value detector.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Detector {
    Email,
    CreditCard,
    Bearer,
    Jwt,
    Ipv4,
    Ipv6,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum LevelName {
    Resource,
    Scope,
    Item,
    Event,
    Link,
    /// Metric metadata attributes.
    Metric,
    /// Exemplar (filtered) attributes.
    Exemplar,
}

impl LevelName {
    fn level(self) -> Level {
        match self {
            LevelName::Resource => Level::Resource,
            LevelName::Scope => Level::Scope,
            LevelName::Item => Level::Item,
            LevelName::Event => Level::Event,
            LevelName::Link => Level::Link,
            LevelName::Metric => Level::Metric,
            LevelName::Exemplar => Level::Exemplar,
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct PatternConfig {
    /// For error messages only.
    name: Option<String>,
    regex: Option<String>,
    detector: Option<Detector>,
    action: Option<Action>,
    whole_value: Option<bool>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    action: Action,
    #[serde(default = "default_mask")]
    mask: String,
    salt: Option<String>,
    #[serde(default)]
    whole_value: bool,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    key_mode: KeyMode,
    key_action: Option<KeyAction>,
    #[serde(default = "default_detectors")]
    detectors: Vec<Detector>,
    #[serde(default)]
    patterns: Vec<PatternConfig>,
    #[serde(default)]
    ignore_keys: Vec<String>,
    #[serde(default = "all_levels")]
    levels: Vec<LevelName>,
    #[serde(default = "yes")]
    span_names: bool,
    #[serde(default = "yes")]
    status_messages: bool,
    #[serde(default = "yes")]
    log_bodies: bool,
    #[serde(default = "yes")]
    event_names: bool,
    #[serde(default = "yes")]
    metric_descriptions: bool,
}

fn default_mask() -> String {
    "***".into()
}

fn default_detectors() -> Vec<Detector> {
    vec![
        Detector::Email,
        Detector::CreditCard,
        Detector::Bearer,
        Detector::Jwt,
    ]
}

fn all_levels() -> Vec<LevelName> {
    vec![
        LevelName::Resource,
        LevelName::Scope,
        LevelName::Item,
        LevelName::Event,
        LevelName::Link,
        LevelName::Metric,
        LevelName::Exemplar,
    ]
}

fn yes() -> bool {
    true
}

enum Matcher {
    Email(Regex),
    CreditCard,
    Bearer,
    Jwt(Regex),
    Ipv4,
    Ipv6,
    Custom(Regex),
}

impl Matcher {
    /// The prefilter: false when `text` (with these `stats`) cannot hold a match.
    /// Custom regexes are always run.
    fn may_match(&self, stats: &Stats, text: &str) -> bool {
        match self {
            Matcher::Email(_) => stats.at,
            Matcher::Jwt(_) => stats.j && text.contains("eyJ"),
            Matcher::CreditCard => stats.digits >= 13,
            Matcher::Bearer => stats.b,
            Matcher::Ipv4 => stats.dots >= 3,
            Matcher::Ipv6 => stats.colons >= 2,
            Matcher::Custom(_) => true,
        }
    }
}

struct Rule {
    matcher: Matcher,
    action: Action,
    whole_value: bool,
}

/// A found range of a string and the rule that found it.
#[derive(Clone, Copy)]
struct Hit {
    start: usize,
    end: usize,
    rule: usize,
}

/// The redaction plugin. Build it with [`Plugin::init`].
pub struct Redact {
    keys: GlobSet,
    key_mode: KeyMode,
    key_action: KeyAction,
    ignore_keys: GlobSet,
    rules: Vec<Rule>,
    /// Whether any rule is a built-in detector (then the prefilter pass pays off).
    builtins: bool,
    mask: String,
    /// SHA-256 state after absorbing the salt; cloned per hashed value.
    salted: Option<Sha256>,
    levels: Vec<Level>,
    span_names: bool,
    status_messages: bool,
    log_bodies: bool,
    event_names: bool,
    metric_descriptions: bool,
    // Scratch, reused across values so scanning does not allocate.
    hits: Vec<Hit>,
    groups: Vec<(usize, usize)>,
    redacted: u64,
}

fn builtin(d: Detector) -> Result<Matcher, String> {
    let bad = |e: regex::Error| format!("built-in {d:?} detector failed to compile: {e}");
    Ok(match d {
        Detector::Email => Matcher::Email(detect::email_regex().map_err(bad)?),
        Detector::CreditCard => Matcher::CreditCard,
        Detector::Bearer => Matcher::Bearer,
        Detector::Jwt => Matcher::Jwt(detect::jwt_regex().map_err(bad)?),
        Detector::Ipv4 => Matcher::Ipv4,
        Detector::Ipv6 => Matcher::Ipv6,
    })
}

impl Redact {
    fn from_config(c: Config) -> Result<Self, String> {
        let mut rules = Vec::new();
        let mut seen = Vec::new();
        for &d in &c.detectors {
            if !seen.contains(&d) {
                seen.push(d);
                rules.push(Rule {
                    matcher: builtin(d)?,
                    action: c.action,
                    whole_value: c.whole_value,
                });
            }
        }
        for (i, p) in c.patterns.iter().enumerate() {
            let label = match &p.name {
                Some(n) => format!("patterns[{i}] ({n})"),
                None => format!("patterns[{i}]"),
            };
            let matcher = match (&p.regex, p.detector) {
                (Some(re), None) => Matcher::Custom(Regex::new(re).map_err(|e| {
                    format!(
                        "{label}.regex: invalid regular expression: {e}\n\
                         fix the pattern (Rust regex syntax, https://docs.rs/regex/latest/regex/#syntax; \
                         in TOML prefer single-quoted 'literal strings' so backslashes stay as written)"
                    )
                })?),
                (None, Some(d)) => builtin(d)?,
                _ => {
                    return Err(format!(
                        "{label}: give exactly one of `regex = \"...\"` or `detector = \"email\"` \
                         (email, credit_card, bearer, jwt, ipv4, ipv6)"
                    ));
                }
            };
            rules.push(Rule {
                matcher,
                action: p.action.unwrap_or(c.action),
                whole_value: p.whole_value.unwrap_or(c.whole_value),
            });
        }
        let key_action = c.key_action.unwrap_or(match c.action {
            Action::Mask => KeyAction::Mask,
            Action::Hash => KeyAction::Hash,
        });
        if c.key_action.is_some() && c.keys.is_empty() {
            return Err(
                "key_action: has no effect without `keys`; list the keys to redact \
                        (globs such as \"*.password\" work) or remove key_action"
                    .into(),
            );
        }
        if c.key_mode == KeyMode::Allow && c.keys.is_empty() {
            return Err(
                "keys: key_mode = \"allow\" keeps only the listed keys, but `keys` is empty; \
                        list the keys to keep (e.g. keys = [\"service.name\", \"http.*\"])"
                    .into(),
            );
        }
        let hashing = (key_action == KeyAction::Hash && !c.keys.is_empty())
            || rules.iter().any(|r| r.action == Action::Hash);
        let salted = match c.salt.as_deref() {
            Some("") => {
                return Err(
                    "salt: must not be empty; set a secret string, e.g. salt = \"${env:REDACT_SALT}\"".into(),
                );
            }
            Some(salt) => {
                let mut h = Sha256::new();
                h.update(salt.as_bytes());
                Some(h)
            }
            None if hashing => {
                return Err(
                    "salt: required when hashing (action, key_action or a pattern's action is \"hash\"); \
                     set a secret string, e.g. salt = \"${env:REDACT_SALT}\", so hashes cannot be \
                     reversed by hashing guesses"
                        .into(),
                );
            }
            None => None,
        };
        let mut levels: Vec<Level> = Vec::new();
        for l in &c.levels {
            if !levels.contains(&l.level()) {
                levels.push(l.level());
            }
        }
        let builtins = rules.iter().any(|r| !matches!(r.matcher, Matcher::Custom(_)));
        Ok(Redact {
            keys: GlobSet::new(&c.keys),
            key_mode: c.key_mode,
            key_action,
            ignore_keys: GlobSet::new(&c.ignore_keys),
            rules,
            builtins,
            mask: c.mask,
            salted,
            levels,
            span_names: c.span_names,
            status_messages: c.status_messages,
            log_bodies: c.log_bodies,
            event_names: c.event_names,
            metric_descriptions: c.metric_descriptions,
            hits: Vec::new(),
            groups: Vec::new(),
            redacted: 0,
        })
    }

    /// How many values (attributes, span names, log bodies) this instance has
    /// redacted so far.
    pub fn redacted_count(&self) -> u64 {
        self.redacted
    }

    /// Appends the salted SHA-256 of `bytes` as lowercase hex.
    fn hash_into(&self, bytes: &[u8], out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut h = self.salted.clone().unwrap_or_default();
        h.update(bytes);
        for b in h.finalize() {
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }

    fn replace_into(&self, action: Action, part: &str, out: &mut String) {
        match action {
            Action::Mask => out.push_str(&self.mask),
            Action::Hash => self.hash_into(part.as_bytes(), out),
        }
    }

    /// Finds everything the rules match in `text`. Returns the redacted text and
    /// whether it replaced the whole value, or `None` if nothing matched.
    fn scan(&mut self, text: &str) -> Option<(String, bool)> {
        if self.rules.is_empty() || text.is_empty() {
            return None;
        }
        let mut hits = std::mem::take(&mut self.hits);
        let mut groups = std::mem::take(&mut self.groups);
        hits.clear();
        let stats = if self.builtins {
            Stats::of(text)
        } else {
            Stats::default()
        };
        for (rule, r) in self.rules.iter().enumerate() {
            if !r.matcher.may_match(&stats, text) {
                continue;
            }
            let mut found = |start, end| hits.push(Hit { start, end, rule });
            match &r.matcher {
                Matcher::Email(re) | Matcher::Jwt(re) | Matcher::Custom(re) => {
                    detect::regex_matches(re, text, &mut found)
                }
                Matcher::CreditCard => detect::credit_cards(text, &mut groups, &mut found),
                Matcher::Bearer => detect::bearer(text, &mut found),
                Matcher::Ipv4 => detect::ipv4(text, &mut found),
                Matcher::Ipv6 => detect::ipv6(text, &mut found),
            }
        }
        let result = self.rewrite(text, &mut hits);
        self.hits = hits;
        self.groups = groups;
        result
    }

    fn rewrite(&self, text: &str, hits: &mut [Hit]) -> Option<(String, bool)> {
        if hits.is_empty() {
            return None;
        }
        if let Some(h) = hits
            .iter()
            .filter(|h| self.rules[h.rule].whole_value)
            .min_by_key(|h| h.rule)
        {
            let mut out = String::new();
            self.replace_into(self.rules[h.rule].action, text, &mut out);
            return (out != text).then_some((out, true));
        }
        hits.sort_unstable_by_key(|h| (h.start, std::cmp::Reverse(h.end)));
        let mut out = String::with_capacity(text.len() + 16);
        let (mut pos, mut i) = (0, 0);
        while i < hits.len() {
            let Hit { start, mut end, rule } = hits[i];
            let mut action = self.rules[rule].action;
            i += 1;
            // Overlapping hits merge; masking wins over hashing.
            while i < hits.len() && hits[i].start < end {
                end = end.max(hits[i].end);
                if self.rules[hits[i].rule].action == Action::Mask {
                    action = Action::Mask;
                }
                i += 1;
            }
            let start = start.max(pos);
            out.push_str(text.get(pos..start)?);
            self.replace_into(action, text.get(start..end)?, &mut out);
            pos = end;
        }
        out.push_str(text.get(pos..)?);
        (out != text).then_some((out, false))
    }

    /// Whether the key rules select `key` (an attribute key, or a key inside a
    /// map value). False when there are no key rules.
    fn key_selected(&self, key: &str) -> bool {
        if self.keys.is_empty() {
            return false;
        }
        let listed = self.keys.matches(key);
        match self.key_mode {
            KeyMode::Block => listed,
            KeyMode::Allow => !listed,
        }
    }

    /// Applies the key rule to one attribute; true if it handled the attribute.
    fn redact_key(&mut self, attr: &Attr<'_, '_, '_>, key: &str, value: ValueRef<'_>) -> bool {
        if !self.key_selected(key) {
            return false;
        }
        if value.is_absent() {
            return true;
        }
        match self.key_action {
            KeyAction::Remove => attr.remove(),
            KeyAction::Mask => {
                if value.as_str() == Some(self.mask.as_str()) {
                    return true;
                }
                attr.mask(&self.mask);
            }
            KeyAction::Hash => {
                let mut out = String::with_capacity(64);
                match value {
                    ValueRef::Str(s) | ValueRef::Json(s) => self.hash_into(s.as_bytes(), &mut out),
                    ValueRef::Bytes(b) => self.hash_into(b, &mut out),
                    other => {
                        let text = other.to_text().unwrap_or_default();
                        self.hash_into(text.as_bytes(), &mut out);
                    }
                }
                attr.set(out);
            }
        }
        self.redacted += 1;
        true
    }

    /// Redacts one attribute; `key` and `value` are its decoded key and value
    /// (decoded once by the caller: each decode validates UTF-8 again).
    fn redact_attr(&mut self, attr: &Attr<'_, '_, '_>, key: &str, value: ValueRef<'_>) {
        if self.redact_key(attr, key, value) {
            return;
        }
        let scan_values =
            !self.rules.is_empty() && (self.ignore_keys.is_empty() || !self.ignore_keys.matches(key));
        let new = match value {
            ValueRef::Str(s) if scan_values => self.scan(s).map(|(out, _)| Value::Str(out)),
            // Arrays and maps: value rules on every string inside, key rules on
            // every map key inside (those apply even where value rules are ignored).
            ValueRef::Json(s) => self.redact_json(s, scan_values),
            _ => None,
        };
        if let Some(v) = new {
            attr.set(v);
            self.redacted += 1;
        }
    }
}

impl Plugin for Redact {
    fn init(config: &str) -> Result<Self, String> {
        Redact::from_config(parse_config(config)?)
    }

    fn process(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let signal = batch.signal();
        if !self.keys.is_empty() || !self.rules.is_empty() {
            for li in 0..self.levels.len() {
                let level = self.levels[li];
                if matches!(level, Level::Event | Level::Link) && signal != Signal::Traces
                    || matches!(level, Level::Metric | Level::Exemplar) && signal != Signal::Metrics
                {
                    continue;
                }
                let attrs = batch.attributes(level);
                for attr in attrs.iter() {
                    self.redact_attr(&attr, attr.key(), attr.value());
                }
            }
        }
        if signal == Signal::Logs && self.log_bodies && (!self.keys.is_empty() || !self.rules.is_empty()) {
            let bodies = batch.field(Field::Body);
            for i in 0..bodies.len() {
                let new = match bodies.value(i) {
                    ValueRef::Str(s) => self.scan(s).map(|(out, _)| Value::Str(out)),
                    ValueRef::Json(s) => self.redact_json(s, true),
                    _ => None,
                };
                if let Some(v) = new {
                    batch.set_field(Field::Body, i, v);
                    self.redacted += 1;
                }
            }
        }
        if self.rules.is_empty() {
            return Ok(());
        }
        // Plain text fields: span names, status messages and span event names,
        // log event names, metric descriptions.
        let fields: &[(Level, Field, bool)] = match signal {
            Signal::Traces => &[
                (Level::Item, Field::Name, self.span_names),
                (Level::Item, Field::StatusMessage, self.status_messages),
                (Level::Event, Field::Name, self.event_names),
            ],
            Signal::Logs => &[(Level::Item, Field::EventName, self.event_names)],
            Signal::Metrics => &[(Level::Metric, Field::Description, self.metric_descriptions)],
        };
        for &(level, field, on) in fields {
            if !on {
                continue;
            }
            let column = batch.field_at(level, field);
            for i in 0..column.len() {
                if let Some((out, _)) = self.scan(column.str(i)) {
                    batch.set_field_at(level, i, field, out);
                    self.redacted += 1;
                }
            }
        }
        Ok(())
    }
}

weir_plugin_sdk::export_plugin!(Redact);

// The tests use the SDK's in-memory batch, which exists only natively.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
