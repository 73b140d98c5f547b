#!/usr/bin/env python3
"""TLS cost benchmark: weir's CPU per span with TLS on both sides (loadgen ->
weir receiver over TLS, weir exporter -> loadgen sink over TLS) against the
same load in plain text, and the rate of new TLS connections weir accepts.

    weir-loadgen traces --tls-ca --> weir (receiver tls) --> weir-loadgen sink --tls-cert

For each mode weir runs alone with the same config but `tls`; the generator
offers a fixed --rate (spans/s) for --duration seconds and weir's CPU time
(utime + stime from /proc/PID/stat) is divided by the spans that reached the
sink. Then `weir-loadgen handshakes` opens connections to weir's TLS HTTP
listener as fast as it can (full handshakes, no resumption) and weir's CPU
per handshake is reported.

Certificates are made with the openssl CLI (ECDSA P-256). Stdlib only; run
`cargo build --release -p weir -p weir-loadgen` first. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_OVERHEAD = 0.15  # TLS adds under 15% CPU per span


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read().decode()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port}")


def make_certs(d: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"), "-days", "30",
        "-subj", "/CN=weir-bench-ca")
    (d / "ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("weir", "sink"):
        run("req", *ec, "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"), "-subj", "/CN=localhost")
        run("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
            "-CAcreateserial", "-out", str(d / f"{name}.crt"), "-days", "30", "-extfile", str(d / "ext"))


def sink_count(stats_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{stats_port}/count", timeout=5) as r:
        return int(json.load(r)["spans"])


def weir_config(d: Path, tls: bool, ports: dict) -> str:
    scheme = "https" if tls else "http"
    listener_tls = f'\n[receivers.otlp.{{}}.tls]\ncert_file = "{d}/weir.crt"\nkey_file = "{d}/weir.key"\n'
    return f"""
[admin]
address = "127.0.0.1:{ports['admin']}"
[receivers.otlp]
type = "otlp"
[receivers.otlp.grpc]
address = "127.0.0.1:{ports['grpc']}"
{listener_tls.format('grpc') if tls else ''}
[receivers.otlp.http]
address = "127.0.0.1:{ports['http']}"
{listener_tls.format('http') if tls else ''}
[exporters.sink]
type = "otlp_grpc"
endpoint = "{scheme}://127.0.0.1:{ports['sink']}"
{f'tls = {{ ca_file = "{d}/ca.crt", server_name = "localhost" }}' if tls else ''}
[pipelines.traces]
receivers = ["otlp"]
exporters = ["sink"]
"""


def run_mode(args, d: Path, tls: bool) -> dict:
    ports = {k: free_port() for k in ("admin", "grpc", "http", "sink", "stats")}
    loadgen = str(REPO / "target/release/weir-loadgen")
    sink_cmd = [loadgen, "sink", "--listen", f"127.0.0.1:{ports['sink']}", "--stats-listen",
                f"127.0.0.1:{ports['stats']}"]
    if tls:
        sink_cmd += ["--tls-cert", str(d / "sink.crt"), "--tls-key", str(d / "sink.key")]
    sink = subprocess.Popen(sink_cmd, stderr=subprocess.DEVNULL)
    cfg = d / f"weir-{'tls' if tls else 'plain'}.toml"
    cfg.write_text(weir_config(d, tls, ports))
    env = dict(os.environ, RUST_LOG="warn")
    weir = subprocess.Popen([str(REPO / "target/release/weir"), "run", "--config", str(cfg)],
                            stderr=open(d / f"{cfg.stem}.log", "wb"), env=env)
    try:
        wait_port(ports["stats"], sink, "sink")
        wait_port(ports["admin"], weir, "weir")
        wait_port(ports["grpc"], weir, "weir")
        gen = [loadgen, "--threads", str(args.gen_threads), "traces", "--endpoint",
               f"{'https' if tls else 'http'}://127.0.0.1:{ports['grpc']}", "--rate", str(args.rate),
               "--duration", str(args.duration), "--spans-per-request", str(args.spans_per_request),
               "--connections", str(args.connections), "--concurrency", str(args.concurrency), "--json"]
        if tls:
            gen += ["--tls-ca", str(d / "ca.crt")]
        # Warm-up: connections, buffers, the exporter's channel.
        subprocess.run([*gen[:gen.index("--duration") + 1], "2", *gen[gen.index("--duration") + 2:]],
                       check=True, capture_output=True)
        time.sleep(1)
        spans0, cpu0 = sink_count(ports["stats"]), cpu_seconds(weir.pid)
        out = subprocess.run(gen, check=True, capture_output=True, text=True)
        # Let the last batches leave weir.
        deadline = time.monotonic() + 10
        last = -1
        while time.monotonic() < deadline:
            n = sink_count(ports["stats"])
            if n == last:
                break
            last = n
            time.sleep(0.5)
        spans, cpu = sink_count(ports["stats"]) - spans0, cpu_seconds(weir.pid) - cpu0
        result = {"mode": "tls" if tls else "plain", "spans": spans, "weir_cpu_seconds": round(cpu, 3),
                  "cpu_seconds_per_million_spans": round(cpu / spans * 1e6, 3) if spans else None,
                  "offered_rate": args.rate, "generator": json.loads(out.stdout.strip().splitlines()[-1])}
        if tls:
            cpu0 = cpu_seconds(weir.pid)
            hs = subprocess.run([loadgen, "--threads", str(args.gen_threads), "handshakes", "--target",
                                 f"127.0.0.1:{ports['http']}", "--tls-ca", str(d / "ca.crt"),
                                 "--duration", str(args.handshake_duration), "--concurrency",
                                 str(args.handshake_concurrency)], check=True, capture_output=True, text=True)
            h = json.loads(hs.stdout.strip().splitlines()[-1])
            hcpu = cpu_seconds(weir.pid) - cpu0
            h["weir_cpu_seconds"] = round(hcpu, 3)
            h["weir_cpu_ms_per_handshake"] = round(hcpu / h["handshakes"] * 1000, 4) if h["handshakes"] else None
            result["handshakes"] = h
        return result
    finally:
        for p in (weir, sink):
            p.send_signal(signal.SIGTERM)
        for p in (weir, sink):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=100_000, help="offered spans/s (both modes)")
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--spans-per-request", type=int, default=100)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--gen-threads", type=int, default=1)
    ap.add_argument("--handshake-duration", type=float, default=5)
    ap.add_argument("--handshake-concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="alternate plain/tls this many times; median of each")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    for b in ("weir", "weir-loadgen"):
        if not (REPO / "target/release" / b).exists():
            raise SystemExit(f"target/release/{b} missing: cargo build --release -p weir -p weir-loadgen")
    with tempfile.TemporaryDirectory(prefix="weir-tls-bench-") as tmp:
        d = Path(tmp)
        make_certs(d)
        runs = {"plain": [], "tls": []}
        for _ in range(args.rounds):
            for tls in (False, True):
                r = run_mode(args, d, tls)
                runs[r["mode"]].append(r)
                print(json.dumps(r), file=sys.stderr)
    # Medians over the rounds: the machine is shared, single runs are noisy.
    def median_run(rs: list[dict]) -> dict:
        ordered = sorted(rs, key=lambda r: r["cpu_seconds_per_million_spans"] or float("inf"))
        return ordered[(len(ordered) - 1) // 2]

    best = {m: median_run(rs) for m, rs in runs.items()}
    plain, tls = (best[m]["cpu_seconds_per_million_spans"] for m in ("plain", "tls"))
    overhead = tls / plain - 1 if plain and tls else None
    summary = {
        "rate": args.rate,
        "rounds": args.rounds,
        "plain_runs": [r["cpu_seconds_per_million_spans"] for r in runs["plain"]],
        "tls_runs": [r["cpu_seconds_per_million_spans"] for r in runs["tls"]],
        "plain_cpu_s_per_million_spans": plain,
        "tls_cpu_s_per_million_spans": tls,
        "tls_overhead": round(overhead, 4) if overhead is not None else None,
        "target_overhead_max": TARGET_OVERHEAD,
        "handshakes_per_second": best["tls"]["handshakes"]["per_second"],
        "weir_cpu_ms_per_handshake": best["tls"]["handshakes"]["weir_cpu_ms_per_handshake"],
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"offered load            {args.rate} spans/s, {args.spans_per_request} spans/request")
        print(f"plain                   {plain} CPU-s per million spans (median of {summary['plain_runs']})")
        print(f"TLS on both sides       {tls} CPU-s per million spans (median of {summary['tls_runs']})")
        if overhead is not None:
            verdict = "met" if overhead < TARGET_OVERHEAD else "MISSED"
            print(f"TLS overhead            {overhead:+.1%} (target < {TARGET_OVERHEAD:.0%}: {verdict})")
        print(f"new TLS connections     {summary['handshakes_per_second']}/s "
              f"({summary['weir_cpu_ms_per_handshake']} ms weir CPU each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
