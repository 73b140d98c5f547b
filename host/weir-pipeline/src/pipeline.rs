//! A pipeline: one signal, its processing step (the plugin chain, swappable at
//! run time) and the export stages it feeds, by route.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tokio::sync::Semaphore;

use crate::export::{ExportStage, Refusal, Reservation};
use crate::metrics::DroppedLabels;
use crate::process::{BatchProcessor, Processed, Rejection};
use crate::{Batch, Metrics, RequestSplitter, Signal};

/// A processor as stored in a pipeline (a sized wrapper so it can be swapped atomically).
pub struct Processor(pub Arc<dyn BatchProcessor>);

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
        self.processor.store(processor.map(|p| Arc::new(Processor(p))));
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

    /// Runs the processing step (on a blocking thread) if there is one.
    pub async fn process(&self, batch: Batch, metrics: &Metrics) -> Result<Processed, Rejection> {
        let Some(p) = self.processor.load_full() else {
            return Ok(Processed {
                outputs: vec![(None, batch)],
                dropped: Vec::new(),
            });
        };
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
        let processed = tokio::task::spawn_blocking(move || {
            let out = p.0.process(batch);
            drop(worker);
            out
        })
        .await
        .map_err(|e| fail(format!("processing task failed: {e}")))??;
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
