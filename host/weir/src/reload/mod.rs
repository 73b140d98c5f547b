//! Hot reload of the config file (and the plugin files it references).
//!
//! [`watch`] is the trigger side: it notices that the content weir runs from
//! has changed on disk and says so on a channel, with the new content hash.
//! It is built for Kubernetes ConfigMap volumes, where kubelet never modifies
//! `weir.toml` in place but swaps a `..data` symlink to a fresh directory, so
//! it watches directories, debounces, and compares content hashes rather than
//! trusting any one event; a slow poll backs it up where inotify misses events.
//!
//! [`control`] applies: one task takes the watcher's triggers, SIGHUP and
//! `POST /reload`, runs one reload at a time (coalescing requests that arrive
//! meanwhile) through [`crate::topology::Topology::apply`], and keeps
//! [`status`] and [`metrics`] up to date.

pub mod control;
mod metrics;
pub mod status;
pub mod watch;
