//! The archive exporter's config lives with the rest of the config model
//! (`weir_pipeline::config::parquet`), so `weir validate` checks it.

pub use weir_pipeline::config::parquet::*;
