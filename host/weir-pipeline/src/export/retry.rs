//! Exponential backoff with jitter, as the OTLP exporter spec recommends.

use std::time::Duration;

use rand::Rng;

use crate::config::RetryConfig;

pub struct Backoff {
    next: Duration,
    max: Duration,
}

/// How long to wait before the next attempt, or `None` when the retry budget
/// is spent. A destination's own delay (Retry-After, RetryInfo) is honoured
/// when it fits in what is left of the budget; otherwise the wait is capped at
/// the backoff maximum, so a long Retry-After never drops data after a single
/// attempt while budget remains.
pub fn next_wait(
    backoff: &mut Backoff,
    retry_after: Option<Duration>,
    elapsed: Duration,
    config: &RetryConfig,
) -> Option<Duration> {
    if !config.enabled {
        return None;
    }
    let remaining = config
        .max_elapsed
        .0
        .checked_sub(elapsed)
        .filter(|r| !r.is_zero())?;
    let wait = match retry_after {
        Some(d) if d <= remaining => d,
        Some(_) => config.max_interval.0,
        None => backoff.next_wait(),
    };
    Some(wait.min(remaining))
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

    fn config() -> RetryConfig {
        RetryConfig {
            enabled: true,
            initial_interval: HumanDuration::from_millis(100),
            max_interval: HumanDuration::from_secs(30),
            max_elapsed: HumanDuration::from_secs(300),
        }
    }

    #[test]
    fn retry_after_is_honoured_within_the_budget_and_capped_beyond_it() {
        let cfg = config();
        let mut b = Backoff::new(&cfg);
        let s = Duration::from_secs;
        assert_eq!(next_wait(&mut b, Some(s(2)), s(0), &cfg), Some(s(2)));
        // 600 s does not fit in 300 s of budget: wait the backoff maximum instead of dropping.
        assert_eq!(next_wait(&mut b, Some(s(600)), s(10), &cfg), Some(s(30)));
        // Never past the budget's end; nothing once it is spent.
        assert_eq!(next_wait(&mut b, Some(s(20)), s(290), &cfg), Some(s(10)));
        assert_eq!(next_wait(&mut b, None, s(300), &cfg), None);
        let off = RetryConfig {
            enabled: false,
            ..cfg
        };
        assert_eq!(next_wait(&mut b, None, s(0), &off), None);
    }

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
