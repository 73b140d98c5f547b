#!/usr/bin/env bash
# Everything CI checks, in order: formatting, lints, unit tests, the weir binary, and
# the end-to-end suite (tests/e2e, Python + the JS SDK in tests/js). Runs from any
# directory; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test"
cargo test --workspace --quiet

step "cargo build -p weir"
cargo build -p weir --quiet
export WEIR_BIN="${WEIR_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/weir}"

step "python venv (tests/.venv)"
venv=tests/.venv
if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r tests/e2e/requirements.txt

step "npm ci (tests/js)"
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error >/dev/null

step "end-to-end tests"
"$venv/bin/python" -m pytest tests/e2e -q
