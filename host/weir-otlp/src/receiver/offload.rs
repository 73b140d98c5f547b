//! CPU-heavy request decoding (decompression, JSON transcoding, counting large
//! protobuf requests) off the async workers, on a bounded share of tokio's
//! blocking pool: a flood of large requests waits for a permit instead of
//! stalling every connection or spawning a thread per request.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Below this many bytes of body, decoding on the worker is cheaper than a
/// hand-off: validating 256 KiB of protobuf takes ~0.1 ms, about what two
/// thread wake-ups cost, and SDKs' default requests (512 spans) fit.
pub(crate) const INLINE_MAX: usize = 256 * 1024;
/// Compressed bodies above this go to the pool: deflate expands up to ~1000x.
pub(crate) const INLINE_MAX_COMPRESSED: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[error("decoding the request failed unexpectedly ({0}); this is a bug in weir, please report it")]
pub struct OffloadError(String);

/// Cloneable handle; all clones share the permits.
#[derive(Clone, Debug)]
pub struct DecodePool {
    permits: Arc<Semaphore>,
}

impl Default for DecodePool {
    /// One permit per CPU.
    fn default() -> Self {
        DecodePool::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

impl DecodePool {
    pub fn new(threads: usize) -> Self {
        DecodePool {
            permits: Arc::new(Semaphore::new(threads.max(1))),
        }
    }

    /// Runs `f` on a blocking thread once a permit is free. The permit is held
    /// by `f` itself, so a request whose client went away still counts until
    /// its decoding ends.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, OffloadError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| OffloadError(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let out = f();
            drop(permit);
            out
        })
        .await
        .map_err(|e| OffloadError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_more_than_the_permits_at_once() {
        let pool = DecodePool::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    pool.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("join").expect("ran");
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }
}
