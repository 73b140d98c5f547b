//! Errors of the archive: at start-up ([`BuildError`]) and while writing
//! ([`ArchiveError`], reported to weir's export stage as retryable).

use crate::destination::DestinationError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{key}: {message}")]
    Config { key: &'static str, message: String },
    #[error(transparent)]
    Destination(#[from] DestinationError),
    #[error("the parquet exporter must be built inside weir's async runtime")]
    NoRuntime,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot start archive file {file}: {message}")]
    Open { file: String, message: String },
    #[error("writing archive file {file} failed: {message}")]
    Write { file: String, message: String },
    #[error("finishing archive file {file} failed: {message}")]
    Finish { file: String, message: String },
    #[error("the archive writer has stopped")]
    Stopped,
}
