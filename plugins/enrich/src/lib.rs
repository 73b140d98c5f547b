//! # weir-plugin-enrich
//!
//! Adds, copies, renames and deletes attributes, looks values up in a table
//! from the config (e.g. `service.name` → team and cost center), and stamps
//! Kubernetes pod metadata onto resources in sidecar deployments.
//!
//! Operations run in the order written, and each one sees the results of the
//! ones before it (a rename followed by a lookup on the new key works), even
//! though the batch itself only changes after the plugin returns: the plugin
//! keeps a small overlay of its own pending edits per level, and only for
//! levels a later operation reads. Each level's attributes are read in bulk at
//! most once per batch, and only when an operation needs to read them.
//! See README.md for the options.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use weir_plugin_sdk::{
    Attributes, Batch, Level, OneOrMany, Plugin, PluginError, Signal, Value, ValueRef, parse_config,
};

use weir_plugin_sdk::glob::GlobSet;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FromTo {
    from: String,
    to: String,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct KubeConfig {
    pod_name: Option<String>,
    pod_uid: Option<String>,
    namespace: Option<String>,
    node_name: Option<String>,
    container_name: Option<String>,
    deployment_name: Option<String>,
    cluster_name: Option<String>,
}

type Row = BTreeMap<String, serde_json::Value>;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct OpConfig {
    set: Option<Row>,
    copy: Option<FromTo>,
    rename: Option<FromTo>,
    delete: Option<OneOrMany>,
    lookup: Option<String>,
    table: Option<BTreeMap<String, Row>>,
    default: Option<Row>,
    kubernetes: Option<KubeConfig>,
    level: Option<OneOrMany>,
    overwrite: Option<bool>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    operations: Vec<OpConfig>,
}

type Attrs = Vec<(String, Value)>;

enum Op {
    Set {
        attrs: Attrs,
        overwrite: bool,
    },
    Copy {
        from: String,
        to: String,
        overwrite: bool,
    },
    Rename {
        from: String,
        to: String,
        overwrite: bool,
    },
    Delete {
        keys: GlobSet,
    },
    Lookup {
        key: String,
        table: HashMap<String, Attrs>,
        default: Option<Attrs>,
        overwrite: bool,
    },
    /// Sets resource attributes that are not already present.
    Kubernetes {
        attrs: Attrs,
    },
}

struct Step {
    op: Op,
    levels: Vec<Level>,
    /// Per level (by [`level_index`]): does a later step touch it? Only then
    /// must this step record its edits in the overlay.
    later: [bool; LEVELS],
}

/// Entity levels of the contract.
const LEVELS: usize = Level::ALL.len();

fn level_index(l: Level) -> usize {
    l.index()
}

fn parse_level(key: &str, name: &str) -> Result<Level, String> {
    Ok(match name {
        "resource" => Level::Resource,
        "scope" => Level::Scope,
        "item" => Level::Item,
        "event" => Level::Event,
        "link" => Level::Link,
        _ => {
            return Err(format!(
                "{key}: unknown level {name:?}; use resource, scope, item (spans, log records, \
                 data points), event or link — or a list of them"
            ));
        }
    })
}

fn to_value(key: &str, v: &serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        J::String(s) => Value::Str(s.clone()),
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Double(n.as_f64().unwrap_or(0.0)),
        },
        J::Array(_) | J::Object(_) => Value::Json(v.to_string()),
        J::Null => {
            return Err(format!(
                "{key}: null is not an attribute value; give a string, number, bool, array or table \
                 (use a `delete` operation to remove attributes)"
            ));
        }
    })
}

fn to_attrs(key: &str, row: &Row) -> Result<Attrs, String> {
    row.iter()
        .map(|(k, v)| Ok((k.clone(), to_value(&format!("{key}.{k:?}"), v)?)))
        .collect()
}

fn value_ref(v: &Value) -> ValueRef<'_> {
    match v {
        Value::Str(s) => ValueRef::Str(s),
        Value::Int(i) => ValueRef::Int(*i),
        Value::Double(d) => ValueRef::Double(*d),
        Value::Bool(b) => ValueRef::Bool(*b),
        Value::Bytes(b) => ValueRef::Bytes(b),
        Value::Json(s) => ValueRef::Json(s),
    }
}

const KUBE_KEYS: [&str; 7] = [
    "k8s.pod.name",
    "k8s.pod.uid",
    "k8s.namespace.name",
    "k8s.node.name",
    "k8s.container.name",
    "k8s.deployment.name",
    "k8s.cluster.name",
];

fn kube_attrs(key: &str, k: &KubeConfig) -> Result<Attrs, String> {
    let fields = [
        ("pod_name", &k.pod_name),
        ("pod_uid", &k.pod_uid),
        ("namespace", &k.namespace),
        ("node_name", &k.node_name),
        ("container_name", &k.container_name),
        ("deployment_name", &k.deployment_name),
        ("cluster_name", &k.cluster_name),
    ];
    if fields.iter().all(|(_, v)| v.is_none()) {
        return Err(format!(
            "{key}: give at least one of pod_name, pod_uid, namespace, node_name, container_name, \
             deployment_name, cluster_name (e.g. pod_name = \"${{env:POD_NAME}}\")"
        ));
    }
    let mut attrs = Vec::new();
    for ((name, v), attr) in fields.iter().zip(KUBE_KEYS) {
        let Some(v) = v else { continue };
        if v.contains("${") {
            return Err(format!(
                "{key}.{name}: {v:?} still holds a ${{...}} reference; weir expands ${{env:VAR}} when it \
                 loads its config, so check the spelling and that the variable is set (plugins cannot \
                 read the environment themselves)"
            ));
        }
        // An empty value (an unset downward-API variable) is not worth stamping.
        if !v.is_empty() {
            attrs.push((attr.to_string(), Value::Str(v.clone())));
        }
    }
    Ok(attrs)
}

fn compile(i: usize, c: &OpConfig) -> Result<Step, String> {
    let key = format!("operations[{i}]");
    let kinds = [
        c.set.is_some(),
        c.copy.is_some(),
        c.rename.is_some(),
        c.delete.is_some(),
        c.lookup.is_some(),
        c.kubernetes.is_some(),
    ];
    if kinds.iter().filter(|&&k| k).count() != 1 {
        return Err(format!(
            "{key}: give exactly one of set, copy, rename, delete, lookup or kubernetes per operation \
             (add another [[operations]] entry for the next one)"
        ));
    }
    if c.lookup.is_none() && (c.table.is_some() || c.default.is_some()) {
        return Err(format!(
            "{key}: `table` and `default` belong to a `lookup` operation"
        ));
    }
    if (c.delete.is_some() || c.kubernetes.is_some()) && c.overwrite.is_some() {
        return Err(format!(
            "{key}.overwrite: has no effect here (delete removes; kubernetes never overwrites); remove it"
        ));
    }
    let overwrite = c.overwrite.unwrap_or(true);
    if let Some(k) = &c.kubernetes {
        if c.level.is_some() {
            return Err(format!(
                "{key}.level: kubernetes always sets resource attributes; remove `level`"
            ));
        }
        return Ok(Step {
            op: Op::Kubernetes {
                attrs: kube_attrs(&format!("{key}.kubernetes"), k)?,
            },
            levels: vec![Level::Resource],
            later: [false; LEVELS],
        });
    }
    let Some(level) = &c.level else {
        return Err(format!(
            "{key}.level: say where the operation applies: level = \"resource\", \"scope\", \"item\" \
             (spans, log records, data points), \"event\" or \"link\", or a list of them"
        ));
    };
    let mut levels = Vec::new();
    for name in level.items() {
        let l = parse_level(&format!("{key}.level"), name)?;
        if !levels.contains(&l) {
            levels.push(l);
        }
    }
    if levels.is_empty() {
        return Err(format!("{key}.level: the list is empty; name at least one level"));
    }
    let op = if let Some(set) = &c.set {
        if set.is_empty() {
            return Err(format!("{key}.set: is empty; give the attributes to set"));
        }
        Op::Set {
            attrs: to_attrs(&format!("{key}.set"), set)?,
            overwrite,
        }
    } else if let Some(FromTo { from, to }) = &c.copy {
        Op::Copy {
            from: from.clone(),
            to: to.clone(),
            overwrite,
        }
    } else if let Some(FromTo { from, to }) = &c.rename {
        Op::Rename {
            from: from.clone(),
            to: to.clone(),
            overwrite,
        }
    } else if let Some(keys) = &c.delete {
        Op::Delete {
            keys: GlobSet::new(keys.items()),
        }
    } else if let Some(lookup) = &c.lookup {
        let Some(table) = &c.table else {
            return Err(format!(
                "{key}.table: a lookup needs a table of rows keyed by the value of {lookup:?}, \
                 e.g. table = {{ checkout = {{ team = \"payments\" }} }}"
            ));
        };
        let mut rows = HashMap::with_capacity(table.len());
        for (value, row) in table {
            rows.insert(value.clone(), to_attrs(&format!("{key}.table.{value:?}"), row)?);
        }
        Op::Lookup {
            key: lookup.clone(),
            table: rows,
            default: c
                .default
                .as_ref()
                .map(|d| to_attrs(&format!("{key}.default"), d))
                .transpose()?,
            overwrite,
        }
    } else {
        return Err(format!("{key}: no operation given"));
    };
    Ok(Step {
        op,
        levels,
        later: [false; LEVELS],
    })
}

/// The enrichment plugin. Build it with [`Plugin::init`].
pub struct Enrich {
    steps: Vec<Step>,
}

impl Enrich {
    fn from_config(c: Config) -> Result<Self, String> {
        let mut steps = c
            .operations
            .iter()
            .enumerate()
            .map(|(i, op)| compile(i, op))
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..steps.len() {
            let mut later = [false; LEVELS];
            for s in &steps[i + 1..] {
                for &l in &s.levels {
                    later[level_index(l)] = true;
                }
            }
            steps[i].later = later;
        }
        Ok(Enrich { steps })
    }
}

/// One level of the batch as this plugin's operations see it: the original
/// attributes (read in bulk on first use) plus the edits made so far.
struct View<'b, 'a> {
    batch: &'b Batch<'a>,
    level: Level,
    count: usize,
    table: OnceCell<Attributes<'b, 'a>>,
    /// Per entity, the edits made so far, in order (`None` = removed).
    overlay: Vec<Vec<(String, Option<Value>)>>,
}

impl<'b, 'a> View<'b, 'a> {
    fn new(batch: &'b Batch<'a>, level: Level) -> Self {
        View {
            batch,
            level,
            count: batch.count(level),
            table: OnceCell::new(),
            overlay: Vec::new(),
        }
    }

    fn table(&self) -> &Attributes<'b, 'a> {
        self.table.get_or_init(|| self.batch.attributes(self.level))
    }

    /// Entries of entity `e` in the original table.
    fn range(&self, e: usize) -> std::ops::Range<usize> {
        let offsets = &self.table().table().entity_offsets;
        match (offsets.get(e), offsets.get(e + 1)) {
            (Some(&a), Some(&b)) => a as usize..b as usize,
            _ => 0..0,
        }
    }

    /// The current value of `key` on entity `e`, if present.
    fn get(&self, e: usize, key: &str) -> Option<ValueRef<'_>> {
        if let Some((_, v)) = self
            .overlay
            .get(e)
            .and_then(|o| o.iter().rev().find(|(k, _)| k == key))
        {
            return v.as_ref().map(value_ref);
        }
        let t = self.table().table();
        self.range(e)
            .find(|&j| t.keys.get(j) == key.as_bytes())
            .map(|j| t.values.value(j))
            .filter(|v| !v.is_absent())
    }

    fn record(&mut self, e: usize, key: &str, value: Option<Value>) {
        if self.overlay.len() < self.count {
            self.overlay.resize_with(self.count, Vec::new);
        }
        if let Some(o) = self.overlay.get_mut(e) {
            o.push((key.to_string(), value));
        }
    }

    fn set(&mut self, e: usize, key: &str, value: Value, record: bool) {
        if record {
            self.record(e, key, Some(value.clone()));
        }
        self.batch.set_attribute(self.level, e, key, value);
    }

    fn remove(&mut self, e: usize, key: &str, record: bool) {
        if record {
            self.record(e, key, None);
        }
        self.batch.remove_attribute(self.level, e, key);
    }

    /// Keys of entity `e` currently present that match `globs`.
    fn matching_keys(&self, e: usize, globs: &GlobSet, out: &mut Vec<String>) {
        out.clear();
        let t = self.table().table();
        let overlay = self.overlay.get(e).map_or(&[][..], Vec::as_slice);
        let table_keys = self.range(e).map(|j| t.keys.str(j));
        let overlay_keys = overlay.iter().map(|(k, _)| k.as_str());
        for k in table_keys.chain(overlay_keys) {
            if globs.matches(k) && !out.iter().any(|o| o == k) && self.get(e, k).is_some() {
                out.push(k.to_string());
            }
        }
    }
}

fn apply(op: &Op, view: &mut View<'_, '_>, record: bool, scratch: &mut Vec<String>) {
    for e in 0..view.count {
        match op {
            Op::Set { attrs, overwrite } => {
                for (k, v) in attrs {
                    if !*overwrite && view.get(e, k).is_some() {
                        continue;
                    }
                    view.set(e, k, v.clone(), record);
                }
            }
            Op::Kubernetes { attrs } => {
                for (k, v) in attrs {
                    if view.get(e, k).is_none() {
                        view.set(e, k, v.clone(), record);
                    }
                }
            }
            Op::Copy { from, to, overwrite } | Op::Rename { from, to, overwrite } => {
                if from == to {
                    continue;
                }
                let Some(v) = view.get(e, from).and_then(|v| v.to_owned()) else {
                    continue;
                };
                if *overwrite || view.get(e, to).is_none() {
                    view.set(e, to, v, record);
                }
                if matches!(op, Op::Rename { .. }) {
                    view.remove(e, from, record);
                }
            }
            Op::Delete { keys } => {
                view.matching_keys(e, keys, scratch);
                for k in scratch.iter() {
                    view.remove(e, k, record);
                }
            }
            Op::Lookup {
                key,
                table,
                default,
                overwrite,
            } => {
                let row = match view.get(e, key) {
                    Some(ValueRef::Str(s)) => table.get(s),
                    Some(other) => other.to_text().and_then(|t| table.get(t.as_str())),
                    None => None,
                };
                let Some(row) = row.or(default.as_ref()) else {
                    continue;
                };
                for (k, v) in row {
                    if !*overwrite && view.get(e, k).is_some() {
                        continue;
                    }
                    view.set(e, k, v.clone(), record);
                }
            }
        }
    }
}

impl Plugin for Enrich {
    fn init(config: &str) -> Result<Self, String> {
        Enrich::from_config(parse_config(config)?)
    }

    fn process(&mut self, batch: &Batch) -> Result<(), PluginError> {
        if self.steps.is_empty() || batch.is_empty() {
            return Ok(());
        }
        let traces = batch.signal() == Signal::Traces;
        let mut views: [Option<View<'_, '_>>; LEVELS] = Default::default();
        let mut scratch = Vec::new();
        for step in &self.steps {
            for &level in &step.levels {
                if matches!(level, Level::Event | Level::Link) && !traces {
                    continue;
                }
                let li = level_index(level);
                let view = views[li].get_or_insert_with(|| View::new(batch, level));
                apply(&step.op, view, step.later[li], &mut scratch);
            }
        }
        Ok(())
    }
}

weir_plugin_sdk::export_plugin!(Enrich);

// The tests use the SDK's in-memory batch, which exists only natively.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
