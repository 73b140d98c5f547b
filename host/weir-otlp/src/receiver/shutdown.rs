//! One shutdown signal carrying one deadline, shared by every listener (and by
//! whoever drains after them), so a shutdown takes one grace period, not one per stage.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

/// Cloneable; [`Shutdown::begin`] on any clone is seen by all. Works across runtimes
/// (the admin server runs on its own).
#[derive(Clone)]
pub struct Shutdown {
    deadline: Arc<watch::Sender<Option<Instant>>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            deadline: Arc::new(watch::Sender::new(None)),
        }
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops accepting: idle connections close now, in-flight requests may finish
    /// until `deadline`, then connections are dropped. Only the first call counts.
    pub fn begin(&self, deadline: Instant) {
        self.deadline.send_if_modified(|d| {
            if d.is_none() {
                *d = Some(deadline);
                true
            } else {
                false
            }
        });
    }

    /// The deadline, once shutdown has begun.
    pub fn deadline(&self) -> Option<Instant> {
        *self.deadline.borrow()
    }

    /// Resolves when shutdown begins, with its deadline.
    pub async fn begun(&self) -> Instant {
        let mut rx = self.deadline.subscribe();
        loop {
            if let Some(d) = *rx.borrow_and_update() {
                return d;
            }
            // The sender lives in `self`, so `changed` cannot fail while we wait.
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn first_deadline_wins_and_is_seen_by_clones() {
        let s = Shutdown::new();
        let c = s.clone();
        let waiter = tokio::spawn(async move { c.begun().await });
        let d = Instant::now() + Duration::from_secs(5);
        s.begin(d);
        s.begin(d + Duration::from_secs(60));
        assert_eq!(waiter.await.expect("join"), d);
        assert_eq!(s.deadline(), Some(d));
    }
}
