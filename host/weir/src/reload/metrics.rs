//! The reload self-metrics: `weir_reload_total{result}`,
//! `weir_config_last_reload_success_timestamp_seconds`, and
//! `weir_config_info{hash}` (1 for the active config).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use weir_pipeline::Metrics;

use super::status::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HashLabels {
    hash: String,
}

pub struct ReloadMetrics {
    total: Family<ResultLabels, Counter>,
    last_success: Gauge<f64, AtomicU64>,
    info: Family<HashLabels, Gauge>,
}

impl ReloadMetrics {
    /// Registers the families (the registry adds the `weir_` prefix); call
    /// once per registry.
    pub fn register(metrics: &Arc<Metrics>) -> ReloadMetrics {
        let m = ReloadMetrics {
            total: Family::default(),
            last_success: Gauge::default(),
            info: Family::default(),
        };
        metrics.register(
            "reload",
            "Config reloads by result (success, failure, unchanged)",
            m.total.clone(),
        );
        metrics.register(
            "config_last_reload_success_timestamp_seconds",
            "When the active config was loaded (start-up or the last successful reload), Unix seconds",
            m.last_success.clone(),
        );
        metrics.register(
            "config_info",
            "The active config: its content hash (config file and plugin files) as a label; value 1",
            m.info.clone(),
        );
        // Every result shows from the start, at 0, so rates work from the first scrape.
        for outcome in [Outcome::Success, Outcome::Failure, Outcome::Unchanged] {
            let _ = m.total.get_or_create(&ResultLabels {
                result: outcome.as_str().into(),
            });
        }
        m
    }

    pub fn counted(&self, outcome: Outcome) {
        self.total
            .get_or_create(&ResultLabels {
                result: outcome.as_str().into(),
            })
            .inc();
    }

    /// The config with `hash` is now active (replacing `before`).
    pub fn loaded(&self, hash: &str, before: Option<&str>) {
        if let Some(b) = before {
            self.info.remove(&HashLabels { hash: b.into() });
        }
        self.info.get_or_create(&HashLabels { hash: hash.into() }).set(1);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_success.set(now);
    }
}
