//! The reference plugins' Wasm components that the weir binary carries
//! (`path = "builtin:NAME"`). The binary registers them once at start-up;
//! they then load, and run sandboxed, like any component file.

use std::sync::OnceLock;

use crate::RuntimeError;

type Components = &'static [(&'static str, &'static [u8])];

static EMBEDDED: OnceLock<Components> = OnceLock::new();

/// Makes `components` available as `builtin:NAME`; only the first call counts.
pub fn register(components: Components) {
    let _ = EMBEDDED.set(components);
}

/// The names available, in order.
pub fn names() -> Vec<&'static str> {
    EMBEDDED
        .get()
        .map_or_else(Vec::new, |c| c.iter().map(|(n, _)| *n).collect())
}

/// The component `builtin:name`, or why there is none.
pub fn get(name: &str) -> Result<&'static [u8], RuntimeError> {
    let components = EMBEDDED.get().copied().unwrap_or(&[]);
    if let Some((_, wasm)) = components.iter().find(|(n, _)| *n == name) {
        return Ok(wasm);
    }
    Err(RuntimeError::Builtin(if components.is_empty() {
        format!(
            "builtin:{name}: this weir binary carries no plugins (it was built without the wasm32-wasip2 \
             target); run `rustup target add wasm32-wasip2` and build weir again, or give the .wasm file's path"
        )
    } else {
        format!(
            "builtin:{name} is not a plugin this weir carries; it has {}",
            names()
                .iter()
                .map(|n| format!("builtin:{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }))
}
