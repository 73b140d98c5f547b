//! Sending one batch: retries as the destination allows, and isolation.
//!
//! A batch is several requests as received (entries). When the destination
//! refuses the merged batch as a whole — permanently, or as too large — it is
//! split in halves and each half sent again, down to single requests, so one
//! client's bad request costs only that request, and an oversized backlog
//! batch still gets through a receive limit. Only what is still refused alone
//! is counted as failed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::circuit::Circuit;
use super::durable::Durable;
use super::queue::Entry;
use super::retry::{Backoff, next_wait};
use super::stage::{ExportStage, StageSettings};
use super::{ExportError, ExportOutcome, Exporter};
use crate::metrics::{ExporterLabels, FailedLabels, QueueLabels, SplitLabels};
use crate::{Batch, Metrics};

pub(super) struct Sender {
    pub settings: StageSettings,
    pub exporter: Arc<dyn Exporter>,
    pub metrics: Arc<Metrics>,
    pub abort: CancellationToken,
    pub labels: QueueLabels,
    pub circuit: Circuit,
    pub durable: Option<Durable>,
}

/// How one send (with its retries) ended.
enum Attempt {
    Delivered(ExportOutcome),
    /// Refused in a way retrying cannot fix; splitting might.
    Refused {
        reason: &'static str,
        message: String,
    },
    Exhausted(String),
    Aborted,
}

impl Sender {
    pub async fn deliver(&self, entries: Vec<Entry>, stage: &ExportStage) {
        let parts = self.load(&entries).await;
        let sendable: Vec<usize> = (0..entries.len()).filter(|&i| parts[i].is_some()).collect();
        let total: usize = sendable.iter().map(|&i| entries[i].items).sum();
        self.metrics
            .batch_send_size
            .get_or_create(&self.labels)
            .observe(total as f64);
        let mut kept = vec![false; entries.len()];
        // Ranges of `sendable` still to send; halves are pushed high first so
        // that data leaves in arrival order.
        let mut todo = vec![(0usize, sendable.len())];
        while let Some((lo, hi)) = todo.pop() {
            if lo >= hi {
                continue;
            }
            let group = &sendable[lo..hi];
            let batches: Vec<Batch> = group.iter().filter_map(|&i| parts[i].clone()).collect();
            let batch = Batch::concat(self.settings.signal, &batches);
            drop(batches);
            match self.send_with_retry(&batch).await {
                Attempt::Delivered(outcome) => self.delivered(batch.items, outcome),
                Attempt::Refused { reason, message } if group.len() > 1 => {
                    tracing::debug!(exporter = %self.settings.exporter, reason, %message, requests = group.len(), "destination refused a merged batch; splitting it");
                    self.metrics
                        .batch_splits
                        .get_or_create(&SplitLabels {
                            exporter: self.settings.exporter.clone(),
                            signal: self.settings.signal.as_str().into(),
                            reason: reason.into(),
                        })
                        .inc();
                    let mid = lo + group.len() / 2;
                    todo.push((mid, hi));
                    todo.push((lo, mid));
                }
                Attempt::Refused { reason, message } => self.failed(batch.items, reason, &message),
                Attempt::Exhausted(message) => self.failed(batch.items, "retries_exhausted", &message),
                Attempt::Aborted => {
                    for &i in group {
                        kept[i] = self.give_up(&entries[i], stage);
                    }
                }
            }
        }
        if let Some(d) = &self.durable {
            let done: Vec<_> = entries
                .iter()
                .zip(&kept)
                .filter(|(_, kept)| !**kept)
                .filter_map(|(e, _)| e.record)
                .collect();
            d.ack(&done);
        }
        // Dropping the entries gives their room back to the budget.
        drop(entries);
    }

    /// Entries not sent before the deadline: dropped and counted, or kept on disk.
    pub fn abandon(&self, entries: Vec<Entry>, stage: &ExportStage) {
        for e in &entries {
            self.give_up(e, stage);
        }
    }

    /// Shutdown's deadline passed before `entry` was delivered: a disk record
    /// stays for the next start (true), anything else is counted as failed.
    fn give_up(&self, entry: &Entry, stage: &ExportStage) -> bool {
        if entry.record.is_some() {
            stage.kept.fetch_add(entry.items, Ordering::SeqCst);
            return true;
        }
        stage.abandoned.fetch_add(entry.items, Ordering::SeqCst);
        self.failed(entry.items, "shutdown", "shutdown grace period over");
        false
    }

    /// The batches of `entries`; disk records are read back (an unreadable
    /// one is counted failed and acknowledged, so it cannot block the queue).
    async fn load(&self, entries: &[Entry]) -> Vec<Option<Batch>> {
        let signal = self.settings.signal;
        let mut out: Vec<Option<Batch>> = entries
            .iter()
            .map(|e| e.payload.clone().map(|p| Batch::new(signal, p, e.items)))
            .collect();
        let Some(d) = &self.durable else { return out };
        let wanted: Vec<(usize, _)> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.payload.is_none())
            .filter_map(|(i, e)| e.record.map(|r| (i, r)))
            .collect();
        if wanted.is_empty() {
            return out;
        }
        let mut unreadable = Vec::new();
        for (i, result) in d.read(wanted).await {
            match result {
                Ok(payload) => out[i] = Some(Batch::new(signal, payload, entries[i].items)),
                Err(message) => {
                    self.failed(entries[i].items, "storage_error", &message);
                    unreadable.extend(entries[i].record);
                }
            }
        }
        d.ack(&unreadable);
        out
    }

    async fn send_with_retry(&self, batch: &Batch) -> Attempt {
        let retry = &self.settings.retry;
        let started = Instant::now();
        let mut backoff = Backoff::new(retry);
        loop {
            if self.abort.is_cancelled() {
                return Attempt::Aborted;
            }
            tokio::select! {
                _ = self.circuit.admit() => {}
                _ = self.abort.cancelled() => return Attempt::Aborted,
            }
            let result = tokio::select! {
                r = self.exporter.export(batch) => r,
                _ = self.abort.cancelled() => return Attempt::Aborted,
            };
            let (message, retry_after) = match result {
                Ok(outcome) => {
                    self.circuit.succeeded();
                    return Attempt::Delivered(outcome);
                }
                // The destination answered: it is up, whatever it thought of the data.
                Err(ExportError::Permanent { message }) => {
                    self.circuit.succeeded();
                    return Attempt::Refused {
                        reason: "permanent_error",
                        message,
                    };
                }
                Err(ExportError::TooLarge { message }) => {
                    self.circuit.succeeded();
                    return Attempt::Refused {
                        reason: "too_large",
                        message,
                    };
                }
                Err(ExportError::Retryable { message, retry_after }) => {
                    self.circuit.failed();
                    (message, retry_after)
                }
            };
            let Some(wait) = next_wait(&mut backoff, retry_after, started.elapsed(), retry) else {
                return Attempt::Exhausted(message);
            };
            self.metrics.retries.get_or_create(&self.labels).inc();
            tracing::debug!(exporter = %self.settings.exporter, %message, ?wait, "export failed; retrying");
            tokio::select! {
                _ = sleep(wait) => {}
                _ = self.abort.cancelled() => return Attempt::Aborted,
            }
        }
    }

    fn delivered(&self, items: usize, outcome: ExportOutcome) {
        let sent = items.saturating_sub(outcome.rejected);
        self.metrics
            .signal(self.settings.signal)
            .sent
            .get_or_create(&ExporterLabels {
                exporter: self.settings.exporter.clone(),
            })
            .inc_by(sent as u64);
        if outcome.rejected > 0 {
            let msg = outcome.message.unwrap_or_default();
            self.failed(outcome.rejected, "rejected_by_destination", &msg);
        }
    }

    fn failed(&self, items: usize, reason: &str, message: &str) {
        tracing::warn!(
            exporter = %self.settings.exporter,
            signal = %self.settings.signal,
            items, reason, message,
            "dropping data that could not be exported"
        );
        self.metrics
            .signal(self.settings.signal)
            .send_failed
            .get_or_create(&FailedLabels {
                exporter: self.settings.exporter.clone(),
                reason: reason.into(),
            })
            .inc_by(items as u64);
    }
}
