#!/usr/bin/env bash
# Everything CI checks for deployment, in order, with the time each step took:
#   1. the static weir (x86_64-unknown-linux-musl; needs the Debian package musl-tools)
#   2. the image: built with buildah, weir run inside it as uid 10001 and fed by the
#      OpenTelemetry Python SDK (deploy/image/test.sh)
#   3. the Kubernetes manifests (kubectl kustomize + kubernetes-validate, policy, the
#      rendered configs through `weir validate`), the alert rules (promtool check and
#      unit tests), the dashboard, and every metric they use on a running weir
#      (tests/e2e/test_deploy_manifests.py)
# Expects what tests/run-all.sh makes first: tests/.venv, target/release/weir and the
# plugin components (plugins/build.sh); builds the latter two if missing.
# Debian packages: musl-tools buildah prometheus (promtool); kubectl >= 1.32.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="${WEIR_TEST_VENV:-$PWD/tests/.venv}"
musl=x86_64-unknown-linux-musl

t0=$(date +%s)
last=$t0
timings=()
step() { printf '==> deploy: %s\n' "$*"; }
took() {
  local now; now=$(date +%s)
  timings+=("$(printf '%-44s %4d s' "$1" $((now - last)))")
  last=$now
}
need() { command -v "$1" >/dev/null || { echo "deploy/ci.sh: \`$1\` not found: install $2" >&2; exit 1; }; }

need musl-gcc "the Debian package musl-tools"
need buildah "the Debian package buildah"
need promtool "the Debian package prometheus"
need kubectl "kubectl >= 1.32 (it embeds kustomize)"
[[ -x "$venv/bin/kubernetes-validate" ]] || { echo "deploy/ci.sh: $venv/bin/kubernetes-validate missing: pip install -r tests/e2e/requirements.txt into $venv (tests/run-all.sh does)" >&2; exit 1; }
rustup target list --installed | grep -qx "$musl" || rustup target add "$musl"

step "cargo build --release --target $musl -p weir"
# mimalloc and zstd compile C: musl-gcc links it against musl.
CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}" \
  timeout 2400 cargo build --release --target "$musl" -p weir --quiet
took "musl build"

# tests/run-all.sh exports these two; standalone, the defaults (built if missing).
export WEIR_BIN="${WEIR_BIN:-$target/release/weir}"
export WEIR_PLUGIN_DIR="${WEIR_PLUGIN_DIR:-$target/wasm32-wasip2/release}"
if [[ ! -x "$WEIR_BIN" ]]; then
  step "cargo build --release -p weir (for the manifest tests)"
  cargo build --release -p weir --quiet
fi
if [[ ! -f "$WEIR_PLUGIN_DIR/weir_test_plugin_misbehave.wasm" ]]; then
  step "plugins/build.sh"
  plugins/build.sh >/dev/null
fi
took "host build and plugins (if missing)"

step "image: build and test (deploy/image/test.sh)"
timeout 900 deploy/image/test.sh weir:ci
took "image build + test"

# Part of the e2e suite as well: WEIR_DEPLOY_SKIP_MANIFESTS=1 when that already ran.
if [[ "${WEIR_DEPLOY_SKIP_MANIFESTS:-0}" != 1 ]]; then
  step "manifests, alert rules, dashboard, metric names (tests/e2e/test_deploy_manifests.py)"
  (cd tests/e2e && timeout 900 "$venv/bin/python" -m pytest test_deploy_manifests.py -q)
  took "manifests + promtool + metric names"
fi

step "done in $(( $(date +%s) - t0 )) s"
printf '    %s\n' "${timings[@]}"
