//! The configuration model (TOML), shaped like the OpenTelemetry Collector's:
//! named receivers, plugins and exporters, and per-signal pipelines that list them.
//!
//! Loading is in [`load`]; every error found is reported at once, each naming the
//! key it concerns.

pub mod auth;
mod env;
mod error;
mod load;
mod model;
pub mod parquet;
mod secret;
pub mod tls;
mod units;

pub use auth::{AuthConfig, TokenSource};
pub use error::{ConfigError, ConfigErrors};
pub use load::{EMBEDDED_PREFIX, load_file, parse_str, pipeline_signal};
pub use model::*;
pub use secret::{Headers, Secret};
pub use tls::{TlsClientConfig, TlsServerConfig, TlsVersion};
pub use units::{ByteSize, HumanDuration};
