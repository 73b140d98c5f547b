//! Applying reloads: one task takes every request (file watcher, SIGHUP,
//! `POST /reload`), runs one reload at a time, and coalesces the requests
//! that arrive while one is being built into the next one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use weir_pipeline::Metrics;
use weir_pipeline::admin::{Control, ControlAnswer};
use weir_pipeline::config::{self, ConfigError};

use super::metrics::ReloadMetrics;
use super::status::{LastReload, Outcome, Status};
use super::watch::{ContentHash, content_hash_from};
use crate::topology::Topology;

/// The running topology; `None` once shutdown has taken it.
pub type Shared = Arc<tokio::sync::Mutex<Option<Topology>>>;

struct Request {
    trigger: &'static str,
    reply: Option<oneshot::Sender<LastReload>>,
}

/// Asks for reloads; cheap to clone.
#[derive(Clone)]
pub struct Reloads {
    requests: mpsc::UnboundedSender<Request>,
    status: Arc<Mutex<Status>>,
}

impl Reloads {
    /// Asks for a reload without waiting for it.
    pub fn request(&self, trigger: &'static str) {
        // The controller is gone only at shutdown; then there is nothing to reload.
        let _ = self.requests.send(Request { trigger, reply: None });
    }

    /// Asks for a reload and waits until one that started after this call is over.
    pub async fn reload(&self, trigger: &'static str) -> Option<LastReload> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request {
                trigger,
                reply: Some(reply),
            })
            .ok()?;
        answer.await.ok()
    }
}

impl Control for Reloads {
    fn status(&self) -> String {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .to_json()
    }

    fn reload(&self) -> BoxFuture<'static, ControlAnswer> {
        let me = self.clone();
        async move {
            match me.reload("http").await {
                Some(r) => ControlAnswer {
                    ok: r.outcome != Outcome::Failure,
                    json: r.to_json().to_string(),
                },
                None => ControlAnswer {
                    ok: false,
                    json: serde_json::json!({"result": "failure", "error": {"key": "", "message": "weir is shutting down"}})
                        .to_string(),
                },
            }
        }
        .boxed()
    }
}

/// The reload task's state.
pub struct Controller {
    topology: Shared,
    path: Option<PathBuf>,
    running: Option<ContentHash>,
    status: Arc<Mutex<Status>>,
    metrics: ReloadMetrics,
}

impl Controller {
    /// Starts the reload task for the topology loaded from `path` (whose
    /// content hash was `hash`); `None` for the embedded config.
    pub async fn start(
        topology: Shared,
        path: Option<PathBuf>,
        hash: Option<ContentHash>,
        metrics: &Arc<Metrics>,
    ) -> Reloads {
        let status = {
            let guard = topology.lock().await;
            let mut s = Status::new(path.clone(), hash.clone());
            if let Some(t) = guard.as_ref() {
                s.refresh(t);
            }
            Arc::new(Mutex::new(s))
        };
        let metrics = ReloadMetrics::register(metrics);
        metrics.loaded(hash.as_ref().map_or("embedded", |h| h.as_str()), None);
        let (requests, rx) = mpsc::unbounded_channel();
        let controller = Controller {
            topology,
            path,
            running: hash,
            status: status.clone(),
            metrics,
        };
        tokio::spawn(controller.run(rx));
        Reloads { requests, status }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        while let Some(first) = rx.recv().await {
            let mut waiting = vec![first];
            while let Ok(more) = rx.try_recv() {
                waiting.push(more);
            }
            let trigger = waiting[0].trigger;
            let Some(result) = self.reload_once(trigger).await else {
                // Shut down: drop the replies; their callers see "shutting down".
                return;
            };
            for w in waiting {
                if let Some(reply) = w.reply {
                    let _ = reply.send(result.clone());
                }
            }
        }
    }

    /// One reload; `None` once shutdown has begun.
    async fn reload_once(&mut self, trigger: &'static str) -> Option<LastReload> {
        let started = std::time::Instant::now();
        let mut result = LastReload::new(trigger);
        let before = self.running.clone();
        let outcome = self.attempt(&mut result).await?;
        result.outcome = outcome;
        result.duration = started.elapsed();
        self.metrics.counted(outcome);
        match outcome {
            Outcome::Success => {
                let hash = result.hash.clone().unwrap_or_default();
                self.metrics.loaded(&hash, before.as_ref().map(|h| h.as_str()));
                tracing::info!(
                    trigger,
                    config_hash = %&hash[..hash.len().min(12)],
                    took_ms = result.duration.as_millis() as u64,
                    "config reloaded: {}",
                    result.report
                );
                if !result.report.restart_required.is_empty() {
                    tracing::warn!(
                        "config reload: these settings changed but apply only after a restart: {}",
                        result.report.restart_required.join(" ")
                    );
                }
            }
            Outcome::Unchanged => tracing::debug!(trigger, "config reload: content unchanged"),
            Outcome::Failure => {
                let first = result
                    .errors
                    .first()
                    .cloned()
                    .unwrap_or_else(|| ConfigError::new("", ""));
                tracing::error!(
                    trigger,
                    key = %first.key,
                    errors = result.errors.len(),
                    "config reload failed; the running config stays: {}: {}",
                    first.key,
                    first.message
                );
            }
        }
        let topology = self.topology.lock().await;
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if outcome == Outcome::Success
            && let Some(t) = topology.as_ref()
        {
            status.hash = self.running.clone();
            status.loaded_at = SystemTime::now();
            status.refresh(t);
        }
        status.record(&result);
        Some(result)
    }

    async fn attempt(&mut self, result: &mut LastReload) -> Option<Outcome> {
        let Some(path) = self.path.clone() else {
            result.errors.push(ConfigError::new(
                "config",
                "weir runs the embedded quickstart config; there is no file to reload (start it with --config)",
            ));
            return Some(Outcome::Failure);
        };
        let mut topology = self.topology.lock().await;
        let t = topology.as_mut()?;
        // Hash first, then read: a change racing the read is seen by the next trigger.
        let hash = content_hash_from(&path, t.plugin_base());
        result.hash = Some(hash.as_str().to_string());
        if self.running.as_ref() == Some(&hash) {
            return Some(Outcome::Unchanged);
        }
        let new = match config::load_file(&path) {
            Ok(c) => c,
            Err(errors) => {
                // A file-level error (unreadable, not TOML) has no key: it concerns the file.
                result.errors = errors
                    .errors
                    .into_iter()
                    .map(|mut e| {
                        if e.key.is_empty() {
                            e.key = path.display().to_string();
                        }
                        e
                    })
                    .collect();
                return Some(Outcome::Failure);
            }
        };
        crate::allocator::compiling();
        let applied = t.apply(new).await;
        crate::allocator::steady();
        match applied {
            Ok(report) => {
                result.report = report;
                self.running = Some(hash);
                Some(Outcome::Success)
            }
            Err(errors) => {
                result.errors = errors;
                Some(Outcome::Failure)
            }
        }
    }
}
