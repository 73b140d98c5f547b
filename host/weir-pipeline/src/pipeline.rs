//! A pipeline: one signal, its processing step (the plugin chain, swappable at
//! run time) and the export stages it feeds, by route.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokio::sync::Semaphore;

use crate::export::{ExportStage, Refusal, Reservation};
use crate::metrics::DroppedLabels;
use crate::process::{BatchProcessor, Processed, Rejection};
use crate::{Batch, Metrics, RequestSplitter, Signal};

/// A processor as stored in a pipeline (a sized wrapper so it can be swapped
/// atomically), with what decides where it runs.
pub struct Processor {
    chain: Arc<dyn BatchProcessor>,
    /// While `Instant` is before this (ms after `born`), batches go to the
    /// processing threads: a recent run was slow.
    threads_until_ms: AtomicU64,
    born: Instant,
}

/// Batches up to this many items run their chain on the task that received
/// them: handing one to a processing thread and back (two thread wake-ups)
/// costs more than a chain over it, and at light load it is most of weir's
/// cost per span.
pub const INLINE_MAX_ITEMS: usize = 1024;
/// A run that took more CPU than this sends the pipeline's batches to the
/// processing threads for [`THREADS_AFTER_SLOW`], so a slow or looping plugin
/// holds a processing thread, not one of the workers serving every
/// connection. CPU, not wall time: on a loaded machine a 20 µs run preempted
/// for a time slice would otherwise send every batch to the threads.
pub const INLINE_MAX_RUN: Duration = Duration::from_millis(2);
pub const THREADS_AFTER_SLOW: Duration = Duration::from_secs(10);

impl Processor {
    fn new(chain: Arc<dyn BatchProcessor>) -> Self {
        Processor {
            chain,
            // Start on the threads: the first runs warm instances up and may be slow.
            threads_until_ms: AtomicU64::new(1_000),
            born: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn inline(&self, batch: &Batch) -> bool {
        batch.items <= INLINE_MAX_ITEMS && self.now_ms() >= self.threads_until_ms.load(Ordering::Relaxed)
    }

    /// Runs the chain, noting a slow run.
    async fn run(&self, batch: Batch) -> Result<Processed, Rejection> {
        let started = RunClock::start();
        let out = self.chain.process(batch).await;
        if started.took() > INLINE_MAX_RUN {
            let until = self
                .now_ms()
                .saturating_add(THREADS_AFTER_SLOW.as_millis() as u64);
            self.threads_until_ms.fetch_max(until, Ordering::Relaxed);
        }
        out
    }
}

/// What a chain run cost the thread that ran it: its CPU time if it ended on
/// the thread it started on (a run that awaits can move to another worker;
/// its wait blocked no one), otherwise the time that passed.
struct RunClock {
    thread: std::thread::ThreadId,
    cpu: Duration,
    wall: Instant,
}

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

impl RunClock {
    fn start() -> Self {
        RunClock {
            thread: std::thread::current().id(),
            cpu: thread_cpu(),
            wall: Instant::now(),
        }
    }

    fn took(&self) -> Duration {
        if std::thread::current().id() == self.thread {
            thread_cpu().saturating_sub(self.cpu)
        } else {
            self.wall.elapsed()
        }
    }
}

pub struct Pipeline {
    pub name: String,
    pub signal: Signal,
    /// Exporters of the default route.
    default: Vec<Arc<ExportStage>>,
    /// Exporters per route name.
    routes: BTreeMap<String, Vec<Arc<ExportStage>>>,
    /// Every distinct stage, for admission.
    all: Vec<Arc<ExportStage>>,
    processor: ArcSwapOption<Processor>,
    /// Shared by every pipeline: at most this many batches are processed at
    /// once, one per blocking thread. Without a bound, every request in
    /// flight gets its own thread (and its own plugin instances): more
    /// threads than cores only adds context switches and memory.
    workers: Arc<Semaphore>,
    /// Cuts requests larger than a stage's `batch.max_bytes`.
    splitter: Option<Arc<dyn RequestSplitter>>,
}

/// Room reserved in every stage of a pipeline for one batch.
pub struct PipelineReservation {
    held: Vec<(Arc<ExportStage>, Reservation)>,
}

/// One batch bound for one stage, its room reserved: what `commit` enqueues.
pub struct Delivery {
    stage: Arc<ExportStage>,
    batch: Batch,
    reservation: Reservation,
}

/// Why a pipeline could not take a batch.
#[derive(Debug)]
pub enum PipelineError {
    Refused(Refusal),
    Rejected(Rejection),
}

impl Pipeline {
    pub fn new(
        name: impl Into<String>,
        signal: Signal,
        default: Vec<Arc<ExportStage>>,
        routes: BTreeMap<String, Vec<Arc<ExportStage>>>,
        workers: Arc<Semaphore>,
    ) -> Self {
        let mut all: Vec<Arc<ExportStage>> = Vec::new();
        for s in default.iter().chain(routes.values().flatten()) {
            if !all.iter().any(|x| Arc::ptr_eq(x, s)) {
                all.push(s.clone());
            }
        }
        Pipeline {
            name: name.into(),
            signal,
            default,
            routes,
            all,
            processor: ArcSwapOption::empty(),
            workers,
            splitter: None,
        }
    }

    /// Lets the pipeline split requests larger than a stage's batch limit
    /// (without one, such requests are refused as too large).
    pub fn with_splitter(mut self, splitter: Arc<dyn RequestSplitter>) -> Self {
        self.splitter = Some(splitter);
        self
    }

    /// Installs (or replaces) the processing step; batches already being
    /// processed finish with the one they started with.
    pub fn set_processor(&self, processor: Option<Arc<dyn BatchProcessor>>) {
        self.processor
            .store(processor.map(|p| Arc::new(Processor::new(p))));
    }

    pub fn has_processor(&self) -> bool {
        self.processor.load().is_some()
    }

    /// Reserves room for `items` and `bytes` in every stage, or none at all.
    pub fn reserve(&self, items: usize, bytes: usize) -> Result<PipelineReservation, Refusal> {
        let mut held = Vec::with_capacity(self.all.len());
        for stage in &self.all {
            // On refusal, what was already taken is given back as `held` drops.
            held.push((stage.clone(), stage.try_reserve(items, bytes)?));
        }
        Ok(PipelineReservation { held })
    }

    /// Runs the processing step if there is one: small batches on this task
    /// while the chain is fast, others on a processing thread.
    pub async fn process(&self, batch: Batch, metrics: &Metrics) -> Result<Processed, Rejection> {
        let Some(p) = self.processor.load_full() else {
            return Ok(Processed {
                outputs: vec![(None, batch)],
                dropped: Vec::new(),
            });
        };
        let processed = if p.inline(&batch) {
            p.run(batch).await?
        } else {
            self.on_thread(p, batch).await?
        };
        let counters = metrics.signal(self.signal);
        for (reason, n) in &processed.dropped {
            counters
                .dropped
                .get_or_create(&DroppedLabels {
                    pipeline: self.name.clone(),
                    reason: reason.clone(),
                })
                .inc_by(*n as u64);
        }
        Ok(processed)
    }

    async fn on_thread(&self, p: Arc<Processor>, batch: Batch) -> Result<Processed, Rejection> {
        let fail = |message: String| Rejection::Plugin {
            plugin: "chain".into(),
            message,
        };
        let worker = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| fail("the processing workers are closed".into()))?;
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let out = runtime.block_on(p.run(batch));
            drop(worker);
            out
        })
        .await
        .map_err(|e| fail(format!("processing task failed: {e}")))?
    }

    fn stages_for(&self, route: Option<&str>) -> &[Arc<ExportStage>] {
        route
            .and_then(|r| self.routes.get(r))
            .map_or(&self.default[..], |v| &v[..])
    }

    /// Plans where processed output goes: per route and stage, split to the
    /// stage's `batch.max_bytes`, with room taken from the reservation made
    /// before processing (and more reserved if processing grew the data).
    /// Nothing is enqueued yet, so a refusal here leaves no trace.
    pub fn plan(
        &self,
        mut reservation: PipelineReservation,
        processed: Processed,
    ) -> Result<Vec<Delivery>, Refusal> {
        let mut plan = Vec::new();
        for (route, batch) in processed.outputs {
            let mut pieces_by_limit: Vec<(usize, Vec<Batch>)> = Vec::new();
            for stage in self.stages_for(route.as_deref()) {
                let limit = stage.max_batch_bytes();
                let pieces = match pieces_by_limit.iter().find(|(l, _)| *l == limit) {
                    Some((_, p)) => p.clone(),
                    None => {
                        let p = self.split(&batch, limit)?;
                        pieces_by_limit.push((limit, p.clone()));
                        p
                    }
                };
                let slot = reservation
                    .held
                    .iter()
                    .position(|(s, _)| Arc::ptr_eq(s, stage))
                    .ok_or(Refusal::Closed)?;
                for piece in pieces {
                    let bytes = piece.payload.len();
                    let mut room = reservation.held[slot].1.take(piece.items, bytes as u64);
                    let (short_items, short_bytes) = (
                        piece.items.saturating_sub(room.items()),
                        (bytes as u64).saturating_sub(room.bytes()),
                    );
                    if short_items > 0 || short_bytes > 0 {
                        room.merge(stage.try_reserve(short_items, short_bytes as usize)?);
                    }
                    plan.push(Delivery {
                        stage: stage.clone(),
                        batch: piece,
                        reservation: room,
                    });
                }
            }
        }
        Ok(plan)
    }

    fn split(&self, batch: &Batch, limit: usize) -> Result<Vec<Batch>, Refusal> {
        if batch.payload.len() <= limit {
            return Ok(vec![batch.clone()]);
        }
        match &self.splitter {
            Some(s) => s
                .split(batch, limit)
                .map_err(|e| Refusal::TooLarge(e.to_string())),
            None => Err(Refusal::TooLarge(format!(
                "request of {} bytes exceeds the batch limit of {limit} bytes",
                batch.payload.len()
            ))),
        }
    }
}

/// Enqueues planned deliveries, of one or several pipelines: disk queues
/// first (they can fail: then nothing goes to the memory queues, so the
/// client's retry duplicates as little as possible), then memory queues.
pub async fn commit(deliveries: Vec<Delivery>) -> Result<(), Refusal> {
    let (durable, memory): (Vec<_>, Vec<_>) = deliveries.into_iter().partition(|d| d.stage.is_durable());
    let writes = durable
        .into_iter()
        .map(|d| async move { d.stage.enqueue(d.batch, d.reservation).await });
    for result in futures::future::join_all(writes).await {
        result?;
    }
    for d in memory {
        d.stage.enqueue(d.batch, d.reservation).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `took` over each batch, computing or asleep.
    struct Taking {
        took: Duration,
        asleep: bool,
    }

    fn computing(took: Duration) -> Arc<Taking> {
        Arc::new(Taking { took, asleep: false })
    }

    impl BatchProcessor for Taking {
        fn process(&self, batch: Batch) -> crate::ProcessFuture<'_> {
            if self.asleep {
                std::thread::sleep(self.took);
            } else {
                let until = Instant::now() + self.took;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
            Box::pin(std::future::ready(Ok(Processed {
                outputs: vec![(None, batch)],
                dropped: Vec::new(),
            })))
        }
    }

    fn batch(items: usize) -> Batch {
        Batch::new(Signal::Traces, bytes::Bytes::new(), items)
    }

    #[tokio::test]
    async fn small_batches_run_inline_until_a_run_is_slow() {
        let p = Processor::new(computing(Duration::ZERO));
        assert!(
            !p.inline(&batch(10)),
            "the first second goes to the threads (instances warm up)"
        );
        p.threads_until_ms.store(0, Ordering::Relaxed);
        assert!(p.inline(&batch(10)));
        assert!(
            !p.inline(&batch(INLINE_MAX_ITEMS + 1)),
            "large batches go to the threads"
        );
        p.run(batch(10)).await.expect("runs");
        assert!(p.inline(&batch(10)), "a fast run changes nothing");

        let slow = Processor::new(computing(INLINE_MAX_RUN * 2));
        slow.threads_until_ms.store(0, Ordering::Relaxed);
        slow.run(batch(10)).await.expect("runs");
        assert!(!slow.inline(&batch(10)), "after a slow run, the threads");
        let until = slow.threads_until_ms.load(Ordering::Relaxed);
        assert!(until >= THREADS_AFTER_SLOW.as_millis() as u64, "{until}");
    }

    /// What counts is the CPU a run takes on its thread: time the thread
    /// spent off the CPU (here asleep; on a loaded machine, preempted) does not.
    #[tokio::test]
    async fn a_run_that_takes_time_but_no_cpu_is_not_slow() {
        let p = Processor::new(Arc::new(Taking {
            took: INLINE_MAX_RUN * 3,
            asleep: true,
        }));
        p.threads_until_ms.store(0, Ordering::Relaxed);
        p.run(batch(10)).await.expect("runs");
        assert!(p.inline(&batch(10)));
    }
}
