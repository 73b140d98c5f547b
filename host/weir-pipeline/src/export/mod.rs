//! The export side of a pipeline: the [`Exporter`] contract that destinations
//! implement, and the [`ExportStage`] that gives each exporter its own bounded
//! queue (budget in items and bytes; in memory or on disk), batcher, circuit
//! breaker and retrying, splitting senders, so a slow destination never stalls
//! another and a refused merged batch never costs another client its data.

mod budget;
mod circuit;
mod deliver;
mod durable;
mod queue;
mod retry;
mod stage;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;

pub use budget::Reservation;
pub use retry::Backoff;
pub use stage::{ExportStage, Refusal, StageSettings, Stages};

/// A stage that could not start.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("exporter {exporter}: cannot open its disk queue {}: {message}", path.display())]
    DiskQueue {
        exporter: String,
        path: PathBuf,
        message: String,
    },
}

use crate::Batch;

/// What a destination reported for a batch it took.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportOutcome {
    /// Items the destination refused permanently (OTLP partial success).
    pub rejected: usize,
    pub message: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ExportError {
    /// Worth trying again (e.g. UNAVAILABLE, HTTP 503), after `retry_after` if the
    /// destination said so.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help (e.g. HTTP 400, INVALID_ARGUMENT).
    #[error("{message}")]
    Permanent { message: String },
    /// The destination refused the request for its size (HTTP 413, gRPC
    /// RESOURCE_EXHAUSTED without RetryInfo): the stage splits the batch in
    /// halves and sends them, down to single requests as received.
    #[error("{message}")]
    TooLarge { message: String },
}

impl ExportError {
    pub fn retryable(message: impl Into<String>) -> Self {
        ExportError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        ExportError::Permanent {
            message: message.into(),
        }
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        ExportError::TooLarge {
            message: message.into(),
        }
    }
}

/// A destination for batches. One value serves every signal routed to it; calls
/// may run concurrently (up to the stage's `queue.concurrency`).
pub trait Exporter: Send + Sync + 'static {
    fn export<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>>;

    /// Called once after the last batch, within the shutdown grace period; an
    /// exporter that buffers (e.g. a file writer) finishes its work here.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
