#!/usr/bin/env python3
"""Memory per queued byte, and disk-queue recovery time after kill -9.

weir runs as a pass-through forwarder whose backend is down (a closed port), so
everything accepted stays queued. weir-loadgen sends at full speed until the
queue's byte budget is full and weir refuses. Then:

- memory queue: (RSS when full - RSS when idle) / queued bytes (from /metrics);
- disk queue:   RSS when full (payloads are on disk, not in memory), then kill -9,
                restart on the same directory, and time until /ready (recovery
                scans and checksums every segment), and how many items it recovered.

Usage (release binaries of weir and weir-loadgen):
    python3 bench/queue_memory.py --memory-bytes 256MiB --disk-bytes 1GiB
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+)(KiB|MiB|GiB)?", text.strip())
    if not m:
        raise SystemExit(f"invalid size {text!r}; write e.g. 256MiB")
    return int(m.group(1)) * UNITS.get(m.group(2) or "", 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name: str) -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    path = target / "release" / name
    if not path.is_file():
        raise SystemExit(f"{path} not found; run cargo build --release -p weir -p weir-loadgen")
    return path


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def metric(admin: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_ready(admin: int, proc: subprocess.Popen, timeout: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"weir exited with {proc.returncode}")
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1).status == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit("weir did not become ready")


def config(grpc: int, admin: int, queue: str) -> str:
    return f"""
[admin]
address = "127.0.0.1:{admin}"
[receivers.otlp]
type = "otlp"
grpc = {{ address = "127.0.0.1:{grpc}" }}
[exporters.backend]
type = "otlp_grpc"
endpoint = "http://127.0.0.1:{free_port()}"
retry = {{ max_elapsed = "1h" }}
queue = {{ capacity = 100000000, {queue} }}
[pipelines.traces]
receivers = ["otlp"]
exporters = ["backend"]
"""


def start(workdir: Path, text: str, name: str) -> subprocess.Popen:
    path = workdir / f"{name}.toml"
    path.write_text(text)
    log = open(workdir / f"{name}.log", "ab")
    return subprocess.Popen([str(binary("weir")), "run", "--config", str(path)], stdout=log, stderr=log)


def fill(grpc: int, seconds: float) -> None:
    subprocess.run(
        [str(binary("weir-loadgen")), "traces", "--endpoint", f"http://127.0.0.1:{grpc}",
         "--duration", str(seconds), "--concurrency", "16", "--connections", "4"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def fill_until_full(admin: int, grpc: int, capacity: int, limit_s: float) -> None:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        fill(grpc, 3)
        if metric(admin, "weir_exporter_queue_size_bytes") >= capacity * 0.95:
            return
    print(f"  (queue not full after {limit_s:.0f} s)")


def memory_run(workdir: Path, capacity: int, limit_s: float) -> None:
    grpc, admin = free_port(), free_port()
    proc = start(workdir, config(grpc, admin, f'max_bytes = {capacity}'), "memory")
    try:
        wait_ready(admin, proc)
        time.sleep(1)
        idle = rss_bytes(proc.pid)
        fill_until_full(admin, grpc, capacity, limit_s)
        time.sleep(1)
        queued = metric(admin, "weir_exporter_queue_size_bytes")
        full = rss_bytes(proc.pid)
        refused = metric(admin, "weir_receiver_refused_spans_total")
        print(f"memory queue, max_bytes {capacity / 2**20:.0f} MiB:")
        print(f"  RSS idle {idle / 2**20:.1f} MiB, full {full / 2**20:.1f} MiB, queued {queued / 2**20:.1f} MiB")
        print(f"  memory per queued byte: {(full - idle) / max(queued, 1):.2f}; spans refused: {refused:.0f}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def disk_run(workdir: Path, capacity: int, limit_s: float) -> None:
    grpc, admin = free_port(), free_port()
    qdir = workdir / "queue"
    queue = f'type = "disk", directory = "{qdir}", max_bytes = {capacity}'
    text = config(grpc, admin, queue)
    proc = start(workdir, text, "disk")
    try:
        wait_ready(admin, proc)
        idle = rss_bytes(proc.pid)
        fill_until_full(admin, grpc, capacity, limit_s)
        queued = metric(admin, "weir_exporter_queue_size_bytes")
        items = metric(admin, "weir_exporter_queue_size")
        full = rss_bytes(proc.pid)
        print(f"disk queue, max_bytes {capacity / 2**20:.0f} MiB:")
        print(f"  RSS idle {idle / 2**20:.1f} MiB, full {full / 2**20:.1f} MiB, queued {queued / 2**20:.1f} MiB ({items:.0f} spans)")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # Drop the page cache's copy where we may (root), so recovery reads the disk.
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        cache = "cold page cache"
    except OSError:
        cache = "warm page cache"
    proc = start(workdir, text, "disk-restart")
    try:
        took = wait_ready(admin, proc)
        recovered = metric(admin, "weir_exporter_queue_recovered_items_total")
        print(f"  kill -9, restart: ready after {took:.2f} s ({cache}), recovered {recovered:.0f} spans")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--memory-bytes", default="256MiB")
    ap.add_argument("--disk-bytes", default="1GiB")
    ap.add_argument("--limit", type=float, default=180, help="seconds to spend filling each queue at most")
    ap.add_argument("--workdir", help="keep files here (default: a temporary directory)")
    args = ap.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="weir-queue-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        memory_run(workdir, parse_size(args.memory_bytes), args.limit)
        disk_run(workdir, parse_size(args.disk_bytes), args.limit)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
