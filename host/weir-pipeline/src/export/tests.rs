//! Stage behaviour end to end in process: admission, batching, retries,
//! splitting refused batches, the circuit breaker and shutdown accounting.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::time::Instant;

use super::*;
use crate::config::{BatchConfig, ByteSize, CircuitBreakerConfig, HumanDuration, QueueConfig, RetryConfig};
use crate::{Batch, Metrics, Signal};

/// What a test destination answers to its `n`th call with a batch.
type Behaviour = Box<dyn Fn(usize, &Batch) -> Result<ExportOutcome, ExportError> + Send + Sync>;

/// Records what it receives; fails as `behave` says for each call.
struct Dest {
    calls: AtomicUsize,
    /// Payloads of the batches accepted.
    got: Mutex<Vec<Vec<u8>>>,
    behave: Behaviour,
}

impl Dest {
    fn new(
        behave: impl Fn(usize, &Batch) -> Result<ExportOutcome, ExportError> + Send + Sync + 'static,
    ) -> Arc<Dest> {
        Arc::new(Dest {
            calls: AtomicUsize::new(0),
            got: Mutex::new(Vec::new()),
            behave: Box::new(behave),
        })
    }
    fn bytes_received(&self) -> Vec<u8> {
        self.got.lock().expect("lock").concat()
    }
}

impl Exporter for Dest {
    fn export<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let r = (self.behave)(n, batch);
            if r.is_ok() {
                self.got.lock().expect("lock").push(batch.payload.to_vec());
            }
            r
        })
    }
}

fn settings(capacity: usize, max_bytes: u64) -> StageSettings {
    StageSettings {
        exporter: "test".into(),
        signal: Signal::Traces,
        queue: QueueConfig {
            capacity,
            max_bytes: Some(ByteSize(max_bytes)),
            concurrency: 1,
            ..QueueConfig::default()
        },
        batch: BatchConfig {
            max_items: 10,
            max_bytes: ByteSize(1 << 20),
            timeout: HumanDuration::from_millis(20),
        },
        retry: RetryConfig {
            enabled: true,
            initial_interval: HumanDuration::from_millis(5),
            max_interval: HumanDuration::from_millis(20),
            max_elapsed: HumanDuration::from_secs(5),
        },
        circuit_breaker: CircuitBreakerConfig {
            enabled: false,
            ..CircuitBreakerConfig::default()
        },
    }
}

fn batch(items: usize, payload: &'static [u8]) -> Batch {
    Batch::new(Signal::Traces, Bytes::from_static(payload), items)
}

async fn put(stage: &ExportStage, b: Batch) {
    let r = stage.try_reserve(b.items, b.payload.len()).expect("room");
    stage.enqueue(b, r).await.expect("open");
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[tokio::test]
async fn budget_in_items_and_bytes_refuses_then_retries_deliver_everything() {
    let metrics = Metrics::new();
    let dest = Dest::new(|n, _| {
        if n < 3 {
            Err(ExportError::retryable("down"))
        } else {
            Ok(ExportOutcome::default())
        }
    });
    let mut stages = Stages::default();
    let stage = stages
        .start(settings(8, 100), dest.clone(), metrics.clone())
        .expect("start");
    put(&stage, batch(5, b"aaaa")).await;
    assert_eq!(stage.try_reserve(4, 1).err(), Some(Refusal::Full), "items");
    assert_eq!(stage.try_reserve(1, 97).err(), Some(Refusal::Full), "bytes");
    assert!(matches!(stage.try_reserve(9, 1), Err(Refusal::TooLarge(_))));
    assert!(matches!(stage.try_reserve(1, 101), Err(Refusal::TooLarge(_))));
    put(&stage, batch(3, b"bb")).await;
    stages.drain(soon()).await;
    assert_eq!(dest.bytes_received(), b"aaaabb");
    let text = metrics.encode();
    assert!(
        text.contains("weir_exporter_sent_spans_total{exporter=\"test\"} 8"),
        "{text}"
    );
    assert!(
        text.contains("weir_exporter_send_retries_total{exporter=\"test\",signal=\"traces\"} 3"),
        "{text}"
    );
}

#[tokio::test]
async fn a_poison_request_in_a_merged_batch_costs_only_itself() {
    let metrics = Metrics::new();
    // The destination refuses any batch containing the poison request.
    let dest = Dest::new(|_, b| {
        if b.payload.windows(6).any(|w| w == b"POISON") {
            Err(ExportError::permanent("INVALID_ARGUMENT: bad utf-8"))
        } else {
            Ok(ExportOutcome::default())
        }
    });
    let mut s = settings(1000, 1 << 20);
    s.batch.timeout = HumanDuration::from_millis(200);
    let mut stages = Stages::default();
    let stage = stages.start(s, dest.clone(), metrics.clone()).expect("start");
    for p in [&b"a1"[..], b"a2", b"POISON", b"a3", b"a4", b"a5"] {
        put(&stage, Batch::new(Signal::Traces, Bytes::copy_from_slice(p), 1)).await;
    }
    stages.drain(soon()).await;
    assert_eq!(String::from_utf8_lossy(&dest.bytes_received()), "a1a2a3a4a5");
    let text = metrics.encode();
    assert!(
        text.contains("weir_exporter_sent_spans_total{exporter=\"test\"} 5"),
        "{text}"
    );
    assert!(
        text.contains(
            "weir_exporter_send_failed_spans_total{exporter=\"test\",reason=\"permanent_error\"} 1"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn too_large_batches_are_halved_down_to_requests_as_received() {
    let metrics = Metrics::new();
    // A receive limit of 4 bytes: two-byte requests pass alone or in pairs.
    let dest = Dest::new(|_, b| {
        if b.payload.len() > 4 {
            Err(ExportError::too_large(
                "RESOURCE_EXHAUSTED: received message larger than max",
            ))
        } else {
            Ok(ExportOutcome::default())
        }
    });
    let mut s = settings(1000, 1 << 20);
    s.batch.timeout = HumanDuration::from_millis(200);
    let mut stages = Stages::default();
    let stage = stages.start(s, dest.clone(), metrics.clone()).expect("start");
    for p in [&b"01"[..], b"23", b"45", b"67", b"89", b"TOOBIG"] {
        put(&stage, Batch::new(Signal::Traces, Bytes::copy_from_slice(p), 1)).await;
    }
    stages.drain(soon()).await;
    assert_eq!(String::from_utf8_lossy(&dest.bytes_received()), "0123456789");
    let text = metrics.encode();
    assert!(
        text.contains("weir_exporter_send_failed_spans_total{exporter=\"test\",reason=\"too_large\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn batches_never_exceed_max_bytes() {
    let metrics = Metrics::new();
    let dest = Dest::new(|_, _| Ok(ExportOutcome::default()));
    let mut s = settings(1000, 1 << 20);
    s.batch.max_bytes = ByteSize(5);
    s.batch.max_items = 1000;
    let mut stages = Stages::default();
    let stage = stages.start(s, dest.clone(), metrics).expect("start");
    for _ in 0..7 {
        put(&stage, batch(1, b"xy")).await;
    }
    stages.drain(soon()).await;
    let sizes: Vec<usize> = dest.got.lock().expect("lock").iter().map(Vec::len).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 14);
    assert!(sizes.iter().all(|&n| n <= 5), "{sizes:?}");
}

#[tokio::test]
async fn shutdown_counts_what_could_not_be_sent() {
    let metrics = Metrics::new();
    let dest = Dest::new(|_, _| Err(ExportError::retryable("down")));
    let mut stages = Stages::default();
    let stage = stages
        .start(settings(100, 1000), dest, metrics.clone())
        .expect("start");
    put(&stage, batch(7, b"x")).await;
    let started = Instant::now();
    stages.drain(Instant::now() + Duration::from_millis(200)).await;
    assert!(started.elapsed() < Duration::from_secs(1), "one grace period");
    let text = metrics.encode();
    assert!(
        text.contains("weir_exporter_send_failed_spans_total{exporter=\"test\",reason=\"shutdown\"} 7"),
        "{text}"
    );
    assert!(
        text.contains("weir_exporter_queue_size{exporter=\"test\",signal=\"traces\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn circuit_opens_and_a_probe_closes_it() {
    let metrics = Metrics::new();
    // Down for the first 4 calls.
    let dest = Dest::new(|n, _| {
        if n < 4 {
            Err(ExportError::retryable("UNAVAILABLE"))
        } else {
            Ok(ExportOutcome::default())
        }
    });
    let mut s = settings(100, 1000);
    s.circuit_breaker = CircuitBreakerConfig {
        enabled: true,
        failure_threshold: 2,
        cool_down: HumanDuration::from_millis(300),
    };
    let mut stages = Stages::default();
    let stage = stages.start(s, dest.clone(), metrics.clone()).expect("start");
    put(&stage, batch(1, b"x")).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let text = metrics.encode();
    assert!(
        text.contains("weir_exporter_circuit_state{exporter=\"test\",signal=\"traces\"} 1"),
        "{text}"
    );
    // While open, no attempts: 2 failures, then nothing for the cool-down.
    assert_eq!(dest.calls.load(Ordering::SeqCst), 2);
    stages.drain(soon()).await;
    assert_eq!(dest.bytes_received(), b"x");
    // Probe 1 fails (reopens), probe 2 fails, probe 3 succeeds: 5 calls in all.
    assert_eq!(dest.calls.load(Ordering::SeqCst), 5);
    let text = metrics.encode();
    assert!(
        text.contains("weir_exporter_circuit_state{exporter=\"test\",signal=\"traces\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn an_update_keeps_the_queue_and_sends_it_with_the_new_exporter_and_settings() {
    let metrics = Metrics::new();
    let old = Dest::new(|_, _| Err(ExportError::retryable("down")));
    let new = Dest::new(|_, _| Ok(ExportOutcome::default()));
    let mut s = settings(100, 1000);
    s.retry.initial_interval = HumanDuration::from_millis(50);
    let mut stages = Stages::default();
    let stage = stages
        .start(s.clone(), old.clone(), metrics.clone())
        .expect("start");
    put(&stage, batch(3, b"abc")).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    // The old exporter is failing a send of "abc" while the update lands.
    let mut s2 = s.clone();
    s2.queue.capacity = 7;
    // One more sender slot: the first is busy retrying with the old exporter.
    s2.queue.concurrency = 2;
    s2.batch.timeout = HumanDuration::from_millis(5);
    stages.update(&stage, s2.clone(), new.clone(), &metrics);
    assert_eq!(*stage.settings(), s2);
    put(&stage, batch(2, b"de")).await;
    assert_eq!(
        stage.try_reserve(3, 1).err(),
        Some(Refusal::Full),
        "the new capacity counts what is held"
    );
    // The send under way retries with the exporter it started with; new data
    // goes out through the new one at once.
    tokio::time::timeout(Duration::from_secs(2), async {
        while new.bytes_received().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the new exporter sends");
    assert_eq!(new.bytes_received(), b"de");
    stages.retire_exporter(&(old.clone() as Arc<dyn Exporter>));
    let mut drained = Stages::default();
    std::mem::swap(&mut drained, &mut stages);
    drained.drain(Instant::now() + Duration::from_millis(300)).await;
    let text = metrics.encode();
    assert!(
        text.contains("weir_exporter_sent_spans_total{exporter=\"test\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("weir_exporter_send_failed_spans_total{exporter=\"test\",reason=\"shutdown\"} 3"),
        "the batch that stayed with the dead exporter is counted at the deadline: {text}"
    );
}

#[tokio::test]
async fn a_retired_stage_sends_what_it_holds_then_its_series_go() {
    let metrics = Metrics::new();
    let dest = Dest::new(|_, _| Ok(ExportOutcome::default()));
    let mut stages = Stages::default();
    let stage = stages
        .start(settings(100, 1000), dest.clone(), metrics.clone())
        .expect("start");
    put(&stage, batch(2, b"xy")).await;
    stages.retire(&stage, Some(soon()));
    assert!(stage.is_closed());
    assert_eq!(stage.try_reserve(1, 1).err(), Some(Refusal::Closed));
    drop(stage);
    stages.drain(soon()).await;
    assert_eq!(dest.bytes_received(), b"xy");
    let text = metrics.encode();
    assert!(
        text.contains("weir_exporter_sent_spans_total{exporter=\"test\"} 2"),
        "{text}"
    );
    assert!(
        !text.contains("weir_exporter_queue_size{"),
        "a gone stage leaves no gauge: {text}"
    );
}

#[tokio::test]
async fn a_retired_stage_past_its_deadline_gives_up_and_counts() {
    let metrics = Metrics::new();
    let dest = Dest::new(|_, _| Err(ExportError::retryable("down")));
    let mut stages = Stages::default();
    let stage = stages
        .start(settings(100, 1000), dest.clone(), metrics.clone())
        .expect("start");
    put(&stage, batch(4, b"wxyz")).await;
    stages.retire(&stage, Some(Instant::now() + Duration::from_millis(100)));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let text = metrics.encode();
    assert!(
        text.contains("weir_exporter_send_failed_spans_total{exporter=\"test\",reason=\"shutdown\"} 4"),
        "{text}"
    );
    stages.drain(soon()).await;
}
