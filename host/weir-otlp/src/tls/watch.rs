//! Rereading TLS material (and token files) when their content changes.
//!
//! A Kubernetes Secret volume is updated by swapping a symlinked directory, so
//! the files' own mtimes and inotify watches on them say little; the content
//! is compared instead, every `interval`, on a thread of its own that holds
//! only a weak reference and ends once what it reloads is gone.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Something that rereads its files and swaps in what it built from them.
pub(crate) trait Refresh: Send + Sync + 'static {
    /// Rereads the files; rebuilds and swaps only when their content differs
    /// from what is loaded. Logs what happened.
    fn refresh(&self);
}

/// A digest of some files' content (or of why one could not be read).
pub(crate) fn fingerprint(files: &[(PathBuf, std::io::Result<Vec<u8>>)]) -> [u8; 32] {
    let mut h = Sha256::new();
    for (path, content) in files {
        h.update(path.as_os_str().as_encoded_bytes());
        match content {
            Ok(bytes) => {
                h.update([1]);
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(bytes);
            }
            Err(e) => {
                h.update([0]);
                h.update(e.to_string().as_bytes());
            }
        }
    }
    h.finalize().into()
}

/// Calls `target.refresh()` every `interval` while `target` lives. A zero
/// interval starts nothing.
pub(crate) fn poll<T: Refresh>(target: &Arc<T>, interval: Duration, name: &str) {
    if interval.is_zero() {
        return;
    }
    let weak: Weak<T> = Arc::downgrade(target);
    let spawned = std::thread::Builder::new()
        .name("weir-tls-reload".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                let Some(t) = weak.upgrade() else { return };
                t.refresh();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(key = name, error = %e, "cannot start the thread that reloads changed certificates; they are reloaded only with the config");
    }
}
