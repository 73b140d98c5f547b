//! A pipeline: one signal, its processing step (the plugin chain, swappable at
//! run time) and the export stages it feeds, by route.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::export::{ExportStage, Refusal};
use crate::metrics::DroppedLabels;
use crate::process::{BatchProcessor, Processed, Rejection};
use crate::{Batch, Metrics, Signal};

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
}

/// Room reserved in every stage of a pipeline for one batch.
pub struct Reservation {
    permits: Vec<(Arc<ExportStage>, Option<OwnedSemaphorePermit>)>,
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
        }
    }

    /// Installs (or replaces) the processing step; batches already being
    /// processed finish with the one they started with.
    pub fn set_processor(&self, processor: Option<Arc<dyn BatchProcessor>>) {
        self.processor.store(processor.map(|p| Arc::new(Processor(p))));
    }

    pub fn has_processor(&self) -> bool {
        self.processor.load().is_some()
    }

    /// Reserves room for `items` in every stage, or none at all.
    pub fn reserve(&self, items: usize) -> Result<Reservation, Refusal> {
        let mut permits = Vec::with_capacity(self.all.len());
        for stage in &self.all {
            // On refusal, permits already taken are released as `permits` drops.
            permits.push((stage.clone(), stage.try_reserve(items)?));
        }
        Ok(Reservation { permits })
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

    /// Hands processed output to the stages of each route, using the room
    /// reserved earlier (and reserving more if processing grew the batch).
    pub fn commit(&self, mut reservation: Reservation, processed: Processed) -> Result<(), Refusal> {
        // Plan first, so that a refusal leaves nothing half-enqueued.
        let mut plan: Vec<(usize, Batch, Option<OwnedSemaphorePermit>)> = Vec::new();
        for (route, batch) in processed.outputs {
            for stage in self.stages_for(route.as_deref()) {
                let slot = reservation
                    .permits
                    .iter()
                    .position(|(s, _)| Arc::ptr_eq(s, stage))
                    .ok_or(Refusal::Closed)?;
                let held = &mut reservation.permits[slot].1;
                let available = held.as_ref().map_or(0, |p| p.num_permits());
                let permit = if batch.items <= available {
                    held.as_mut().and_then(|p| p.split(batch.items))
                } else {
                    stage.try_reserve(batch.items)?
                };
                plan.push((slot, batch.clone(), permit));
            }
        }
        for (slot, batch, permit) in plan {
            reservation.permits[slot].0.enqueue(batch, permit)?;
        }
        Ok(())
    }
}
