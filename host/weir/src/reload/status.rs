//! The `/status` document: the active config (hash, load time), its plugins
//! (sha256, live instance count) and listeners, and the last reload's result
//! with the key its error concerns.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use weir_pipeline::config::ConfigError;

use super::watch::ContentHash;
use crate::topology::{PluginStatus, Report, Topology};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Unchanged,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// One reload's result.
#[derive(Clone)]
pub struct LastReload {
    pub trigger: &'static str,
    pub outcome: Outcome,
    pub at: SystemTime,
    pub duration: Duration,
    /// The content hash the reload saw.
    pub hash: Option<String>,
    pub report: Report,
    pub errors: Vec<ConfigError>,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl LastReload {
    pub fn new(trigger: &'static str) -> Self {
        LastReload {
            trigger,
            outcome: Outcome::Failure,
            at: SystemTime::now(),
            duration: Duration::ZERO,
            hash: None,
            report: Report::default(),
            errors: Vec::new(),
        }
    }

    pub fn to_json(&self) -> Value {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| json!({"key": e.key, "message": e.message}))
            .collect();
        json!({
            "result": self.outcome.as_str(),
            "trigger": self.trigger,
            "at": rfc3339(self.at),
            "duration_ms": self.duration.as_secs_f64() * 1e3,
            "config_hash": self.hash,
            "added": self.report.added,
            "removed": self.report.removed,
            "changed": self.report.changed,
            "restart_required": self.report.restart_required,
            "error": errors.first().cloned(),
            "errors": errors,
        })
    }
}

pub struct Status {
    path: Option<PathBuf>,
    pub hash: Option<ContentHash>,
    pub loaded_at: SystemTime,
    plugins: Vec<PluginStatus>,
    listeners: Vec<(String, &'static str, std::net::SocketAddr)>,
    restart_required: Vec<String>,
    last: Option<LastReload>,
    /// The last reload that failed, kept when later ones are "unchanged".
    last_failure: Option<LastReload>,
    counts: [u64; 3],
}

impl Status {
    pub fn new(path: Option<PathBuf>, hash: Option<ContentHash>) -> Self {
        Status {
            path,
            hash,
            loaded_at: SystemTime::now(),
            plugins: Vec::new(),
            listeners: Vec::new(),
            restart_required: Vec::new(),
            last: None,
            last_failure: None,
            counts: [0; 3],
        }
    }

    /// Takes the plugin and listener lists of the running topology.
    pub fn refresh(&mut self, t: &Topology) {
        self.plugins = t.plugin_status();
        self.listeners = t.listener_addrs();
    }

    pub fn record(&mut self, r: &LastReload) {
        self.counts[r.outcome as usize] += 1;
        match r.outcome {
            Outcome::Failure => self.last_failure = Some(r.clone()),
            Outcome::Success => {
                self.last_failure = None;
                self.restart_required
                    .extend(r.report.restart_required.iter().cloned());
                self.restart_required.sort();
                self.restart_required.dedup();
            }
            Outcome::Unchanged => {}
        }
        self.last = Some(r.clone());
    }

    pub fn to_json(&self) -> String {
        let plugins: Vec<Value> = self
            .plugins
            .iter()
            .map(|p| json!({"name": p.name, "sha256": p.sha256, "instances": p.runner.instances()}))
            .collect();
        let listeners: Vec<Value> = self
            .listeners
            .iter()
            .map(|(r, t, a)| json!({"receiver": r, "transport": t, "address": a.to_string()}))
            .collect();
        let loaded_unix = self
            .loaded_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        json!({
            "config": {
                "path": self.path.as_ref().map(|p| p.display().to_string()),
                "hash": self.hash.as_ref().map(|h| h.as_str()),
                "loaded_at": rfc3339(self.loaded_at),
                "loaded_at_unix": loaded_unix,
            },
            "restart_required": self.restart_required,
            "plugins": plugins,
            "listeners": listeners,
            "reloads": {
                "success": self.counts[Outcome::Success as usize],
                "failure": self.counts[Outcome::Failure as usize],
                "unchanged": self.counts[Outcome::Unchanged as usize],
            },
            "last_reload": self.last.as_ref().map(LastReload::to_json),
            "last_reload_error": self.last_failure.as_ref().map(LastReload::to_json),
        })
        .to_string()
    }
}
