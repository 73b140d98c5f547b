#!/bin/sh
# CI for the weir C kit: the kit's own native tests (JSON reader, accessors,
# arena, on the fake batch), the C example's native unit test and its
# component build (plus the conformance suite when target/release/weir is
# built), and the `weir plugin new --lang c` template assembled as weir writes
# it: its own test passes and it builds as is.
#
# Needs (Debian): gcc make clang lld wasi-libc libclang-rt-14-dev-wasm32, and
# wasm-tools in tests/.venv (tests/e2e/requirements.txt) or on PATH.
# When wit-bindgen 0.63 is on PATH (or $WIT_BINDGEN), also checks that the
# checked-in bindings are what it generates; CI does not install it.
set -eu
kit=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$kit/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/weir-sdk-c.XXXXXX")
trap 'rm -rf "$work"' EXIT

need() { command -v "$1" >/dev/null 2>&1 || { echo "sdk-c/ci.sh: $1 not found; install $2" >&2; exit 2; }; }
need make "the Debian package make"
need cc "the Debian package gcc"
need clang "the Debian packages clang lld"
echo 'int main(void){return 0;}' > "$work/probe.c"
clang --target=wasm32-wasi "$work/probe.c" -o "$work/probe.wasm" 2>"$work/probe.err" || {
    cat "$work/probe.err" >&2
    echo "sdk-c/ci.sh: clang cannot build for wasm32-wasi; install the Debian packages wasi-libc lld libclang-rt-14-dev-wasm32" >&2
    exit 2
}
WASM_TOOLS=${WASM_TOOLS:-}
if [ -z "$WASM_TOOLS" ]; then
    if [ -x "$repo/tests/.venv/bin/wasm-tools" ]; then WASM_TOOLS=$repo/tests/.venv/bin/wasm-tools; else WASM_TOOLS=wasm-tools; fi
fi
need "$WASM_TOOLS" "wasm-tools (pip install -r tests/e2e/requirements.txt, PyPI package wasm-tools)"
export WASM_TOOLS

echo "== sdk-c: kit tests (native)"
make -s -f "$kit/Makefile" BUILD="$work/kit" kit-test

echo "== sdk-c: example unit test (native) and component"
make -s -C "$repo/examples/plugins/c/tenant" BUILD="$work/example" test
"$repo/examples/plugins/c/tenant/build.sh" "$work/tenant.wasm"
ls -l "$work/tenant.wasm"
weir=${WEIR_BIN:-$repo/target/release/weir}
if [ -x "$weir" ]; then
    "$weir" plugin test --wasm "$work/tenant.wasm" --cache-dir "$work/cache" \
        --input "$repo/examples/plugins/conformance/tenant.input.json" \
        --expect "$repo/examples/plugins/conformance/tenant.expected.json" >/dev/null
fi

echo "== sdk-c: the weir plugin new --lang c template"
project=$work/my-filter
mkdir -p "$project"
for f in "$repo"/host/weir/templates/c/*; do
    sed 's/{{name}}/my-filter/g' "$f" > "$project/$(basename "$f")"
done
# The kit files weir plugin new copies in (see docs/plugins-c.md).
for f in Makefile include/weir_plugin.h include/weir_json.h src/weir_plugin.c src/weir_json.c \
    gen/plugin.h gen/plugin.c gen/plugin_component_type.o testing/weir_fake.h testing/weir_fake.c \
    adapter/wasi_snapshot_preview1.reactor.wasm; do
    mkdir -p "$project/weir-c/$(dirname "$f")"
    cp "$kit/$f" "$project/weir-c/$f"
done
mkdir -p "$project/wit"
cp "$repo/wit/v0.2.0/plugin.wit" "$project/wit/plugin.wit"
cp "$repo/examples/plugin-test/spans.json" "$project/sample.json"
make -s -C "$project" test
make -s -C "$project"
if [ -x "$weir" ]; then
    "$weir" plugin test --wasm "$project/my-filter.wasm" --cache-dir "$work/cache" --input "$project/sample.json" \
        > "$work/out.json"
    grep -q '"stringValue": "\*\*\*"' "$work/out.json" || { echo "the template did not mask the email" >&2; exit 1; }
fi

bindgen=${WIT_BINDGEN:-$(command -v wit-bindgen || true)}
if [ -n "$bindgen" ]; then
    echo "== sdk-c: checked-in bindings match $("$bindgen" --version)"
    "$bindgen" c --world plugin --out-dir "$work/gen" "$repo/wit/v0.2.0" >/dev/null 2>&1
    for f in plugin.h plugin.c plugin_component_type.o; do
        cmp -s "$work/gen/$f" "$kit/gen/$f" || {
            echo "plugins/sdk-c/gen/$f differs from what $bindgen generates; regenerate (plugins/sdk-c/README.md)" >&2
            exit 1
        }
    done
fi
echo "sdk-c: ok"
