//! Config loading as `weir validate` and `weir run` do it
//! (`weir_pipeline::config::parse_str`, which `load_file` calls with the file's
//! text): `${env:...}` expansion, TOML parsing, typed sections and
//! cross-references. Input: the config text.
//!
//! A few variables are set for `${env:...}` references to hit, one of them a
//! hostile secret (quotes, a newline, a table header, a nested reference).
//! Besides not panicking, no error message may show any of that secret
//! (issue 12: values from the environment or files never appear in output).
//! `WEIR_FUZZ_NO_SECRET_CHECK=1` turns that check off.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;

/// Distinctive enough that a config cannot contain it by chance.
const SECRET_MARK: &str = "Zq9sekrit";
const SECRET: &str =
    "Zq9sekrit\", \"x-injected\" = \"yes\"\n[receivers.evil]\ntype = \"${env:WEIR_FUZZ_PLAIN}";

static ENV: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    ENV.call_once(|| {
        // SAFETY: runs once, before the fuzzer calls the target from any other thread.
        unsafe {
            std::env::set_var("WEIR_FUZZ_PLAIN", "otlp");
            std::env::set_var("WEIR_FUZZ_PORT", "4317");
            std::env::set_var("WEIR_FUZZ_ADDR", "127.0.0.1:4318");
            std::env::set_var("WEIR_FUZZ_SECRET", SECRET);
        }
    });
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = weir_pipeline::config::parse_str("fuzz.toml", text) {
        let shown = errors.to_string();
        if std::env::var_os("WEIR_FUZZ_NO_SECRET_CHECK").is_none() && !text.contains(SECRET_MARK) {
            assert!(
                !shown.contains(SECRET_MARK),
                "an error shows the secret:\n{shown}"
            );
        }
    }
});
