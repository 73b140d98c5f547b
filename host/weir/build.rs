//! Builds the four reference plugins (plugins/redact, sample, enrich, route)
//! as wasm32-wasip2 components and embeds them in the binary, so that
//! `path = "builtin:redact"` works without any file and `weir run --demo`
//! shows them at work. They run sandboxed like any other plugin.
//!
//! The plugins are built by a nested `cargo build` into `<target>/embedded-plugins`
//! (its own target directory, so it never waits on the outer build's lock).
//! Without the `wasm32-wasip2` target installed, or with `WEIR_EMBED_PLUGINS=0`,
//! nothing is embedded: a warning says so, and `builtin:` plugins then fail
//! to load with a message that names the fix.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGINS: [&str; 4] = ["redact", "sample", "enrich", "route"];
const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-env-changed=WEIR_EMBED_PLUGINS");
    for dir in ["plugins/sdk", "plugins/contract", "wit"]
        .into_iter()
        .map(String::from)
        .chain(PLUGINS.iter().map(|p| format!("plugins/{p}")))
    {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    let embedded = if env::var("WEIR_EMBED_PLUGINS").as_deref() == Ok("0") {
        println!("cargo:warning=WEIR_EMBED_PLUGINS=0: the reference plugins are not embedded");
        Vec::new()
    } else if !target_installed() {
        println!(
            "cargo:warning=the {TARGET} target is not installed, so the reference plugins are not embedded \
             (builtin: plugins and the --demo chain are unavailable); run `rustup target add {TARGET}` and build again"
        );
        Vec::new()
    } else {
        build_plugins(&root, &out)
    };

    let mut code =
        String::from("/// The reference plugins built into this binary: (name, wasm component).\n");
    code.push_str("pub const EMBEDDED: &[(&str, &[u8])] = &[\n");
    for (name, path) in &embedded {
        let _ = writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    std::fs::write(out.join("embedded_plugins.rs"), code).expect("writing embedded_plugins.rs");
}

fn target_installed() -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(output) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Path::new(&sysroot).join("lib/rustlib").join(TARGET).exists()
}

/// The outer build's target directory: `CARGO_TARGET_DIR`, or the ancestor of
/// OUT_DIR (`<target>/<profile>/build/<pkg>/out`).
fn target_dir(out: &Path) -> PathBuf {
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    out.ancestors()
        .nth(4)
        .map_or_else(|| out.to_path_buf(), Path::to_path_buf)
}

fn build_plugins(root: &Path, out: &Path) -> Vec<(String, PathBuf)> {
    let dir = target_dir(out).join("embedded-plugins");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--quiet", "--target", TARGET])
        .env("CARGO_TARGET_DIR", &dir)
        // The outer build's flags are for the host target, not for wasm.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS");
    for p in PLUGINS {
        cmd.args(["-p", &format!("weir-plugin-{p}")]);
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("building the reference plugins for {TARGET} failed ({s}); see the output above"),
        Err(e) => panic!("cannot run cargo to build the reference plugins: {e}"),
    }
    PLUGINS
        .iter()
        .map(|p| {
            let wasm = dir
                .join(TARGET)
                .join("release")
                .join(format!("weir_plugin_{p}.wasm"));
            assert!(wasm.exists(), "{} was not built", wasm.display());
            (p.to_string(), wasm)
        })
        .collect()
}
