//! The reference plugins compiled to Wasm by build.rs and carried in the
//! binary, for `path = "builtin:NAME"` and the `--demo` chain.

include!(concat!(env!("OUT_DIR"), "/embedded_plugins.rs"));
