//! What a receiver submits into: the pipelines that list it, per signal, with
//! all-or-nothing admission and the receiver's accepted/refused counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::export::Refusal;
use crate::metrics::{ReceiverLabels, RefusedLabels, RefusedRequestLabels};
use crate::pipeline::{self, PipelineError};
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
    /// Can never fit: larger than an exporter's whole queue, or one item larger
    /// than a batch may be (gRPC RESOURCE_EXHAUSTED, HTTP 413).
    #[error("{0}")]
    TooLarge(String),
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
    /// Replaced whole by a reload; a request keeps the set it started with.
    pipelines: ArcSwap<BySignal>,
    metrics: Arc<Metrics>,
    closed: AtomicBool,
}

/// The pipelines of one receiver, per signal.
#[derive(Default)]
pub struct BySignal([Vec<Arc<Pipeline>>; 3]);

impl BySignal {
    fn new(pipelines: Vec<Arc<Pipeline>>) -> Self {
        let mut by_signal = BySignal::default();
        for p in pipelines {
            by_signal.0[p.signal.index()].push(p);
        }
        by_signal
    }
}

/// The pipeline set a reload replaced, still held by the requests that
/// started with it.
pub struct Replaced(Arc<BySignal>);

impl Replaced {
    /// Whether a request is still being admitted with the old set.
    pub fn in_use(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }

    /// Waits until no request uses the old set, or until `deadline`; after
    /// this nothing more is reserved in, or enqueued into, a stage that only
    /// the old set reached. Returns whether it was released in time.
    pub async fn released(&self, deadline: tokio::time::Instant) -> bool {
        while self.in_use() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }
}

impl Ingest {
    pub fn new(receiver: impl Into<String>, pipelines: Vec<Arc<Pipeline>>, metrics: Arc<Metrics>) -> Self {
        Ingest {
            receiver: receiver.into(),
            pipelines: ArcSwap::from_pointee(BySignal::new(pipelines)),
            metrics,
            closed: AtomicBool::new(false),
        }
    }

    pub fn receiver(&self) -> &str {
        &self.receiver
    }

    pub fn accepts(&self, signal: Signal) -> bool {
        !self.pipelines.load().0[signal.index()].is_empty()
    }

    /// Installs a new set of pipelines (a reload); requests being admitted
    /// finish with the set they started with, held by what this returns.
    pub fn replace_pipelines(&self, pipelines: Vec<Arc<Pipeline>>) -> Replaced {
        Replaced(self.pipelines.swap(Arc::new(BySignal::new(pipelines))))
    }

    /// The pipelines this receiver feeds now.
    pub fn pipelines(&self) -> Vec<Arc<Pipeline>> {
        self.pipelines.load().0.iter().flatten().cloned().collect()
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
        let snapshot = self.pipelines.load_full();
        let pipelines = &snapshot.0[batch.signal.index()];
        if pipelines.is_empty() {
            return Err(SubmitError::NoPipeline(batch.signal));
        }
        let error = |e: PipelineError| match e {
            PipelineError::Refused(Refusal::Full) => SubmitError::Full,
            PipelineError::Refused(Refusal::TooLarge(m)) => SubmitError::TooLarge(m),
            PipelineError::Refused(Refusal::Closed) => SubmitError::ShuttingDown,
            PipelineError::Refused(Refusal::Unavailable(m)) => SubmitError::Unavailable(m),
            PipelineError::Rejected(r @ Rejection::Plugin { .. }) => {
                SubmitError::PluginRejected(r.to_string())
            }
            PipelineError::Rejected(Rejection::Invalid(m)) => SubmitError::Invalid(m),
        };
        // Reserve in every pipeline, process in every pipeline, plan every
        // delivery, and only then enqueue: a refusal anywhere leaves nothing
        // queued anywhere, so the client's retry duplicates nothing.
        let bytes = batch.payload.len();
        let mut reserved = Vec::with_capacity(pipelines.len());
        for p in pipelines {
            let r = p
                .reserve(batch.items, bytes)
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
        let mut deliveries = Vec::new();
        for ((p, r), out) in pipelines.iter().zip(reserved).zip(processed) {
            deliveries.extend(p.plan(r, out).map_err(|e| error(PipelineError::Refused(e)))?);
        }
        pipeline::commit(deliveries)
            .await
            .map_err(|e| error(PipelineError::Refused(e)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use futures::future::BoxFuture;
    use tokio::sync::Semaphore;
    use tokio::time::Instant;

    use super::*;
    use crate::ExportStage;
    use crate::config::{BatchConfig, ByteSize, CircuitBreakerConfig, QueueConfig, RetryConfig};
    use crate::export::{ExportError, ExportOutcome, Exporter, StageSettings, Stages};
    use crate::process::{BatchProcessor, Processed};

    /// Never answers: whatever is queued stays queued.
    struct Stuck;

    impl Exporter for Stuck {
        fn export<'a>(&'a self, _: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
            Box::pin(futures::future::pending())
        }
    }

    fn settings(name: &str, capacity: usize) -> StageSettings {
        StageSettings {
            exporter: name.into(),
            signal: Signal::Traces,
            queue: QueueConfig {
                capacity,
                ..QueueConfig::default()
            },
            batch: BatchConfig {
                max_bytes: ByteSize(1 << 20),
                ..BatchConfig::default()
            },
            retry: RetryConfig::default(),
            circuit_breaker: CircuitBreakerConfig::default(),
        }
    }

    /// Grows every batch: emits it twice (as an enricher adding data might).
    struct Doubler;

    impl BatchProcessor for Doubler {
        fn process(&self, batch: Batch) -> crate::ProcessFuture<'_> {
            Box::pin(std::future::ready(Ok(Processed {
                outputs: vec![(None, batch.clone()), (None, batch)],
                dropped: Vec::new(),
            })))
        }
    }

    /// A request refused by the second pipeline must leave nothing in the
    /// first: otherwise the client's retry duplicates it there. The refusal
    /// here comes after processing (the batch grew past the room reserved),
    /// where committing pipeline by pipeline used to leave the first one's
    /// items enqueued.
    #[tokio::test]
    async fn a_refusal_in_one_pipeline_enqueues_nothing_in_the_others() {
        let metrics = Metrics::new();
        let mut stages = Stages::default();
        let roomy = stages
            .start(settings("roomy", 100), Arc::new(Stuck), metrics.clone())
            .expect("start");
        let tight = stages
            .start(settings("tight", 5), Arc::new(Stuck), metrics.clone())
            .expect("start");
        let workers = Arc::new(Semaphore::new(1));
        let pipeline = |name: &str, stage: &Arc<ExportStage>| {
            Arc::new(Pipeline::new(
                name,
                Signal::Traces,
                vec![stage.clone()],
                BTreeMap::new(),
                workers.clone(),
            ))
        };
        let growing = pipeline("traces/b", &tight);
        growing.set_processor(Some(Arc::new(Doubler)));
        let ingest = Ingest::new(
            "otlp",
            vec![pipeline("traces/a", &roomy), growing],
            metrics.clone(),
        );
        let batch = |items| Batch::new(Signal::Traces, Bytes::from_static(b"xx"), items);
        ingest.submit("grpc", batch(2)).await.expect("both have room");
        assert_eq!((roomy.queued().0, tight.queued().0), (2, 4));
        // 1 item fits the reservation in both; doubled, 2 do not fit in `tight`.
        assert_eq!(ingest.submit("grpc", batch(1)).await, Err(SubmitError::Full));
        assert_eq!(
            roomy.queued().0,
            2,
            "nothing half-committed into the first pipeline"
        );
        assert_eq!(tight.queued().0, 4);
        let text = metrics.encode();
        assert!(
            text.contains("weir_receiver_refused_requests_total{receiver=\"otlp\",transport=\"grpc\",signal=\"traces\",reason=\"queue_full\"} 1"),
            "{text}"
        );
        stages
            .drain(Instant::now() + std::time::Duration::from_millis(50))
            .await;
    }
}
