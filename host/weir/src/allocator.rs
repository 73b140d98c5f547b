//! mimalloc settings for a long-running sidecar: memory freed is given back to
//! the OS at once, in 4 KiB pages, instead of being kept for reuse.
//!
//! Measured (docs/benchmarks.md §8): with mimalloc's defaults weir with four
//! Wasm plugins sits at ~140 MB resident when idle, mostly what compiling the
//! plugins freed on the compiler's threads — which then never allocate again, so
//! their pages are never purged — held in 2 MiB transparent huge pages, which
//! one live object keeps resident. Both settings together: ~55 MB.
//! `MIMALLOC_PURGE_DELAY` / `MIMALLOC_ALLOW_THP` in the environment still win.

use std::ffi::c_long;

use libmimalloc_sys::{mi_option_set, mi_option_t};

// Positions in mimalloc v3's `mi_option_e` (include/mimalloc.h), which the
// Rust bindings do not name.
const PURGE_DELAY: mi_option_t = 15;

pub fn tune() {
    set_unless_in_env(PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 0);
    // mimalloc reads its huge-page option when it starts, before `main`; the
    // kernel's per-process switch has the same effect from here on.
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none()
        && let Err(e) = rustix::thread::disable_transparent_huge_pages(true)
    {
        tracing::debug!(error = %e, "cannot turn transparent huge pages off");
    }
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
