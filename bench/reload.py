#!/usr/bin/env python3
"""Hot-reload benchmark: how fast a config change takes effect, and what a
reload costs a loaded weir.

weir runs the four-plugin chain (bench/configs/) with its config in a
directory updated the way kubelet updates a ConfigMap volume (new
`..<timestamp>` directory, `..data_tmp` renamed over `..data`). Each new
version sets `bench.version` on every resource through the enrich plugin, so
the sink can tell which chain processed a batch. `weir-loadgen traces` sends
at a fixed rate; weir exports over OTLP/HTTP to a stdlib sink in this process
that notes when each version's first batch arrives.

  latency  time from the `..data` swap to the first batch processed by the
           new chain (as exported: the batch timeout is 1 ms), with
           - warm: only enrich's config changes; the wasm of all four plugins
             is compiled already (in memory, and in plugin_cache_dir);
           - cold: all four plugins arrive as new wasm files (new sha256),
             no plugin_cache_dir: all four are compiled again.
           Also the reload's own duration as /status reports it.
  blip     --rate spans/s for three phases of --phase seconds: no reloads,
           one reload per second, no reloads; p99 request latency (loadgen's
           own measure) and weir's CPU-seconds per phase.

Stdlib only (Python 3.11+). Build first:
  cargo build --release -p weir -p weir-loadgen && plugins/build.sh
Run:
  python3 bench/reload.py [--reloads 20] [--rate 20000] [--phase 10]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
CHAIN = ["sample", "redact", "enrich", "route"]
TARGET_WARM_MS = 100.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class ConfigMapDir:
    """kubelet's AtomicWriter sequence on a local directory."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True)
        self.n = 0
        self.current: str | None = None

    def write(self, files: dict[str, bytes]) -> float:
        self.n += 1
        stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{self.n:09d}"
        (self.root / stamp).mkdir()
        for name, data in files.items():
            (self.root / stamp / name).write_bytes(data)
        os.symlink(stamp, self.root / "..data_tmp")
        os.rename(self.root / "..data_tmp", self.root / "..data")
        swapped = time.monotonic()
        for name in files:
            if not (self.root / name).is_symlink():
                os.symlink(f"..data/{name}", self.root / name)
        if self.current:
            shutil.rmtree(self.root / self.current)
        self.current = stamp
        return swapped


class VersionSink:
    """An OTLP/HTTP sink noting when the first request carrying each version marker arrived."""

    def __init__(self):
        self.first_seen: dict[str, float] = {}
        self.requests = 0
        self.lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.monotonic()
                with sink.lock:
                    sink.requests += 1
                    for m in re.findall(rb"bench-v\d{4}", body):
                        sink.first_seen.setdefault(m.decode(), now)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, marker: str, timeout: float = 60) -> float | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if marker in self.first_seen:
                    return self.first_seen[marker]
            time.sleep(0.0005)
        return None


def with_custom_section(wasm: bytes, label: str) -> bytes:
    """The component with one more custom section: new bytes, same behaviour."""
    name = b"weir-bench-version"
    payload = bytes([len(name)]) + name + label.encode()
    size, n = b"", len(payload)
    while True:
        byte, n = n & 0x7F, n >> 7
        size += bytes([byte | (0x80 if n else 0)])
        if not n:
            return wasm + b"\x00" + size + payload


def plugin_config_lines(name: str, version: int) -> list[str]:
    """[plugins.NAME.config] from bench/configs/NAME.toml, plus the version marker for enrich."""
    lines = [f"[plugins.{name}.config]"]
    for line in (REPO / "bench" / "configs" / f"{name}.toml").read_text().splitlines():
        if line.startswith("#"):
            continue
        line = re.sub(r"^\[\[(.+)\]\]", rf"[[plugins.{name}.config.\1]]", line)
        line = re.sub(r"^\[([^\[].*)\]", rf"[plugins.{name}.config.\1]", line)
        lines.append(line)
    if name == "enrich":
        lines += [
            f"[[plugins.{name}.config.operations]]",
            f'set = {{ "bench.version" = "bench-v{version:04d}" }}',
            'level = "resource"',
        ]
    return lines


def render(ports: dict, sink_port: int, plugin_files: dict[str, Path], version: int,
           cache_dir: Path | None) -> bytes:
    lines = ["[service]", 'shutdown_grace = "5s"']
    if cache_dir:
        lines.append(f'plugin_cache_dir = "{cache_dir}"')
    lines += [
        "[admin]", f'address = "127.0.0.1:{ports["admin"]}"',
        "[receivers.otlp]", 'type = "otlp"', f'grpc = {{ address = "127.0.0.1:{ports["grpc"]}" }}',
        "[exporters.sink]", 'type = "otlp_http"', f'endpoint = "http://127.0.0.1:{sink_port}"',
        'batch = { timeout = "1ms" }',
    ]
    for name in CHAIN:
        lines += [f"[plugins.{name}]", f'path = "{plugin_files[name]}"']
        lines += plugin_config_lines(name, version)
    lines += ["[pipelines.traces]", 'receivers = ["otlp"]', f"plugins = {json.dumps(CHAIN)}",
              'exporters = ["sink"]']
    return ("\n".join(lines) + "\n").encode()


def status(ports: dict) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['admin']}/status", timeout=5) as r:
        return json.load(r)


def wait_ready(ports: dict, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"weir exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ports['admin']}/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("weir did not become ready")


def loadgen(args, ports: dict, duration: float, latency_log: Path | None = None) -> subprocess.Popen:
    cmd = [str(args.loadgen), "traces", "--endpoint", f"http://127.0.0.1:{ports['grpc']}",
           "--rate", str(args.rate), "--duration", str(duration), "--spans-per-request", "50",
           "--concurrency", "16", "--connections", "4", "--json"]
    if latency_log:
        cmd += ["--latency-log", str(latency_log)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def latency_phase(args, work: Path, cold: bool) -> dict:
    kind = "cold" if cold else "warm"
    cm = ConfigMapDir(work / f"cm-{kind}")
    cache = None if cold else work / "plugin-cache"
    wasm = {n: (args.plugin_dir / f"weir_plugin_{n}.wasm").read_bytes() for n in CHAIN}
    plugin_files = {n: cm.root / f"{n}.wasm" for n in CHAIN}
    sink = VersionSink()
    ports = {"admin": free_port(), "grpc": free_port()}

    def files(version: int) -> dict[str, bytes]:
        out = {"weir.toml": render(ports, sink.port, plugin_files, version, cache)}
        for n in CHAIN:
            out[f"{n}.wasm"] = with_custom_section(wasm[n], f"v{version}") if cold else wasm[n]
        return out

    cm.write(files(0))
    proc = subprocess.Popen([str(args.weir), "run", "--config", str(cm.root / "weir.toml")],
                            stdout=subprocess.DEVNULL, stderr=open(work / f"weir-{kind}.log", "wb"))
    swaps, reload_ms = [], []
    try:
        wait_ready(ports, proc)
        gen = loadgen(args, ports, duration=600)
        if sink.wait_for("bench-v0000", 30) is None:
            sys.exit("no data reached the sink")
        for v in range(1, args.reloads + 1):
            before = status(ports)["reloads"]["success"]
            swapped = cm.write(files(v))
            seen = sink.wait_for(f"bench-v{v:04d}", 120)
            if seen is None:
                sys.exit(f"version {v} never reached the sink; see {work}/weir-{kind}.log")
            swaps.append((seen - swapped) * 1e3)
            end = time.monotonic() + 30
            while time.monotonic() < end:
                s = status(ports)
                if s["reloads"]["success"] > before:
                    reload_ms.append(s["last_reload"]["duration_ms"])
                    break
                time.sleep(0.01)
            time.sleep(0.2)
        gen.terminate()
        gen.wait()
    finally:
        proc.terminate()
        proc.wait(30)
        sink.server.shutdown()
    return {
        "kind": kind,
        "reloads": len(swaps),
        "swap_to_first_batch_ms": {"median": statistics.median(swaps), "p90": sorted(swaps)[int(0.9 * (len(swaps) - 1))],
                                   "max": max(swaps)},
        "reload_duration_ms": {"median": statistics.median(reload_ms), "max": max(reload_ms)},
    }


def blip_phase(args, work: Path) -> dict:
    cm = ConfigMapDir(work / "cm-blip")
    cache = work / "plugin-cache"
    plugin_files = {n: args.plugin_dir / f"weir_plugin_{n}.wasm" for n in CHAIN}
    sink = VersionSink()
    ports = {"admin": free_port(), "grpc": free_port()}
    cm.write({"weir.toml": render(ports, sink.port, plugin_files, 0, cache)})
    proc = subprocess.Popen([str(args.weir), "run", "--config", str(cm.root / "weir.toml")],
                            stdout=subprocess.DEVNULL, stderr=open(work / "weir-blip.log", "wb"))
    log = work / "latency.csv"
    try:
        wait_ready(ports, proc)
        warmup = 2.0
        gen = loadgen(args, ports, duration=warmup + 3 * args.phase, latency_log=log)
        started = time.monotonic()
        time.sleep(warmup)
        cpu = [cpu_seconds(proc.pid)]
        time.sleep(args.phase)
        cpu.append(cpu_seconds(proc.pid))
        version = 0
        reloads_at = []
        phase_end = time.monotonic() + args.phase
        while time.monotonic() < phase_end - 0.5:
            version += 1
            reloads_at.append(cm.write({"weir.toml": render(ports, sink.port, plugin_files, version, cache)}) - started)
            time.sleep(1.0)
        time.sleep(max(0.0, phase_end - time.monotonic()))
        cpu.append(cpu_seconds(proc.pid))
        time.sleep(args.phase)
        cpu.append(cpu_seconds(proc.pid))
        out, _ = gen.communicate(timeout=60)
        summary = json.loads(out.strip().splitlines()[-1])
        reloads = status(ports)["reloads"]
    finally:
        proc.terminate()
        proc.wait(30)
        sink.server.shutdown()
    # (seconds since loadgen started sending, latency µs); its clock starts when
    # its connections are up, a few ms after `started`, which the 500 ms
    # windows below absorb.
    rows = [tuple(map(float, line.split(","))) for line in log.read_text().splitlines() if line]

    def p99(lo: float, hi: float) -> float:
        lat = sorted(us / 1e3 for t, us in rows if lo <= t < hi)
        return lat[int(0.99 * (len(lat) - 1))] if lat else float("nan")

    def in_window(t: float) -> bool:
        return any(r <= t < r + 0.5 for r in reloads_at)

    a, b = warmup, warmup + args.phase
    c, d = b + args.phase, b + 2 * args.phase
    near = sorted(us / 1e3 for t, us in rows if in_window(t))
    spans_per_phase = args.rate * args.phase
    return {
        "rate": args.rate,
        "phase_s": args.phase,
        "reloads_in_phase": len(reloads_at),
        "reloads_counted": reloads,
        "p99_ms": {"before": p99(a, b), "during": p99(b, c), "after": p99(c, d),
                   "within_500ms_of_a_reload": near[int(0.99 * (len(near) - 1))] if near else float("nan")},
        "cpu_s": {"before": cpu[1] - cpu[0], "during": cpu[2] - cpu[1], "after": cpu[3] - cpu[2]},
        "cpu_s_per_million_spans": {k: v / spans_per_phase * 1e6 for k, v in
                                    {"before": cpu[1] - cpu[0], "during": cpu[2] - cpu[1],
                                     "after": cpu[3] - cpu[2]}.items()},
        "cpu_ms_per_reload": ((cpu[2] - cpu[1]) - ((cpu[1] - cpu[0]) + (cpu[3] - cpu[2])) / 2) / max(1, len(reloads_at)) * 1e3,
        "loadgen": {"ok_spans": summary["ok_spans"], "failed_spans": summary["failed_spans"],
                    "latency_ms": summary.get("latency_ms")},
    }


def main() -> None:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weir", type=Path, default=target / "release" / "weir")
    p.add_argument("--loadgen", type=Path, default=target / "release" / "weir-loadgen")
    p.add_argument("--plugin-dir", type=Path, default=target / "wasm32-wasip2" / "release")
    p.add_argument("--reloads", type=int, default=20, help="reloads per latency measurement")
    p.add_argument("--rate", type=int, default=20000, help="offered load, spans/s")
    p.add_argument("--phase", type=float, default=10.0, help="seconds per blip phase")
    p.add_argument("--only", choices=["latency", "blip"], help="run one part")
    args = p.parse_args()
    for f in (args.weir, args.loadgen):
        if not f.exists():
            sys.exit(f"{f} not found; cargo build --release -p weir -p weir-loadgen")
    results = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="weir-reload-bench-") as tmp:
        work = Path(tmp)
        if args.only in (None, "latency"):
            results["warm"] = latency_phase(args, work, cold=False)
            results["cold"] = latency_phase(args, work, cold=True)
        if args.only in (None, "blip"):
            results["blip"] = blip_phase(args, work)
    print(json.dumps(results, indent=2))
    if "warm" in results:
        med = results["warm"]["swap_to_first_batch_ms"]["median"]
        verdict = "met" if med < TARGET_WARM_MS else "MISSED"
        print(f"warm swap -> first batch: median {med:.1f} ms (target < {TARGET_WARM_MS:.0f} ms: {verdict})",
              file=sys.stderr)


if __name__ == "__main__":
    main()
