//! Noticing that the config (or a plugin file it references) changed on disk.
//!
//! A ConfigMap volume is updated by kubelet's AtomicWriter: the new files go
//! into a fresh `..<timestamp>` directory, a `..data_tmp` symlink to it is
//! renamed over `..data`, and the old directory is removed; `weir.toml` itself
//! is a symlink to `..data/weir.toml` and is never modified. So the watcher
//! listens to any event in the config file's directory (and in the
//! directories of plugin files outside it), waits until the events stop for
//! `debounce`, and then hashes the content: only a hash different from the
//! last one reported becomes a [`Trigger`]. A poll every `poll_interval`
//! hashes too, for volumes where inotify misses events.
//!
//! Start it with the hash of the running config, computed *before* that
//! config was read, so that a change racing the start-up still triggers.

#[cfg(test)]
mod atomic_writer;
mod hash;
mod looper;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use hash::{ContentHash, content_hash, content_hash_from, plugin_base_dir};
use looper::{Looper, Msg};

/// [`Trigger::reason`] when filesystem events led to the change.
pub const REASON_WATCH: &str = "watch";
/// [`Trigger::reason`] when the periodic poll found the change.
pub const REASON_POLL: &str = "poll";

/// The content on disk differs from the content last reported, or (with
/// `changed: false`) files were rewritten with the same content, so that the
/// caller can count it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// The hash of the content now on disk.
    pub hash: ContentHash,
    /// [`REASON_WATCH`] or [`REASON_POLL`].
    pub reason: &'static str,
    /// False when file events led to content identical to the last reported
    /// (never from the poll, which would say so every interval).
    pub changed: bool,
}

#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// Quiet time after the last filesystem event before hashing.
    pub debounce: Duration,
    /// Hash this often even without events.
    pub poll_interval: Duration,
    /// Listen to filesystem events (inotify on Linux); `false` polls only.
    pub filesystem_events: bool,
    /// Where relative plugin paths resolve, as `weir run` resolves them.
    pub plugin_base_dir: PathBuf,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(50),
            poll_interval: Duration::from_secs(10),
            filesystem_events: true,
            plugin_base_dir: plugin_base_dir(),
        }
    }
}

/// Watches on its own thread until [`ConfigWatcher::stop`], until dropped, or
/// until the trigger receiver is dropped.
pub struct ConfigWatcher {
    control: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl ConfigWatcher {
    /// Starts watching `config_path`; `running` is the hash of the config in
    /// use, so the first trigger is the first content different from it.
    pub fn start(
        config_path: impl Into<PathBuf>,
        running: ContentHash,
        options: WatchOptions,
        triggers: tokio::sync::mpsc::Sender<Trigger>,
    ) -> io::Result<Self> {
        let config_path = config_path.into();
        let (control, events) = mpsc::channel();
        let watcher = if options.filesystem_events {
            let sender = control.clone();
            match notify::recommended_watcher(move |event| {
                // The loop gone means it is stopping; nothing to tell.
                let _ = sender.send(Msg::Fs(event));
            }) {
                Ok(watcher) => Some(watcher),
                Err(e) => {
                    tracing::warn!(
                        "config reload: cannot watch for file changes ({e}); checking {} every {:?} instead",
                        config_path.display(),
                        options.poll_interval
                    );
                    None
                }
            }
        } else {
            None
        };
        let mut looper = Looper::new(config_path, running, options, triggers, watcher, events);
        // Watches are in place when `start` returns: a change after it is seen.
        let changed_already = looper.prepare();
        let thread = std::thread::Builder::new()
            .name("weir-config-watch".into())
            .spawn(move || looper.run(changed_already))?;
        Ok(Self {
            control,
            thread: Some(thread),
        })
    }

    /// Stops watching and waits for the watcher thread to finish.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        // A send error means the thread already ended.
        let _ = self.control.send(Msg::Stop);
        if thread.join().is_err() {
            tracing::warn!("config reload: the watcher thread panicked");
        }
    }
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}
