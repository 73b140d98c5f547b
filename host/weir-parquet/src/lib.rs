//! weir's Parquet archive: traces and logs written as rolling, zstd-compressed,
//! Hive-partitioned Parquet files that DuckDB, Spark, Athena or pyarrow query
//! directly, in a local directory or an S3-compatible object store.
//!
//! ```text
//! Batch (encoded OTLP) ──spawn_blocking──> convert (OTLP wire → Arrow) ─> split by partition
//!        ──> writer task ──spawn_blocking──> ArrowWriter per open file ─> temp file / upload
//!                         └─ on max_rows / max_bytes / max_age / shutdown: finish ─> visible
//! ```
//!
//! - [`schema`]: the versioned table schemas (docs/archive-schema.md).
//! - [`convert`]: OTLP requests → Arrow record batches.
//! - [`partition`]: `signal=/date=/hour=[/service=]` directories.
//! - [`writer`]: rolling files; [`format`]: their Parquet settings.
//! - [`destination`]: local directory (temp + fsync + rename) or object store
//!   (one upload completed at the end).
//! - [`metrics`]: `weir_archive_*` self-metrics.
//! - [`ParquetArchive`]: the [`weir_pipeline::Exporter`]; `task`: the writer task
//!   that owns the open files.

mod archive;
pub mod config;
pub mod convert;
pub mod destination;
mod error;
pub mod format;
pub mod metrics;
pub mod partition;
pub mod schema;
mod task;
pub mod writer;

#[cfg(test)]
mod tests;

pub use archive::{CHUNK_ROWS, ParquetArchive, prepare, prepare_chunks};
pub use config::ParquetExporterConfig;
pub use error::{ArchiveError, BuildError};
