//! The `type = "parquet"` exporter's settings, as they appear in weir's config:
//!
//! ```toml
//! [exporters.archive]
//! type = "parquet"
//! path = "/var/lib/weir/archive"      # a local directory, or
//! # url = "s3://bucket/prefix"        # an object store (AWS_* environment variables)
//! partition_by_service = false
//! max_rows = 1000000
//! max_bytes = "128MiB"
//! max_age = "60s"
//! row_group_rows = 65536
//! ```

use std::path::PathBuf;

use super::{
    BatchConfig, ByteSize, CircuitBreakerConfig, HumanDuration, QueueConfig, RetryConfig, StageConfig,
};
use serde::Deserialize;

/// Where and how the archive writes. Exactly one of `path` and `url` is required.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetExporterConfig {
    /// A local directory (created if missing). Files appear under it as
    /// `signal=traces/date=YYYY-MM-DD/hour=HH/part-….parquet`.
    pub path: Option<PathBuf>,
    /// An object store location, `s3://bucket/prefix` (or `s3a://`). Credentials,
    /// region and endpoint come from the usual `AWS_*` environment variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`), overridden by the
    /// keys below when given.
    pub url: Option<String>,
    /// Object store only: the S3 API endpoint, e.g. `http://127.0.0.1:9000` for a
    /// local S3-compatible server.
    pub endpoint: Option<String>,
    /// Object store only: the bucket's region.
    pub region: Option<String>,
    /// Object store only: allow `http://` endpoints (plaintext; local servers only).
    pub allow_http: Option<bool>,
    /// Add a `service=NAME/` level below `hour=HH/`.
    #[serde(default)]
    pub partition_by_service: bool,
    /// Finish a file once it holds this many rows...
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// ...or once it is about this large (compressed)...
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// ...or once its first row is this old, so data becomes visible promptly.
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
    /// Rows per Parquet row group (the unit readers skip by statistics).
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// zstd level of the column chunks (1 = fastest, 22 = smallest).
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// Files open at once (one per signal and partition); opening one more
    /// finishes the oldest.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
}

fn default_max_rows() -> usize {
    1_000_000
}

fn default_max_bytes() -> ByteSize {
    ByteSize::mib(128)
}

fn default_max_age() -> HumanDuration {
    HumanDuration::from_secs(60)
}

fn default_row_group_rows() -> usize {
    65_536
}

fn default_zstd_level() -> i32 {
    3
}

fn default_max_open_files() -> usize {
    64
}

impl ParquetExporterConfig {
    /// A config writing to a local directory, every other setting at its default.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        ParquetExporterConfig {
            path: Some(path.into()),
            url: None,
            endpoint: None,
            region: None,
            allow_http: None,
            partition_by_service: false,
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
            max_age: default_max_age(),
            row_group_rows: default_row_group_rows(),
            zstd_level: default_zstd_level(),
            max_open_files: default_max_open_files(),
            queue: QueueConfig::default(),
            batch: BatchConfig::default(),
            retry: RetryConfig::default(),
            circuit_breaker: CircuitBreakerConfig::default(),
        }
    }

    /// The queue, batch and retry settings for weir's export stage.
    pub fn stage(&self) -> StageConfig {
        StageConfig {
            queue: self.queue.clone(),
            batch: self.batch.clone(),
            retry: self.retry.clone(),
            circuit_breaker: self.circuit_breaker.clone(),
        }
    }

    /// Checks what serde cannot: returns every problem as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match (&self.path, &self.url) {
            (None, None) => out.push((
                "path",
                "give `path` (a local directory) or `url` (e.g. \"s3://bucket/prefix\")".to_string(),
            )),
            (Some(_), Some(_)) => out.push(("url", "give either `path` or `url`, not both".to_string())),
            (None, Some(url)) => {
                if parse_store_url(url).is_none() {
                    out.push((
                        "url",
                        format!("unsupported url {url:?}: expected s3://BUCKET[/PREFIX] (or s3a://)"),
                    ));
                }
            }
            (Some(p), None) => {
                if p.as_os_str().is_empty() {
                    out.push(("path", "must not be empty".to_string()));
                }
            }
        }
        if self.path.is_some() {
            for (key, set) in [
                ("endpoint", self.endpoint.is_some()),
                ("region", self.region.is_some()),
                ("allow_http", self.allow_http.is_some()),
            ] {
                if set {
                    out.push((key, "applies to `url` (object stores) only".to_string()));
                }
            }
        }
        if self.max_rows == 0 {
            out.push(("max_rows", "must be at least 1".to_string()));
        }
        if self.max_bytes.0 < 1024 {
            out.push(("max_bytes", "must be at least 1KiB".to_string()));
        }
        if self.max_age.0.is_zero() {
            out.push(("max_age", "must be more than 0s".to_string()));
        }
        if self.row_group_rows == 0 {
            out.push(("row_group_rows", "must be at least 1".to_string()));
        }
        if !(1..=22).contains(&self.zstd_level) {
            out.push(("zstd_level", "must be between 1 and 22".to_string()));
        }
        if self.max_open_files == 0 {
            out.push(("max_open_files", "must be at least 1".to_string()));
        }
        out
    }
}

/// `s3://bucket/some/prefix` (or `s3a://`) → (`bucket`, `some/prefix`).
pub fn parse_store_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://").or_else(|| url.strip_prefix("s3a://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape_with_defaults() {
        let c: ParquetExporterConfig = toml::from_str(
            r#"
            path = "/var/lib/weir/archive"
            partition_by_service = true
            max_bytes = "64MiB"
            max_age = "30s"
            "#,
        )
        .expect("valid");
        assert_eq!(c.max_rows, 1_000_000);
        assert_eq!(c.max_bytes.0, 64 * 1024 * 1024);
        assert_eq!(c.max_age.0.as_secs(), 30);
        assert_eq!(c.row_group_rows, 65_536);
        assert!(c.partition_by_service);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = toml::from_str::<ParquetExporterConfig>("path = \"/x\"\nmax_rowz = 3").expect_err("typo");
        assert!(err.to_string().contains("max_rowz"), "{err}");
    }

    #[test]
    fn store_urls() {
        assert_eq!(
            parse_store_url("s3://bucket/a/b/"),
            Some(("bucket".into(), "a/b".into()))
        );
        assert_eq!(
            parse_store_url("s3a://bucket"),
            Some(("bucket".into(), "".into()))
        );
        assert_eq!(parse_store_url("s3:///x"), None);
        assert_eq!(parse_store_url("/tmp/x"), None);
    }

    #[test]
    fn path_xor_url_and_bounds() {
        let mut c = ParquetExporterConfig::local("/x");
        c.url = Some("s3://b/p".into());
        c.max_rows = 0;
        let keys: Vec<_> = c.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["url", "max_rows"]);
        c.path = None;
        c.url = Some("ftp://nope".into());
        c.max_rows = 1;
        let p = c.problems();
        assert_eq!(p.len(), 1);
        assert!(p[0].1.contains("s3://"), "{p:?}");
        c.url = None;
        assert_eq!(c.problems()[0].0, "path");
    }
}
