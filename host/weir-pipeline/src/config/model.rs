//! Typed config sections. Every struct denies unknown keys so that a typo is an
//! error that names the key, not a silently ignored setting.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{ByteSize, HumanDuration};

#[derive(Debug, Clone)]
pub struct Config {
    pub service: ServiceConfig,
    pub admin: AdminConfig,
    pub receivers: BTreeMap<String, ReceiverConfig>,
    pub plugins: BTreeMap<String, PluginConfig>,
    pub exporters: BTreeMap<String, ExporterConfig>,
    pub pipelines: BTreeMap<String, PipelineConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// How long a SIGTERM/Ctrl-C waits for queues to drain before giving up.
    pub shutdown_grace: HumanDuration,
    /// Where compiled plugins are cached (keyed by the wasm's sha256 and the
    /// engine settings). Must be private to weir. Unset: no cache.
    pub plugin_cache_dir: Option<PathBuf>,
    /// Batches run through plugin chains at once (each on its own thread,
    /// with its own plugin instances). Unset: the number of CPUs.
    pub processing_threads: Option<std::num::NonZeroUsize>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            shutdown_grace: HumanDuration::from_secs(10),
            plugin_cache_dir: None,
            processing_threads: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serves /health, /ready and /metrics.
    pub address: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            address: "0.0.0.0:13133".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
// Tagged by the `type` key; see `load::tagged`.
pub enum ReceiverConfig {
    Otlp(OtlpReceiverConfig),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    /// gRPC listener; on by default at 0.0.0.0:4317 when neither protocol is given.
    pub grpc: Option<ListenerConfig>,
    /// HTTP listener (protobuf and JSON); on by default at 0.0.0.0:4318 when neither
    /// protocol is given.
    pub http: Option<ListenerConfig>,
    /// Largest request accepted, measured after decompression.
    #[serde(default = "default_max_request_size")]
    pub max_request_size: ByteSize,
}

impl OtlpReceiverConfig {
    pub const DEFAULT_GRPC: &'static str = "0.0.0.0:4317";
    pub const DEFAULT_HTTP: &'static str = "0.0.0.0:4318";

    /// The gRPC and HTTP addresses to listen on, applying the defaults.
    pub fn listeners(&self) -> (Option<&str>, Option<&str>) {
        match (&self.grpc, &self.http) {
            (None, None) => (Some(Self::DEFAULT_GRPC), Some(Self::DEFAULT_HTTP)),
            (g, h) => (
                g.as_ref().map(|l| l.address.as_str()),
                h.as_ref().map(|l| l.address.as_str()),
            ),
        }
    }
}

fn default_max_request_size() -> ByteSize {
    ByteSize::mib(16)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: String,
}

#[derive(Debug, Clone, Deserialize)]
// Tagged by the `type` key; see `load::tagged`.
pub enum ExporterConfig {
    OtlpGrpc(OtlpExporterConfig),
    OtlpHttp(OtlpExporterConfig),
    Console(ConsoleExporterConfig),
    /// The Parquet archive (traces and logs).
    Parquet(super::parquet::ParquetExporterConfig),
}

impl ExporterConfig {
    /// The queue, batch and retry settings every exporter type has.
    pub fn stage(&self) -> StageConfig {
        let (queue, batch, retry) = match self {
            ExporterConfig::OtlpGrpc(c) | ExporterConfig::OtlpHttp(c) => (&c.queue, &c.batch, &c.retry),
            ExporterConfig::Console(c) => (&c.queue, &c.batch, &c.retry),
            ExporterConfig::Parquet(c) => return c.stage(),
        };
        StageConfig {
            queue: queue.clone(),
            batch: batch.clone(),
            retry: retry.clone(),
        }
    }
}

/// Queue, batch and retry settings shared by every exporter type.
#[derive(Debug, Clone, Default)]
pub struct StageConfig {
    pub queue: QueueConfig,
    pub batch: BatchConfig,
    pub retry: RetryConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporterConfig {
    /// Base URL, e.g. `http://collector:4317` (gRPC) or `http://collector:4318` (HTTP;
    /// `/v1/<signal>` is appended unless the URL already has a path).
    pub endpoint: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default = "default_export_timeout")]
    pub timeout: HumanDuration,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_export_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleExporterConfig {
    #[serde(default)]
    pub verbosity: Verbosity,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verbosity {
    /// One line per batch.
    Basic,
    /// One line per span, log record or metric point, with attributes.
    #[default]
    Detailed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Items (spans, log records, metric points) this exporter may hold, queued or
    /// in flight. When full, receivers refuse new data with a retryable error.
    pub capacity: usize,
    /// Export requests in flight at once.
    pub concurrency: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 100_000,
            concurrency: 4,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Send once this many items are buffered...
    pub max_items: usize,
    /// ...or once the oldest buffered item is this old.
    pub timeout: HumanDuration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_items: 8192,
            timeout: HumanDuration::from_millis(200),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub enabled: bool,
    pub initial_interval: HumanDuration,
    pub max_interval: HumanDuration,
    /// Give up on a batch (counted as failed) after retrying this long.
    pub max_elapsed: HumanDuration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            initial_interval: HumanDuration::from_millis(500),
            max_interval: HumanDuration::from_secs(30),
            max_elapsed: HumanDuration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub receivers: Vec<String>,
    /// Plugins run in this order over every batch.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Exporters of the default route.
    pub exporters: Vec<String>,
    /// Route name (given to items by plugins) → exporters. Items with no route,
    /// or a route not listed here, go to `exporters`.
    #[serde(default)]
    pub routes: BTreeMap<String, Vec<String>>,
}

/// What a plugin failure does to the batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Forward the batch as it was before this plugin (for samplers, enrichers).
    Pass,
    /// Discard the batch (counted in weir_pipeline_dropped_*{reason="failed:NAME"}).
    Drop,
    /// Fail the request so the client retries: nothing unprocessed leaks out
    /// (the safe choice for redaction, and the default).
    #[default]
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A Wasm component file, optionally pinned by its sha256 (hex).
    Path { path: PathBuf, sha256: Option<String> },
    /// A reference plugin compiled into weir (builds with `native-plugins`).
    Builtin(String),
}

#[derive(Debug, Clone)]
pub struct PluginConfig {
    pub source: PluginSource,
    pub on_error: FailurePolicy,
    /// Linear memory cap of each instance.
    pub memory_limit: ByteSize,
    /// CPU deadline of one call on one batch.
    pub timeout: HumanDuration,
    /// Idle instances kept for reuse (one is in use per concurrent batch).
    pub instances: usize,
    /// The plugin's own settings, handed to its `init` as JSON.
    pub config: toml::Table,
}

/// The TOML form of a plugin, before `path`/`builtin` become a [`PluginSource`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfigToml {
    pub path: Option<PathBuf>,
    pub sha256: Option<String>,
    pub builtin: Option<String>,
    #[serde(default)]
    pub on_error: FailurePolicy,
    #[serde(default = "default_plugin_memory")]
    pub memory_limit: ByteSize,
    #[serde(default = "default_plugin_timeout")]
    pub timeout: HumanDuration,
    #[serde(default = "default_plugin_instances")]
    pub instances: usize,
    #[serde(default)]
    pub config: toml::Table,
}

fn default_plugin_memory() -> ByteSize {
    ByteSize::mib(64)
}

fn default_plugin_timeout() -> HumanDuration {
    HumanDuration::from_millis(500)
}

fn default_plugin_instances() -> usize {
    4
}
