//! What a receiver submits into: the pipelines that list it, per signal, with
//! all-or-nothing admission and the receiver's accepted/refused counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::export::Refusal;
use crate::metrics::{ReceiverLabels, RefusedLabels, RefusedRequestLabels};
use crate::pipeline::PipelineError;
use crate::process::Rejection;
use crate::{Batch, Metrics, Pipeline, Signal};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// No pipeline takes this signal from this receiver (gRPC UNIMPLEMENTED, HTTP 404).
    #[error("this receiver has no {0} pipeline")]
    NoPipeline(Signal),
    /// Queues are full (gRPC UNAVAILABLE, HTTP 503): retry later.
    #[error("pipeline is full; retry later")]
    Full,
    /// Larger than an exporter's whole queue (gRPC RESOURCE_EXHAUSTED, HTTP 413).
    #[error(
        "request holds {items} items, more than an exporter queue's capacity of {capacity}; send smaller requests"
    )]
    TooLarge { items: usize, capacity: usize },
    /// Shutting down (gRPC UNAVAILABLE, HTTP 503).
    #[error("weir is shutting down")]
    ShuttingDown,
    /// A plugin with the reject policy failed (gRPC UNAVAILABLE, HTTP 503): retry.
    #[error("{0}")]
    PluginRejected(String),
    /// The data cannot be processed (gRPC INVALID_ARGUMENT, HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// Temporarily unable to take the data, e.g. a disk queue's write failed
    /// (gRPC UNAVAILABLE, HTTP 503): retry later.
    #[error("{0}")]
    Unavailable(String),
}

pub struct Ingest {
    receiver: String,
    pipelines: [Vec<Arc<Pipeline>>; 3],
    metrics: Arc<Metrics>,
    closed: AtomicBool,
}

impl Ingest {
    pub fn new(receiver: impl Into<String>, pipelines: Vec<Arc<Pipeline>>, metrics: Arc<Metrics>) -> Self {
        let mut by_signal: [Vec<Arc<Pipeline>>; 3] = Default::default();
        for p in pipelines {
            by_signal[p.signal.index()].push(p);
        }
        Ingest {
            receiver: receiver.into(),
            pipelines: by_signal,
            metrics,
            closed: AtomicBool::new(false),
        }
    }

    pub fn receiver(&self) -> &str {
        &self.receiver
    }

    pub fn accepts(&self, signal: Signal) -> bool {
        !self.pipelines[signal.index()].is_empty()
    }

    /// Counts a request the receiver refused before submitting it (malformed,
    /// invalid UTF-8, too deep, too large, ...), with the items it could count.
    pub fn refuse(&self, transport: &'static str, signal: Signal, reason: &'static str, items: usize) {
        self.count_refused_request(transport, signal, reason);
        if items > 0 {
            self.metrics
                .signal(signal)
                .refused
                .get_or_create(&RefusedLabels {
                    receiver: self.receiver.clone(),
                    transport: transport.into(),
                    reason: reason.into(),
                })
                .inc_by(items as u64);
        }
    }

    fn count_refused_request(&self, transport: &str, signal: Signal, reason: &str) {
        self.metrics
            .refused_requests
            .get_or_create(&RefusedRequestLabels {
                receiver: self.receiver.clone(),
                transport: transport.into(),
                signal: signal.as_str().into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// Refuses everything from now on (shutdown has begun).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Admits a batch into every pipeline of its signal, or into none: room is
    /// reserved in every exporter queue, every pipeline's plugins run, and only
    /// then is anything enqueued.
    pub async fn submit(&self, transport: &'static str, batch: Batch) -> Result<(), SubmitError> {
        let result = self.try_submit(&batch).await;
        let counters = self.metrics.signal(batch.signal);
        match &result {
            Ok(()) => counters
                .accepted
                .get_or_create(&ReceiverLabels {
                    receiver: self.receiver.clone(),
                    transport: transport.into(),
                })
                .inc_by(batch.items as u64),
            Err(e) => {
                let reason = match e {
                    SubmitError::NoPipeline(_) => "no_pipeline",
                    SubmitError::Full => "queue_full",
                    SubmitError::TooLarge { .. } => "too_large",
                    SubmitError::ShuttingDown => "shutting_down",
                    SubmitError::PluginRejected(_) => "plugin_rejected",
                    SubmitError::Invalid(_) => "invalid",
                    SubmitError::Unavailable(_) => "unavailable",
                };
                self.count_refused_request(transport, batch.signal, reason);
                counters
                    .refused
                    .get_or_create(&RefusedLabels {
                        receiver: self.receiver.clone(),
                        transport: transport.into(),
                        reason: reason.into(),
                    })
                    .inc_by(batch.items as u64)
            }
        };
        result
    }

    async fn try_submit(&self, batch: &Batch) -> Result<(), SubmitError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(SubmitError::ShuttingDown);
        }
        let pipelines = &self.pipelines[batch.signal.index()];
        if pipelines.is_empty() {
            return Err(SubmitError::NoPipeline(batch.signal));
        }
        let error = |e: PipelineError| match e {
            PipelineError::Refused(Refusal::Full) => SubmitError::Full,
            PipelineError::Refused(Refusal::TooLarge { capacity }) => SubmitError::TooLarge {
                items: batch.items,
                capacity,
            },
            PipelineError::Refused(Refusal::Closed) => SubmitError::ShuttingDown,
            PipelineError::Rejected(r @ Rejection::Plugin { .. }) => {
                SubmitError::PluginRejected(r.to_string())
            }
            PipelineError::Rejected(Rejection::Invalid(m)) => SubmitError::Invalid(m),
        };
        let mut reserved = Vec::with_capacity(pipelines.len());
        for p in pipelines {
            let r = p
                .reserve(batch.items)
                .map_err(|e| error(PipelineError::Refused(e)))?;
            reserved.push(r);
        }
        let mut processed = Vec::with_capacity(pipelines.len());
        for p in pipelines {
            let out = p
                .process(batch.clone(), &self.metrics)
                .await
                .map_err(|e| error(PipelineError::Rejected(e)))?;
            processed.push(out);
        }
        for ((p, r), out) in pipelines.iter().zip(reserved).zip(processed) {
            p.commit(r, out).map_err(|e| error(PipelineError::Refused(e)))?;
        }
        Ok(())
    }
}
