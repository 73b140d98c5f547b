//! Typed config sections. Every struct denies unknown keys so that a typo is an
//! error that names the key, not a silently ignored setting.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::auth::AuthConfig;
use super::tls::{TlsClientConfig, TlsServerConfig};
use super::{ByteSize, HumanDuration};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub service: ServiceConfig,
    pub admin: AdminConfig,
    pub receivers: BTreeMap<String, ReceiverConfig>,
    pub plugins: BTreeMap<String, PluginConfig>,
    pub exporters: BTreeMap<String, ExporterConfig>,
    pub pipelines: BTreeMap<String, PipelineConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// How long a SIGTERM/Ctrl-C waits for queues to drain before giving up.
    pub shutdown_grace: HumanDuration,
    /// Where compiled plugins are cached (keyed by the wasm's sha256 and the
    /// engine settings, each artifact under an HMAC; a shared directory gets a
    /// private `weir-<uid>` subdirectory). Unset: `<data_dir>/plugin-cache`, or
    /// no cache without a data_dir.
    pub plugin_cache_dir: Option<PathBuf>,
    /// Batches run through plugin chains at once (each on its own thread,
    /// with its own plugin instances). Unset: the number of CPUs.
    pub processing_threads: Option<std::num::NonZeroUsize>,
    /// Where weir keeps state that must survive a restart (disk queues under
    /// `queue/`). Unset: exporters with `queue.type = "disk"` must give
    /// `queue.directory`.
    pub data_dir: Option<PathBuf>,
    /// Hot reload of the config file.
    pub reload: ReloadConfig,
}

impl ServiceConfig {
    /// Where compiled plugins are cached: `plugin_cache_dir`, else
    /// `<data_dir>/plugin-cache`, else nowhere (every start compiles).
    pub fn effective_plugin_cache_dir(&self) -> Option<PathBuf> {
        self.plugin_cache_dir
            .clone()
            .or_else(|| self.data_dir.as_ref().map(|d| d.join("plugin-cache")))
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            shutdown_grace: HumanDuration::from_secs(10),
            plugin_cache_dir: None,
            processing_threads: None,
            data_dir: None,
            reload: ReloadConfig::default(),
        }
    }
}

/// `[service.reload]`: when weir rereads its config file by itself (SIGHUP
/// and `POST /reload` on the admin server always work).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// Watch the config file's directory (and those of plugin files) for changes.
    pub watch: bool,
    /// Quiet time after the last file event before the content is compared.
    pub debounce: HumanDuration,
    /// Compare the content this often even without file events (inotify
    /// misses events on some volume types).
    pub poll_interval: HumanDuration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch: true,
            debounce: HumanDuration::from_millis(50),
            poll_interval: HumanDuration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serves /health, /ready and /metrics.
    pub address: String,
    /// Connections served at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// HTTPS (and mTLS) for the admin endpoints.
    pub tls: Option<TlsServerConfig>,
    /// Bearer tokens for /metrics, /status and /reload (/health and /ready
    /// stay open for probes).
    pub auth: Option<AuthConfig>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            // Loopback unless configured otherwise: /reload and /status are not for everyone.
            address: "127.0.0.1:13133".into(),
            max_connections: 64,
            tls: None,
            auth: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
// Tagged by the `type` key; see `load::tagged`.
pub enum ReceiverConfig {
    Otlp(OtlpReceiverConfig),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    /// gRPC listener; on by default at 127.0.0.1:4317 when neither protocol is given.
    pub grpc: Option<ListenerConfig>,
    /// HTTP listener (protobuf and JSON); on by default at 127.0.0.1:4318 when neither
    /// protocol is given.
    pub http: Option<ListenerConfig>,
    /// Largest request accepted, measured after decompression.
    #[serde(default = "default_max_request_size")]
    pub max_request_size: ByteSize,
    /// Bearer tokens required on both listeners.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
}

impl OtlpReceiverConfig {
    // Loopback unless configured otherwise, as the Collector does.
    pub const DEFAULT_GRPC: &'static str = "127.0.0.1:4317";
    pub const DEFAULT_HTTP: &'static str = "127.0.0.1:4318";

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

    /// The connection limits of the gRPC and HTTP listeners (defaults for the
    /// default listeners).
    pub fn limits(&self) -> (ConnectionLimits, ConnectionLimits) {
        let of =
            |l: &Option<ListenerConfig>| l.as_ref().map_or_else(ConnectionLimits::default, |l| l.limits());
        (of(&self.grpc), of(&self.http))
    }
}

fn default_max_request_size() -> ByteSize {
    ByteSize::mib(16)
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: String,
    #[serde(default = "d_max_connections")]
    pub max_connections: usize,
    #[serde(default = "d_header_read_timeout")]
    pub header_read_timeout: HumanDuration,
    #[serde(default = "d_idle_timeout")]
    pub idle_timeout: HumanDuration,
    #[serde(default = "d_keepalive_interval")]
    pub keepalive_interval: HumanDuration,
    #[serde(default = "d_keepalive_timeout")]
    pub keepalive_timeout: HumanDuration,
    #[serde(default)]
    pub tls: Option<TlsServerConfig>,
}

fn d_max_connections() -> usize {
    ConnectionLimits::default().max_connections
}
fn d_header_read_timeout() -> HumanDuration {
    ConnectionLimits::default().header_read_timeout
}
fn d_idle_timeout() -> HumanDuration {
    ConnectionLimits::default().idle_timeout
}
fn d_keepalive_interval() -> HumanDuration {
    ConnectionLimits::default().keepalive_interval
}
fn d_keepalive_timeout() -> HumanDuration {
    ConnectionLimits::default().keepalive_timeout
}

impl ListenerConfig {
    pub fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            keepalive_interval: self.keepalive_interval,
            keepalive_timeout: self.keepalive_timeout,
        }
    }
}

/// Connection hygiene of one listener: what a client may hold and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; beyond it new ones are closed right away
    /// (and logged, rate-limited), so existing clients keep being served.
    pub max_connections: usize,
    /// A client must send a request's headers within this time of connecting
    /// (or of its previous request on a kept-alive connection).
    pub header_read_timeout: HumanDuration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: HumanDuration,
    /// HTTP/2 keepalive: ping an idle connection this often...
    pub keepalive_interval: HumanDuration,
    /// ...and close it when the ping is not answered within this time.
    pub keepalive_timeout: HumanDuration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            header_read_timeout: HumanDuration::from_secs(10),
            idle_timeout: HumanDuration::from_secs(120),
            keepalive_interval: HumanDuration::from_secs(30),
            keepalive_timeout: HumanDuration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
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
        let (queue, batch, retry, circuit_breaker) = match self {
            ExporterConfig::OtlpGrpc(c) | ExporterConfig::OtlpHttp(c) => {
                (&c.queue, &c.batch, &c.retry, &c.circuit_breaker)
            }
            ExporterConfig::Console(c) => (&c.queue, &c.batch, &c.retry, &c.circuit_breaker),
            ExporterConfig::Parquet(c) => return c.stage(),
        };
        StageConfig {
            queue: queue.clone(),
            batch: batch.clone(),
            retry: retry.clone(),
            circuit_breaker: circuit_breaker.clone(),
        }
    }
}

/// Queue, batch and retry settings shared by every exporter type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageConfig {
    pub queue: QueueConfig,
    pub batch: BatchConfig,
    pub retry: RetryConfig,
    pub circuit_breaker: CircuitBreakerConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporterConfig {
    /// Base URL, e.g. `http://collector:4317` (gRPC) or `http://collector:4318` (HTTP;
    /// `/v1/<signal>` is appended unless the URL already has a path).
    pub endpoint: String,
    /// Values are redacted in every Debug output (they often hold API keys).
    #[serde(default)]
    pub headers: super::Headers,
    /// CA, client certificate and server name for an `https://` endpoint.
    #[serde(default)]
    pub tls: Option<TlsClientConfig>,
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
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
}

fn default_export_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
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

/// Where an exporter's queue keeps accepted data until the destination has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    /// In memory: lost if weir is killed.
    #[default]
    Memory,
    /// Append-only segment files, fsync-ed before the client is acknowledged:
    /// survives kill -9 and power loss.
    Disk,
}

/// When a disk queue calls fsync (the client is acknowledged only after it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// As soon as a write is done; requests arriving meanwhile share the next fsync.
    #[default]
    Always,
    /// Group commit: at most once per `fsync_interval`, acknowledging every
    /// request written since the previous one.
    Interval,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    #[serde(rename = "type")]
    pub kind: QueueKind,
    /// Items (spans, log records, metric points) this exporter may hold, queued or
    /// in flight. When full, receivers refuse new data with a retryable error.
    pub capacity: usize,
    /// Bytes (encoded OTLP) this exporter may hold, queued or in flight; a full
    /// queue refuses like `capacity`. Unset: 64 MiB in memory, 1 GiB on disk.
    pub max_bytes: Option<ByteSize>,
    /// Export requests in flight at once.
    pub concurrency: usize,
    /// Disk queue: its directory (one subdirectory per signal). Unset:
    /// `<service.data_dir>/queue/<exporter>`.
    pub directory: Option<PathBuf>,
    /// Disk queue: when to fsync.
    pub fsync: FsyncPolicy,
    /// Disk queue with `fsync = "interval"`: the group-commit interval.
    pub fsync_interval: HumanDuration,
    /// Disk queue: size at which a segment file is closed and a new one started.
    pub segment_size: ByteSize,
}

impl QueueConfig {
    pub const DEFAULT_MEMORY_BYTES: u64 = 64 << 20;
    pub const DEFAULT_DISK_BYTES: u64 = 1 << 30;

    /// The byte capacity, applying the per-kind default.
    pub fn byte_capacity(&self) -> u64 {
        self.max_bytes.map_or(
            match self.kind {
                QueueKind::Memory => Self::DEFAULT_MEMORY_BYTES,
                QueueKind::Disk => Self::DEFAULT_DISK_BYTES,
            },
            |b| b.0,
        )
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            kind: QueueKind::Memory,
            capacity: 100_000,
            max_bytes: None,
            concurrency: 4,
            directory: None,
            fsync: FsyncPolicy::Always,
            fsync_interval: HumanDuration::from_millis(10),
            segment_size: ByteSize::mib(64),
        }
    }
}

/// Stops sending to a destination that keeps failing, so it can recover.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerConfig {
    pub enabled: bool,
    /// Consecutive failed attempts that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit waits before one probe request.
    pub cool_down: HumanDuration,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            enabled: true,
            failure_threshold: 10,
            cool_down: HumanDuration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Send once this many items are buffered...
    pub max_items: usize,
    /// ...or this many bytes (never more in one request: larger requests are
    /// split, so a destination with gRPC's default 4 MiB limit takes them)...
    pub max_bytes: ByteSize,
    /// ...or once the oldest buffered item is this old.
    pub timeout: HumanDuration,
}

impl BatchConfig {
    /// 4 MiB (gRPC's and the Collector's default receive limit) less 1 KiB of
    /// headroom for framing.
    pub const DEFAULT_MAX_BYTES: u64 = (4 << 20) - 1024;
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_items: 8192,
            max_bytes: ByteSize(Self::DEFAULT_MAX_BYTES),
            timeout: HumanDuration::from_millis(200),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// A reference plugin's Wasm component embedded in the weir binary
    /// (`path = "builtin:redact"`), sandboxed like any file.
    Embedded { name: String, sha256: Option<String> },
    /// A reference plugin compiled into weir (builds with `native-plugins`).
    Builtin(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    pub source: PluginSource,
    pub on_error: FailurePolicy,
    /// Linear memory cap of each instance.
    pub memory_limit: ByteSize,
    /// Deadline of one call on one batch, computing or waiting in WASI.
    pub timeout: HumanDuration,
    /// Idle instances kept for reuse (one is in use per concurrent batch).
    pub instances: usize,
    /// The plugin's own settings, handed to its `init` as JSON.
    pub config: toml::Table,
}

/// The TOML form of a plugin, before `path`/`builtin` become a [`PluginSource`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
