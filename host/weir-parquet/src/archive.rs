//! [`ParquetArchive`], the exporter: converts each batch on a blocking thread,
//! then hands the record batches to one writer task that owns the open files.
//!
//! Durability: `export` succeeds once the rows are encoded into an open file's
//! writer (and, for object stores, handed to its upload). They become visible
//! when the file is finished (rows, bytes or age limit, or `shutdown`). Rows in
//! an open file are lost if the process is killed (`kill -9`, OOM) before then;
//! `weir_archive_oldest_unflushed_age_seconds` says how old they may be, and
//! `max_age` bounds it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use weir_pipeline::{Batch, ExportError, ExportOutcome, Exporter, Metrics, Signal};

use crate::config::ParquetExporterConfig;
use crate::convert::{self, ConvertError, Rejected};
use crate::destination::Destination;
use crate::error::{ArchiveError, BuildError};
use crate::metrics::ArchiveMetrics;
use crate::partition::{self, PartitionKey};
use crate::task::{Command, WriterTask};
use crate::writer::FileSettings;

/// Instance ids of the archives running in this process: their temporary files
/// are not stale.
static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

pub(crate) fn live() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The instance id inside a temporary file name `.part-<time>-<instance>-<seq>.parquet.tmp`.
fn instance_of(temp_name: &str) -> Option<&str> {
    temp_name.split('-').nth(2)
}

pub(crate) type Parts = Vec<(PartitionKey, RecordBatch)>;

/// The `type = "parquet"` exporter.
pub struct ParquetArchive {
    name: String,
    instance: String,
    destination: String,
    by_service: bool,
    tx: mpsc::Sender<Command>,
}

impl ParquetArchive {
    /// Builds the exporter `name` (used in metric labels) and starts its writer
    /// task. Must run inside a Tokio runtime. Creates a local directory, checks it
    /// is writable, and removes temporary files a crash left there.
    pub fn new(
        name: &str,
        config: &ParquetExporterConfig,
        metrics: &Arc<Metrics>,
    ) -> Result<ParquetArchive, BuildError> {
        if let Some((key, message)) = config.problems().into_iter().next() {
            return Err(BuildError::Config { key, message });
        }
        let dest = Destination::from_config(config)?;
        Self::with_destination(name, config, dest, metrics)
    }

    /// Like [`ParquetArchive::new`] with a destination built by the caller
    /// (e.g. an in-memory object store in tests); `path`/`url` are ignored.
    pub fn with_destination(
        name: &str,
        config: &ParquetExporterConfig,
        dest: Destination,
        metrics: &Arc<Metrics>,
    ) -> Result<ParquetArchive, BuildError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let instance = format!("{:016x}", rand::random::<u64>());
        live().insert(instance.clone());
        match dest.clean_stale(|temp| instance_of(temp).is_some_and(|i| live().contains(i))) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(exporter = %name, removed = n, "removed unfinished archive files left by an earlier run")
            }
            Err(e) => tracing::warn!(exporter = %name, error = %e, "cannot clean unfinished archive files"),
        }
        let settings = FileSettings {
            max_rows: config.max_rows,
            max_bytes: config.max_bytes.as_usize(),
            max_age: config.max_age.0,
            max_open_files: config.max_open_files,
            row_group_rows: config.row_group_rows,
            zstd_level: config.zstd_level,
        };
        let (tx, rx) = mpsc::channel(8);
        let task = WriterTask::new(
            name,
            dest.clone(),
            settings,
            &instance,
            ArchiveMetrics::new(name, metrics),
        );
        runtime.spawn(task.run(rx));
        tracing::info!(exporter = %name, destination = %dest.describe(), %instance, "parquet archive ready");
        Ok(ParquetArchive {
            name: name.to_string(),
            instance,
            destination: dest.describe(),
            by_service: config.partition_by_service,
            tx,
        })
    }

    /// The random id in this archive's file names.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn destination(&self) -> &str {
        &self.destination
    }
}

/// Decodes and converts one batch, split by partition (runs on a blocking thread).
pub fn prepare(
    signal: Signal,
    payload: &[u8],
    items: usize,
    by_service: bool,
) -> Result<(Parts, Rejected), ConvertError> {
    let converted = convert::convert(signal, payload, items)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let parts = partition::split(signal, converted.batch, by_service, now)?;
    Ok((parts, converted.rejected))
}

impl Exporter for ParquetArchive {
    fn export<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
        Box::pin(async move {
            let signal = batch.signal;
            if signal == Signal::Metrics {
                return Err(ExportError::permanent(
                    ConvertError::Unsupported(signal).to_string(),
                ));
            }
            let (payload, items) = (batch.payload.clone(), batch.items);
            let by_service = self.by_service;
            let (parts, rejected) =
                tokio::task::spawn_blocking(move || prepare(signal, &payload, items, by_service))
                    .await
                    .map_err(|e| ExportError::retryable(format!("archive conversion failed: {e}")))?
                    .map_err(|e| ExportError::permanent(e.to_string()))?;
            let rows: usize = parts.iter().map(|(_, b)| b.num_rows()).sum();
            if rows > 0 {
                let stopped = |_| ExportError::retryable(ArchiveError::Stopped.to_string());
                let (reply, answer) = oneshot::channel();
                self.tx
                    .send(Command::Write {
                        signal,
                        parts,
                        rows,
                        reply,
                    })
                    .await
                    .map_err(|_| ExportError::retryable(ArchiveError::Stopped.to_string()))?;
                answer
                    .await
                    .map_err(stopped)?
                    .map_err(|e| ExportError::retryable(e.to_string()))?;
            }
            Ok(ExportOutcome {
                rejected: rejected.count,
                message: rejected.reason.map(|why| {
                    format!(
                        "{} {} not archived: {why}",
                        rejected.count,
                        signal.item_noun().replace('_', " ")
                    )
                }),
            })
        })
    }

    /// Finishes every open file (local: fsync and rename; object store: complete
    /// the uploads). Later exports fail with a retryable error.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (reply, done) = oneshot::channel();
            if self.tx.send(Command::Shutdown { reply }).await.is_ok() {
                let _ = done.await;
            }
            tracing::info!(exporter = %self.name, "parquet archive closed");
        })
    }
}
