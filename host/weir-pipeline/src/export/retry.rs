//! Exponential backoff with jitter, as the OTLP exporter spec recommends.

use std::time::Duration;

use rand::Rng;

use crate::config::RetryConfig;

pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(config: &RetryConfig) -> Self {
        Backoff {
            next: config.initial_interval.0,
            max: config.max_interval.0,
        }
    }

    /// The next wait: the current interval randomised by ±50% (so that many
    /// clients recovering together do not retry in lockstep), then doubled.
    pub fn next_wait(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let factor = rand::rng().random_range(0.5..1.5);
        base.mul_f64(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    #[test]
    fn grows_and_caps_with_jitter() {
        let cfg = RetryConfig {
            enabled: true,
            initial_interval: HumanDuration::from_millis(100),
            max_interval: HumanDuration::from_millis(400),
            max_elapsed: HumanDuration::from_secs(10),
        };
        let mut b = Backoff::new(&cfg);
        let waits: Vec<_> = (0..6).map(|_| b.next_wait()).collect();
        assert!(waits[0] >= Duration::from_millis(50) && waits[0] <= Duration::from_millis(150));
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(400)));
        assert!(waits[5] >= Duration::from_millis(200), "{waits:?}");
    }
}
