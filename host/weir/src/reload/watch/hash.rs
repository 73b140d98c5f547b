//! The content hash of a running config: the config file's bytes and the bytes
//! of every plugin file it references by path.

use std::fmt;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use weir_pipeline::config::{self, PluginSource};

/// A sha256 over a config and its plugin files, as lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContentHash(String);

impl ContentHash {
    /// The first 12 hex digits, for logs.
    pub fn short(&self) -> &str {
        self.0.get(..12).unwrap_or(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What one look at the files found: their hash, and the plugin files the
/// config referenced (empty when it did not parse), whose directories are
/// watched too.
#[derive(Debug)]
pub(super) struct Snapshot {
    pub hash: ContentHash,
    pub plugin_files: Vec<PathBuf>,
}

/// The directory relative plugin paths resolve against, as `plugins::load`
/// does: weir's working directory, not the config file's.
pub fn plugin_base_dir() -> PathBuf {
    std::env::current_dir().unwrap_or_default()
}

/// The content hash of `config_path` with its plugin files resolved as
/// `weir run` resolves them (see [`plugin_base_dir`]).
pub fn content_hash(config_path: &Path) -> ContentHash {
    content_hash_from(config_path, &plugin_base_dir())
}

/// The content hash with relative plugin paths resolved against `plugin_base`.
pub fn content_hash_from(config_path: &Path, plugin_base: &Path) -> ContentHash {
    snapshot(config_path, plugin_base).hash
}

/// Reads the config once and hashes those very bytes, so the hash and the
/// plugin list come from the same version of the file. A config that does not
/// parse is hashed alone: it still changes the hash, and the reload attempt
/// reports its errors.
pub(super) fn snapshot(config_path: &Path, plugin_base: &Path) -> Snapshot {
    let mut hasher = Sha256::new();
    hasher.update(b"weir content hash v1\n");
    let config_bytes = std::fs::read(config_path);
    add_file(&mut hasher, &config_bytes);
    let plugin_files = match &config_bytes {
        Ok(bytes) => referenced_plugins(config_path, bytes, plugin_base),
        Err(_) => Vec::new(),
    };
    for (name, path) in &plugin_files {
        hasher.update(b"plugin\0");
        add_field(&mut hasher, name.as_bytes());
        let bytes = std::fs::read(path);
        add_file(&mut hasher, &bytes);
    }
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    Snapshot {
        hash: ContentHash(hex),
        plugin_files: plugin_files.into_iter().map(|(_, path)| path).collect(),
    }
}

/// `(plugin name, resolved path)` of every `[plugins.X] path = ...`, in name
/// order; empty when the config is not UTF-8 or does not parse.
fn referenced_plugins(config_path: &Path, bytes: &[u8], plugin_base: &Path) -> Vec<(String, PathBuf)> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Vec::new();
    };
    let Ok(config) = config::parse_str(&config_path.display().to_string(), text) else {
        return Vec::new();
    };
    config
        .plugins
        .iter()
        .filter_map(|(name, plugin)| match &plugin.source {
            PluginSource::Path { path, .. } => Some((name.clone(), resolve(path, plugin_base))),
            // Part of the binary: they cannot change while it runs.
            PluginSource::Builtin(_) | PluginSource::Embedded { .. } => None,
        })
        .collect()
}

/// As `weir_wasm::PluginRuntime::load` resolves a plugin path.
fn resolve(path: &Path, base: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Length-prefixed, so no two different inputs hash the same stream.
fn add_field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// Content only, no paths: the same files hash the same whichever way the path
/// to them is spelled. A file that cannot be read contributes a marker naming
/// why, so it hashes differently from any content.
fn add_file(hasher: &mut Sha256, bytes: &io::Result<Vec<u8>>) {
    match bytes {
        Ok(bytes) => {
            hasher.update(b"bytes\0");
            add_field(hasher, bytes);
        }
        Err(e) => {
            hasher.update(b"unreadable\0");
            add_field(hasher, format!("{:?}", e.kind()).as_bytes());
        }
    }
}
