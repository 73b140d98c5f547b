//! The watcher thread: filesystem events, debounce, poll, hash, trigger.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::error::TrySendError;

use super::{ContentHash, REASON_POLL, REASON_WATCH, Trigger, WatchOptions, hash};

/// The shortest wait between two checks: a retry of a trigger the full
/// channel refused, or a poll with a smaller interval configured.
const MIN_RETRY: Duration = Duration::from_millis(100);

/// What the thread receives: notify's events, and the stop from its owner.
pub(super) enum Msg {
    Fs(notify::Result<notify::Event>),
    Stop,
}

pub(super) struct Looper {
    config_path: PathBuf,
    config_dir: PathBuf,
    options: WatchOptions,
    reported: ContentHash,
    triggers: tokio::sync::mpsc::Sender<Trigger>,
    watcher: Option<RecommendedWatcher>,
    watched: BTreeSet<PathBuf>,
    /// Directories that could not be watched, warned about once.
    failed: BTreeSet<PathBuf>,
    events: mpsc::Receiver<Msg>,
}

enum Checked {
    /// Unchanged, or the trigger was sent.
    Done,
    /// The channel is full: try again shortly.
    Retry,
    /// Nobody receives triggers any more.
    Closed,
}

impl Looper {
    pub(super) fn new(
        config_path: PathBuf,
        running: ContentHash,
        options: WatchOptions,
        triggers: tokio::sync::mpsc::Sender<Trigger>,
        watcher: Option<RecommendedWatcher>,
        events: mpsc::Receiver<Msg>,
    ) -> Self {
        Self {
            config_dir: directory_of(&config_path),
            config_path,
            options,
            reported: running,
            triggers,
            watcher,
            watched: BTreeSet::new(),
            failed: BTreeSet::new(),
            events,
        }
    }

    /// Sets up the watches; true if the content already differs from the
    /// running config's.
    pub(super) fn prepare(&mut self) -> bool {
        let snapshot = hash::snapshot(&self.config_path, &self.options.plugin_base_dir);
        self.update_watches(&snapshot.plugin_files);
        snapshot.hash != self.reported
    }

    pub(super) fn run(&mut self, changed_already: bool) {
        // A change between the caller's hash and `prepare` is reported at once.
        let mut next_poll = if changed_already {
            Instant::now()
        } else {
            self.after_poll_interval()
        };
        // Set by an event: hash once no event came for `debounce`.
        let mut quiet_at: Option<Instant> = None;
        // The reason of a trigger the full channel refused, for its retry.
        let mut retrying: Option<&'static str> = None;
        loop {
            let now = Instant::now();
            if quiet_at.is_some_and(|at| at <= now) || next_poll <= now {
                // Events that keep coming still get hashed at the poll.
                let reason = match (quiet_at.take(), retrying.take()) {
                    (Some(_), _) => REASON_WATCH,
                    (None, Some(reason)) => reason,
                    (None, None) => REASON_POLL,
                };
                next_poll = match self.check(reason) {
                    Checked::Done => self.after_poll_interval(),
                    Checked::Retry => {
                        retrying = Some(reason);
                        after(self.options.debounce.max(MIN_RETRY))
                    }
                    Checked::Closed => return,
                };
                continue;
            }
            let deadline = quiet_at.map_or(next_poll, |at| at.min(next_poll));
            match self.events.recv_timeout(deadline.saturating_duration_since(now)) {
                Ok(Msg::Fs(event)) => {
                    if changes_content(&event) {
                        quiet_at = Some(after(self.options.debounce));
                    }
                }
                Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Never sooner than [`MIN_RETRY`]: no busy loop on a zero interval.
    fn after_poll_interval(&self) -> Instant {
        after(self.options.poll_interval.max(MIN_RETRY))
    }

    fn check(&mut self, reason: &'static str) -> Checked {
        if self.triggers.is_closed() {
            return Checked::Closed;
        }
        let snapshot = hash::snapshot(&self.config_path, &self.options.plugin_base_dir);
        self.update_watches(&snapshot.plugin_files);
        let changed = snapshot.hash != self.reported;
        if !changed && reason != REASON_WATCH {
            return Checked::Done;
        }
        let trigger = Trigger {
            hash: snapshot.hash.clone(),
            reason,
            changed,
        };
        match self.triggers.try_send(trigger) {
            Ok(()) if !changed => Checked::Done,
            Ok(()) => {
                tracing::debug!(
                    "config reload: {} changed ({reason}), content {} -> {}",
                    self.config_path.display(),
                    self.reported.short(),
                    snapshot.hash.short()
                );
                self.reported = snapshot.hash;
                Checked::Done
            }
            Err(TrySendError::Full(_)) => Checked::Retry,
            Err(TrySendError::Closed(_)) => Checked::Closed,
        }
    }

    /// Watches the config's directory and those of the plugin files; drops
    /// the watches of directories no longer referenced.
    fn update_watches(&mut self, plugin_files: &[PathBuf]) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let mut wanted = BTreeSet::from([self.config_dir.clone()]);
        wanted.extend(plugin_files.iter().map(|file| directory_of(file)));
        for dir in self.watched.difference(&wanted) {
            // Fails only if the directory is gone, which ended the watch anyway.
            let _ = watcher.unwatch(dir);
        }
        self.watched.retain(|dir| wanted.contains(dir));
        self.failed.retain(|dir| wanted.contains(dir));
        for dir in wanted {
            if self.watched.contains(&dir) {
                continue;
            }
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.failed.remove(&dir);
                    self.watched.insert(dir);
                }
                Err(e) => {
                    if self.failed.insert(dir.clone()) {
                        tracing::warn!(
                            "config reload: cannot watch {} ({e}); its changes are found by the poll every {:?}",
                            dir.display(),
                            self.options.poll_interval
                        );
                    }
                }
            }
        }
    }
}

/// `delay` from now; a delay too large for `Instant` means a year, not a panic.
fn after(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// Everything but a read: hashing opens the files, and those events must not
/// start another round.
fn changes_content(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Ok(event) => !matches!(
            event.kind,
            EventKind::Access(AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(AccessMode::Read))
        ),
        // An error (e.g. the event queue overflowed) may hide a change.
        Err(_) => true,
    }
}

/// The directory holding `file`, absolute and without `.` components, so the
/// same directory is not watched twice under two spellings.
fn directory_of(file: &Path) -> PathBuf {
    let parent = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let absolute = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
    absolute.components().collect()
}
