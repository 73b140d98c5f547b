//! # weir-plugin-route
//!
//! Gives items a route name by rules on their attributes (resource, scope or
//! item level: tenant, service.name, ...) and, for logs, their severity. Rules
//! are evaluated in order and the first match wins; items no rule matches keep
//! the pipeline's default route. The pipeline maps route names to exporters.
//!
//! Per batch: one bulk read per (level, key) the rules use, one for severities
//! if a rule needs them, then one `route` call per route name with all its
//! items. See README.md for the options.

use std::collections::HashSet;
use std::fmt::Write as _;

use regex::Regex;
use serde::Deserialize;
use weir_plugin_sdk::{
    Batch, Column, Field, Level, OneOrMany, Plugin, PluginError, Signal, ValueRef, parse_config,
};

use weir_plugin_sdk::glob::Glob;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    route: String,
    attribute: Option<String>,
    level: Option<String>,
    equals: Option<String>,
    #[serde(rename = "in")]
    one_of: Option<Vec<String>>,
    glob: Option<String>,
    regex: Option<String>,
    severity_min: Option<u32>,
    severity_max: Option<u32>,
    signals: Option<OneOrMany>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    rules: Vec<RuleConfig>,
}

/// Where a rule reads its attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    At(Level),
    /// The item's own attribute, else its scope's, else its resource's.
    Any,
}

enum Matcher {
    /// The attribute is present (any value).
    Present,
    Equals(String),
    OneOf(Vec<String>),
    OneOfMany(HashSet<String>),
    Glob(Glob),
    Regex(Regex),
}

impl Matcher {
    fn matches(&self, text: &str) -> bool {
        match self {
            Matcher::Present => true,
            Matcher::Equals(e) => text == e,
            Matcher::OneOf(v) => v.iter().any(|e| e == text),
            Matcher::OneOfMany(s) => s.contains(text),
            Matcher::Glob(g) => g.matches(text),
            Matcher::Regex(r) => r.is_match(text),
        }
    }
}

struct Rule {
    route: usize,
    attribute: Option<(String, Where, Matcher)>,
    severity: Option<(u32, u32)>,
    /// Bit per signal (traces 1, logs 2, metrics 4).
    signals: u8,
}

fn signal_bit(s: Signal) -> u8 {
    match s {
        Signal::Traces => 1,
        Signal::Logs => 2,
        Signal::Metrics => 4,
    }
}

/// The routing plugin. Build it with [`Plugin::init`].
pub struct Route {
    routes: Vec<String>,
    rules: Vec<Rule>,
    /// Scratch for formatting non-string values.
    text: String,
}

fn compile(i: usize, c: &RuleConfig, routes: &mut Vec<String>) -> Result<Rule, String> {
    let key = format!("rules[{i}]");
    if c.route.is_empty() {
        return Err(format!(
            "{key}.route: must not be empty; name the route the pipeline maps to exporters"
        ));
    }
    let route = match routes.iter().position(|r| *r == c.route) {
        Some(p) => p,
        None => {
            routes.push(c.route.clone());
            routes.len() - 1
        }
    };
    let given = [
        c.equals.is_some(),
        c.one_of.is_some(),
        c.glob.is_some(),
        c.regex.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() > 1 {
        return Err(format!(
            "{key}: give at most one of equals, in, glob or regex (write another rule for an alternative)"
        ));
    }
    let attribute = match &c.attribute {
        None => {
            if given.iter().any(|&g| g) || c.level.is_some() {
                return Err(format!(
                    "{key}.attribute: equals/in/glob/regex/level need the attribute key to test, \
                     e.g. attribute = \"tenant\""
                ));
            }
            None
        }
        Some(attr) => {
            let at = match c.level.as_deref() {
                None | Some("any") => Where::Any,
                Some("resource") => Where::At(Level::Resource),
                Some("scope") => Where::At(Level::Scope),
                Some("item") => Where::At(Level::Item),
                Some(other) => {
                    return Err(format!(
                        "{key}.level: unknown level {other:?}; use resource, scope, item or any \
                         (any = the item's attribute, else its scope's, else its resource's)"
                    ));
                }
            };
            let matcher = if let Some(e) = &c.equals {
                Matcher::Equals(e.clone())
            } else if let Some(list) = &c.one_of {
                if list.is_empty() {
                    return Err(format!("{key}.in: the list is empty; give the values that match"));
                }
                if list.len() > 8 {
                    Matcher::OneOfMany(list.iter().cloned().collect())
                } else {
                    Matcher::OneOf(list.clone())
                }
            } else if let Some(g) = &c.glob {
                Matcher::Glob(Glob::new(g))
            } else if let Some(re) = &c.regex {
                Matcher::Regex(Regex::new(re).map_err(|e| {
                    format!(
                        "{key}.regex: invalid regular expression: {e}\nfix the pattern (Rust regex syntax, \
                         https://docs.rs/regex/latest/regex/#syntax; it matches anywhere in the value \
                         unless anchored with ^ and $)"
                    )
                })?)
            } else {
                Matcher::Present
            };
            Some((attr.clone(), at, matcher))
        }
    };
    let severity = match (c.severity_min, c.severity_max) {
        (None, None) => None,
        (min, max) => {
            let (min, max) = (min.unwrap_or(0), max.unwrap_or(u32::MAX));
            if min > max {
                return Err(format!(
                    "{key}: severity_min ({min}) is above severity_max ({max}); \
                     severity numbers run 1 (TRACE) to 24 (FATAL4), e.g. 17..=24 for errors"
                ));
            }
            Some((min, max))
        }
    };
    if attribute.is_none() && severity.is_none() {
        return Err(format!(
            "{key}: give a condition: attribute (with equals, in, glob or regex) and/or \
             severity_min/severity_max for logs"
        ));
    }
    let mut signals = 0u8;
    match &c.signals {
        None => signals = 7,
        Some(list) => {
            for s in list.items() {
                signals |= match s.as_str() {
                    "traces" => 1,
                    "logs" => 2,
                    "metrics" => 4,
                    other => {
                        return Err(format!(
                            "{key}.signals: unknown signal {other:?}; use traces, logs or metrics"
                        ));
                    }
                };
            }
        }
    }
    if severity.is_some() {
        if signals & 2 == 0 {
            return Err(format!(
                "{key}: severity_min/severity_max only apply to logs, but signals leaves logs out"
            ));
        }
        // Only log records have a severity.
        signals = 2;
    }
    Ok(Rule {
        route,
        attribute,
        severity,
        signals,
    })
}

/// The attribute columns one batch needs, read once each.
struct Columns {
    /// (level, key, column)
    read: Vec<(Level, String, Column)>,
    item_scope: Vec<u32>,
    scope_resource: Vec<u32>,
}

impl Columns {
    fn get(&self, level: Level, key: &str) -> Option<&Column> {
        self.read
            .iter()
            .find(|(l, k, _)| *l == level && k == key)
            .map(|(_, _, c)| c)
    }

    fn ensure(&mut self, batch: &Batch, level: Level, key: &str) {
        if self.get(level, key).is_none() {
            self.read
                .push((level, key.to_string(), batch.attribute(level, key)));
        }
    }

    fn value_at(&self, level: Level, key: &str, item: usize) -> ValueRef<'_> {
        let Some(col) = self.get(level, key) else {
            return ValueRef::Absent;
        };
        let scope = || self.item_scope.get(item).copied().unwrap_or(0) as usize;
        let entity = match level {
            Level::Resource => self.scope_resource.get(scope()).copied().unwrap_or(0) as usize,
            Level::Scope => scope(),
            _ => item,
        };
        col.value(entity)
    }

    fn value(&self, at: Where, key: &str, item: usize) -> ValueRef<'_> {
        match at {
            Where::At(level) => self.value_at(level, key, item),
            Where::Any => [Level::Item, Level::Scope, Level::Resource]
                .into_iter()
                .map(|l| self.value_at(l, key, item))
                .find(|v| !v.is_absent())
                .unwrap_or(ValueRef::Absent),
        }
    }
}

fn levels_of(at: Where) -> &'static [Level] {
    match at {
        Where::At(Level::Resource) => &[Level::Resource],
        Where::At(Level::Scope) => &[Level::Scope],
        Where::At(_) => &[Level::Item],
        Where::Any => &[Level::Item, Level::Scope, Level::Resource],
    }
}

impl Route {
    fn from_config(c: Config) -> Result<Self, String> {
        let mut routes = Vec::new();
        let rules = c
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| compile(i, r, &mut routes))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Route {
            routes,
            rules,
            text: String::new(),
        })
    }
}

/// Does `matcher` accept `value`? Non-string scalars are compared as text.
fn value_matches(matcher: &Matcher, value: ValueRef<'_>, text: &mut String) -> bool {
    match value {
        ValueRef::Absent => false,
        _ if matches!(matcher, Matcher::Present) => true,
        ValueRef::Str(s) | ValueRef::Json(s) => matcher.matches(s),
        ValueRef::Int(i) => {
            text.clear();
            let _ = write!(text, "{i}");
            matcher.matches(text)
        }
        ValueRef::Double(d) => {
            text.clear();
            let _ = write!(text, "{d}");
            matcher.matches(text)
        }
        ValueRef::Bool(b) => matcher.matches(if b { "true" } else { "false" }),
        ValueRef::Bytes(_) => false,
    }
}

impl Plugin for Route {
    fn init(config: &str) -> Result<Self, String> {
        Route::from_config(parse_config(config)?)
    }

    fn process(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let n = batch.len();
        let bit = signal_bit(batch.signal());
        let active: Vec<&Rule> = self.rules.iter().filter(|r| r.signals & bit != 0).collect();
        if n == 0 || active.is_empty() {
            return Ok(());
        }
        let mut cols = Columns {
            read: Vec::new(),
            item_scope: Vec::new(),
            scope_resource: Vec::new(),
        };
        let (mut need_scope, mut need_resource) = (false, false);
        for r in &active {
            if let Some((key, at, _)) = &r.attribute {
                for &l in levels_of(*at) {
                    cols.ensure(batch, l, key);
                    need_scope |= l != Level::Item;
                    need_resource |= l == Level::Resource;
                }
            }
        }
        if need_scope {
            cols.item_scope = batch.owners(Level::Item);
        }
        if need_resource {
            cols.scope_resource = batch.owners(Level::Scope);
        }
        let severities = active
            .iter()
            .any(|r| r.severity.is_some())
            .then(|| batch.field(Field::SeverityNumber));

        let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); self.routes.len()];
        for i in 0..n {
            for r in &active {
                if let Some((min, max)) = r.severity {
                    let sev = severities.as_ref().map_or(0, |c| c.u32(i));
                    if sev < min || sev > max {
                        continue;
                    }
                }
                if let Some((key, at, matcher)) = &r.attribute
                    && !value_matches(matcher, cols.value(*at, key, i), &mut self.text)
                {
                    continue;
                }
                if let Some(b) = buckets.get_mut(r.route) {
                    b.push(i as u32);
                }
                break;
            }
        }
        for (name, items) in self.routes.iter().zip(buckets) {
            batch.route(name, items);
        }
        Ok(())
    }
}

weir_plugin_sdk::export_plugin!(Route);

// The tests use the SDK's in-memory batch, which exists only natively.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
