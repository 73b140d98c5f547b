//! A circuit breaker per export stage: after `failure_threshold` consecutive
//! failed attempts weir stops sending to the destination for `cool_down`, then
//! lets exactly one probe through; its success closes the circuit, its failure
//! opens it again. A destination that is down gets one request per cool-down
//! instead of every sender retrying into it, and the state is on /metrics
//! (`weir_exporter_circuit_state`: 0 closed, 1 open, 2 half-open) for alerts.

use std::sync::{Mutex, PoisonError};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

use crate::config::CircuitBreakerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

impl State {
    fn gauge_value(self) -> i64 {
        match self {
            State::Closed { .. } => 0,
            State::Open { .. } => 1,
            State::HalfOpen { .. } => 2,
        }
    }
}

pub struct Circuit {
    config: CircuitBreakerConfig,
    name: String,
    state: Mutex<State>,
    changed: Notify,
    gauge: Gauge,
}

impl Circuit {
    pub fn new(config: CircuitBreakerConfig, name: String, gauge: Gauge) -> Circuit {
        gauge.set(0);
        Circuit {
            config,
            name,
            state: Mutex::new(State::Closed { failures: 0 }),
            changed: Notify::new(),
            gauge,
        }
    }

    /// Waits until an attempt may be made: at once while closed; while open,
    /// until the cool-down is over and this caller is the one probe.
    pub async fn admit(&self) {
        if !self.config.enabled {
            return;
        }
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let open_until = {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                match *state {
                    State::Closed { .. } => return,
                    State::HalfOpen { probing: false } => {
                        *state = State::HalfOpen { probing: true };
                        return;
                    }
                    State::Open { until } if Instant::now() >= until => {
                        self.set(&mut state, State::HalfOpen { probing: true });
                        tracing::info!(exporter = %self.name, "circuit half-open: sending one probe");
                        return;
                    }
                    State::Open { until } => Some(until),
                    State::HalfOpen { probing: true } => None,
                }
            };
            match open_until {
                Some(until) => {
                    tokio::select! {
                        _ = sleep_until(until) => {}
                        _ = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// The destination answered (even with a permanent error: it is up).
    pub fn succeeded(&self) {
        if !self.config.enabled {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !matches!(*state, State::Closed { .. }) {
            tracing::info!(exporter = %self.name, "circuit closed: the destination answers again");
        }
        self.set(&mut state, State::Closed { failures: 0 });
        self.changed.notify_waiters();
    }

    /// An attempt failed in a way that says the destination is unavailable.
    pub fn failed(&self) {
        if !self.config.enabled {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let open = State::Open {
            until: Instant::now() + self.config.cool_down.0,
        };
        match *state {
            State::Closed { failures } if failures + 1 >= self.config.failure_threshold => {
                tracing::warn!(
                    exporter = %self.name,
                    failures = failures + 1,
                    cool_down = ?self.config.cool_down.0,
                    "circuit open: the destination keeps failing; pausing sends"
                );
                self.set(&mut state, open);
            }
            State::Closed { failures } => {
                *state = State::Closed {
                    failures: failures + 1,
                }
            }
            State::HalfOpen { .. } => {
                self.set(&mut state, open);
                self.changed.notify_waiters();
            }
            State::Open { .. } => {}
        }
    }

    fn set(&self, state: &mut State, new: State) {
        *state = new;
        self.gauge.set(new.gauge_value());
    }

    #[cfg(test)]
    fn gauge(&self) -> i64 {
        self.gauge.get()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::HumanDuration;

    fn circuit(threshold: u32, cool_ms: u64) -> Arc<Circuit> {
        Arc::new(Circuit::new(
            CircuitBreakerConfig {
                enabled: true,
                failure_threshold: threshold,
                cool_down: HumanDuration::from_millis(cool_ms),
            },
            "test".into(),
            Gauge::default(),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_probes_once_and_closes_on_success() {
        let c = circuit(3, 1000);
        for _ in 0..2 {
            c.admit().await;
            c.failed();
        }
        assert_eq!(c.gauge(), 0);
        c.admit().await;
        c.failed();
        assert_eq!(c.gauge(), 1, "open after 3 failures");

        let started = Instant::now();
        c.admit().await; // the probe, after the cool-down
        assert!(started.elapsed() >= Duration::from_millis(1000));
        assert_eq!(c.gauge(), 2);
        // A second sender waits while the probe is out.
        let other = tokio::spawn({
            let c = c.clone();
            async move { c.admit().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!other.is_finished(), "only one probe at a time");
        c.succeeded();
        other.await.expect("admitted after the probe succeeded");
        assert_eq!(c.gauge(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_again() {
        let c = circuit(1, 500);
        c.admit().await;
        c.failed();
        c.admit().await;
        assert_eq!(c.gauge(), 2);
        c.failed();
        assert_eq!(c.gauge(), 1);
        let started = Instant::now();
        c.admit().await;
        assert!(started.elapsed() >= Duration::from_millis(500));
    }
}
