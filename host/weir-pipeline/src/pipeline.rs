//! A pipeline: one signal, the receivers feeding it, and the export stages it feeds.
//! (The plugin chain runs here, between admission and the stages, once plugins land.)

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use crate::export::{ExportStage, Refusal};
use crate::{Batch, Signal};

pub struct Pipeline {
    pub name: String,
    pub signal: Signal,
    stages: Vec<Arc<ExportStage>>,
}

/// Room reserved in every stage of a pipeline for one batch.
pub struct Reservation {
    permits: Vec<(Arc<ExportStage>, Option<OwnedSemaphorePermit>)>,
}

impl Pipeline {
    pub fn new(name: impl Into<String>, signal: Signal, stages: Vec<Arc<ExportStage>>) -> Self {
        Pipeline {
            name: name.into(),
            signal,
            stages,
        }
    }

    /// Reserves room for `items` in every stage, or none at all.
    pub fn reserve(&self, items: usize) -> Result<Reservation, Refusal> {
        let mut permits = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            // On refusal, permits already taken are released as `permits` drops.
            permits.push((stage.clone(), stage.try_reserve(items)?));
        }
        Ok(Reservation { permits })
    }
}

impl Reservation {
    /// Hands the batch to every reserved stage.
    pub fn commit(self, batch: &Batch) -> Result<(), Refusal> {
        for (stage, permit) in self.permits {
            stage.enqueue(batch.clone(), permit)?;
        }
        Ok(())
    }
}
