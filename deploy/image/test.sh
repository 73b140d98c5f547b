#!/usr/bin/env bash
# Builds the weir image (deploy/image/build.sh) and tests it: what is in it, and weir
# running inside it as uid 10001 on its default config, fed by the OpenTelemetry
# Python SDK on loopback and exporting to a sink (tests/e2e/test_deploy_image.py).
# Prints the image size, uncompressed and as pushed (gzip layers).
#
#   deploy/image/test.sh [TAG]        # default weir:test; needs the musl build and plugins/build.sh
#
# The image runs with the host network: ports 4317, 4318 and 13133 must be free.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tag="${1:-weir:test}"
venv="${WEIR_TEST_VENV:-$root/tests/.venv}"
storage=(--storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}")

[[ -x "$venv/bin/python" ]] || { echo "deploy/image/test.sh: no Python venv at $venv; tests/run-all.sh creates it (or: python3 -m venv tests/.venv && tests/.venv/bin/pip install -r tests/e2e/requirements.txt)" >&2; exit 1; }

start=$(date +%s)
"$here/build.sh" "$tag"
built=$(date +%s)

# Sizes: the layers as a registry holds them (gzip) and unpacked (tar).
oci="$(mktemp -d)"
trap 'rm -rf "$oci"' EXIT
buildah "${storage[@]}" push --quiet "$tag" "oci:$oci:weir" >/dev/null
pushed=0 uncompressed=0
for blob in "$oci"/blobs/sha256/*; do
  pushed=$((pushed + $(stat -c %s "$blob")))
  if gzip -t "$blob" 2>/dev/null; then
    uncompressed=$((uncompressed + $(gzip -dc "$blob" | wc -c)))
  else
    uncompressed=$((uncompressed + $(stat -c %s "$blob")))
  fi
done

(cd "$root/tests/e2e" && WEIR_IMAGE="$tag" "$venv/bin/python" -m pytest test_deploy_image.py -q)
done_at=$(date +%s)

mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "image $tag: $(mib "$uncompressed") uncompressed, $(mib "$pushed") pushed (gzip); build $((built - start)) s, test $((done_at - built)) s"
