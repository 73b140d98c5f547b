//! `weir plugin new --lang rust|python|js|go|c NAME`: writes a plugin project that
//! builds and passes its own test as it is. The templates live in
//! host/weir/templates/; the SDK (and for Rust the contract crate) and the WIT
//! are copied in from the sources this weir was built from, so the project
//! needs nothing but the language's toolchain.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
    Go,
    C,
}

const WIT: &str = include_str!("../../../wit/v0.2.0/plugin.wit");
const SAMPLE: &str = include_str!("../../../examples/plugin-test/spans.json");

const PYTHON: &[(&str, &str)] = &[
    ("app.py", include_str!("../templates/python/app.py")),
    ("README.md", include_str!("../templates/python/README.md")),
    (
        "tests/conftest.py",
        include_str!("../templates/python/tests/conftest.py"),
    ),
    (
        "tests/test_app.py",
        include_str!("../templates/python/tests/test_app.py"),
    ),
    (
        "weir_plugin/__init__.py",
        include_str!("../../../plugins/sdk-python/weir_plugin/__init__.py"),
    ),
    (
        "weir_plugin/_codec.py",
        include_str!("../../../plugins/sdk-python/weir_plugin/_codec.py"),
    ),
    (
        "weir_plugin/testing.py",
        include_str!("../../../plugins/sdk-python/weir_plugin/testing.py"),
    ),
    ("wit/plugin.wit", WIT),
];

const JS: &[(&str, &str)] = &[
    ("app.js", include_str!("../templates/js/app.js")),
    ("README.md", include_str!("../templates/js/README.md")),
    ("package.json", include_str!("../templates/js/package.json")),
    (
        "test/app.test.mjs",
        include_str!("../templates/js/test/app.test.mjs"),
    ),
    (
        "weir-plugin/weir-plugin.js",
        include_str!("../../../plugins/sdk-js/weir-plugin.js"),
    ),
    (
        "weir-plugin/weir-plugin.d.ts",
        include_str!("../../../plugins/sdk-js/weir-plugin.d.ts"),
    ),
    (
        "weir-plugin/testing.mjs",
        include_str!("../../../plugins/sdk-js/testing.mjs"),
    ),
    (
        "weir-plugin/build.mjs",
        include_str!("../../../plugins/sdk-js/build.mjs"),
    ),
    ("wit/plugin.wit", WIT),
];

const GO: &[(&str, &str)] = &[
    ("go.mod", include_str!("../templates/go/go.mod")),
    ("main.go", include_str!("../templates/go/main.go")),
    ("main_test.go", include_str!("../templates/go/main_test.go")),
    ("build.sh", include_str!("../templates/go/build.sh")),
    ("README.md", include_str!("../templates/go/README.md")),
    (
        "weir-plugin/go.mod",
        include_str!("../../../plugins/sdk-go/go.mod"),
    ),
    (
        "weir-plugin/batch.go",
        include_str!("../../../plugins/sdk-go/batch.go"),
    ),
    (
        "weir-plugin/config.go",
        include_str!("../../../plugins/sdk-go/config.go"),
    ),
    (
        "weir-plugin/contract.go",
        include_str!("../../../plugins/sdk-go/contract.go"),
    ),
    (
        "weir-plugin/export_wasip1.go",
        include_str!("../../../plugins/sdk-go/export_wasip1.go"),
    ),
    (
        "weir-plugin/matcher.go",
        include_str!("../../../plugins/sdk-go/matcher.go"),
    ),
    (
        "weir-plugin/run.go",
        include_str!("../../../plugins/sdk-go/run.go"),
    ),
    (
        "weir-plugin/value.go",
        include_str!("../../../plugins/sdk-go/value.go"),
    ),
    (
        "weir-plugin/build.sh",
        include_str!("../../../plugins/sdk-go/build.sh"),
    ),
    (
        "weir-plugin/plugintest/memory.go",
        include_str!("../../../plugins/sdk-go/plugintest/memory.go"),
    ),
    (
        "weir-plugin/internal/wit/exports/export_wit_world/hooks.go",
        include_str!("../../../plugins/sdk-go/internal/wit/exports/export_wit_world/hooks.go"),
    ),
    (
        "weir-plugin/internal/wit/exports/wit_exports/wit_exports.go",
        include_str!("../../../plugins/sdk-go/internal/wit/exports/wit_exports/wit_exports.go"),
    ),
    (
        "weir-plugin/internal/wit/imports/weir_plugin_types/wit_bindings.go",
        include_str!("../../../plugins/sdk-go/internal/wit/imports/weir_plugin_types/wit_bindings.go"),
    ),
    (
        "weir-plugin/internal/wit/imports/weir_plugin_types/empty.s",
        include_str!("../../../plugins/sdk-go/internal/wit/imports/weir_plugin_types/empty.s"),
    ),
    (
        "weir-plugin/internal/wit/imports/wit_world/wit_bindings.go",
        include_str!("../../../plugins/sdk-go/internal/wit/imports/wit_world/wit_bindings.go"),
    ),
    (
        "weir-plugin/internal/wit/imports/wit_world/empty.s",
        include_str!("../../../plugins/sdk-go/internal/wit/imports/wit_world/empty.s"),
    ),
    (
        "weir-plugin/third_party/go-pkg/go.mod",
        include_str!("../../../plugins/sdk-go/third_party/go-pkg/go.mod"),
    ),
    (
        "weir-plugin/third_party/go-pkg/LICENSE",
        include_str!("../../../plugins/sdk-go/third_party/go-pkg/LICENSE"),
    ),
    (
        "weir-plugin/third_party/go-pkg/VENDORED.md",
        include_str!("../../../plugins/sdk-go/third_party/go-pkg/VENDORED.md"),
    ),
    (
        "weir-plugin/third_party/go-pkg/wit/runtime/runtime.go",
        include_str!("../../../plugins/sdk-go/third_party/go-pkg/wit/runtime/runtime.go"),
    ),
    (
        "weir-plugin/third_party/go-pkg/wit/runtime/empty.s",
        include_str!("../../../plugins/sdk-go/third_party/go-pkg/wit/runtime/empty.s"),
    ),
    (
        "weir-plugin/third_party/go-pkg/wit/types/future.go",
        include_str!("../../../plugins/sdk-go/third_party/go-pkg/wit/types/future.go"),
    ),
    (
        "weir-plugin/third_party/go-pkg/wit/types/option.go",
        include_str!("../../../plugins/sdk-go/third_party/go-pkg/wit/types/option.go"),
    ),
    (
        "weir-plugin/third_party/go-pkg/wit/types/result.go",
        include_str!("../../../plugins/sdk-go/third_party/go-pkg/wit/types/result.go"),
    ),
    (
        "weir-plugin/third_party/go-pkg/wit/types/stream.go",
        include_str!("../../../plugins/sdk-go/third_party/go-pkg/wit/types/stream.go"),
    ),
    (
        "weir-plugin/third_party/go-pkg/wit/types/tuple.go",
        include_str!("../../../plugins/sdk-go/third_party/go-pkg/wit/types/tuple.go"),
    ),
    (
        "weir-plugin/third_party/go-pkg/wit/types/unit.go",
        include_str!("../../../plugins/sdk-go/third_party/go-pkg/wit/types/unit.go"),
    ),
    (
        "weir-plugin/third_party/go-pkg/wit/async/async.go",
        include_str!("../../../plugins/sdk-go/third_party/go-pkg/wit/async/async.go"),
    ),
    (
        "weir-plugin/third_party/go-pkg/wit/async/empty.s",
        include_str!("../../../plugins/sdk-go/third_party/go-pkg/wit/async/empty.s"),
    ),
    (
        "weir-plugin/adapter/README.md",
        include_str!("../../../plugins/sdk-go/adapter/README.md"),
    ),
    ("wit/plugin.wit", WIT),
];

const GO_BYTES: &[(&str, &[u8])] = &[(
    "weir-plugin/adapter/wasi_snapshot_preview1.reactor.wasm",
    include_bytes!("../../../plugins/sdk-go/adapter/wasi_snapshot_preview1.reactor.wasm"),
)];

const C: &[(&str, &str)] = &[
    ("Makefile", include_str!("../templates/c/Makefile")),
    ("README.md", include_str!("../templates/c/README.md")),
    ("plugin.c", include_str!("../templates/c/plugin.c")),
    ("test_plugin.c", include_str!("../templates/c/test_plugin.c")),
    ("weir-c/Makefile", include_str!("../../../plugins/sdk-c/Makefile")),
    (
        "weir-c/include/weir_plugin.h",
        include_str!("../../../plugins/sdk-c/include/weir_plugin.h"),
    ),
    (
        "weir-c/include/weir_json.h",
        include_str!("../../../plugins/sdk-c/include/weir_json.h"),
    ),
    (
        "weir-c/src/weir_plugin.c",
        include_str!("../../../plugins/sdk-c/src/weir_plugin.c"),
    ),
    (
        "weir-c/src/weir_json.c",
        include_str!("../../../plugins/sdk-c/src/weir_json.c"),
    ),
    (
        "weir-c/gen/plugin.h",
        include_str!("../../../plugins/sdk-c/gen/plugin.h"),
    ),
    (
        "weir-c/gen/plugin.c",
        include_str!("../../../plugins/sdk-c/gen/plugin.c"),
    ),
    (
        "weir-c/testing/weir_fake.h",
        include_str!("../../../plugins/sdk-c/testing/weir_fake.h"),
    ),
    (
        "weir-c/testing/weir_fake.c",
        include_str!("../../../plugins/sdk-c/testing/weir_fake.c"),
    ),
    ("wit/plugin.wit", WIT),
];

/// The C kit's binary parts, written as they are (no `{{name}}` filling).
const C_BYTES: &[(&str, &[u8])] = &[
    (
        "weir-c/gen/plugin_component_type.o",
        include_bytes!("../../../plugins/sdk-c/gen/plugin_component_type.o"),
    ),
    (
        "weir-c/adapter/wasi_snapshot_preview1.reactor.wasm",
        include_bytes!("../../../plugins/sdk-c/adapter/wasi_snapshot_preview1.reactor.wasm"),
    ),
];

const CONTRACT_TOML: &str = r#"[package]
name = "weir-plugin-contract"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
serde_json = "1"
thiserror = "2"
"#;

const SDK_TOML: &str = r#"[package]
name = "weir-plugin-sdk"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
weir-plugin-contract = { path = "../contract" }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
serde_path_to_error = "0.1"

[target.'cfg(target_arch = "wasm32")'.dependencies]
wit-bindgen = { version = "0.46", default-features = false, features = ["macros", "realloc"] }
"#;

const RUST: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
    ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    ("README.md", include_str!("../templates/rust/README.md")),
    // The SDK finds the WIT at ../../wit from its own directory.
    ("wit/v0.2.0/plugin.wit", WIT),
    ("vendor/contract/Cargo.toml", CONTRACT_TOML),
    (
        "vendor/contract/src/lib.rs",
        include_str!("../../../plugins/contract/src/lib.rs"),
    ),
    (
        "vendor/contract/src/types.rs",
        include_str!("../../../plugins/contract/src/types.rs"),
    ),
    (
        "vendor/contract/src/validate.rs",
        include_str!("../../../plugins/contract/src/validate.rs"),
    ),
    (
        "vendor/contract/src/glob.rs",
        include_str!("../../../plugins/contract/src/glob.rs"),
    ),
    (
        "vendor/contract/src/matcher.rs",
        include_str!("../../../plugins/contract/src/matcher.rs"),
    ),
    ("vendor/sdk/Cargo.toml", SDK_TOML),
    (
        "vendor/sdk/src/lib.rs",
        include_str!("../../../plugins/sdk/src/lib.rs"),
    ),
    (
        "vendor/sdk/src/access.rs",
        include_str!("../../../plugins/sdk/src/access.rs"),
    ),
    (
        "vendor/sdk/src/batch.rs",
        include_str!("../../../plugins/sdk/src/batch.rs"),
    ),
    (
        "vendor/sdk/src/testing.rs",
        include_str!("../../../plugins/sdk/src/testing.rs"),
    ),
    (
        "vendor/sdk/src/wasm.rs",
        include_str!("../../../plugins/sdk/src/wasm.rs"),
    ),
];

/// A plugin name: lowercase letters, digits, `-` and `_`, starting with a letter.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!("{name:?}: a plugin name is lowercase letters, digits, '-' and '_', starting with a letter");
    }
    Ok(())
}

/// Writes the project into `dir` (default `./NAME`); returns where.
pub fn run(lang: Lang, name: &str, dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} exists and is not empty; choose another name or --dir",
            dir.display()
        );
    }
    let krate = name.replace('-', "_");
    let (files, bytes) = match lang {
        Lang::Rust => (RUST, &[][..]),
        Lang::Python => (PYTHON, &[][..]),
        Lang::Js => (JS, &[][..]),
        Lang::Go => (GO, GO_BYTES),
        Lang::C => (C, C_BYTES),
    };
    let fill = |text: &str| text.replace("{{name}}", name).replace("{{crate}}", &krate);
    for (path, text) in files.iter().copied().chain([("sample.json", SAMPLE)]) {
        write(&dir.join(path), fill(text).as_bytes())?;
    }
    for (path, data) in bytes {
        write(&dir.join(path), data)?;
    }
    Ok(dir)
}

fn write(path: &Path, text: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
