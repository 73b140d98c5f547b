#!/usr/bin/env bash
# Builds the Go example processor into a weir component: build.sh OUT.wasm
# Uses tests/.venv's go and wasm-tools when they are not on PATH, and keeps Go's
# caches under the cargo target dir (or GOCACHE/GOPATH if set), not in the tree.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: build.sh OUT.wasm" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../.." && pwd)
out=$(realpath -m "$1")
venv=$repo/tests/.venv/bin
export GO=${GO:-$(command -v go || echo "$venv/go")}
export WASM_TOOLS=${WASM_TOOLS:-$(command -v wasm-tools || echo "$venv/wasm-tools")}
target=${CARGO_TARGET_DIR:-$repo/target}
export GOCACHE=${GOCACHE:-$target/go/cache} GOPATH=${GOPATH:-$target/go/path}
exec "$repo/plugins/sdk-go/build.sh" "$here" "$out" "$repo/wit/v0.2.0"
