//! The processing step between admission and export: a pipeline's plugin chain
//! implements [`BatchProcessor`]; this crate only knows the trait.

use futures::future::BoxFuture;

use crate::Batch;

/// The result of processing one batch.
#[derive(Debug, Default)]
pub struct Processed {
    /// Output batches with their route names (`None` = the default route).
    pub outputs: Vec<(Option<String>, Batch)>,
    /// Items removed on purpose, by reason (e.g. `plugin:sample`), counted in
    /// `weir_pipeline_dropped_*`.
    pub dropped: Vec<(String, usize)>,
}

/// Why a batch was refused by processing; the client is told, and retries if
/// it is retryable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Rejection {
    /// A plugin with the `reject` failure policy failed: retryable.
    #[error("plugin {plugin} failed and its policy is reject: {message}")]
    Plugin { plugin: String, message: String },
    /// The data cannot be processed (e.g. not decodable): not retryable.
    #[error("invalid data: {0}")]
    Invalid(String),
}

/// A batch's processing, as a future: small batches run it on the task that
/// received them (so it must not block; a plugin's WASI calls wait by
/// awaiting), others under `block_on` on a processing thread.
pub type ProcessFuture<'a> = BoxFuture<'a, Result<Processed, Rejection>>;

pub trait BatchProcessor: Send + Sync + 'static {
    fn process(&self, batch: Batch) -> ProcessFuture<'_>;
}
