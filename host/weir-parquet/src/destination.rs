//! Where finished files go, and how a file becomes visible only when complete.
//!
//! - **Local directory**: a file is written under a hidden temporary name in its
//!   partition directory (`.part-….parquet.tmp`: a leading `.` makes Hive, Spark
//!   and DuckDB skip it, and the suffix keeps it out of `*.parquet` globs), then
//!   fsynced, renamed to its final name and the directory fsynced. A crash leaves
//!   at most temporary files, which the next start removes.
//! - **Object store** (S3 and compatible): the object is streamed through one
//!   multipart upload (or a single PUT when small) that is completed only after
//!   the Parquet footer is written; S3 shows no object before completion, so
//!   readers never see a partial file. A crash leaves an incomplete multipart
//!   upload, invisible and billed until a bucket lifecycle rule
//!   (`AbortIncompleteMultipartUpload`) removes it.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path as StorePath;
use tokio::io::AsyncWriteExt as _;

use crate::config::{ParquetExporterConfig, parse_store_url};

/// Suffix and prefix of in-progress local files.
pub const TEMP_PREFIX: &str = ".part-";
pub const TEMP_SUFFIX: &str = ".parquet.tmp";
/// Objects are streamed in parts of this size (S3's minimum is 5 MiB).
const UPLOAD_PART: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("unsupported url {0:?}: expected s3://BUCKET[/PREFIX] (or s3a://)")]
    Url(String),
    #[error("cannot use directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("cannot configure the object store for {url}: {source}")]
    Store {
        url: String,
        source: object_store::Error,
    },
}

#[derive(Clone)]
pub enum Destination {
    Local {
        root: PathBuf,
    },
    Store {
        store: Arc<dyn ObjectStore>,
        prefix: String,
        url: String,
    },
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Destination {
    /// Builds the destination of a config whose `problems()` are empty. A local
    /// directory is created and checked for writing here, so a bad path fails
    /// start-up rather than the first export.
    pub fn from_config(cfg: &ParquetExporterConfig) -> Result<Destination, DestinationError> {
        if let Some(url) = &cfg.url {
            let (bucket, prefix) = parse_store_url(url).ok_or_else(|| DestinationError::Url(url.clone()))?;
            let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(e) = &cfg.endpoint {
                b = b.with_endpoint(e);
            }
            if let Some(r) = &cfg.region {
                b = b.with_region(r);
            }
            if let Some(a) = cfg.allow_http {
                b = b.with_allow_http(a);
            }
            let store = b.build().map_err(|source| DestinationError::Store {
                url: url.clone(),
                source,
            })?;
            return Ok(Destination::Store {
                store: Arc::new(store),
                prefix,
                url: url.clone(),
            });
        }
        let root = cfg.path.clone().unwrap_or_default();
        let dir_err = |source| DestinationError::Dir {
            path: root.clone(),
            source,
        };
        fs::create_dir_all(&root).map_err(dir_err)?;
        let probe = root.join(format!("{TEMP_PREFIX}probe-{}{TEMP_SUFFIX}", std::process::id()));
        File::create(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(dir_err)?;
        Ok(Destination::Local { root })
    }

    /// A destination over any object store (tests, other clouds).
    pub fn store(store: Arc<dyn ObjectStore>, prefix: &str) -> Destination {
        Destination::Store {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            url: format!("store:{prefix}"),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Destination::Local { root } => root.display().to_string(),
            Destination::Store { url, .. } => url.clone(),
        }
    }

    /// Starts a file at `dir/name` (relative to the root). Blocking for local
    /// directories (creates the directory and the temporary file).
    pub fn open(&self, dir: &str, name: &str) -> io::Result<Sink> {
        match self {
            Destination::Local { root } => {
                let dir = root.join(dir);
                fs::create_dir_all(&dir)?;
                let temp = dir.join(format!(".{name}.tmp"));
                let file = File::create_new(&temp)?;
                Ok(Sink::Local(LocalSink {
                    file,
                    temp,
                    path: dir.join(name),
                }))
            }
            Destination::Store { store, prefix, .. } => {
                let key = if prefix.is_empty() {
                    format!("{dir}/{name}")
                } else {
                    format!("{prefix}/{dir}/{name}")
                };
                let path = StorePath::parse(&key).map_err(io::Error::other)?;
                Ok(Sink::Store(Box::new(StoreSink {
                    writer: BufWriter::with_capacity(store.clone(), path.clone(), UPLOAD_PART),
                    pending: Vec::new(),
                    path,
                })))
            }
        }
    }

    /// Removes temporary files left by earlier runs (a crash, a kill -9), unless
    /// `keep(name)` says they belong to a writer still running in this process.
    /// Returns how many were removed. Object stores have nothing to clean.
    pub fn clean_stale(&self, keep: impl Fn(&str) -> bool) -> io::Result<usize> {
        match self {
            Destination::Local { root } => clean_dir(root, &keep, 0),
            Destination::Store { .. } => Ok(0),
        }
    }
}

/// signal=/date=/hour=/service= is four levels; allow some slack.
const MAX_DEPTH: usize = 6;

fn clean_dir(dir: &Path, keep: &impl Fn(&str) -> bool, depth: usize) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let ty = entry.file_type()?;
        if ty.is_dir() && depth < MAX_DEPTH {
            removed += clean_dir(&entry.path(), keep, depth + 1)?;
        } else if ty.is_file() && name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) && !keep(name)
        {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// The bytes of one file on their way to its destination.
pub enum Sink {
    Local(LocalSink),
    Store(Box<StoreSink>),
}

impl Sink {
    /// Hands over encoded bytes: written to the temporary file (blocking), or
    /// queued for the upload (sent by [`StoreSink::flush`]).
    pub fn write(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        match self {
            Sink::Local(l) => l.file.write_all(&bytes),
            Sink::Store(s) => {
                s.pending.push(Bytes::from(bytes));
                Ok(())
            }
        }
    }
}

pub struct LocalSink {
    file: File,
    temp: PathBuf,
    path: PathBuf,
}

impl LocalSink {
    /// Makes the file durable and visible: fsync, rename, fsync the directory.
    pub fn finish(self) -> io::Result<PathBuf> {
        self.file.sync_all()?;
        drop(self.file);
        fs::rename(&self.temp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(self.path)
    }

    /// Deletes the temporary file.
    pub fn abort(self) {
        drop(self.file);
        if let Err(e) = fs::remove_file(&self.temp) {
            tracing::warn!(file = %self.temp.display(), error = %e, "cannot remove an abandoned archive file");
        }
    }
}

pub struct StoreSink {
    writer: BufWriter,
    pending: Vec<Bytes>,
    path: StorePath,
}

impl StoreSink {
    pub fn path(&self) -> &StorePath {
        &self.path
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Sends the queued bytes (uploading a part whenever a full one is buffered).
    pub async fn flush(&mut self) -> object_store::Result<()> {
        for b in std::mem::take(&mut self.pending) {
            self.writer.put(b).await?;
        }
        Ok(())
    }

    /// Sends the rest and completes the upload: only now does the object exist.
    pub async fn finish(mut self) -> Result<(), io::Error> {
        self.flush().await.map_err(io::Error::other)?;
        self.writer.shutdown().await
    }

    /// Abandons the upload (its parts are deleted).
    pub async fn abort(mut self) {
        if let Err(e) = self.writer.abort().await {
            tracing::warn!(object = %self.path, error = %e, "cannot abort an abandoned archive upload");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_file_is_hidden_until_finished() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = Destination::from_config(&ParquetExporterConfig::local(dir.path())).expect("dest");
        let mut sink = dest
            .open("signal=traces/date=2025-01-01/hour=00", "part-x.parquet")
            .expect("open");
        sink.write(b"PAR1 data".to_vec()).expect("write");
        let part_dir = dir.path().join("signal=traces/date=2025-01-01/hour=00");
        let names = || -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(&part_dir)
                .expect("dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(), [".part-x.parquet.tmp"]);
        let Sink::Local(local) = sink else {
            panic!("local sink")
        };
        let path = local.finish().expect("finish");
        assert_eq!(names(), ["part-x.parquet"]);
        assert_eq!(fs::read(path).expect("read"), b"PAR1 data");
    }

    #[test]
    fn stale_temp_files_are_removed_but_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = Destination::from_config(&ParquetExporterConfig::local(dir.path())).expect("dest");
        let deep = dir.path().join("signal=logs/date=2025-01-01/hour=00/service=a");
        fs::create_dir_all(&deep).expect("mkdir");
        fs::write(deep.join(".part-1-dead-000001.parquet.tmp"), b"x").expect("write");
        fs::write(deep.join(".part-1-live-000001.parquet.tmp"), b"x").expect("write");
        fs::write(deep.join("part-1-dead-000000.parquet"), b"x").expect("write");
        fs::write(deep.join(".other"), b"x").expect("write");
        let removed = dest.clean_stale(|name| name.contains("-live-")).expect("clean");
        assert_eq!(removed, 1);
        let mut left: Vec<_> = fs::read_dir(&deep)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".other",
                ".part-1-live-000001.parquet.tmp",
                "part-1-dead-000000.parquet"
            ]
        );
    }

    #[test]
    fn unusable_directory_fails_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"x").expect("write");
        let err =
            Destination::from_config(&ParquetExporterConfig::local(file.join("sub"))).expect_err("file");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }
}
