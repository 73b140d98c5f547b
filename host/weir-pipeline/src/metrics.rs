//! Self-metrics in Prometheus text, named like the OpenTelemetry Collector's so
//! existing dashboards translate: `weir_receiver_accepted_spans_total`,
//! `weir_exporter_send_failed_log_records_total{reason=...}`, queue size/capacity.
//!
//! Reconciliation: for each signal,
//! accepted = sent + send_failed + pipeline_dropped + queue_size (items queued
//! or in flight), per exporter of each pipeline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

use crate::Signal;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverLabels {
    pub receiver: String,
    pub transport: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub receiver: String,
    pub transport: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedRequestLabels {
    pub receiver: String,
    pub transport: String,
    pub signal: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExporterLabels {
    pub exporter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailedLabels {
    pub exporter: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DroppedLabels {
    pub pipeline: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SplitLabels {
    pub exporter: String,
    pub signal: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub exporter: String,
    pub signal: String,
}

/// Counters for one signal, named with that signal's item noun.
#[derive(Clone, Default)]
pub struct SignalCounters {
    pub accepted: Family<ReceiverLabels, Counter>,
    pub refused: Family<RefusedLabels, Counter>,
    pub sent: Family<ExporterLabels, Counter>,
    pub send_failed: Family<FailedLabels, Counter>,
    pub dropped: Family<DroppedLabels, Counter>,
}

type Refresher = Box<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemoryLabels {
    pub part: String,
}

/// Parts of `weir_memory_bytes`.
pub mod memory_part {
    /// Batches held in memory queues (disk queues hold theirs on disk).
    pub const QUEUED: &str = "queued";
    /// Linear memory of the live plugin instances.
    pub const PLUGIN_INSTANCES: &str = "plugin_instances";
    /// Compiled plugin code mapped in memory.
    pub const PLUGIN_CODE: &str = "plugin_code";
    /// The whole process (resident set), for the rest: runtime, buffers, allocator.
    pub const RESIDENT: &str = "resident";
}

pub struct Metrics {
    registry: Mutex<Registry>,
    refreshers: Mutex<Vec<Refresher>>,
    signals: [SignalCounters; 3],
    pub queue_size: Family<QueueLabels, Gauge>,
    pub queue_capacity: Family<QueueLabels, Gauge>,
    pub batch_send_size: Family<QueueLabels, Histogram, fn() -> Histogram>,
    pub queue_size_bytes: Family<QueueLabels, Gauge>,
    pub queue_capacity_bytes: Family<QueueLabels, Gauge>,
    /// 0 closed, 1 open, 2 half-open.
    pub circuit_state: Family<QueueLabels, Gauge>,
    pub retries: Family<QueueLabels, Counter>,
    pub batch_splits: Family<SplitLabels, Counter>,
    pub queue_recovered: Family<QueueLabels, Counter>,
    pub queue_corrupt_segments: Family<QueueLabels, Counter>,
    pub queue_truncated_bytes: Family<QueueLabels, Counter>,
    pub queue_disk_bytes: Family<QueueLabels, Gauge>,
    /// Requests refused by a receiver, by reason (`invalid`, `too_large`,
    /// `queue_full`, ...): also those refused before their items could be counted.
    pub refused_requests: Family<RefusedRequestLabels, Counter>,
    /// weir's memory by part ([`memory_part`]).
    pub memory: Family<MemoryLabels, Gauge>,
    /// Memory-queue bytes summed by the stages' scrape hooks.
    queued_memory: AtomicU64,
}

/// A new metric family, registered under `name`.
fn registered<M: Metric + Clone + Default>(registry: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 4.0, 10))
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("weir");
        let signals: [SignalCounters; 3] = Default::default();
        for signal in Signal::ALL {
            let c = &signals[signal.index()];
            let noun = signal.item_noun();
            registry.register(
                format!("receiver_accepted_{noun}"),
                format!("Number of {noun} successfully pushed into a pipeline"),
                c.accepted.clone(),
            );
            registry.register(
                format!("receiver_refused_{noun}"),
                format!("Number of {noun} that could not be pushed into a pipeline, by reason"),
                c.refused.clone(),
            );
            registry.register(
                format!("exporter_sent_{noun}"),
                format!("Number of {noun} successfully sent to destination"),
                c.sent.clone(),
            );
            registry.register(
                format!("exporter_send_failed_{noun}"),
                format!("Number of {noun} in failed attempts to send to destination, by reason"),
                c.send_failed.clone(),
            );
            registry.register(
                format!("pipeline_dropped_{noun}"),
                format!("Number of {noun} removed on purpose by a pipeline's plugins, by reason"),
                c.dropped.clone(),
            );
        }
        let batch_send_size =
            Family::<QueueLabels, Histogram, fn() -> Histogram>::new_with_constructor(batch_histogram);
        registry.register(
            "exporter_batch_send_size",
            "Items per batch handed to an exporter",
            batch_send_size.clone(),
        );
        let r = &mut registry;
        let queue_size = registered(
            r,
            "exporter_queue_size",
            "Items currently queued or in flight in an exporter",
        );
        let queue_capacity = registered(
            r,
            "exporter_queue_capacity",
            "Items an exporter may hold before receivers refuse data",
        );
        let refused_requests = registered(
            r,
            "receiver_refused_requests",
            "Requests a receiver refused, by reason (also those whose items could not be counted)",
        );
        let queue_size_bytes = registered(
            r,
            "exporter_queue_size_bytes",
            "Bytes (encoded OTLP) currently queued or in flight in an exporter",
        );
        let queue_capacity_bytes = registered(
            r,
            "exporter_queue_capacity_bytes",
            "Bytes an exporter may hold before receivers refuse data",
        );
        let circuit_state = registered(
            r,
            "exporter_circuit_state",
            "Circuit breaker of an exporter: 0 closed, 1 open (not sending), 2 half-open (probing)",
        );
        let retries = registered(
            r,
            "exporter_send_retries",
            "Export attempts that failed retryably and were retried",
        );
        let batch_splits = registered(
            r,
            "exporter_batch_splits",
            "Merged batches a destination refused that were split in halves and resent, by reason",
        );
        let queue_recovered = registered(
            r,
            "exporter_queue_recovered_items",
            "Items found in a disk queue at start-up (left by the previous run) and queued again",
        );
        let queue_corrupt_segments = registered(
            r,
            "exporter_queue_corrupt_segments",
            "Damaged disk-queue segment files found at start-up and moved aside",
        );
        let queue_truncated_bytes = registered(
            r,
            "exporter_queue_truncated_bytes",
            "Bytes of torn (never acknowledged) writes cut off a disk queue at start-up",
        );
        let queue_disk_bytes = registered(
            r,
            "exporter_queue_disk_bytes",
            "Bytes a disk queue's files take on disk",
        );
        let memory = registered(
            &mut registry,
            "memory_bytes",
            "weir's memory by part: queued (batches in memory queues), plugin_instances (plugin linear memory), plugin_code (compiled plugins), resident (the whole process)",
        );
        Arc::new(Metrics {
            queue_size_bytes,
            queue_capacity_bytes,
            circuit_state,
            retries,
            batch_splits,
            queue_recovered,
            queue_corrupt_segments,
            queue_truncated_bytes,
            queue_disk_bytes,
            refused_requests,
            memory,
            queued_memory: AtomicU64::new(0),
            registry: Mutex::new(registry),
            refreshers: Mutex::new(Vec::new()),
            signals,
            queue_size,
            queue_capacity,
            batch_send_size,
        })
    }

    pub fn signal(&self, signal: Signal) -> &SignalCounters {
        &self.signals[signal.index()]
    }

    /// Registers another metric family (used by other crates, e.g. plugins).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(name, help, metric);
    }

    /// Adds a hook run before every scrape, for gauges read from live state.
    /// It returns `false` once that state is gone, and is then removed (so
    /// parts a reload replaces leave nothing behind).
    pub fn on_scrape(&self, f: impl Fn() -> bool + Send + Sync + 'static) {
        self.refreshers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(f));
    }

    /// The gauge of one part of `weir_memory_bytes`, for the code that owns that part.
    pub fn memory_part(&self, part: &str) -> Gauge {
        self.memory
            .get_or_create(&MemoryLabels { part: part.into() })
            .clone()
    }

    /// Called by scrape hooks: `bytes` more are held in a memory queue.
    pub fn add_queued_memory(&self, bytes: u64) {
        self.queued_memory.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        self.queued_memory.store(0, Ordering::Relaxed);
        self.refreshers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|f| f());
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.memory_part(memory_part::QUEUED)
            .set(gauge(self.queued_memory.load(Ordering::Relaxed)));
        if let Some(rss) = resident_bytes() {
            self.memory_part(memory_part::RESIDENT).set(gauge(rss));
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// The process's resident set size (Linux: VmRSS in /proc/self/status).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_collector() {
        let m = Metrics::new();
        m.signal(Signal::Logs)
            .accepted
            .get_or_create(&ReceiverLabels {
                receiver: "otlp".into(),
                transport: "grpc".into(),
            })
            .inc_by(3);
        let text = m.encode();
        assert!(
            text.contains("weir_receiver_accepted_log_records_total{receiver=\"otlp\",transport=\"grpc\"} 3"),
            "{text}"
        );
    }

    #[test]
    fn memory_is_reported_by_part() {
        let m = Metrics::new();
        let hook = Arc::clone(&m);
        m.on_scrape(move || {
            hook.add_queued_memory(1234);
            true
        });
        m.memory_part(memory_part::PLUGIN_INSTANCES).set(65536);
        let text = m.encode();
        assert!(text.contains("weir_memory_bytes{part=\"queued\"} 1234"), "{text}");
        assert!(
            text.contains("weir_memory_bytes{part=\"plugin_instances\"} 65536"),
            "{text}"
        );
        let rss = text
            .lines()
            .find_map(|l| l.strip_prefix("weir_memory_bytes{part=\"resident\"} "))
            .and_then(|v| v.parse::<u64>().ok())
            .expect("resident reported");
        assert!(rss > 1 << 20, "{rss}");
        // Summed afresh at every scrape, not accumulated.
        assert!(m.encode().contains("weir_memory_bytes{part=\"queued\"} 1234"));
    }
}
