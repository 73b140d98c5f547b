//! weir's pipeline core: the config model and its validation, the bounded export
//! stages (admission, batching, queueing, retries), self-metrics and the admin server.
//!
//! Data flow inside this crate: a receiver hands a [`Batch`] to its [`Ingest`]
//! targets; each target [`Pipeline`] reserves room in every export stage it feeds
//! (refusing the request when a queue is full, so the client retries), then each
//! [`ExportStage`] batches by size and age and sends with retries through an
//! [`Exporter`] implementation supplied by another crate (OTLP, console, archive).

pub mod admin;
pub mod batch;
pub mod config;
pub mod export;
pub mod ingest;
pub mod metrics;
pub mod pipeline;
pub mod process;
pub mod signal;

pub use batch::{Batch, RequestSplitter, SplitError};
pub use export::{ExportError, ExportOutcome, ExportStage, Exporter, StageSettings};
pub use ingest::{Ingest, Replaced, SubmitError};
pub use metrics::Metrics;
pub use pipeline::{Delivery, Pipeline, PipelineReservation};
pub use process::{BatchProcessor, ProcessFuture, Processed, Rejection};
pub use signal::Signal;
