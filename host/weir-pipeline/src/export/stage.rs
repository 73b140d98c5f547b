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

use arc_swap::ArcSwap;
use tokio::sync::{Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::budget::{Budget, Reservation, Shortfall};
use super::circuit::Circuit;
use super::deliver::Sender;
use super::durable::{self, Durable};
use super::queue::{Entry, Pending};
use super::{Exporter, StageError};
use crate::config::{BatchConfig, CircuitBreakerConfig, QueueConfig, QueueKind, RetryConfig};
use crate::metrics::QueueLabels;
use crate::{Batch, Metrics, Signal};

#[derive(Debug, Clone, PartialEq)]
pub struct StageSettings {
    pub exporter: String,
    pub signal: Signal,
    pub queue: QueueConfig,
    pub batch: BatchConfig,
    pub retry: RetryConfig,
    pub circuit_breaker: CircuitBreakerConfig,
}

impl StageSettings {
    /// Whether a stage running with `self` can take `new` in place, keeping its
    /// queue: the queue must stay of the same kind, in the same directory.
    pub fn keeps_queue_with(&self, new: &StageSettings) -> bool {
        self.queue.kind == new.queue.kind
            && (self.queue.kind == QueueKind::Memory || self.queue.directory == new.queue.directory)
    }

    /// The queue settings `new` changes that a running disk queue cannot take
    /// (they apply at the next start), as config keys under the exporter.
    pub fn restart_only_changes(&self, new: &StageSettings) -> Vec<&'static str> {
        let (a, b) = (&self.queue, &new.queue);
        if a.kind != QueueKind::Disk || !self.keeps_queue_with(new) {
            return Vec::new();
        }
        let mut keys = Vec::new();
        if a.max_bytes != b.max_bytes {
            keys.push("queue.max_bytes");
        }
        if a.fsync != b.fsync || a.fsync_interval != b.fsync_interval {
            keys.push("queue.fsync");
        }
        if a.segment_size != b.segment_size {
            keys.push("queue.segment_size");
        }
        keys
    }
}

/// The admission side of a stage, held by pipelines.
pub struct ExportStage {
    exporter: String,
    signal: Signal,
    /// Replaced by a reload ([`Stages::update`]); read per batch.
    settings: ArcSwap<StageSettings>,
    /// What the worker sends with; replaced by a reload, while sends already
    /// started finish with the one they started with.
    sender: ArcSwap<Sender>,
    /// Sender slots (`queue.concurrency`), resized by a reload.
    slots: Arc<Semaphore>,
    concurrency: AtomicUsize,
    budget: Arc<Budget>,
    pending: Mutex<Pending>,
    /// Woken when an entry arrives or the stage closes.
    ready: Notify,
    closed: AtomicBool,
    durable: Option<Durable>,
    /// Cancelled at the shutdown deadline, or when a removed stage's drain
    /// time is over: sends stop and what is left is given up.
    abort: CancellationToken,
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
        &self.exporter
    }

    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// The settings the stage runs with now.
    pub fn settings(&self) -> Arc<StageSettings> {
        self.settings.load_full()
    }

    /// The largest request this stage sends; larger ones are split first.
    pub fn max_batch_bytes(&self) -> usize {
        self.settings.load().batch.max_bytes.as_usize()
    }

    /// Whether the stage has stopped taking data (shutdown, or removed by a reload).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
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
                    self.exporter
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
        loop {
            let settings = self.settings.load_full();
            let max_items = settings.batch.max_items;
            let max_bytes = settings.batch.max_bytes.as_usize();
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
                        let due = oldest + settings.batch.timeout.0;
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

/// How long a replaced exporter may still be in use after the shutdown
/// deadline before it is shut down regardless.
const RETIRE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Every running stage: started at start-up or by a reload, updated or
/// retired by a reload, drained at shutdown.
#[derive(Default)]
pub struct Stages {
    live: Vec<Running>,
    /// Stages and exporters a reload took out of service, finishing their work.
    retiring: JoinSet<()>,
    /// Exporters in use, shut down (flushed) once their stages are drained.
    exporters: Vec<Arc<dyn Exporter>>,
    /// Parent of every stage's abort token: cancelled at the shutdown deadline.
    abort: CancellationToken,
}

struct Running {
    stage: Arc<ExportStage>,
    worker: JoinHandle<()>,
}

impl Stages {
    /// Starts a stage (opening and recovering its disk queue, if it has one).
    pub fn start(
        &mut self,
        settings: StageSettings,
        exporter: Arc<dyn Exporter>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<ExportStage>, StageError> {
        let labels = labels_of(&settings);
        let budget = Budget::new(settings.queue.capacity, settings.queue.byte_capacity());
        let (durable, recovered) = match durable::open(&settings, &budget, &metrics, &labels)? {
            Some((d, entries)) => (Some(d), entries),
            None => (None, Vec::new()),
        };
        let abort = self.abort.child_token();
        let sender = new_sender(&settings, exporter.clone(), &metrics, &durable, &abort);
        let concurrency = settings.queue.concurrency.max(1);
        let stage = Arc::new(ExportStage {
            exporter: settings.exporter.clone(),
            signal: settings.signal,
            settings: ArcSwap::from_pointee(settings),
            sender: ArcSwap::from_pointee(sender),
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency: AtomicUsize::new(concurrency),
            budget,
            pending: Mutex::new(Pending::default()),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
            durable,
            abort,
            abandoned: AtomicUsize::new(0),
            kept: AtomicUsize::new(0),
        });
        for e in recovered {
            stage.push(e);
        }
        register_gauges(&stage, &metrics, &labels);
        self.adopt(exporter);
        let worker = tokio::spawn(run(stage.clone()));
        self.live.push(Running {
            stage: stage.clone(),
            worker,
        });
        Ok(stage)
    }

    fn adopt(&mut self, exporter: Arc<dyn Exporter>) {
        if !self.exporters.iter().any(|e| Arc::ptr_eq(e, &exporter)) {
            self.exporters.push(exporter);
        }
    }

    /// Applies new settings and a new exporter to a running stage, keeping its
    /// queue (see [`StageSettings::keeps_queue_with`]): the budget is resized,
    /// batching, retries and the circuit breaker follow the new settings, and
    /// sends already under way finish with the old exporter. A disk queue
    /// keeps its size, fsync and segment settings until the next start.
    pub fn update(
        &mut self,
        stage: &Arc<ExportStage>,
        mut settings: StageSettings,
        exporter: Arc<dyn Exporter>,
        metrics: &Arc<Metrics>,
    ) {
        let old = stage.settings.load_full();
        if old.queue.kind == QueueKind::Disk && old.keeps_queue_with(&settings) {
            let capacity = settings.queue.capacity;
            settings.queue = old.queue.clone();
            settings.queue.capacity = capacity;
        }
        stage
            .budget
            .resize(settings.queue.capacity, settings.queue.byte_capacity());
        let concurrency = settings.queue.concurrency.max(1);
        let was = stage.concurrency.swap(concurrency, Ordering::SeqCst);
        if concurrency > was {
            stage.slots.add_permits(concurrency - was);
        } else if concurrency < was {
            // Sends in flight keep their slots; fewer start from now on.
            let slots = stage.slots.clone();
            let fewer = u32::try_from(was - concurrency).unwrap_or(u32::MAX);
            tokio::spawn(async move {
                if let Ok(p) = slots.acquire_many_owned(fewer).await {
                    p.forget();
                }
            });
        }
        let sender = new_sender(&settings, exporter.clone(), metrics, &stage.durable, &stage.abort);
        stage.sender.store(Arc::new(sender));
        stage.settings.store(Arc::new(settings));
        stage.ready.notify_waiters();
        self.adopt(exporter);
    }

    /// Takes a stage out of service: it stops taking data and sends what it
    /// holds; when `deadline` passes first, what is left is given up (counted
    /// failed, or kept in its disk queue for the next start). Without a
    /// deadline it sends until done, or until shutdown's deadline.
    pub fn retire(&mut self, stage: &Arc<ExportStage>, deadline: Option<Instant>) {
        let Some(at) = self.live.iter().position(|r| Arc::ptr_eq(&r.stage, stage)) else {
            return;
        };
        let Running { stage, mut worker } = self.live.swap_remove(at);
        stage.close();
        self.retiring.spawn(async move {
            let finished = match deadline {
                Some(d) => tokio::time::timeout_at(d, &mut worker).await.is_ok(),
                None => {
                    // A panicked worker has nothing left to send either.
                    let _ = (&mut worker).await;
                    true
                }
            };
            if !finished {
                tracing::warn!(exporter = %stage.name(), signal = %stage.signal(), "a removed exporter's drain time is over; giving up what it still holds");
                stage.abort.cancel();
                let _ = worker.await;
            }
            if let Some(d) = &stage.durable {
                d.close();
            }
            summarize(std::slice::from_ref(&stage), "a removed exporter");
        });
    }

    /// Shuts `exporter` down (flushing what it buffers) once no stage and no
    /// send under way uses it any more; for exporters a reload replaced or removed.
    pub fn retire_exporter(&mut self, exporter: &Arc<dyn Exporter>) {
        let Some(at) = self.exporters.iter().position(|e| Arc::ptr_eq(e, exporter)) else {
            return;
        };
        let exporter = self.exporters.swap_remove(at);
        let abort = self.abort.clone();
        self.retiring.spawn(async move {
            // Senders hold the exporter while they send; ours is the last
            // reference then. After shutdown's deadline sends stop at once, so
            // waiting is bounded there.
            let mut patience = None;
            while Arc::strong_count(&exporter) > 1 {
                if abort.is_cancelled() {
                    let until = *patience.get_or_insert_with(|| Instant::now() + RETIRE_PATIENCE);
                    if Instant::now() >= until {
                        tracing::warn!("a replaced exporter is still in use after the shutdown deadline; shutting it down anyway");
                        break;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            exporter.shutdown().await;
        });
    }

    /// Closes every stage and sends what they hold until `deadline`; what is
    /// still undelivered then is counted as failed with reason "shutdown" (or,
    /// in a disk queue, kept for the next start), and summed up in one log line.
    pub async fn drain(mut self, deadline: Instant) {
        for r in &self.live {
            r.stage.close();
        }
        let stages: Vec<Arc<ExportStage>> = self.live.iter().map(|r| r.stage.clone()).collect();
        let workers: Vec<JoinHandle<()>> = self.live.drain(..).map(|r| r.worker).collect();
        let all_done = async {
            for w in workers {
                let _ = w.await;
            }
            while self.retiring.join_next().await.is_some() {}
        };
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
        for s in &stages {
            if let Some(d) = &s.durable {
                d.close();
            }
        }
        summarize(&stages, "shutdown");
    }
}

fn labels_of(settings: &StageSettings) -> QueueLabels {
    QueueLabels {
        exporter: settings.exporter.clone(),
        signal: settings.signal.as_str().into(),
    }
}

fn new_sender(
    settings: &StageSettings,
    exporter: Arc<dyn Exporter>,
    metrics: &Arc<Metrics>,
    durable: &Option<Durable>,
    abort: &CancellationToken,
) -> Sender {
    let labels = labels_of(settings);
    let circuit = Circuit::new(
        settings.circuit_breaker.clone(),
        settings.exporter.clone(),
        metrics.circuit_state.get_or_create(&labels).clone(),
    );
    Sender {
        durable: durable.clone(),
        settings: settings.clone(),
        exporter,
        metrics: metrics.clone(),
        abort: abort.clone(),
        labels,
        circuit,
    }
}

/// One line that says what `what` (shutdown, or retiring a removed
/// exporter) did not deliver, per signal and exporter.
fn summarize(stages: &[Arc<ExportStage>], what: &str) {
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
        tracing::info!("{what}: everything accepted was delivered");
        return;
    }
    let list = |v: Vec<String>| if v.is_empty() { "none".into() } else { v.join(" ") };
    let (lost, kept) = (list(lost), list(kept));
    tracing::warn!(
        "{what} summary: items not delivered and dropped (counted in weir_exporter_send_failed_*{{reason=\"shutdown\"}}): {lost}; items kept in disk queues for the next start: {kept}"
    );
}

/// Queue gauges, refreshed at every scrape while the stage exists; a stage
/// that is gone (removed by a reload) takes its series with it.
fn register_gauges(stage: &Arc<ExportStage>, metrics: &Arc<Metrics>, labels: &QueueLabels) {
    let set =
        |g: &prometheus_client::metrics::gauge::Gauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
    let weak = Arc::downgrade(stage);
    let registry = Arc::downgrade(metrics);
    let labels = labels.clone();
    metrics.on_scrape(move || {
        let Some(m) = registry.upgrade() else {
            return false;
        };
        let families = [
            &m.queue_size,
            &m.queue_size_bytes,
            &m.queue_capacity,
            &m.queue_capacity_bytes,
            &m.queue_disk_bytes,
        ];
        let Some(s) = weak.upgrade() else {
            for f in families {
                f.remove(&labels);
            }
            return false;
        };
        let (items, bytes) = s.queued();
        let cap = s.budget.capacity();
        set(&m.queue_size.get_or_create(&labels), items as u64);
        set(&m.queue_size_bytes.get_or_create(&labels), bytes);
        if s.durable.is_none() {
            m.add_queued_memory(bytes);
        }
        set(&m.queue_capacity.get_or_create(&labels), cap.items as u64);
        set(&m.queue_capacity_bytes.get_or_create(&labels), cap.bytes);
        if let Some(d) = &s.durable {
            set(&m.queue_disk_bytes.get_or_create(&labels), d.disk_bytes());
        }
        true
    });
}

/// The stage's worker: takes batches off the queue while a sender slot is
/// free, and sends each with the sender current when the batch was taken.
async fn run(stage: Arc<ExportStage>) {
    let mut senders = JoinSet::new();
    loop {
        let slot = tokio::select! {
            s = stage.slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = stage.abort.cancelled() => break,
        };
        let batch = tokio::select! {
            b = stage.next_batch() => b,
            _ = stage.abort.cancelled() => None,
        };
        let Some(entries) = batch else { break };
        let s = stage.sender.load_full();
        let st = stage.clone();
        senders.spawn(async move {
            s.deliver(entries, &st).await;
            drop(slot);
        });
        while senders.try_join_next().is_some() {}
    }
    while senders.join_next().await.is_some() {}
    // Only after an abort (a deadline) can entries remain.
    let rest = stage.take_all();
    if !rest.is_empty() {
        stage.sender.load_full().abandon(rest, &stage);
    }
}
