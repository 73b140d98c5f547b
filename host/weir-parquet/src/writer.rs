//! Rolling Parquet files: one open file per (signal, partition), finished when it
//! reaches `max_rows` rows, about `max_bytes` bytes or `max_age` of age, or when
//! more than `max_open_files` are open (the oldest goes first).
//!
//! Everything here is synchronous and CPU- or disk-bound; the exporter calls it
//! from a blocking thread. Object-store uploads are left to the async caller:
//! encoded bytes wait in the file's [`StoreSink`] and finished files come back as
//! [`Closed::Upload`].

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use weir_pipeline::Signal;

use crate::destination::{Destination, Sink, StoreSink};
use crate::error::ArchiveError;
pub use crate::format::{INSTANCE_KEY, properties};
use crate::partition::{PartitionKey, civil_from_days};
use crate::schema;

#[derive(Debug, Clone)]
pub struct FileSettings {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
    pub max_open_files: usize,
    pub row_group_rows: usize,
    pub zstd_level: i32,
}

/// File names that cannot collide between replicas writing to one bucket:
/// `part-<UTC time>-<instance id>-<sequence>.parquet`.
#[derive(Debug)]
pub struct Naming {
    instance: String,
    seq: u64,
}

impl Naming {
    pub fn new(instance: &str) -> Self {
        Naming {
            instance: instance.to_string(),
            seq: 0,
        }
    }

    pub fn next(&mut self, now: SystemTime) -> String {
        self.seq += 1;
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let secs = i64::try_from(secs).unwrap_or(0);
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let t = secs.rem_euclid(86_400);
        format!(
            "part-{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z-{}-{:06}.parquet",
            t / 3600,
            t % 3600 / 60,
            t % 60,
            self.instance,
            self.seq
        )
    }
}

/// What became of a file taken out of rotation.
pub struct FileReport {
    pub signal: Signal,
    /// `dir/name` relative to the destination root.
    pub name: String,
    pub rows: usize,
    pub bytes: u64,
}

pub enum Closed {
    /// Finished and visible (local directory).
    Visible(FileReport),
    /// Encoded completely; visible once the caller completes the upload.
    Upload(Box<StoreSink>, FileReport),
    /// Could not be finished: its rows are lost (the upload, if any, should be aborted).
    Failed {
        report: FileReport,
        error: ArchiveError,
        abort: Option<Box<StoreSink>>,
    },
}

impl Closed {
    fn failed(report: FileReport, message: String, abort: Option<Box<StoreSink>>) -> Closed {
        Closed::Failed {
            error: ArchiveError::Finish {
                file: report.name.clone(),
                message,
            },
            report,
            abort,
        }
    }
}

pub struct OpenFile {
    signal: Signal,
    name: String,
    writer: ArrowWriter<Vec<u8>>,
    sink: Sink,
    rows: usize,
    opened: Instant,
}

impl OpenFile {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), ArchiveError> {
        let fail = |message: String| ArchiveError::Write {
            file: self.name.clone(),
            message,
        };
        self.writer.write(batch).map_err(|e| fail(e.to_string()))?;
        let encoded = std::mem::take(self.writer.inner_mut());
        self.sink.write(encoded).map_err(|e| fail(e.to_string()))?;
        self.rows += batch.num_rows();
        Ok(())
    }

    /// Bytes so far: flushed row groups plus the estimate of the open one.
    pub fn size(&self) -> usize {
        self.writer.bytes_written() + self.writer.in_progress_size()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn opened(&self) -> Instant {
        self.opened
    }

    fn report(&self) -> FileReport {
        FileReport {
            signal: self.signal,
            name: self.name.clone(),
            rows: self.rows,
            bytes: self.writer.bytes_written() as u64,
        }
    }

    /// Writes the footer and, for a local file, makes it visible.
    pub fn close(mut self) -> Closed {
        let finished = self.writer.finish().map_err(|e| e.to_string()).and_then(|_| {
            let tail = std::mem::take(self.writer.inner_mut());
            self.sink.write(tail).map_err(|e| e.to_string())
        });
        let report = self.report();
        match (finished, self.sink) {
            (Ok(()), Sink::Local(local)) => match local.finish() {
                Ok(_) => Closed::Visible(report),
                Err(e) => Closed::failed(report, e.to_string(), None),
            },
            (Ok(()), Sink::Store(store)) => Closed::Upload(store, report),
            (Err(e), Sink::Local(local)) => {
                local.abort();
                Closed::failed(report, e, None)
            }
            (Err(e), Sink::Store(store)) => Closed::failed(report, e, Some(store)),
        }
    }

    /// Gives up on the file (after a write error): deletes a local temporary
    /// file; returns an upload to abort.
    pub fn discard(self) -> Option<Box<StoreSink>> {
        match self.sink {
            Sink::Local(local) => {
                local.abort();
                None
            }
            Sink::Store(store) => Some(store),
        }
    }
}

/// The open files of one exporter.
pub struct Files {
    dest: Destination,
    settings: FileSettings,
    naming: Naming,
    props: [WriterProperties; 2],
    open: HashMap<PartitionKey, OpenFile>,
}

/// The result of [`Files::append`].
#[derive(Default)]
pub struct Appended {
    pub closed: Vec<Closed>,
    /// Set when part of the batch could not be written (the caller retries it).
    pub error: Option<ArchiveError>,
}

impl Files {
    pub fn new(dest: Destination, settings: FileSettings, instance: &str) -> Files {
        let props = [
            properties(Signal::Traces, &settings, instance),
            properties(Signal::Logs, &settings, instance),
        ];
        Files {
            dest,
            settings,
            naming: Naming::new(instance),
            props,
            open: HashMap::new(),
        }
    }

    pub fn settings(&self) -> &FileSettings {
        &self.settings
    }

    fn open_file(&mut self, key: &PartitionKey) -> Result<OpenFile, ArchiveError> {
        let dir = key.dir();
        let name = self.naming.next(SystemTime::now());
        let full = format!("{dir}/{name}");
        let (schema, props) = match key.signal {
            Signal::Traces => (schema::spans(), self.props[0].clone()),
            _ => (schema::logs(), self.props[1].clone()),
        };
        let sink = self.dest.open(&dir, &name).map_err(|e| ArchiveError::Open {
            file: full.clone(),
            message: e.to_string(),
        })?;
        let writer =
            ArrowWriter::try_new(Vec::new(), schema, Some(props)).map_err(|e| ArchiveError::Write {
                file: full.clone(),
                message: e.to_string(),
            })?;
        Ok(OpenFile {
            signal: key.signal,
            name: full,
            writer,
            sink,
            rows: 0,
            opened: Instant::now(),
        })
    }

    /// Finishes the oldest open file.
    fn evict_oldest(&mut self, out: &mut Vec<Closed>) {
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, f)| f.opened)
            .map(|(k, _)| k.clone());
        if let Some(f) = oldest.and_then(|k| self.open.remove(&k)) {
            out.push(f.close());
        }
    }

    /// Writes each part into its partition's open file, rolling files that fill up.
    pub fn append(&mut self, parts: Vec<(PartitionKey, RecordBatch)>) -> Appended {
        let mut out = Appended::default();
        for (key, batch) in parts {
            let mut rest = batch;
            while rest.num_rows() > 0 {
                if !self.open.contains_key(&key) {
                    if self.open.len() >= self.settings.max_open_files {
                        self.evict_oldest(&mut out.closed);
                    }
                    match self.open_file(&key) {
                        Ok(f) => {
                            self.open.insert(key.clone(), f);
                        }
                        Err(e) => {
                            out.error = Some(e);
                            return out;
                        }
                    }
                }
                let Some(file) = self.open.get_mut(&key) else {
                    break;
                };
                let room = self.settings.max_rows.saturating_sub(file.rows).max(1);
                let take = room.min(rest.num_rows());
                let chunk = rest.slice(0, take);
                rest = rest.slice(take, rest.num_rows() - take);
                if let Err(e) = file.write(&chunk) {
                    // The file is unusable: what it held is lost, this batch is retried.
                    if let Some(f) = self.open.remove(&key) {
                        let report = f.report();
                        let abort = f.discard();
                        out.closed.push(Closed::Failed {
                            report,
                            error: e.clone(),
                            abort,
                        });
                    }
                    out.error = Some(e);
                    return out;
                }
                if (file.rows >= self.settings.max_rows || file.size() >= self.settings.max_bytes)
                    && let Some(f) = self.open.remove(&key)
                {
                    out.closed.push(f.close());
                }
            }
        }
        out
    }

    /// Finishes the files opened at least `max_age` ago.
    pub fn expire(&mut self, now: Instant) -> Vec<Closed> {
        let max_age = self.settings.max_age;
        let due: Vec<PartitionKey> = self
            .open
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.opened) >= max_age)
            .map(|(k, _)| k.clone())
            .collect();
        due.into_iter()
            .filter_map(|k| self.open.remove(&k))
            .map(OpenFile::close)
            .collect()
    }

    /// Finishes every open file (shutdown).
    pub fn close_all(&mut self) -> Vec<Closed> {
        self.open.drain().map(|(_, f)| f.close()).collect()
    }

    /// When the oldest open file of `signal` was opened.
    pub fn oldest(&self, signal: Signal) -> Option<Instant> {
        self.open
            .iter()
            .filter(|(k, _)| k.signal == signal)
            .map(|(_, f)| f.opened)
            .min()
    }

    /// The soonest time an open file reaches `max_age`.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.open.values().map(|f| f.opened + self.settings.max_age).min()
    }

    /// Open object-store files with encoded bytes waiting to be sent.
    pub fn pending_uploads(&mut self) -> Vec<(PartitionKey, &mut StoreSink)> {
        self.open
            .iter_mut()
            .filter_map(|(k, f)| match &mut f.sink {
                Sink::Store(s) if s.has_pending() => Some((k.clone(), &mut **s)),
                _ => None,
            })
            .collect()
    }

    /// Takes a file out of rotation without finishing it.
    pub fn remove(&mut self, key: &PartitionKey) -> Option<OpenFile> {
        self.open.remove(key)
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}
