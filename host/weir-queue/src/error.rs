use std::path::{Path, PathBuf};

use crate::RecordId;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue holds `max_bytes`: back off until delivered records are acknowledged.
    #[error(
        "disk queue {dir} is full: {used_bytes} of its {max_bytes} bytes (queue.max_bytes) are in use \
         and a {record_bytes}-byte record does not fit; it drains as exports succeed \
         (raise queue.max_bytes to buffer more)"
    )]
    Full {
        dir: PathBuf,
        max_bytes: u64,
        used_bytes: u64,
        record_bytes: u64,
    },
    /// `close()` was called (or the queue's writer thread is gone).
    #[error("disk queue is closed")]
    Closed,
    #[error("disk queue: cannot {op} {path}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Never appended, or acknowledged already.
    #[error("disk queue: record {0} not found (already acknowledged, or never appended)")]
    NotFound(RecordId),
    /// A single record can never fit: retrying cannot help.
    #[error(
        "a {bytes}-byte record can never fit in a disk queue of at most {max} bytes per record \
         (raise queue.max_bytes, or lower the batch size)"
    )]
    TooLarge { bytes: u64, max: u64 },
    #[error(
        "disk queue {dir} is in use by another process (it holds {dir}/lock); \
         give each weir instance and exporter its own queue.directory"
    )]
    Locked { dir: PathBuf },
    #[error(
        "{path} is a disk queue segment of format version {found}, but this weir reads version \
         {supported}: it was written by a newer weir; run that version to drain the queue, or move \
         the directory away"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// A record written earlier no longer matches its checksum (disk damage).
    #[error(
        "disk queue: record {id} in {path} at offset {offset} fails its checksum (the disk \
         corrupted it); the next open moves the file to corrupt/ and keeps its intact records"
    )]
    Corrupt {
        path: PathBuf,
        id: RecordId,
        offset: u64,
    },
    #[error("invalid disk queue options: {0}")]
    InvalidOptions(String),
}

/// `map_err(io_err(path, "open"))`.
pub(crate) fn io_err(path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> QueueError {
    let path = path.to_path_buf();
    move |source| QueueError::Io { path, op, source }
}
