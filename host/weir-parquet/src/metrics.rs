//! The archive's self-metrics, registered once per [`Metrics`] registry and
//! shared by every archive exporter in it (labelled by exporter name):
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `weir_archive_rows_written_total{exporter,signal}` | counter | rows buffered into an open file (acknowledged) |
//! | `weir_archive_rows_lost_total{exporter,signal}` | counter | acknowledged rows lost when their file could not be finished |
//! | `weir_archive_files_finished_total{exporter,signal}` | counter | files made visible |
//! | `weir_archive_bytes_written_total{exporter,signal}` | counter | bytes of the files made visible |
//! | `weir_archive_write_errors_total{exporter,signal}` | counter | failed writes, finishes and uploads |
//! | `weir_archive_oldest_unflushed_age_seconds{exporter,signal}` | gauge | age of the oldest open file (0 when none): how much data a crash would lose |

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use weir_pipeline::{Metrics, Signal};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ArchiveLabels {
    pub exporter: String,
    pub signal: String,
}

type AgeGauge = Gauge<f64, AtomicU64>;

/// The metric families (one set per registry).
#[derive(Clone, Default)]
struct Families {
    rows_written: Family<ArchiveLabels, Counter>,
    rows_lost: Family<ArchiveLabels, Counter>,
    files_finished: Family<ArchiveLabels, Counter>,
    bytes_written: Family<ArchiveLabels, Counter>,
    write_errors: Family<ArchiveLabels, Counter>,
    oldest_unflushed_age: Family<ArchiveLabels, AgeGauge>,
}

static REGISTERED: Mutex<Vec<(Weak<Metrics>, Families)>> = Mutex::new(Vec::new());

impl Families {
    /// The families of `metrics`, registering them the first time.
    fn of(metrics: &Arc<Metrics>) -> Families {
        let mut registered = REGISTERED.lock().unwrap_or_else(PoisonError::into_inner);
        registered.retain(|(w, _)| w.strong_count() > 0);
        if let Some((_, f)) = registered
            .iter()
            .find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(metrics)))
        {
            return f.clone();
        }
        let f = Families::default();
        metrics.register(
            "archive_rows_written",
            "Rows buffered into an open archive file (the export was acknowledged)",
            f.rows_written.clone(),
        );
        metrics.register(
            "archive_rows_lost",
            "Acknowledged rows lost because their archive file could not be finished",
            f.rows_lost.clone(),
        );
        metrics.register(
            "archive_files_finished",
            "Archive files completed and made visible",
            f.files_finished.clone(),
        );
        metrics.register(
            "archive_bytes_written",
            "Bytes of archive files completed and made visible",
            f.bytes_written.clone(),
        );
        metrics.register(
            "archive_write_errors",
            "Failed archive writes, file finishes and uploads",
            f.write_errors.clone(),
        );
        metrics.register(
            "archive_oldest_unflushed_age_seconds",
            "Age of the oldest open (unfinished) archive file; its rows are lost if weir is killed",
            f.oldest_unflushed_age.clone(),
        );
        registered.push((Arc::downgrade(metrics), f.clone()));
        f
    }
}

/// When the oldest open file of each archived signal was opened.
#[derive(Default)]
pub struct OldestOpen {
    times: Mutex<[Option<Instant>; 2]>,
}

impl OldestOpen {
    fn slot(signal: Signal) -> Option<usize> {
        match signal {
            Signal::Traces => Some(0),
            Signal::Logs => Some(1),
            Signal::Metrics => None,
        }
    }

    pub fn set(&self, signal: Signal, oldest: Option<Instant>) {
        if let Some(i) = Self::slot(signal) {
            self.times.lock().unwrap_or_else(PoisonError::into_inner)[i] = oldest;
        }
    }

    pub fn age_seconds(&self, signal: Signal) -> f64 {
        Self::slot(signal)
            .and_then(|i| self.times.lock().unwrap_or_else(PoisonError::into_inner)[i])
            .map_or(0.0, |t| t.elapsed().as_secs_f64())
    }
}

/// One exporter's handle on the archive metrics.
#[derive(Clone)]
pub struct ArchiveMetrics {
    families: Families,
    exporter: String,
    pub oldest: Arc<OldestOpen>,
}

impl ArchiveMetrics {
    pub fn new(exporter: &str, metrics: &Arc<Metrics>) -> ArchiveMetrics {
        let families = Families::of(metrics);
        let oldest = Arc::new(OldestOpen::default());
        let weak = Arc::downgrade(&oldest);
        let gauges: Vec<(Signal, AgeGauge)> = [Signal::Traces, Signal::Logs]
            .into_iter()
            .map(|s| {
                (
                    s,
                    families
                        .oldest_unflushed_age
                        .get_or_create(&labels(exporter, s))
                        .clone(),
                )
            })
            .collect();
        metrics.on_scrape(move || {
            let live = weak.upgrade();
            for (signal, gauge) in &gauges {
                gauge.set(live.as_ref().map_or(0.0, |o| o.age_seconds(*signal)));
            }
            live.is_some()
        });
        ArchiveMetrics {
            families,
            exporter: exporter.to_string(),
            oldest,
        }
    }

    fn labels(&self, signal: Signal) -> ArchiveLabels {
        labels(&self.exporter, signal)
    }

    pub fn rows_written(&self, signal: Signal, n: usize) {
        self.families
            .rows_written
            .get_or_create(&self.labels(signal))
            .inc_by(n as u64);
    }

    pub fn rows_lost(&self, signal: Signal, n: usize) {
        self.families
            .rows_lost
            .get_or_create(&self.labels(signal))
            .inc_by(n as u64);
    }

    pub fn file_finished(&self, signal: Signal, bytes: u64) {
        let l = self.labels(signal);
        self.families.files_finished.get_or_create(&l).inc();
        self.families.bytes_written.get_or_create(&l).inc_by(bytes);
    }

    pub fn write_error(&self, signal: Signal) {
        self.families
            .write_errors
            .get_or_create(&self.labels(signal))
            .inc();
    }
}

fn labels(exporter: &str, signal: Signal) -> ArchiveLabels {
    ArchiveLabels {
        exporter: exporter.to_string(),
        signal: signal.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        let m = Metrics::new();
        let a = ArchiveMetrics::new("archive", &m);
        let b = ArchiveMetrics::new("other", &m); // same registry: no double registration
        a.rows_written(Signal::Traces, 5);
        a.file_finished(Signal::Traces, 1234);
        b.write_error(Signal::Logs);
        a.oldest.set(Signal::Logs, Some(Instant::now()));
        let text = m.encode();
        for line in [
            "weir_archive_rows_written_total{exporter=\"archive\",signal=\"traces\"} 5",
            "weir_archive_bytes_written_total{exporter=\"archive\",signal=\"traces\"} 1234",
            "weir_archive_files_finished_total{exporter=\"archive\",signal=\"traces\"} 1",
            "weir_archive_write_errors_total{exporter=\"other\",signal=\"logs\"} 1",
            "weir_archive_oldest_unflushed_age_seconds{exporter=\"archive\",signal=\"traces\"} 0.0",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert_eq!(
            text.matches("# TYPE weir_archive_rows_written counter").count(),
            1,
            "{text}"
        );
    }
}
