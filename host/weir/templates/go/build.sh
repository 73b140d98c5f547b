#!/usr/bin/env bash
# Builds {{name}}.wasm (or the path given): Go for wasip1, then a component.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec bash "$here/weir-plugin/build.sh" "$here" "${1:-$here/{{name}}.wasm}" "$here/wit"
