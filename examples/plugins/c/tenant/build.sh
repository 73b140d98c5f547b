#!/bin/sh
# Builds the C example processor as a component: build.sh OUT.wasm
# Needs clang, lld, wasi-libc, libclang-rt-14-dev-wasm32 (Debian) and
# wasm-tools (tests/.venv from tests/e2e/requirements.txt, or PATH).
set -eu
[ $# -eq 1 ] || { echo "usage: $0 OUT.wasm" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../.." && pwd)
case $1 in /*) out=$1 ;; *) out=$(pwd)/$1 ;; esac
tools=${WASM_TOOLS:-}
if [ -z "$tools" ]; then
    if [ -x "$repo/tests/.venv/bin/wasm-tools" ]; then tools=$repo/tests/.venv/bin/wasm-tools; else tools=wasm-tools; fi
fi
build=$(mktemp -d "${TMPDIR:-/tmp}/weir-c-tenant.XXXXXX")
trap 'rm -rf "$build"' EXIT
make -s -C "$here" BUILD="$build" OUT="$out" WASM_TOOLS="$tools" wasm
