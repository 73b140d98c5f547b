//! The disk side of a stage with `queue.type = "disk"`: every accepted request
//! is a record in a [`weir_queue::DiskQueue`], fsync-ed before the client is
//! acknowledged and removed only once the destination has it. At start-up the
//! records left by the previous run (clean stop, kill -9 or power loss) are
//! queued again, ahead of new data.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;
use weir_queue::{DiskQueue, DiskQueueOptions, Fsync, QueueError, RecordId};

use super::StageError;
use super::budget::Budget;
use super::queue::Entry;
use super::stage::{Refusal, StageSettings};
use crate::config::{FsyncPolicy, QueueKind};
use crate::metrics::QueueLabels;
use crate::{Batch, Metrics};

#[derive(Clone)]
pub struct Durable {
    queue: DiskQueue,
    dir: Arc<PathBuf>,
}

/// Opens the stage's disk queue, if it has one, with the entries it recovered.
pub fn open(
    settings: &StageSettings,
    budget: &Arc<Budget>,
    metrics: &Metrics,
    labels: &QueueLabels,
) -> Result<Option<(Durable, Vec<Entry>)>, StageError> {
    if settings.queue.kind != QueueKind::Disk {
        return Ok(None);
    }
    let fail = |path: PathBuf, message: String| StageError::DiskQueue {
        exporter: settings.exporter.clone(),
        path,
        message,
    };
    let base = settings.queue.directory.clone().ok_or_else(|| {
        fail(
            PathBuf::new(),
            "no directory; set queue.directory or service.data_dir".into(),
        )
    })?;
    let dir = base.join(settings.signal.as_str());
    let options = DiskQueueOptions {
        dir: dir.clone(),
        max_bytes: settings.queue.byte_capacity(),
        segment_size: settings.queue.segment_size.0,
        fsync: match settings.queue.fsync {
            FsyncPolicy::Always => Fsync::Always,
            FsyncPolicy::Interval => Fsync::Interval(settings.queue.fsync_interval.0),
        },
    };
    let (queue, recovery) = DiskQueue::open(options).map_err(|e| fail(dir.clone(), e.to_string()))?;
    let items: usize = recovery.records.iter().map(|r| r.items as usize).sum();
    let now = Instant::now();
    let entries: Vec<Entry> = recovery
        .records
        .iter()
        .map(|r| Entry {
            items: r.items as usize,
            bytes: r.bytes as usize,
            payload: None,
            record: Some(r.id),
            // Already held: admission refuses new data until this drains.
            reservation: budget.force(r.items as usize, u64::from(r.bytes)),
            since: now,
        })
        .collect();
    metrics.queue_recovered.get_or_create(labels).inc_by(items as u64);
    metrics
        .queue_corrupt_segments
        .get_or_create(labels)
        .inc_by(recovery.corrupt_segments.len() as u64);
    metrics
        .queue_truncated_bytes
        .get_or_create(labels)
        .inc_by(recovery.truncated_bytes);
    for path in &recovery.corrupt_segments {
        tracing::error!(
            exporter = %settings.exporter,
            signal = %settings.signal,
            file = %path.display(),
            lost_records_estimate = recovery.lost_records_estimate,
            "disk queue: a damaged segment was moved aside; the records before the damage were kept"
        );
    }
    if !entries.is_empty() || recovery.truncated_bytes > 0 {
        tracing::info!(
            exporter = %settings.exporter,
            signal = %settings.signal,
            records = entries.len(),
            items,
            truncated_bytes = recovery.truncated_bytes,
            took = ?recovery.duration,
            "disk queue: recovered undelivered data from the previous run"
        );
    }
    Ok(Some((
        Durable {
            queue,
            dir: Arc::new(dir),
        },
        entries,
    )))
}

impl Durable {
    /// Writes the batch and waits until it is durable.
    pub async fn append(&self, batch: &Batch) -> Result<RecordId, Refusal> {
        let items = u32::try_from(batch.items)
            .map_err(|_| Refusal::TooLarge(format!("{} items in one request", batch.items)))?;
        match self.queue.append(items, batch.payload.clone()).await {
            Ok(record) => Ok(record.id),
            Err(QueueError::Full { .. }) => Err(Refusal::Full),
            Err(QueueError::Closed) => Err(Refusal::Closed),
            Err(e @ QueueError::TooLarge { .. }) => Err(Refusal::TooLarge(format!(
                "the request can never fit in the disk queue: {e}; raise queue.max_bytes"
            ))),
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "disk queue write failed");
                Err(Refusal::Unavailable(format!(
                    "the disk queue could not store the request: {e}"
                )))
            }
        }
    }

    /// Reads records back (on a blocking thread: this is file I/O).
    pub async fn read(&self, wanted: Vec<(usize, RecordId)>) -> Vec<(usize, Result<Bytes, String>)> {
        let queue = self.queue.clone();
        let ids: Vec<usize> = wanted.iter().map(|(i, _)| *i).collect();
        let read = tokio::task::spawn_blocking(move || {
            wanted
                .into_iter()
                .map(|(i, id)| (i, queue.read(id).map_err(|e| e.to_string())))
                .collect::<Vec<_>>()
        })
        .await;
        read.unwrap_or_else(|e| {
            ids.into_iter()
                .map(|i| (i, Err(format!("reading the disk queue failed: {e}"))))
                .collect()
        })
    }

    /// Bytes the queue's segments take on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.queue.stats().disk_bytes
    }

    pub fn ack(&self, ids: &[RecordId]) {
        if !ids.is_empty() {
            self.queue.ack(ids);
        }
    }

    pub fn close(&self) {
        self.queue.close();
    }
}
