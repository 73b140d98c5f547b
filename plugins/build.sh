#!/usr/bin/env bash
# Builds every plugin in plugins/ (and the test plugins in tests/plugins/, and the Rust
# examples in examples/plugins/rust/) as a
# WebAssembly component: target/wasm32-wasip2/release/weir_plugin_<name>.wasm
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
packages=()
for manifest in plugins/*/Cargo.toml tests/plugins/*/Cargo.toml examples/plugins/rust/*/Cargo.toml; do
  case "$manifest" in plugins/sdk/Cargo.toml | plugins/contract/Cargo.toml) continue ;; esac
  packages+=(-p "$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n 1)")
done
# Panic locations name source files; map the machine's paths away so a component
# (one is checked in: deploy/kubernetes/gateway/plugins/sample.wasm) carries none.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
export CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="${CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS:---remap-path-prefix=$cargo_home/registry/src/=/cargo/ --remap-path-prefix=$PWD/=/weir/}"
cargo build --release --quiet --target wasm32-wasip2 "${packages[@]}"
ls "${CARGO_TARGET_DIR:-target}"/wasm32-wasip2/release/*.wasm
