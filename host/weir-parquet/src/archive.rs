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

/// Rows per record batch the converter hands the writer: small enough that
/// encoding the first chunk starts soon after a batch arrives (conversion and
/// encoding overlap, on two threads), large enough that per-write costs vanish.
pub const CHUNK_ROWS: usize = 1024;

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Like [`prepare`], chunk by chunk: each chunk of at most `chunk_rows` rows is
/// split by partition and handed to `emit` as soon as it is converted.
pub fn prepare_chunks(
    signal: Signal,
    payload: &[u8],
    items: usize,
    by_service: bool,
    chunk_rows: usize,
    mut emit: impl FnMut(Parts, Rejected) -> bool,
) -> Result<(), ConvertError> {
    let now = now_nanos();
    let mut split_error = None;
    convert::convert_chunks(signal, payload, items, chunk_rows, |c| {
        match partition::split(signal, c.batch, by_service, now) {
            Ok(parts) => emit(parts, c.rejected),
            Err(e) => {
                split_error = Some(e);
                false
            }
        }
    })?;
    split_error.map_or(Ok(()), |e| Err(ConvertError::Arrow(e)))
}

/// Decodes and converts one batch, split by partition (runs on a blocking thread).
pub fn prepare(
    signal: Signal,
    payload: &[u8],
    items: usize,
    by_service: bool,
) -> Result<(Parts, Rejected), ConvertError> {
    let converted = convert::convert(signal, payload, items)?;
    let parts = partition::split(signal, converted.batch, by_service, now_nanos())?;
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
            // Conversion runs chunk by chunk on a blocking thread while the writer
            // task encodes the chunks already converted.
            let (chunks_tx, mut chunks) = mpsc::channel::<(Parts, Rejected)>(2);
            let converting = tokio::task::spawn_blocking(move || {
                prepare_chunks(
                    signal,
                    &payload,
                    items,
                    by_service,
                    CHUNK_ROWS,
                    |parts, rejected| chunks_tx.blocking_send((parts, rejected)).is_ok(),
                )
            });
            let stopped = || ExportError::retryable(ArchiveError::Stopped.to_string());
            let mut rejected = Rejected::default();
            let mut pending = Vec::new();
            while let Some((parts, r)) = chunks.recv().await {
                rejected.merge(r);
                let rows: usize = parts.iter().map(|(_, b)| b.num_rows()).sum();
                if rows == 0 {
                    continue;
                }
                let (reply, answer) = oneshot::channel();
                let write = Command::Write {
                    signal,
                    parts,
                    rows,
                    reply,
                };
                self.tx.send(write).await.map_err(|_| stopped())?;
                pending.push((rows, answer));
            }
            let converted = converting
                .await
                .map_err(|e| ExportError::retryable(format!("archive conversion failed: {e}")))?;
            // Every chunk sent is waited for, to know what was stored.
            let mut written = 0;
            let mut write_error = None;
            for (rows, answer) in pending {
                match answer.await {
                    Ok(Ok(())) => written += rows,
                    Ok(Err(e)) => {
                        write_error.get_or_insert_with(|| ExportError::retryable(e.to_string()));
                    }
                    Err(_) => {
                        write_error.get_or_insert_with(stopped);
                    }
                }
            }
            if let Some(e) = write_error {
                return Err(e);
            }
            let noun = signal.item_noun().replace('_', " ");
            match converted {
                Ok(()) => Ok(ExportOutcome {
                    rejected: rejected.count,
                    message: rejected
                        .reason
                        .map(|why| format!("{} {noun} not archived: {why}", rejected.count)),
                }),
                // Nothing stored: the whole batch is refused, as it cannot be stored.
                Err(e) if written == 0 => Err(ExportError::permanent(e.to_string())),
                // Chunks before the malformed part are stored; the rest are not.
                Err(e) => {
                    let lost = items.saturating_sub(written);
                    Ok(ExportOutcome {
                        rejected: lost,
                        message: Some(format!("{lost} {noun} not archived: {e}")),
                    })
                }
            }
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
