//! The writer task: owns an archive's open files and runs every write, roll-over
//! and upload, one at a time (the encoding itself on blocking threads).

use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use weir_pipeline::Signal;

use crate::archive::{Parts, live};
use crate::destination::Destination;
use crate::error::ArchiveError;
use crate::metrics::ArchiveMetrics;
use crate::writer::{Closed, FileSettings, Files};

pub(crate) enum Command {
    Write {
        signal: Signal,
        parts: Parts,
        rows: usize,
        reply: oneshot::Sender<Result<(), ArchiveError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Owns the open files; all writes go through it, one at a time.
pub(crate) struct WriterTask {
    exporter: String,
    /// `None` only while a blocking step holds the files.
    files: Option<Box<Files>>,
    rebuild: (Destination, FileSettings, String),
    metrics: ArchiveMetrics,
}

impl WriterTask {
    pub(crate) fn new(
        exporter: &str,
        dest: Destination,
        settings: FileSettings,
        instance: &str,
        metrics: ArchiveMetrics,
    ) -> Self {
        WriterTask {
            exporter: exporter.to_string(),
            files: Some(Box::new(Files::new(dest.clone(), settings.clone(), instance))),
            rebuild: (dest, settings, instance.to_string()),
            metrics,
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        loop {
            let expiry = self.files.as_ref().and_then(|f| f.next_expiry());
            let command = match expiry {
                Some(at) => tokio::select! {
                    c = rx.recv() => Some(c),
                    () = tokio::time::sleep_until(at.into()) => None,
                },
                None => Some(rx.recv().await),
            };
            match command {
                None => {
                    let closed = self
                        .blocking(|f| f.expire(Instant::now()))
                        .await
                        .unwrap_or_default();
                    self.settle(closed).await;
                }
                Some(Some(Command::Write {
                    signal,
                    parts,
                    rows,
                    reply,
                })) => {
                    let result = self.write(signal, parts, rows).await;
                    let _ = reply.send(result);
                }
                Some(Some(Command::Shutdown { reply })) => {
                    self.close_all().await;
                    let _ = reply.send(());
                    break;
                }
                Some(None) => {
                    self.close_all().await;
                    break;
                }
            }
            self.update_oldest();
        }
        self.update_oldest();
        live().remove(&self.rebuild.2);
    }

    /// Runs `f` on the files on a blocking thread.
    async fn blocking<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Files) -> R + Send + 'static,
    ) -> Result<R, ArchiveError> {
        let mut files = self.files.take().ok_or(ArchiveError::Stopped)?;
        match tokio::task::spawn_blocking(move || {
            let r = f(&mut files);
            (files, r)
        })
        .await
        {
            Ok((files, r)) => {
                self.files = Some(files);
                Ok(r)
            }
            Err(e) => {
                // A panic while writing: the open files are gone (their temporary
                // files are cleaned at the next start). Carry on with new ones.
                tracing::error!(exporter = %self.exporter, error = %e, "archive writer failed; open files abandoned");
                let (dest, settings, instance) = self.rebuild.clone();
                self.files = Some(Box::new(Files::new(dest, settings, &instance)));
                Err(ArchiveError::Write {
                    file: "(open files)".into(),
                    message: e.to_string(),
                })
            }
        }
    }

    async fn write(&mut self, signal: Signal, parts: Parts, rows: usize) -> Result<(), ArchiveError> {
        let appended = self.blocking(move |f| f.append(parts)).await?;
        self.settle(appended.closed).await;
        let mut result = match appended.error {
            Some(e) => Err(e),
            None => Ok(()),
        };
        if let Err(e) = self.flush_uploads().await
            && result.is_ok()
        {
            result = Err(e);
        }
        match &result {
            Ok(()) => self.metrics.rows_written(signal, rows),
            Err(e) => {
                self.metrics.write_error(signal);
                tracing::warn!(exporter = %self.exporter, error = %e, "archive write failed; the batch will be retried");
            }
        }
        result
    }

    /// Sends the encoded bytes of open object-store files; a file whose upload
    /// fails is abandoned (its rows are lost) and the error returned.
    async fn flush_uploads(&mut self) -> Result<(), ArchiveError> {
        let Some(files) = self.files.as_mut() else {
            return Ok(());
        };
        let mut broken = Vec::new();
        for (key, sink) in files.pending_uploads() {
            if let Err(e) = sink.flush().await {
                broken.push((key, e.to_string()));
            }
        }
        let mut first = None;
        for (key, message) in broken {
            if let Some(file) = files.remove(&key) {
                let rows = file.rows();
                if let Some(upload) = file.discard() {
                    let object = upload.path().to_string();
                    upload.abort().await;
                    self.metrics.write_error(key.signal);
                    self.metrics.rows_lost(key.signal, rows);
                    tracing::error!(exporter = %self.exporter, %object, rows, error = %message, "archive upload failed; its rows are lost");
                    first.get_or_insert(ArchiveError::Write {
                        file: object,
                        message,
                    });
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Completes uploads and records what became of closed files.
    async fn settle(&mut self, closed: Vec<Closed>) {
        let mut uploads = Vec::new();
        for c in closed {
            match c {
                Closed::Visible(r) => {
                    tracing::debug!(exporter = %self.exporter, file = %r.name, rows = r.rows, bytes = r.bytes, "archive file finished");
                    self.metrics.file_finished(r.signal, r.bytes);
                }
                Closed::Upload(sink, r) => uploads.push(async move { (sink.finish().await, r) }),
                Closed::Failed { report, error, abort } => {
                    if let Some(upload) = abort {
                        upload.abort().await;
                    }
                    self.lost(&report.name, report.signal, report.rows, &error.to_string());
                }
            }
        }
        for (result, r) in futures::future::join_all(uploads).await {
            match result {
                Ok(()) => {
                    tracing::debug!(exporter = %self.exporter, file = %r.name, rows = r.rows, bytes = r.bytes, "archive object finished");
                    self.metrics.file_finished(r.signal, r.bytes);
                }
                Err(e) => self.lost(&r.name, r.signal, r.rows, &e.to_string()),
            }
        }
    }

    fn lost(&self, file: &str, signal: Signal, rows: usize, error: &str) {
        self.metrics.write_error(signal);
        self.metrics.rows_lost(signal, rows);
        tracing::error!(exporter = %self.exporter, %file, rows, %error, "archive file could not be finished; its rows are lost");
    }

    async fn close_all(&mut self) {
        let closed = self.blocking(Files::close_all).await.unwrap_or_default();
        self.settle(closed).await;
    }

    fn update_oldest(&self) {
        for signal in [Signal::Traces, Signal::Logs] {
            let oldest = self.files.as_ref().and_then(|f| f.oldest(signal));
            self.metrics.oldest.set(signal, oldest);
        }
    }
}
