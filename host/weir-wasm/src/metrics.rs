//! Per-plugin metrics: calls by outcome, items in/out/dropped, traps, timeouts,
//! and call latency.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use weir_pipeline::Metrics;
use weir_pipeline::metrics::memory_part;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub pipeline: String,
    pub plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub pipeline: String,
    pub plugin: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabels {
    pub plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

fn latency() -> Histogram {
    // 1 µs .. ~1 s
    Histogram::new(exponential_buckets(1e-6, 4.0, 11))
}

#[derive(Clone)]
pub struct PluginMetrics {
    pub calls: Family<OutcomeLabels, Counter>,
    pub items_in: Family<PluginLabels, Counter>,
    pub items_out: Family<PluginLabels, Counter>,
    pub items_dropped: Family<PluginLabels, Counter>,
    pub traps: Family<PluginLabels, Counter>,
    pub timeouts: Family<PluginLabels, Counter>,
    pub policy_applied: Family<OutcomeLabels, Counter>,
    pub duration: Family<PluginLabels, Histogram, fn() -> Histogram>,
    pub cache_rejected: Family<ReasonLabels, Counter>,
    /// Linear memory of each plugin's live instances.
    pub memory: Family<NameLabels, Gauge>,
    /// The same summed over plugins: `weir_memory_bytes{part="plugin_instances"}`.
    pub instances_memory: Gauge,
    /// `weir_memory_bytes{part="plugin_code"}`.
    pub code_memory: Gauge,
}

impl PluginMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let m = PluginMetrics {
            calls: Family::default(),
            items_in: Family::default(),
            items_out: Family::default(),
            items_dropped: Family::default(),
            traps: Family::default(),
            timeouts: Family::default(),
            policy_applied: Family::default(),
            duration: Family::new_with_constructor(latency),
            cache_rejected: Family::default(),
            memory: Family::default(),
            instances_memory: metrics.memory_part(memory_part::PLUGIN_INSTANCES),
            code_memory: metrics.memory_part(memory_part::PLUGIN_CODE),
        };
        metrics.register(
            "plugin_memory_bytes",
            "Linear memory of a plugin's live instances",
            m.memory.clone(),
        );
        metrics.register(
            "plugin_cache_rejected",
            "Compiled-plugin cache entries not used: directory (not private), key, mac (not written by this weir for this wasm), unreadable, incompatible",
            m.cache_rejected.clone(),
        );
        metrics.register(
            "plugin_calls",
            "Plugin calls by outcome (ok, error, trap, timeout, memory_limit, invalid)",
            m.calls.clone(),
        );
        metrics.register("plugin_items_in", "Items handed to a plugin", m.items_in.clone());
        metrics.register(
            "plugin_items_out",
            "Items left after a plugin",
            m.items_out.clone(),
        );
        metrics.register(
            "plugin_items_dropped",
            "Items a plugin dropped on purpose",
            m.items_dropped.clone(),
        );
        metrics.register(
            "plugin_traps",
            "Plugin calls that trapped (incl. memory limit)",
            m.traps.clone(),
        );
        metrics.register(
            "plugin_timeouts",
            "Plugin calls stopped at their deadline",
            m.timeouts.clone(),
        );
        metrics.register(
            "plugin_failure_policy_applied",
            "Failure policy applied after a failed call (pass, drop, reject)",
            m.policy_applied.clone(),
        );
        metrics.register(
            "plugin_call_duration_seconds",
            "Wall time of one plugin call on one batch",
            m.duration.clone(),
        );
        m
    }
}
