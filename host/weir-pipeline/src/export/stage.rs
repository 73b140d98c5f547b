//! One exporter's stage for one signal: admission against a budget in items
//! and bytes, a queue (in memory, or on disk and fsync-ed before the client is
//! acknowledged), batching by items, bytes and age, and up to `concurrency`
//! senders (see [`super::deliver`]).
//!
//! Memory is bounded by the budget: an entry holds its reservation from the
//! moment a receiver accepts it until the exporter has sent it or given up on
//! it, so a dead destination fills its own budget and receivers start refusing
//! (retryable), while other exporters keep their own budgets and keep flowing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::budget::{Budget, Reservation, Shortfall};
use super::circuit::Circuit;
use super::deliver::Sender;
use super::durable::{self, Durable};
use super::queue::{Entry, Pending};
use super::{Exporter, StageError};
use crate::config::{BatchConfig, CircuitBreakerConfig, QueueConfig, RetryConfig};
use crate::metrics::QueueLabels;
use crate::{Batch, Metrics, Signal};

#[derive(Debug, Clone)]
pub struct StageSettings {
    pub exporter: String,
    pub signal: Signal,
    pub queue: QueueConfig,
    pub batch: BatchConfig,
    pub retry: RetryConfig,
    pub circuit_breaker: CircuitBreakerConfig,
}

/// The admission side of a stage, held by pipelines.
pub struct ExportStage {
    settings: StageSettings,
    budget: Arc<Budget>,
    pending: Mutex<Pending>,
    /// Woken when an entry arrives or the stage closes.
    ready: Notify,
    closed: AtomicBool,
    durable: Option<Durable>,
    /// Items not delivered at shutdown: counted failed, or kept on disk.
    pub(super) abandoned: AtomicUsize,
    pub(super) kept: AtomicUsize,
}

/// Why a stage could not take a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The queue is full right now; the client should retry later.
    Full,
    /// The request can never fit; retrying cannot help.
    TooLarge(String),
    /// The stage is shutting down.
    Closed,
    /// Temporarily unable (e.g. the disk queue could not write); retry later.
    Unavailable(String),
}

impl ExportStage {
    pub fn name(&self) -> &str {
        &self.settings.exporter
    }

    pub fn signal(&self) -> Signal {
        self.settings.signal
    }

    /// The largest request this stage sends; larger ones are split first.
    pub fn max_batch_bytes(&self) -> usize {
        self.settings.batch.max_bytes.as_usize()
    }

    pub fn is_durable(&self) -> bool {
        self.durable.is_some()
    }

    /// Reserves room for `items` and `bytes`; the reservation travels with the
    /// data until it is delivered.
    pub fn try_reserve(&self, items: usize, bytes: usize) -> Result<Reservation, Refusal> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Refusal::Closed);
        }
        if items == 0 {
            return Ok(Reservation::none());
        }
        self.budget
            .try_reserve(items, bytes as u64)
            .map_err(|s| match s {
                Shortfall::Full => Refusal::Full,
                Shortfall::TooLarge {
                    capacity_items,
                    capacity_bytes,
                } => Refusal::TooLarge(format!(
                    "request of {items} items and {bytes} bytes is larger than exporter {}'s whole queue ({capacity_items} items, {capacity_bytes} bytes); send smaller requests or raise its queue.capacity / queue.max_bytes",
                    self.settings.exporter
                )),
            })
    }

    /// Whether `reservation` holds room of this stage's budget.
    pub fn holds(&self, reservation: &Reservation) -> bool {
        reservation.is_of(&self.budget)
    }

    /// Queues a batch whose room was reserved. With a disk queue this returns
    /// once the batch is durable, so the client is acknowledged only then.
    pub async fn enqueue(&self, batch: Batch, reservation: Reservation) -> Result<(), Refusal> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Refusal::Closed);
        }
        let bytes = batch.payload.len();
        let (payload, record) = match &self.durable {
            None => (Some(batch.payload), None),
            Some(d) => (None, Some(d.append(&batch).await?)),
        };
        self.push(Entry {
            items: batch.items,
            bytes,
            payload,
            record,
            reservation,
            since: Instant::now(),
        });
        Ok(())
    }

    fn push(&self, entry: Entry) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry);
        self.ready.notify_waiters();
    }

    /// Stops taking batches; the worker sends what it holds and finishes.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.ready.notify_waiters();
    }

    /// Items and bytes queued or in flight.
    pub fn queued(&self) -> (usize, u64) {
        let used = self.budget.used();
        (used.items, used.bytes)
    }

    /// The next batch to send: waits until `max_items` or `max_bytes` are
    /// waiting, or the oldest entry is `batch.timeout` old, or the stage is
    /// closing. `None` once closed and empty.
    async fn next_batch(&self) -> Option<Vec<Entry>> {
        let max_items = self.settings.batch.max_items;
        let max_bytes = self.max_batch_bytes();
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake_at = {
                let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                let closing = self.closed.load(Ordering::SeqCst);
                match p.oldest() {
                    None if closing => return None,
                    None => None,
                    Some(oldest) => {
                        let due = oldest + self.settings.batch.timeout.0;
                        if closing || p.holds_a_full_batch(max_items, max_bytes) || due <= Instant::now() {
                            return Some(p.take_batch(max_items, max_bytes));
                        }
                        Some(due)
                    }
                }
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        _ = sleep_until(at) => {}
                        _ = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    fn take_all(&self) -> Vec<Entry> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take_all()
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
    /// Starts a stage (opening and recovering its disk queue, if it has one).
    pub fn start(
        &mut self,
        settings: StageSettings,
        exporter: Arc<dyn Exporter>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<ExportStage>, StageError> {
        let labels = QueueLabels {
            exporter: settings.exporter.clone(),
            signal: settings.signal.as_str().into(),
        };
        let budget = Budget::new(settings.queue.capacity, settings.queue.byte_capacity());
        let (durable, recovered) = match durable::open(&settings, &budget, &metrics, &labels)? {
            Some((d, entries)) => (Some(d), entries),
            None => (None, Vec::new()),
        };
        let stage = Arc::new(ExportStage {
            budget,
            pending: Mutex::new(Pending::default()),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
            durable,
            abandoned: AtomicUsize::new(0),
            kept: AtomicUsize::new(0),
            settings: settings.clone(),
        });
        for e in recovered {
            stage.push(e);
        }
        register_gauges(&stage, &metrics, &labels);
        if !self.exporters.iter().any(|e| Arc::ptr_eq(e, &exporter)) {
            self.exporters.push(exporter.clone());
        }
        let circuit = Circuit::new(
            settings.circuit_breaker.clone(),
            settings.exporter.clone(),
            metrics.circuit_state.get_or_create(&labels).clone(),
        );
        let sender = Arc::new(Sender {
            durable: stage.durable.clone(),
            settings,
            exporter,
            metrics,
            abort: self.abort.clone(),
            labels,
            circuit,
        });
        self.tasks.spawn(run(sender, stage.clone()));
        self.stages.push(stage.clone());
        Ok(stage)
    }

    /// Closes every stage and sends what they hold until `deadline`; what is
    /// still undelivered then is counted as failed with reason "shutdown" (or,
    /// in a disk queue, kept for the next start), and summed up in one log line.
    pub async fn drain(mut self, deadline: Instant) {
        for s in &self.stages {
            s.close();
        }
        let all_done = async { while self.tasks.join_next().await.is_some() {} };
        tokio::pin!(all_done);
        if tokio::time::timeout_at(deadline, &mut all_done).await.is_err() {
            tracing::warn!("shutdown grace period over; abandoning unsent batches");
            self.abort.cancel();
            all_done.await;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        for e in &self.exporters {
            if tokio::time::timeout(remaining.max(std::time::Duration::from_millis(100)), e.shutdown())
                .await
                .is_err()
            {
                tracing::warn!("an exporter did not finish its shutdown in time");
            }
        }
        for s in &self.stages {
            if let Some(d) = &s.durable {
                d.close();
            }
        }
        summarize(&self.stages);
    }
}

/// One line that says what shutdown did not deliver, per signal and exporter.
fn summarize(stages: &[Arc<ExportStage>]) {
    let mut lost = Vec::new();
    let mut kept = Vec::new();
    for s in stages {
        let who = format!("{}/{}", s.signal(), s.name());
        match s.abandoned.load(Ordering::SeqCst) {
            0 => {}
            n => lost.push(format!("{who}={n}")),
        }
        match s.kept.load(Ordering::SeqCst) {
            0 => {}
            n => kept.push(format!("{who}={n}")),
        }
    }
    if lost.is_empty() && kept.is_empty() {
        tracing::info!("shutdown: everything accepted was delivered");
        return;
    }
    let lost = if lost.is_empty() {
        "none".into()
    } else {
        lost.join(" ")
    };
    let kept = if kept.is_empty() {
        "none".into()
    } else {
        kept.join(" ")
    };
    tracing::warn!(
        "shutdown summary: items not delivered and dropped (counted in weir_exporter_send_failed_*{{reason=\"shutdown\"}}): {lost}; items kept in disk queues for the next start: {kept}"
    );
}

fn register_gauges(stage: &Arc<ExportStage>, metrics: &Metrics, labels: &QueueLabels) {
    let cap = stage.budget.capacity();
    let set =
        |g: &prometheus_client::metrics::gauge::Gauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
    set(&metrics.queue_capacity.get_or_create(labels), cap.items as u64);
    set(&metrics.queue_capacity_bytes.get_or_create(labels), cap.bytes);
    let weak = Arc::downgrade(stage);
    let size = metrics.queue_size.get_or_create(labels).clone();
    let size_bytes = metrics.queue_size_bytes.get_or_create(labels).clone();
    metrics.on_scrape(move || {
        if let Some(s) = weak.upgrade() {
            let (items, bytes) = s.queued();
            set(&size, items as u64);
            set(&size_bytes, bytes);
        }
    });
}

/// The stage's worker: takes batches off the queue while a sender slot is free.
async fn run(sender: Arc<Sender>, stage: Arc<ExportStage>) {
    let slots = Arc::new(Semaphore::new(sender.settings.queue.concurrency.max(1)));
    let mut senders = JoinSet::new();
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = sender.abort.cancelled() => break,
        };
        let batch = tokio::select! {
            b = stage.next_batch() => b,
            _ = sender.abort.cancelled() => None,
        };
        let Some(entries) = batch else { break };
        let s = sender.clone();
        let st = stage.clone();
        senders.spawn(async move {
            s.deliver(entries, &st).await;
            drop(slot);
        });
        while senders.try_join_next().is_some() {}
    }
    while senders.join_next().await.is_some() {}
    // Only after the abort at the deadline can entries remain.
    let rest = stage.take_all();
    if !rest.is_empty() {
        sender.abandon(rest, &stage);
    }
}
