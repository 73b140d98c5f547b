#!/usr/bin/env bash
# Builds the weir image with buildah from a staged context: the static weir binary
# (stripped), the four reference plugins, CA certificates, passwd/group for uid
# 10001 and the default config. Nothing else of the repository (and never target/)
# goes into the build context.
#
#   cargo build --release --target x86_64-unknown-linux-musl -p weir   # needs musl-tools
#   plugins/build.sh
#   deploy/image/build.sh [TAG]                                        # default weir:dev
#
# Environment: WEIR_MUSL_BIN (the binary), WEIR_PLUGIN_DIR (the .wasm files),
# WEIR_IMAGE_CONTEXT (where to stage; default $target/image-context),
# BUILDAH_STORAGE_DRIVER (default vfs: works without overlay support).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
tag="${1:-weir:dev}"
bin="${WEIR_MUSL_BIN:-$target/x86_64-unknown-linux-musl/release/weir}"
plugin_dir="${WEIR_PLUGIN_DIR:-$target/wasm32-wasip2/release}"
ctx="${WEIR_IMAGE_CONTEXT:-$target/image-context}"
ca_bundle="${WEIR_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
plugins=(redact sample enrich route)

die() { echo "deploy/image/build.sh: $*" >&2; exit 1; }
command -v buildah >/dev/null || die "buildah not found; install the Debian package 'buildah'"
[[ -x "$bin" ]] || die "no static weir binary at $bin; build it with: cargo build --release --target x86_64-unknown-linux-musl -p weir (needs the Debian package 'musl-tools' and 'rustup target add x86_64-unknown-linux-musl')"
# FROM scratch has no dynamic loader: refuse a binary that needs one.
if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
  die "$bin is dynamically linked (it has a PT_INTERP); build with --target x86_64-unknown-linux-musl"
fi
[[ -f "$ca_bundle" ]] || die "no CA bundle at $ca_bundle; install the Debian package 'ca-certificates' or set WEIR_CA_BUNDLE"

rm -rf "$ctx"
mkdir -p "$ctx/plugins" "$ctx/empty"
for p in "${plugins[@]}"; do
  f="$plugin_dir/weir_plugin_$p.wasm"
  [[ -f "$f" ]] || die "missing plugin $f; build the plugins with plugins/build.sh"
  cp "$f" "$ctx/plugins/"
done
# Symbols are a third of the binary; backtraces keep function names from the
# symbol table only, so say so in docs/deploy.md rather than keep 15 MB.
strip --strip-all -o "$ctx/weir" "$bin"
cp "$ca_bundle" "$ctx/ca-certificates.crt"
cp "$here/weir.toml" "$here/Containerfile" "$ctx/"
printf 'root:x:0:0:root:/:/sbin/nologin\nweir:x:10001:10001:weir:/var/lib/weir:/sbin/nologin\n' >"$ctx/passwd"
printf 'root:x:0:\nweir:x:10001:\n' >"$ctx/group"
chmod 0644 "$ctx"/plugins/* "$ctx/weir.toml" "$ctx/passwd" "$ctx/group" "$ctx/ca-certificates.crt"
chmod 0755 "$ctx/weir"

version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)"
revision="$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
source_url="${WEIR_SOURCE_URL:-$(git -C "$root" remote get-url origin 2>/dev/null || echo unknown)}"
storage=(--storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}")
previous="$(buildah "${storage[@]}" images --noheading --format '{{.ID}}' "$tag" 2>/dev/null || true)"
buildah "${storage[@]}" bud --isolation chroot --quiet \
  --layers=false \
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "CREATED=$created" \
  --build-arg "SOURCE=$source_url" \
  -f "$ctx/Containerfile" -t "$tag" "$ctx" >/dev/null
# vfs keeps a full copy per image: drop the one this tag pointed at before.
current="$(buildah "${storage[@]}" images --noheading --format '{{.ID}}' "$tag")"
if [[ -n "$previous" && "$previous" != "$current" ]]; then
  buildah "${storage[@]}" rmi "$previous" >/dev/null 2>&1 || true
fi
echo "built $tag from $ctx ($(du -sb "$ctx" | cut -f1) bytes staged)"
