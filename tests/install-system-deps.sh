#!/usr/bin/env bash
# Installs the Debian packages and Rust targets the whole suite needs, if missing:
# Node.js (JS SDK, e2e), the C plugin kit's toolchain (clang for wasm32-wasi,
# wasi-libc, lld), musl-tools for the static weir of the image, buildah to build
# and run the image, prometheus for promtool (alert rule tests). Needs root for
# apt-get; otherwise it names what to install. Called by tests/run-all.sh and .ci/run.
set -euo pipefail

rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

packages=(gcc make clang lld wasi-libc libclang-rt-14-dev-wasm32 musl-tools buildah prometheus)
missing=()
# Node.js may come from elsewhere (nodesource bundles npm): only its commands count.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${missing[*]}; install them (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
