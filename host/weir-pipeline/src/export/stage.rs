//! One exporter's stage for one signal: admission (a bounded item budget),
//! batching by size and age, and up to `concurrency` senders that retry.
//!
//! Memory is bounded by the budget: an item holds a permit from the moment a
//! receiver accepts it until the exporter has sent it or given up on it, so a dead
//! destination fills its own budget and receivers start refusing (retryable),
//! while other exporters keep their own budgets and keep flowing.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::{Backoff, ExportError, Exporter};
use crate::config::{BatchConfig, RetryConfig};
use crate::metrics::{ExporterLabels, FailedLabels, QueueLabels};
use crate::{Batch, Metrics, Signal};

#[derive(Debug, Clone)]
pub struct StageSettings {
    pub exporter: String,
    pub signal: Signal,
    pub capacity: usize,
    pub concurrency: usize,
    pub batch: BatchConfig,
    pub retry: RetryConfig,
}

struct Pending {
    batch: Batch,
    permit: Option<OwnedSemaphorePermit>,
}

/// The admission side of a stage, held by pipelines.
pub struct ExportStage {
    settings: StageSettings,
    budget: Arc<Semaphore>,
    input: Mutex<Option<mpsc::UnboundedSender<Pending>>>,
}

/// Why a stage could not take a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The queue is full right now; the client should retry later.
    Full,
    /// The batch is larger than the whole queue; retrying cannot help.
    TooLarge { capacity: usize },
    /// The stage is shutting down.
    Closed,
}

impl ExportStage {
    pub fn name(&self) -> &str {
        &self.settings.exporter
    }

    pub fn signal(&self) -> Signal {
        self.settings.signal
    }

    /// Reserves room for `items`; the permit travels with the batch until sent.
    pub fn try_reserve(&self, items: usize) -> Result<Option<OwnedSemaphorePermit>, Refusal> {
        if items == 0 {
            return Ok(None);
        }
        if items > self.settings.capacity {
            return Err(Refusal::TooLarge {
                capacity: self.settings.capacity,
            });
        }
        let n = u32::try_from(items).map_err(|_| Refusal::TooLarge {
            capacity: self.settings.capacity,
        })?;
        match self.budget.clone().try_acquire_many_owned(n) {
            Ok(p) => Ok(Some(p)),
            Err(TryAcquireError::NoPermits) => Err(Refusal::Full),
            Err(TryAcquireError::Closed) => Err(Refusal::Closed),
        }
    }

    /// Hands a batch whose room was reserved to the stage's batcher.
    pub fn enqueue(&self, batch: Batch, permit: Option<OwnedSemaphorePermit>) -> Result<(), Refusal> {
        let guard = self.input.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = guard.as_ref() else {
            return Err(Refusal::Closed);
        };
        tx.send(Pending { batch, permit }).map_err(|_| Refusal::Closed)
    }

    /// Stops taking batches; the batcher flushes what it holds and finishes.
    pub fn close(&self) {
        self.input.lock().unwrap_or_else(PoisonError::into_inner).take();
    }

    /// Items queued or in flight.
    pub fn queued(&self) -> usize {
        self.settings
            .capacity
            .saturating_sub(self.budget.available_permits())
    }
}

/// All running stages, for shutdown.
#[derive(Default)]
pub struct Stages {
    stages: Vec<Arc<ExportStage>>,
    tasks: JoinSet<()>,
    exporters: Vec<Arc<dyn Exporter>>,
    abort: CancellationToken,
}

impl Stages {
    pub fn start(
        &mut self,
        settings: StageSettings,
        exporter: Arc<dyn Exporter>,
        metrics: Arc<Metrics>,
    ) -> Arc<ExportStage> {
        let (tx, rx) = mpsc::unbounded_channel();
        let stage = Arc::new(ExportStage {
            budget: Arc::new(Semaphore::new(settings.capacity)),
            input: Mutex::new(Some(tx)),
            settings: settings.clone(),
        });
        let labels = QueueLabels {
            exporter: settings.exporter.clone(),
            signal: settings.signal.as_str().into(),
        };
        metrics
            .queue_capacity
            .get_or_create(&labels)
            .set(i64::try_from(settings.capacity).unwrap_or(i64::MAX));
        let weak = Arc::downgrade(&stage);
        let gauge = metrics.queue_size.get_or_create(&labels).clone();
        metrics.on_scrape(move || {
            if let Some(s) = weak.upgrade() {
                gauge.set(i64::try_from(s.queued()).unwrap_or(i64::MAX));
            }
        });
        if !self.exporters.iter().any(|e| Arc::ptr_eq(e, &exporter)) {
            self.exporters.push(exporter.clone());
        }
        let worker = Worker {
            settings,
            exporter,
            metrics,
            abort: self.abort.clone(),
            labels,
        };
        self.tasks.spawn(worker.run(rx));
        self.stages.push(stage.clone());
        stage
    }

    /// Closes every stage and waits for queued batches to be sent, at most `grace`;
    /// what is still unsent then is counted as failed with reason "shutdown".
    pub async fn drain(mut self, deadline: Instant) {
        for s in &self.stages {
            s.close();
        }
        let grace = deadline.saturating_duration_since(Instant::now());
        let all_done = async { while self.tasks.join_next().await.is_some() {} };
        tokio::pin!(all_done);
        if tokio::time::timeout_at(deadline, &mut all_done).await.is_err() {
            tracing::warn!(?grace, "shutdown grace period over; abandoning unsent batches");
            self.abort.cancel();
            all_done.await;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        for e in &self.exporters {
            if tokio::time::timeout(remaining.max(Duration::from_millis(100)), e.shutdown())
                .await
                .is_err()
            {
                tracing::warn!("an exporter did not finish its shutdown in time");
            }
        }
    }
}

struct Worker {
    settings: StageSettings,
    exporter: Arc<dyn Exporter>,
    metrics: Arc<Metrics>,
    abort: CancellationToken,
    labels: QueueLabels,
}

impl Worker {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Pending>) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(this.settings.concurrency));
        let mut senders = JoinSet::new();
        let mut buffer: Vec<Pending> = Vec::new();
        let mut buffered = 0usize;
        let mut deadline = Instant::now();
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(p) => {
                        if buffer.is_empty() {
                            deadline = Instant::now() + this.settings.batch.timeout.0;
                        }
                        buffered += p.batch.items;
                        buffer.push(p);
                        if buffered >= this.settings.batch.max_items {
                            this.flush(&mut buffer, &slots, &mut senders).await;
                            buffered = 0;
                        }
                    }
                    None => break,
                },
                _ = sleep_until(deadline), if !buffer.is_empty() => {
                    this.flush(&mut buffer, &slots, &mut senders).await;
                    buffered = 0;
                }
                Some(_) = senders.join_next(), if !senders.is_empty() => {}
            }
        }
        this.flush(&mut buffer, &slots, &mut senders).await;
        while senders.join_next().await.is_some() {}
    }

    async fn flush(
        self: &Arc<Self>,
        buffer: &mut Vec<Pending>,
        slots: &Arc<Semaphore>,
        senders: &mut JoinSet<()>,
    ) {
        if buffer.is_empty() {
            return;
        }
        let mut permit: Option<OwnedSemaphorePermit> = None;
        let mut parts = Vec::with_capacity(buffer.len());
        for p in buffer.drain(..) {
            match (&mut permit, p.permit) {
                (Some(acc), Some(more)) => acc.merge(more),
                (acc @ None, more) => *acc = more,
                (_, None) => {}
            }
            parts.push(p.batch);
        }
        let batch = Batch::concat(self.settings.signal, &parts);
        drop(parts);
        self.metrics
            .batch_send_size
            .get_or_create(&self.labels)
            .observe(batch.items as f64);
        // Waiting for a free sender slot here is what lets the queue (bounded by
        // the budget) absorb a slow destination.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let this = self.clone();
        senders.spawn(async move {
            this.send_with_retry(&batch).await;
            drop(permit);
            drop(slot);
        });
    }

    async fn send_with_retry(&self, batch: &Batch) {
        let retry = &self.settings.retry;
        let started = Instant::now();
        let mut backoff = Backoff::new(retry);
        loop {
            let result = tokio::select! {
                r = self.exporter.export(batch) => r,
                _ = self.abort.cancelled() => return self.failed(batch.items, "shutdown", "shutdown grace period over"),
            };
            let (message, retry_after) = match result {
                Ok(outcome) => {
                    let sent = batch.items.saturating_sub(outcome.rejected);
                    self.counters()
                        .sent
                        .get_or_create(&self.exporter_labels())
                        .inc_by(sent as u64);
                    if outcome.rejected > 0 {
                        let msg = outcome.message.unwrap_or_default();
                        self.failed(outcome.rejected, "rejected_by_destination", &msg);
                    }
                    return;
                }
                Err(ExportError::Permanent { message } | ExportError::TooLarge { message }) => {
                    return self.failed(batch.items, "permanent_error", &message);
                }
                Err(ExportError::Retryable { message, retry_after }) => (message, retry_after),
            };
            let wait = retry_after.unwrap_or_else(|| backoff.next_wait());
            if !retry.enabled || started.elapsed() + wait > retry.max_elapsed.0 {
                return self.failed(batch.items, "retries_exhausted", &message);
            }
            tracing::debug!(exporter = %self.settings.exporter, %message, ?wait, "export failed; retrying");
            tokio::select! {
                _ = sleep(wait) => {}
                _ = self.abort.cancelled() => return self.failed(batch.items, "shutdown", &message),
            }
        }
    }

    fn counters(&self) -> &crate::metrics::SignalCounters {
        self.metrics.signal(self.settings.signal)
    }

    fn exporter_labels(&self) -> ExporterLabels {
        ExporterLabels {
            exporter: self.settings.exporter.clone(),
        }
    }

    fn failed(&self, items: usize, reason: &str, message: &str) {
        tracing::warn!(
            exporter = %self.settings.exporter,
            signal = %self.settings.signal,
            items, reason, message,
            "dropping data that could not be exported"
        );
        self.counters()
            .send_failed
            .get_or_create(&FailedLabels {
                exporter: self.settings.exporter.clone(),
                reason: reason.into(),
            })
            .inc_by(items as u64);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use futures::future::BoxFuture;

    use super::*;
    use crate::ExportOutcome;
    use crate::config::HumanDuration;

    /// Fails the first `fail_first` calls with a retryable error, then succeeds.
    struct Flaky {
        calls: AtomicUsize,
        fail_first: usize,
        items: AtomicUsize,
    }

    impl Exporter for Flaky {
        fn export<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
            Box::pin(async move {
                if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail_first {
                    return Err(ExportError::retryable("down"));
                }
                self.items.fetch_add(batch.items, Ordering::SeqCst);
                Ok(ExportOutcome::default())
            })
        }
    }

    fn settings(capacity: usize) -> StageSettings {
        StageSettings {
            exporter: "test".into(),
            signal: Signal::Traces,
            capacity,
            concurrency: 1,
            batch: BatchConfig {
                max_items: 10,
                max_bytes: crate::config::ByteSize::mib(1),
                timeout: HumanDuration::from_millis(20),
            },
            retry: RetryConfig {
                enabled: true,
                initial_interval: HumanDuration::from_millis(5),
                max_interval: HumanDuration::from_millis(20),
                max_elapsed: HumanDuration::from_secs(5),
            },
        }
    }

    fn batch(items: usize) -> Batch {
        Batch::new(Signal::Traces, Bytes::from_static(b""), items)
    }

    #[tokio::test]
    async fn full_budget_refuses_then_retries_deliver_everything() {
        let metrics = Metrics::new();
        let flaky = Arc::new(Flaky {
            calls: AtomicUsize::new(0),
            fail_first: 3,
            items: AtomicUsize::new(0),
        });
        let mut stages = Stages::default();
        let stage = stages.start(settings(8), flaky.clone(), metrics.clone());
        let p = stage.try_reserve(5).expect("room");
        stage.enqueue(batch(5), p).expect("open");
        assert_eq!(stage.try_reserve(4).err(), Some(Refusal::Full));
        assert_eq!(
            stage.try_reserve(9).err(),
            Some(Refusal::TooLarge { capacity: 8 })
        );
        let p = stage.try_reserve(3).expect("room");
        stage.enqueue(batch(3), p).expect("open");
        stages.drain(Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(flaky.items.load(Ordering::SeqCst), 8);
        assert!(
            metrics
                .encode()
                .contains("weir_exporter_sent_spans_total{exporter=\"test\"} 8")
        );
    }

    #[tokio::test]
    async fn shutdown_counts_what_could_not_be_sent() {
        let metrics = Metrics::new();
        let dead = Arc::new(Flaky {
            calls: AtomicUsize::new(0),
            fail_first: usize::MAX,
            items: AtomicUsize::new(0),
        });
        let mut stages = Stages::default();
        let stage = stages.start(settings(100), dead, metrics.clone());
        let p = stage.try_reserve(7).expect("room");
        stage.enqueue(batch(7), p).expect("open");
        stages.drain(Instant::now() + Duration::from_millis(200)).await;
        let text = metrics.encode();
        assert!(
            text.contains("weir_exporter_send_failed_spans_total{exporter=\"test\",reason=\"shutdown\"} 7"),
            "{text}"
        );
    }
}
