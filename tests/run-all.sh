#!/usr/bin/env bash
# Everything CI checks, in order: formatting, lints, unit tests, the weir binary,
# the plugin SDKs' own tests (Python, JavaScript, Go, C), and the end-to-end suite
# (tests/e2e, Python + the JS SDK in tests/js). Runs from any
# directory; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '==> %s\n' "$*"; }

step "system packages and Rust targets (tests/install-system-deps.sh)"
tests/install-system-deps.sh

step "cargo fmt --check"
cargo fmt --all --check

# --all-features: also lints the native-plugin build and the benchmarks that need it.
step "cargo clippy"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings

step "benchmark scripts compile"
"${PYTHON:-python3}" -m py_compile bench/*.py

# Release builds throughout: the e2e suite and the benchmarks run optimised code,
# and tests reuse the same artifacts instead of compiling wasmtime twice.
step "cargo test"
cargo test --workspace --release --quiet

# cargo-fuzz on stable through RUSTC_BOOTSTRAP (fuzz/run.sh sets it). The long form
# (AddressSanitizer, 30 min per target) is in docs/fuzzing.md.
step "fuzz targets (fuzz/run.sh 20: build once, replay regressions, 20 s per target)"
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
fuzz/run.sh "${WEIR_FUZZ_SECONDS:-20}"

step "cargo build --release -p weir -p weir-loadgen"
cargo build --release -p weir -p weir-loadgen --quiet
export WEIR_BIN="${WEIR_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/weir}"

step "plugins (wasm32-wasip2 components)"
plugins/build.sh >/dev/null
export WEIR_PLUGIN_DIR="${WEIR_PLUGIN_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/wasm32-wasip2/release}"

step "python venv (tests/.venv)"
venv=tests/.venv
if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r tests/e2e/requirements.txt

step "npm ci (tests/js)"
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error >/dev/null

step "npm ci (plugins/sdk-js: componentize-js)"
npm ci --prefix plugins/sdk-js --no-audit --no-fund --loglevel=error >/dev/null

step "JavaScript plugin SDK tests (plugins/sdk-js, node, in-memory batch)"
(cd plugins/sdk-js && node --test test/)

step "Python plugin SDK tests (plugins/sdk-python, CPython, in-memory batch)"
"$venv/bin/python" -m pytest plugins/sdk-python/tests -q -p no:cacheprovider

step "Go plugin SDK (plugins/sdk-go: bindings check, vet, go test, the example as a component)"
plugins/sdk-go/ci.sh

step "C plugin kit (plugins/sdk-c: kit tests, example, template)"
plugins/sdk-c/ci.sh

step "end-to-end tests"
"$venv/bin/python" -m pytest tests/e2e -q

# The static (musl) weir, the FROM scratch image built with buildah and run as uid
# 10001; the manifest tests already ran in the e2e suite above.
step "deployment: static build, image (deploy/ci.sh)"
WEIR_DEPLOY_SKIP_MANIFESTS=1 deploy/ci.sh
