"""The benchmark harness still runs: a short weir-chain run of bench/passthrough.py.

Not a performance test (nothing here asserts a speed): it checks that the harness,
weir-loadgen and the Wasm chain fit together, so the commands in docs/benchmarks.md
keep working. It needs target/release/weir-loadgen (tests/run-all.sh builds it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otlp_helpers import REPO_ROOT, plugin_dir, weir_bin

LOADGEN = Path(os.environ.get("WEIR_LOADGEN_BIN") or REPO_ROOT / "target" / "release" / "weir-loadgen")


@pytest.mark.skipif(not LOADGEN.exists(), reason="weir-loadgen not built (cargo build --release -p weir-loadgen)")
def test_chain_benchmark_runs_and_samples_half(tmp_path):
    out = tmp_path / "runs.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "bench" / "passthrough.py"),
            "--systems", "weir-chain",
            "--phases", "fixed",
            "--duration", "4",
            "--rate", "2000",
            "--secrets-every", "10",
            "--concurrency", "8",
            "--connections", "2",
            "--drain-timeout", "10",
            "--weir", str(weir_bin()),
            "--loadgen", str(LOADGEN),
            "--plugins-dir", str(plugin_dir()),
            "--json-out", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    (run,) = json.loads(out.read_text())
    assert run["system"] == "weir chain/wasm (none)"
    assert run["failed_requests"] == 0, run["errors"]
    assert run["sent_spans"] >= 4000
    # sample keeps ~half (rate 0.5, plus error traces): nothing else may be lost.
    kept = run["delivered_spans"] / run["sent_spans"]
    assert 0.4 < kept < 0.75, kept
    assert run["cpu_per_m_in"] > 0
    assert "weir chain/wasm (none)     fixed" in proc.stdout, proc.stdout
