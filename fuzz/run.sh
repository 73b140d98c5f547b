#!/usr/bin/env bash
# Builds every fuzz target once, replays the kept crash inputs
# (fuzz/regressions/<target>/), then fuzzes each target for N seconds.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]        # CI: fuzz/run.sh 30
#   FUZZ_SANITIZER=address fuzz/run.sh 1800 # long form: ASan, 30 min per target
#
# Environment:
#   FUZZ_SANITIZER  none (default: fastest build) | address | ...
#   FUZZ_TARGETS    space-separated subset (default: all, from `cargo fuzz list`)
#   FUZZ_ARGS       extra libFuzzer flags, e.g. "-fork=2" or "-dict=..."
#   CARGO_BUILD_JOBS  passed through to cargo (the build is the cost)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). Nightly is not
# needed: RUSTC_BOOTSTRAP=1 lets the stable toolchain take cargo-fuzz's -Z
# flags. The working corpus grows in fuzz/corpus/<target>/ (gitignored, worth
# caching); seeds/ is read-only. A crash leaves its input in
# fuzz/artifacts/<target>/; keep it under fuzz/regressions/<target>/ with the fix.
set -euo pipefail

cd "$(dirname "$0")/.."
secs=${1:-30}
san=${FUZZ_SANITIZER:-none}
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$PWD/fuzz/target"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: cargo-fuzz is not installed; run: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

started=$(date +%s)
# -a: debug assertions (and overflow checks) on, as in tests.
cargo fuzz build --fuzz-dir fuzz -s "$san" -a
built=$(date +%s)
echo "fuzz/run.sh: built in $((built - started)) s (sanitizer: $san)"

triple=$(rustc -vV | sed -n 's/^host: //p')
bin="$CARGO_TARGET_DIR/$triple/release"
targets=${FUZZ_TARGETS:-$(cargo fuzz list --fuzz-dir fuzz)}

failed=()
for t in $targets; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log="fuzz/artifacts/$t/last-run.log"
    regressions=(fuzz/regressions/"$t"/*)
    if [ -e "${regressions[0]}" ]; then
        if ! "$bin/$t" "${regressions[@]}" >"$log" 2>&1; then
            echo "fuzz/run.sh: $t: a kept regression input crashes again:" >&2
            tail -n 40 "$log" >&2
            failed+=("$t (regression)")
            continue
        fi
        echo "fuzz/run.sh: $t: ${#regressions[@]} regression input(s) pass"
    fi
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    if "$bin/$t" "fuzz/corpus/$t" "fuzz/seeds/$t" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        corpus=$(ls "fuzz/corpus/$t" | wc -l)
        echo "fuzz/run.sh: $t: ok, $execs runs in ${secs} s, corpus $corpus"
    else
        echo "fuzz/run.sh: $t: CRASH (input in fuzz/artifacts/$t/):" >&2
        grep -A 30 -m 1 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" >&2 || tail -n 40 "$log" >&2
        failed+=("$t")
    fi
done

echo "fuzz/run.sh: total $(($(date +%s) - started)) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz/run.sh: failed: ${failed[*]}" >&2
    exit 1
fi
