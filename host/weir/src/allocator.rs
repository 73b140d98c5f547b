//! mimalloc settings for a long-running sidecar.
//!
//! Measured (docs/benchmarks.md §8): with mimalloc's defaults, weir with four
//! Wasm plugins sits at 90–140 MB resident when idle, mostly what compiling the
//! plugins freed on the compiler's threads (which then never allocate again,
//! so mimalloc's delayed purge never runs for them), held in 2 MiB transparent
//! huge pages that one live object keeps resident. So: huge pages are off, and
//! while plugins compile (start-up, reloads) freed memory goes back to the OS
//! at once; ~57 MB. Purging at once all the time would cost: pass-through CPU
//! per span at full load 2.5× (madvise on every freed page), so in steady state
//! mimalloc's default delay applies.
//! `MIMALLOC_PURGE_DELAY` / `MIMALLOC_ALLOW_THP` in the environment still win.

use std::ffi::c_long;

use libmimalloc_sys::{mi_option_set, mi_option_t};

// Positions in mimalloc v3's `mi_option_e` (include/mimalloc.h), which the
// Rust bindings do not name.
const PURGE_DELAY: mi_option_t = 15;
/// mimalloc's default purge delay (ms).
const DEFAULT_PURGE_DELAY: c_long = 10;

/// From process start: plugins compile first.
pub fn tune() {
    compiling();
    // mimalloc reads its huge-page option when it starts, before `main`; the
    // kernel's per-process switch has the same effect from here on.
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none()
        && let Err(e) = rustix::thread::disable_transparent_huge_pages(true)
    {
        tracing::debug!(error = %e, "cannot turn transparent huge pages off");
    }
}

/// Plugins are about to compile (start-up, a reload): purge at once.
pub fn compiling() {
    set_unless_in_env(PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 0);
}

/// Compiling is over: mimalloc's default delay, which is cheaper under load.
pub fn steady() {
    set_unless_in_env(PURGE_DELAY, "MIMALLOC_PURGE_DELAY", DEFAULT_PURGE_DELAY);
}

fn set_unless_in_env(option: mi_option_t, env: &str, value: c_long) {
    if std::env::var_os(env).is_none() {
        // SAFETY: mi_option_set only stores an integer in mimalloc's option
        // table; any option index and value is accepted.
        #[allow(unsafe_code)]
        unsafe {
            mi_option_set(option, value)
        };
    }
}
