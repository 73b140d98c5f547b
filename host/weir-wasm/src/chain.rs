//! A pipeline's ordered plugins, run over each batch with each plugin's failure
//! policy applied.

use std::sync::Arc;
use std::time::Instant;

use weir_batch::HostBatch as Tree;
use weir_pipeline::config::FailurePolicy;
use weir_pipeline::{Batch, BatchProcessor, ProcessFuture, Processed, Rejection};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use crate::metrics::{OutcomeLabels, PluginLabels, PluginMetrics};
use crate::{Failure, Runner};

pub struct ChainLink {
    pub name: String,
    pub policy: FailurePolicy,
    pub runner: Arc<dyn Runner>,
}

/// A link's hot-path metrics, looked up once: a family lookup per call clones
/// and hashes the label strings.
struct LinkMetrics {
    duration: Histogram,
    items_in: Counter,
    items_out: Counter,
    items_dropped: Counter,
    calls_ok: Counter,
}

pub struct PluginChain {
    pipeline: String,
    links: Vec<ChainLink>,
    link_metrics: Vec<LinkMetrics>,
    metrics: PluginMetrics,
    /// Rejections carry the whole failure (a trap's guest backtrace too).
    full_failures: bool,
}

impl PluginChain {
    pub fn new(pipeline: impl Into<String>, links: Vec<ChainLink>, metrics: PluginMetrics) -> Self {
        let pipeline = pipeline.into();
        let link_metrics = links
            .iter()
            .map(|link| {
                let labels = PluginLabels {
                    pipeline: pipeline.clone(),
                    plugin: link.name.clone(),
                };
                LinkMetrics {
                    duration: metrics.duration.get_or_create(&labels).clone(),
                    items_in: metrics.items_in.get_or_create(&labels).clone(),
                    items_out: metrics.items_out.get_or_create(&labels).clone(),
                    items_dropped: metrics.items_dropped.get_or_create(&labels).clone(),
                    calls_ok: metrics
                        .calls
                        .get_or_create(&OutcomeLabels {
                            pipeline: pipeline.clone(),
                            plugin: link.name.clone(),
                            outcome: "ok".into(),
                        })
                        .clone(),
                }
            })
            .collect();
        PluginChain {
            pipeline,
            links,
            link_metrics,
            metrics,
            full_failures: false,
        }
    }

    /// Rejections carry everything known about a failure (for `weir plugin test`).
    pub fn with_full_failures(mut self) -> Self {
        self.full_failures = true;
        self
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// [`BatchProcessor::process`] for commands and benchmarks without a runtime.
    pub fn process_blocking(&self, batch: Batch) -> Result<Processed, Rejection> {
        crate::block_on(self.run(batch))
    }

    async fn run(&self, batch: Batch) -> Result<Processed, Rejection> {
        let mut tree = Tree::decode(&batch).map_err(|e| Rejection::Invalid(e.to_string()))?;
        let mut dropped = Vec::new();
        for (link, lm) in self.links.iter().zip(&self.link_metrics) {
            let labels = || PluginLabels {
                pipeline: self.pipeline.clone(),
                plugin: link.name.clone(),
            };
            let outcome_labels = |outcome: &str| OutcomeLabels {
                pipeline: self.pipeline.clone(),
                plugin: link.name.clone(),
                outcome: outcome.into(),
            };
            let items_in = tree.items();
            let started = Instant::now();
            let (back, result) = link.runner.run(tree).await;
            lm.duration.observe(started.elapsed().as_secs_f64());
            let Some(back) = back else {
                return Err(Rejection::Plugin {
                    plugin: link.name.clone(),
                    message: "the batch was lost in the plugin runtime".into(),
                });
            };
            tree = back;
            let result =
                result.and_then(|changes| tree.apply(changes).map_err(|e| Failure::Invalid(e.to_string())));
            lm.items_in.inc_by(items_in as u64);
            match result {
                Ok(applied) => {
                    lm.calls_ok.inc();
                    lm.items_out.inc_by(tree.items() as u64);
                    if applied.dropped > 0 {
                        lm.items_dropped.inc_by(applied.dropped as u64);
                        dropped.push((format!("plugin:{}", link.name), applied.dropped));
                    }
                }
                Err(failure) => {
                    self.metrics
                        .calls
                        .get_or_create(&outcome_labels(failure.kind()))
                        .inc();
                    match failure {
                        Failure::Trap { .. } | Failure::MemoryLimit => {
                            self.metrics.traps.get_or_create(&labels()).inc();
                        }
                        Failure::Timeout => {
                            self.metrics.timeouts.get_or_create(&labels()).inc();
                        }
                        _ => {}
                    }
                    let policy = match link.policy {
                        FailurePolicy::Pass => "pass",
                        FailurePolicy::Drop => "drop",
                        FailurePolicy::Reject => "reject",
                    };
                    self.metrics
                        .policy_applied
                        .get_or_create(&outcome_labels(policy))
                        .inc();
                    tracing::warn!(
                        pipeline = %self.pipeline, plugin = %link.name, policy, items = items_in,
                        "plugin failed: {failure}"
                    );
                    match link.policy {
                        FailurePolicy::Pass => {
                            lm.items_out.inc_by(items_in as u64);
                        }
                        FailurePolicy::Drop => {
                            dropped.push((format!("failed:{}", link.name), items_in));
                            return Ok(Processed {
                                outputs: Vec::new(),
                                dropped,
                            });
                        }
                        FailurePolicy::Reject => {
                            let message = if self.full_failures {
                                failure.detailed()
                            } else {
                                failure.to_string()
                            };
                            return Err(Rejection::Plugin {
                                plugin: link.name.clone(),
                                message,
                            });
                        }
                    }
                }
            }
            if tree.items() == 0 {
                break;
            }
        }
        Ok(Processed {
            outputs: tree.finish(),
            dropped,
        })
    }
}

impl BatchProcessor for PluginChain {
    fn process(&self, batch: Batch) -> ProcessFuture<'_> {
        Box::pin(self.run(batch))
    }
}
