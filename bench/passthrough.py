#!/usr/bin/env python3
"""Side-by-side OTLP/gRPC benchmark: weir vs Rotel, as pass-through forwarders
or running the four-plugin chain (weir: Wasm or compiled in; Rotel: the same
steps as a Python processor, bench/rotel_chain.py).

Each system under test (SUT) receives trace export requests from
`weir-loadgen traces` and forwards them to a `weir-loadgen sink`, all on
loopback. For every SUT two phases run:

  fixed  a fixed offered load (--rate spans/s) that every SUT should sustain;
         compares CPU cost per span at equal load.
  max    the generator sends as fast as the SUT accepts; finds max throughput.

CPU time is read from /proc/PID/stat (utime + stime of the SUT and its
children). Spans are counted where they arrive, at the sink.

Stdlib only (Python 3.11+). Builds nothing: run
`cargo build --release -p weir -p weir-loadgen` first (with
`--features weir/native-plugins` for the native chain, and plugins/build.sh
for the Wasm one). See bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGETS = {
    "cpu_ratio_max": 0.75,  # weir / Rotel, pass-through
    "throughput_ratio_min": 1.30,  # weir / Rotel, pass-through
    "wasm_native_cpu_max": 1.10,  # weir chain as Wasm / the same chain native
    "rotel_python_cpu_min": 5.0,  # Rotel + Python chain / weir + Wasm chain
}
# The plugin chain of the chain systems, in order; configs in bench/configs/.
CHAIN = ["sample", "redact", "enrich", "route"]
SYSTEMS = (
    "weir", "weir-gzip", "weir-zstd", "rotel",
    "weir-chain", "weir-chain-gzip", "weir-native-chain", "weir-native-chain-gzip", "rotel-chain",
    "weir-noop", "weir-chain-decoded", "weir-chain-decoded-gzip",
    # Pass-through with a disk queue: fsync before every acknowledgement (requests
    # arriving together share one), or group commit every 10 ms.
    "weir-disk", "weir-disk-group",
)

# The weir config used when examples/configs/passthrough.toml is missing.
FALLBACK_WEIR_CONFIG = {
    "admin": {"address": "127.0.0.1:13133"},
    "receivers": {
        "otlp": {
            "type": "otlp",
            "grpc": {"address": "127.0.0.1:4317"},
            "http": {"address": "127.0.0.1:4318"},
        }
    },
    "exporters": {"backend": {"type": "otlp_grpc", "endpoint": "http://127.0.0.1:14317"}},
    "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["backend"]}},
}


class HarnessError(Exception):
    """A failure of the benchmark machinery (not a missed target)."""


def log(msg: str) -> None:
    print(f"[passthrough] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# /proc helpers


def proc_cpu_ticks(pid: int) -> int:
    """utime + stime of one process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read().decode()
    # comm (field 2) may contain spaces or parens; fields resume after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process plus its live descendants."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            total += proc_cpu_ticks(p)
        except (OSError, ValueError):
            if p == pid:
                raise
    return total / CLK_TCK


def cpu_seconds_or_none(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return proc_cpu_ticks(pid) / CLK_TCK
    except (OSError, ValueError):
        return None


def system_busy_seconds() -> float:
    """Busy CPU time of the whole machine (all cores) from /proc/stat."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    values = [int(v) for v in parts[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(values) - values[3] - values[4]) / CLK_TCK


def peak_rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def non_loopback_peers(pid: int) -> set[str]:
    """Remote addresses of the process's TCP sockets that are not loopback."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    peers = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[9] not in inodes:
                        continue
                    addr_hex, port_hex = cols[2].split(":")
                    if int(addr_hex, 16) == 0:
                        continue  # listening socket
                    if width == 8:
                        ip = socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr_hex)[::-1])
                    else:
                        raw = b"".join(
                            bytes.fromhex(addr_hex[i : i + 8])[::-1] for i in range(0, 32, 8)
                        )
                        ip = socket.inet_ntop(socket.AF_INET6, raw)
                    if ip.startswith("127.") or ip in ("::1", "::ffff:127.0.0.1"):
                        continue
                    peers.add(f"{ip}:{int(port_hex, 16)}")
        except OSError:
            continue
    return peers


# --------------------------------------------------------------------------
# Binaries, ports, processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_release_binary(name: str, override: str | None) -> Path:
    if override:
        path = Path(override)
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        path = target / "release" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise HarnessError(
            f"{path} not found; build it with `cargo build --release -p weir -p weir-loadgen`"
        )
    return path


def find_rotel(override: str | None) -> Path:
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise HarnessError(f"--rotel {path} is not an executable file")
    candidates: list[Path] = []
    venv_python = REPO / "bench" / ".venv" / "bin" / "python"
    if venv_python.exists():
        try:
            out = subprocess.run(
                [str(venv_python), "-c", "import rotel,os;print(os.path.dirname(rotel.__file__))"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
            candidates.append(Path(out) / "rotel-agent")
        except (subprocess.SubprocessError, OSError):
            pass
    candidates += sorted((REPO / "bench" / ".venv").glob("lib/python3*/site-packages/rotel/rotel-agent"))
    for name in ("rotel-agent", "rotel"):
        found = shutil.which(name)
        if found:
            candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise HarnessError(
        "rotel-agent not found; install it with "
        "`python3 -m venv bench/.venv && bench/.venv/bin/pip install rotel` "
        "or pass --rotel PATH"
    )


def binary_version(path: Path, *args: str) -> str:
    try:
        out = subprocess.run(
            [str(path), *args], capture_output=True, text=True, timeout=10, env=clean_env()
        )
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (subprocess.SubprocessError, OSError, IndexError):
        return "unknown"


def clean_env() -> dict[str, str]:
    """The caller's environment minus anything that could reconfigure a SUT."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ROTEL_", "OTEL_", "WEIR_")) and k not in ("RUST_LOG",)
    }
    env["RUST_LOG"] = "warn"
    return env


# Niceness applied to every benchmark process (--nice).
NICE = 0


def child_setup(cpus: set[int] | None):
    """A preexec_fn applying --pin CPU affinity and --nice, or None."""
    if not cpus and NICE == 0:
        return None

    def setup() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        if NICE:
            os.setpriority(os.PRIO_PROCESS, 0, NICE)

    return setup


class Proc:
    """A child process whose output goes to a log file."""

    def __init__(
        self, name: str, argv: list[str], logdir: Path, cpus: set[int] | None,
        env: dict[str, str] | None = None,
    ):
        self.name = name
        self.argv = argv
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        preexec = child_setup(cpus)
        try:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env={**clean_env(), **(env or {})},
                preexec_fn=preexec,
                start_new_session=True,
            )
        except OSError as e:
            self._log.close()
            raise HarnessError(f"cannot start {name}: {e}") from e
        self.pid = self.popen.pid

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise HarnessError(f"{self.name} exited with {code}; log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not exit after SIGTERM; killing")
                self.popen.kill()
                self.popen.wait(timeout=5)
        self._log.close()


def wait_until(what: str, proc: Proc, check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc.check_alive()
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise HarnessError(f"timed out waiting for {what}; log:\n{proc.log_tail()}")


def tcp_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except urllib.error.HTTPError:
        return False


# --------------------------------------------------------------------------
# Sink and generator


class Sink:
    def __init__(self, loadgen: Path, logdir: Path, cpus: set[int] | None):
        self.port = free_port()
        self.stats_port = free_port()
        self.proc = Proc(
            "sink",
            [
                str(loadgen),
                "--threads",
                "1",
                "sink",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--stats-listen",
                f"127.0.0.1:{self.stats_port}",
            ],
            logdir,
            cpus,
        )
        wait_until("sink", self.proc, lambda: tcp_open(self.stats_port) and tcp_open(self.port))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def counts(self) -> dict[str, int]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.stats_port}/count", timeout=5
            ) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError) as e:
            self.proc.check_alive()
            raise HarnessError(f"cannot read sink counters: {e}") from e


@dataclasses.dataclass
class Snapshot:
    t: float
    spans: int
    requests: int
    compressed: int
    sut_cpu: float
    gen_cpu: float | None
    sink_cpu: float
    busy: float


def snapshot(sink: Sink, sut: Proc, gen_pid: int | None) -> Snapshot:
    counts = sink.counts()
    return Snapshot(
        t=time.monotonic(),
        spans=counts["spans"],
        requests=counts["requests"],
        compressed=counts["compressed"],
        sut_cpu=tree_cpu_seconds(sut.pid),
        gen_cpu=cpu_seconds_or_none(gen_pid),
        sink_cpu=tree_cpu_seconds(sink.proc.pid),
        busy=system_busy_seconds(),
    )


# --------------------------------------------------------------------------
# Systems under test


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise HarnessError(f"cannot write {value!r} as TOML")


def dump_toml(doc: dict) -> str:
    """Writes nested dicts as [a.b] tables and innermost dicts inline."""
    lines: list[str] = []

    def table(path: list[str], body: dict) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in body.items() if isinstance(v, dict)}
        inline = {k: v for k, v in tables.items() if not any(isinstance(x, dict) for x in v.values())}
        if path and (scalars or inline or not tables):
            lines.append(f"\n[{'.'.join(toml_key(p) for p in path)}]")
        for k, v in scalars.items():
            lines.append(f"{toml_key(k)} = {toml_value(v)}")
        if path:
            for k, v in inline.items():
                lines.append(f"{toml_key(k)} = {toml_value(v)}")
        for k, v in tables.items():
            if not path or k not in inline:
                table([*path, k], v)

    table([], doc)
    return "\n".join(lines).lstrip() + "\n"


class System:
    name = "?"
    label = "?"

    def start(self, logdir: Path, sink: Sink, cpus: set[int] | None) -> tuple[Proc, str]:
        """Starts the SUT; returns it and the OTLP/gRPC endpoint for traces."""
        raise NotImplementedError


class Weir(System):
    """weir as a pass-through forwarder, or (chain = "wasm" | "native") running
    the four reference plugins of CHAIN as Wasm components or compiled in;
    "decoded" is the Wasm chain with plugins reading a fully decoded batch
    (WEIR_PLUGIN_BATCH=decoded: the form before the wire view), "noop" one Wasm
    plugin that returns at once (tests/plugins/misbehave, mode noop)."""

    def __init__(
        self, binary: Path, template: Path | None, compression: str,
        chain: str | None = None, plugins_dir: Path | None = None, disk: str | None = None,
    ):
        self.binary = binary
        self.template = template
        self.compression = compression
        self.chain = chain
        self.plugins_dir = plugins_dir
        self.disk = disk  # None (memory queue), "always" or "interval"
        self.queue_dir: Path | None = None
        base = {
            None: "weir", "wasm": "weir-chain", "native": "weir-native-chain",
            "decoded": "weir-chain-decoded", "noop": "weir-noop",
        }[chain]
        if disk:
            base = {"always": "weir-disk", "interval": "weir-disk-group"}[disk]
        self.name = base if compression == "none" else f"{base}-{compression}"
        if disk:
            self.label = f"weir disk/{disk} ({compression})"
        elif chain is None:
            self.label = f"weir ({compression})"
        else:
            self.label = f"weir chain/{chain} ({compression})"

    def plugins(self) -> dict:
        if self.chain == "noop":
            wasm = (self.plugins_dir or Path()) / "weir_test_plugin_misbehave.wasm"
            if not wasm.is_file():
                raise HarnessError(f"{wasm} not found; build the plugins with plugins/build.sh")
            return {"noop": {"path": str(wasm), "on_error": "pass", "config": {"mode": "noop"}}}
        out = {}
        for name in CHAIN:
            with open(REPO / "bench" / "configs" / f"{name}.toml", "rb") as f:
                config = tomllib.load(f)
            if self.chain == "native":
                source = {"builtin": name}
            else:
                wasm = (self.plugins_dir or Path()) / f"weir_plugin_{name}.wasm"
                if not wasm.is_file():
                    raise HarnessError(f"{wasm} not found; build the plugins with plugins/build.sh")
                source = {"path": str(wasm)}
            out[name] = {**source, "on_error": "pass", "config": config}
        return out

    def config(self, sink: Sink) -> tuple[dict, int, int]:
        if self.template and self.template.exists():
            with open(self.template, "rb") as f:
                doc = tomllib.load(f)
        else:
            doc = json.loads(json.dumps(FALLBACK_WEIR_CONFIG))
        admin_port = free_port()
        doc.setdefault("admin", {})["address"] = f"127.0.0.1:{admin_port}"
        receivers = doc.get("receivers", {})
        for receiver in receivers.values():
            if receiver.get("type") == "otlp":
                receiver["grpc"] = {**receiver.get("grpc", {}), "address": f"127.0.0.1:{free_port()}"}
                if "http" in receiver:
                    receiver["http"] = {**receiver["http"], "address": f"127.0.0.1:{free_port()}"}
        exporters = doc.get("exporters", {})
        for exporter in exporters.values():
            if exporter.get("type") == "otlp_grpc":
                exporter["endpoint"] = sink.endpoint
                exporter["compression"] = self.compression
                if self.disk and self.queue_dir:
                    exporter["queue"] = {
                        **exporter.get("queue", {}),
                        "type": "disk",
                        "directory": str(self.queue_dir),
                        "fsync": self.disk,
                        "fsync_interval": "10ms",
                    }
        if self.chain == "noop":
            doc["plugins"] = self.plugins()
            doc["pipelines"]["traces"]["plugins"] = ["noop"]
        elif self.chain:
            doc["plugins"] = self.plugins()
            traces = doc["pipelines"]["traces"]
            traces["plugins"] = list(CHAIN)
            traces["routes"] = {"payments": list(traces["exporters"])}
        try:
            traces_receiver = receivers[doc["pipelines"]["traces"]["receivers"][0]]
            grpc_port = int(traces_receiver["grpc"]["address"].rsplit(":", 1)[1])
        except (KeyError, IndexError, ValueError) as e:
            raise HarnessError(f"weir config template has no OTLP traces pipeline: {e}") from e
        return doc, admin_port, grpc_port

    def start(self, logdir, sink, cpus):
        if self.disk:
            # A fresh queue per start, on the same filesystem as the logs.
            self.queue_dir = logdir / f"{self.name}-queue-{time.monotonic_ns()}"
        doc, admin_port, grpc_port = self.config(sink)
        if self.chain:
            data_dir = logdir / "weir-data"
            data_dir.mkdir(mode=0o700, exist_ok=True)
            doc.setdefault("service", {})["data_dir"] = str(data_dir)
        path = logdir / f"{self.name}.toml"
        path.write_text(dump_toml(doc))
        check = subprocess.run(
            [str(self.binary), "validate", "--config", str(path)],
            capture_output=True, text=True, env=clean_env(), timeout=30,
        )
        if check.returncode != 0:
            hint = ""
            if self.chain == "native":
                hint = ("\n(the native chain needs a weir built with "
                        "`cargo build --release -p weir --features native-plugins`)")
            raise HarnessError(
                f"weir rejected the generated config {path}:\n{check.stdout}{check.stderr}{hint}"
            )
        env = {"WEIR_PLUGIN_BATCH": "decoded"} if self.chain == "decoded" else None
        ready = f"http://127.0.0.1:{admin_port}/ready"
        warmed = logdir / f"{self.name}.cache-warm"
        if self.chain and not warmed.exists():
            # As deployed (service.data_dir set): plugins compile on the first
            # start and load from the compiled cache after. Warm the cache
            # first, so every measured start is a restart.
            warm = Proc(f"{self.name}-warmup", [str(self.binary), "run", "--config", str(path)],
                        logdir, cpus, env)
            wait_until(f"{self.name} warm-up {ready}", warm, lambda: http_ok(ready))
            warm.stop()
            warmed.touch()
        proc = Proc(self.name, [str(self.binary), "run", "--config", str(path)], logdir, cpus, env)
        wait_until(f"{self.name} {ready}", proc, lambda: http_ok(ready))
        wait_until(f"{self.name} gRPC port", proc, lambda: tcp_open(grpc_port))
        return proc, f"http://127.0.0.1:{grpc_port}"


class Rotel(System):
    """Rotel as a pass-through forwarder, or with a Python trace processor."""

    def __init__(self, binary: Path, processor: Path | None = None):
        self.binary = binary
        self.processor = processor
        self.name = "rotel" if processor is None else "rotel-chain"
        self.label = "Rotel" if processor is None else "Rotel chain/python"

    def start(self, logdir, sink, cpus):
        grpc_port, http_port = free_port(), free_port()
        argv = [
            str(self.binary),
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{grpc_port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{http_port}",
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            sink.endpoint,
            "--otlp-exporter-protocol",
            "grpc",
            "--otlp-exporter-compression",
            "none",
            "--pid-file",
            str(logdir / "rotel.pid"),
            "--log-file",
            str(logdir / "rotel-daemon.log"),
        ]
        if self.processor is not None:
            argv += ["--otlp-with-trace-processor", str(self.processor)]
        proc = Proc(self.name, argv, logdir, cpus)
        wait_until(f"{self.name} gRPC port {grpc_port}", proc, lambda: tcp_open(grpc_port))
        return proc, f"http://127.0.0.1:{grpc_port}"


# --------------------------------------------------------------------------
# Phases


@dataclasses.dataclass
class PhaseResult:
    system: str
    phase: str
    offered: int  # spans/s, 0 = unlimited
    accepted_rate: float  # spans/s acknowledged to the generator
    delivered_rate: float  # spans/s arriving at the sink, steady-state window
    sut_cores: float  # SUT CPU seconds per second, steady-state window
    cpu_per_mspans: float  # SUT CPU seconds per million delivered spans, whole run
    cpu_per_m_in: float  # SUT CPU seconds per million accepted (received) spans, whole run
    sent_spans: int
    delivered_spans: int
    failed_requests: int
    gen_cores: float | None
    sink_cores: float
    other_cores: float
    compressed_share: float
    peak_rss_mib: float | None
    errors: list[str]


def run_phase(
    args, system: System, sut: Proc, endpoint: str, sink: Sink, loadgen: Path, logdir: Path,
    phase: str, rate: int, cpus: set[int] | None,
) -> PhaseResult:
    duration = args.duration
    argv = [
        str(loadgen),
        "--threads",
        str(args.loadgen_threads),
        "traces",
        "--endpoint",
        endpoint,
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--spans-per-request",
        str(args.spans_per_request),
        "--concurrency",
        str(args.concurrency),
        "--connections",
        str(args.connections),
        "--secrets-every",
        str(args.secrets_every),
        "--json",
    ]
    if args.wait_quiet > 0:
        wait_for_quiet(args.wait_quiet)
    log(f"{system.name}: {phase} phase, offered {'max' if rate == 0 else f'{rate} spans/s'}, {duration:g}s")
    start = snapshot(sink, sut, None)
    gen_log = open(logdir / f"loadgen-{system.name}-{phase}.log", "wb")
    preexec = child_setup(cpus)
    try:
        gen = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=gen_log, env=clean_env(), preexec_fn=preexec
        )
    except OSError as e:
        gen_log.close()
        raise HarnessError(f"cannot start weir-loadgen: {e}") from e
    try:
        t0 = time.monotonic()
        warmup = min(max(1.0, 0.15 * duration), 3.0)
        time.sleep(max(0.0, t0 + warmup - time.monotonic()))
        a = snapshot(sink, sut, gen.pid)
        # Sample the sink's count every 100 ms: exports arrive in batches of
        # thousands of spans, so a least-squares slope over many samples is
        # a much steadier rate than (last - first) / time.
        samples = [(a.t, a.spans)]
        while time.monotonic() < t0 + duration - 0.35:
            time.sleep(0.1)
            samples.append((time.monotonic(), sink.counts()["spans"]))
        b = snapshot(sink, sut, gen.pid)
        samples.append((b.t, b.spans))
        sut.check_alive()
        try:
            out, _ = gen.communicate(timeout=duration + 60)
        except subprocess.TimeoutExpired as e:
            raise HarnessError("weir-loadgen traces did not finish") from e
    finally:
        if gen.poll() is None:
            gen.kill()
            gen.wait()
        gen_log.close()
    gen_log_text = (logdir / f"loadgen-{system.name}-{phase}.log").read_text(errors="replace")
    if gen.returncode != 0:
        raise HarnessError(f"weir-loadgen traces exited with {gen.returncode}:\n{gen_log_text}")
    try:
        summary = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        raise HarnessError(f"unexpected weir-loadgen output {out!r}") from e
    errors = [f"{e['count']} x {e['error']}" for e in summary.get("errors", [])]

    # Drain: wait until everything acknowledged has reached the sink, or the
    # count stops moving (a SUT may legitimately drop data).
    expected = start.spans + summary["ok_spans"]
    last, last_change = start.spans, time.monotonic()
    deadline = time.monotonic() + args.drain_timeout
    while time.monotonic() < deadline:
        spans = sink.counts()["spans"]
        if spans != last:
            last, last_change = spans, time.monotonic()
        if spans >= expected or time.monotonic() - last_change > 2.0:
            break
        time.sleep(0.1)
    end = snapshot(sink, sut, None)
    sut.check_alive()

    window = b.t - a.t
    window_spans = b.spans - a.spans
    delivered = end.spans - start.spans
    tracked = (b.sut_cpu - a.sut_cpu) + (b.sink_cpu - a.sink_cpu)
    gen_cores = None
    if a.gen_cpu is not None and b.gen_cpu is not None:
        gen_cores = (b.gen_cpu - a.gen_cpu) / window
        tracked += b.gen_cpu - a.gen_cpu
    requests = end.requests - start.requests
    return PhaseResult(
        system=system.label,
        phase=phase,
        offered=rate,
        accepted_rate=summary["ok_spans"] / summary["elapsed_secs"],
        delivered_rate=slope(samples) if len(samples) > 10 else window_spans / window,
        sut_cores=(b.sut_cpu - a.sut_cpu) / window,
        cpu_per_mspans=(end.sut_cpu - start.sut_cpu) / delivered * 1e6 if delivered else float("nan"),
        cpu_per_m_in=(
            (end.sut_cpu - start.sut_cpu) / summary["ok_spans"] * 1e6 if summary["ok_spans"] else float("nan")
        ),
        sent_spans=summary["ok_spans"],
        delivered_spans=delivered,
        failed_requests=summary["failed_requests"],
        gen_cores=gen_cores,
        sink_cores=(b.sink_cpu - a.sink_cpu) / window,
        other_cores=max(0.0, ((b.busy - a.busy) - tracked) / window),
        compressed_share=(end.compressed - start.compressed) / requests if requests else 0.0,
        peak_rss_mib=peak_rss_mib(sut.pid),
        errors=errors,
    )


def slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of (t, count) points: a rate per second."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_c = sum(c for _, c in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (c - mean_c) for t, c in points)
    return cov / var if var else 0.0


# --------------------------------------------------------------------------
# Report


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}"


def background_cores(seconds: float = 1.0) -> float:
    """Cores busy on the machine while the benchmark itself is idle."""
    busy, t = system_busy_seconds(), time.monotonic()
    time.sleep(seconds)
    return (system_busy_seconds() - busy) / (time.monotonic() - t)


def wait_for_quiet(limit: float, threshold: float = 0.15) -> None:
    """Waits (up to `limit` seconds) until other processes leave the CPUs idle."""
    deadline = time.monotonic() + limit
    waited = False
    while True:
        busy = background_cores(2.0)
        if busy <= threshold:
            if waited:
                log(f"machine quiet ({busy:.2f} cores busy); continuing")
            return
        if time.monotonic() >= deadline:
            log(f"warning: still {busy:.2f} cores busy after waiting {limit:g}s; continuing anyway")
            return
        if not waited:
            log(f"{busy:.2f} cores busy with other work; waiting up to {limit:g}s for quiet")
            waited = True


def aggregate(runs: list[PhaseResult]) -> list[PhaseResult]:
    """Per (system, phase), the median of each measurement over repetitions."""
    groups: dict[tuple[str, str], list[PhaseResult]] = {}
    for r in runs:
        groups.setdefault((r.system, r.phase), []).append(r)
    out = []
    for group in groups.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        merged = {}
        for field in dataclasses.fields(PhaseResult):
            values = [getattr(r, field.name) for r in group]
            if field.name == "errors":
                merged[field.name] = list(dict.fromkeys(e for v in values for e in v))
            elif isinstance(values[0], str):
                merged[field.name] = values[0]
            elif any(v is None for v in values):
                merged[field.name] = None
            elif field.name == "peak_rss_mib":
                merged[field.name] = max(values)
            else:
                merged[field.name] = statistics.median(values)
        out.append(PhaseResult(**merged))
    return out


def print_report(
    results: list[PhaseResult], runs: list[PhaseResult], args, versions: dict[str, str]
) -> None:
    print()
    print(f"OTLP/gRPC traces, {os.cpu_count()} CPUs, {args.duration:g}s per phase, "
          f"{args.spans_per_request} spans/request, concurrency {args.concurrency} "
          f"over {args.connections} connections"
          + (f", a secret in 1 of {args.secrets_every} spans" if args.secrets_every else "")
          + (f", median of {args.repeat} repetitions" if args.repeat > 1 else ""))
    for name, version in versions.items():
        print(f"  {name}: {version}")
    header = (
        f"{'system':<26} {'phase':<5} {'offered/s':>9} {'accepted/s':>10} {'delivered/s':>11} "
        f"{'SUT cores':>9} {'CPU-s/M':>8} {'CPU-s/M in':>10} {'lost':>7} {'fail req':>8} "
        f"{'gen':>5} {'sink':>5} {'other':>5} {'gzip':>5} {'RSS MiB':>7}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in results:
        lost = round(r.sent_spans - r.delivered_spans)
        print(
            f"{r.system:<26} {r.phase:<5} {('max' if r.offered == 0 else fmt_rate(r.offered)):>9} "
            f"{fmt_rate(r.accepted_rate):>10} {fmt_rate(r.delivered_rate):>11} "
            f"{r.sut_cores:>9.2f} {r.cpu_per_mspans:>8.2f} {r.cpu_per_m_in:>10.2f} {lost:>7} "
            f"{round(r.failed_requests):>8} "
            f"{(f'{r.gen_cores:.2f}' if r.gen_cores is not None else '-'):>5} "
            f"{r.sink_cores:>5.2f} {r.other_cores:>5.2f} {r.compressed_share:>5.0%} "
            f"{(f'{r.peak_rss_mib:.0f}' if r.peak_rss_mib else '-'):>7}"
        )
    if args.repeat > 1:
        print()
        for r in results:
            group = [x for x in runs if (x.system, x.phase) == (r.system, r.phase)]
            rates = [x.delivered_rate for x in group]
            cpus = [x.cpu_per_m_in for x in group]
            print(
                f"spread {r.system} {r.phase}: delivered/s {fmt_rate(min(rates))}..{fmt_rate(max(rates))}, "
                f"CPU-s/M in {min(cpus):.2f}..{max(cpus):.2f}"
            )
    print()

    by_key = {(r.system, r.phase): r for r in results}
    rotel = "Rotel"
    weirs = sorted({r.system for r in results if r.system.startswith("weir (")})
    for weir in weirs:
        fixed_w, fixed_r = by_key.get((weir, "fixed")), by_key.get((rotel, "fixed"))
        if fixed_w and fixed_r:
            ratio = fixed_w.cpu_per_mspans / fixed_r.cpu_per_mspans
            verdict = "met" if ratio <= TARGETS["cpu_ratio_max"] else "NOT met"
            print(
                f"{weir} / Rotel CPU per span at {fmt_rate(args.rate)} spans/s: {ratio:.2f} "
                f"(target <= {TARGETS['cpu_ratio_max']:.2f}: {verdict})"
            )
        max_w, max_r = by_key.get((weir, "max")), by_key.get((rotel, "max"))
        if max_w and max_r:
            ratio = max_w.delivered_rate / max_r.delivered_rate
            verdict = "met" if ratio >= TARGETS["throughput_ratio_min"] else "NOT met"
            print(
                f"{weir} / Rotel max throughput: {ratio:.2f} "
                f"(target >= {TARGETS['throughput_ratio_min']:.2f}: {verdict})"
            )
            cpu = max_w.cpu_per_mspans / max_r.cpu_per_mspans
            print(f"{weir} / Rotel CPU per span at max throughput: {cpu:.2f}")
    print_chain_ratios(by_key, args)

    notes = []
    for r in results:
        # Chain systems sample about half away: judge them by what they accepted.
        sustained = r.accepted_rate if "chain" in r.system else r.delivered_rate
        if r.phase == "fixed" and sustained < 0.95 * r.offered:
            notes.append(
                f"{r.system} did not sustain the offered {fmt_rate(r.offered)} spans/s "
                f"({fmt_rate(sustained)}/s): lower --rate for a like-for-like CPU comparison"
            )
        if r.other_cores > 0.15:
            notes.append(
                f"{r.system} {r.phase}: {r.other_cores:.2f} cores used by other processes during "
                "the window; results are noisy"
            )
        if r.errors:
            notes.append(f"{r.system} {r.phase}: generator errors: " + "; ".join(r.errors[:3]))
        if r.system.startswith("Rotel") and r.compressed_share > 0:
            notes.append(
                "Rotel sent gzip-compressed exports although --otlp-exporter-compression none was "
                "given (its gRPC exporter ignores `none`); compare against weir (gzip) for equal work"
            )
    for note in dict.fromkeys(notes):
        print(f"note: {note}")
    print(
        "\ncolumns: offered = target load; accepted = spans acknowledged to the generator per "
        "second; delivered = spans/s reaching the sink in the steady-state window; SUT cores = "
        "CPU-seconds per second of the system under test in that window; CPU-s/M = SUT CPU-seconds "
        "per million spans delivered over the whole phase (incl. drain); CPU-s/M in = the same per "
        "million spans received (the chain samples half away, so compare chains on this); lost = "
        "acknowledged but never delivered (expected for the chain systems, which sample); gen/sink/other = cores used by the generator, the sink and everything "
        "else; gzip = share of exports reaching the sink compressed; RSS = SUT peak resident memory."
    )


# --------------------------------------------------------------------------


def print_chain_ratios(by_key: dict, args) -> None:
    """Ratios between the plugin-chain systems, per span received."""
    def ratio(num: str, den: str, phase: str) -> float | None:
        a, b = by_key.get((num, phase)), by_key.get((den, phase))
        if a and b and b.cpu_per_m_in > 0:
            return a.cpu_per_m_in / b.cpu_per_m_in
        return None

    for comp in ("none", "gzip", "zstd"):
        wasm, native = f"weir chain/wasm ({comp})", f"weir chain/native ({comp})"
        for phase in ("fixed", "max"):
            r = ratio(wasm, native, phase)
            if r is not None:
                target = TARGETS["wasm_native_cpu_max"]
                verdict = "met" if r <= target else "NOT met"
                print(f"{wasm} / {native} CPU per span received, {phase}: {r:.2f} "
                      f"(target <= {target:.2f}: {verdict})")
        a, b = by_key.get((wasm, "max")), by_key.get((native, "max"))
        if a and b and b.accepted_rate > 0:
            print(f"{wasm} / {native} max accepted throughput: {a.accepted_rate / b.accepted_rate:.2f}")
        for phase in ("fixed", "max"):
            r = ratio("Rotel chain/python", wasm, phase)
            if r is not None:
                target = TARGETS["rotel_python_cpu_min"]
                verdict = "met" if r >= target else "NOT met"
                print(f"Rotel chain/python / {wasm} CPU per span received, {phase}: {r:.2f} "
                      f"(target >= {target:.1f}: {verdict})")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=20.0, help="seconds per phase (default 20)")
    p.add_argument("--rate", type=int, default=50000, help="fixed-phase offered load, spans/s (default 50000)")
    p.add_argument(
        "--systems",
        default="weir,weir-gzip,rotel",
        help="comma list of " + ", ".join(SYSTEMS) + " (default weir,weir-gzip,rotel); "
        "the chain systems run the four reference plugins (bench/configs/) as Wasm, compiled in "
        "(native), or as an equivalent Python processor in Rotel (bench/rotel_chain.py)",
    )
    p.add_argument("--phases", default="fixed,max", help="comma list of fixed, max (default both)")
    p.add_argument("--spans-per-request", type=int, default=100)
    p.add_argument(
        "--secrets-every", type=int, default=0, metavar="N",
        help="plant a secret (email, bearer JWT, card number, SQL) in 1 of N generated spans (default 0: none)",
    )
    p.add_argument("--concurrency", type=int, default=128, help="generator requests in flight (default 128)")
    p.add_argument("--connections", type=int, default=16, help="generator HTTP/2 connections (default 16)")
    p.add_argument("--loadgen-threads", type=int, default=1, help="generator tokio worker threads")
    p.add_argument("--repeat", type=int, default=1, help="repetitions, interleaved; report medians")
    p.add_argument("--drain-timeout", type=float, default=20.0)
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECS",
        help="before each phase, wait up to SECS for other processes to leave the CPUs idle",
    )
    p.add_argument(
        "--pin",
        action="store_true",
        help="pin the SUT to the last CPU and generator+sink to the others",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for the SUT, generator and sink, e.g. -15 to win over background "
        "builds on a shared machine (needs root)",
    )
    p.add_argument("--weir", help="weir binary (default target/release/weir)")
    p.add_argument("--loadgen", help="weir-loadgen binary (default target/release/weir-loadgen)")
    p.add_argument("--rotel", help="rotel-agent binary (default: from bench/.venv)")
    p.add_argument(
        "--plugins-dir",
        help="directory of the plugin components (default target/wasm32-wasip2/release)",
    )
    p.add_argument(
        "--weir-config-template",
        default=str(REPO / "examples" / "configs" / "passthrough.toml"),
        help="weir config whose ports/endpoints are rewritten (default examples/configs/passthrough.toml)",
    )
    p.add_argument("--json-out", help="also write the results as JSON to this file")
    p.add_argument("--keep-logs", action="store_true", help="keep the temporary log directory")
    args = p.parse_args()
    if args.duration < 4:
        p.error("--duration must be at least 4 seconds")
    if args.rate <= 0:
        p.error("--rate must be positive")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    systems_wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
    phases = [s.strip() for s in args.phases.split(",") if s.strip()]
    for s in systems_wanted:
        if s not in SYSTEMS:
            raise HarnessError(f"unknown system {s!r}; choose from {', '.join(SYSTEMS)}")
    for ph in phases:
        if ph not in ("fixed", "max"):
            raise HarnessError(f"unknown phase {ph!r}")

    loadgen = find_release_binary("weir-loadgen", args.loadgen)
    systems: list[System] = []
    versions: dict[str, str] = {}
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    plugins_dir = Path(args.plugins_dir) if args.plugins_dir else target / "wasm32-wasip2" / "release"
    for s in systems_wanted:
        if s.startswith("weir"):
            weir = find_release_binary("weir", args.weir)
            versions["weir"] = binary_version(weir, "--version")
            template = Path(args.weir_config_template) if args.weir_config_template else None
            compression = s.rsplit("-", 1)[1] if s.endswith(("-gzip", "-zstd")) else "none"
            chain = (
                "native" if "native-chain" in s
                else "decoded" if "chain-decoded" in s
                else "wasm" if "chain" in s
                else "noop" if s == "weir-noop"
                else None
            )
            disk = {"weir-disk": "always", "weir-disk-group": "interval"}.get(s)
            systems.append(Weir(weir, template, compression, chain, plugins_dir, disk))
        else:
            rotel = find_rotel(args.rotel)
            versions["rotel"] = f"{binary_version(rotel, '--version')} ({rotel})"
            processor = REPO / "bench" / "rotel_chain.py" if s == "rotel-chain" else None
            systems.append(Rotel(rotel, processor))

    global NICE
    if args.nice:
        try:
            # Probe with this process's own priority so failure shows up here,
            # not as an exec error in a child.
            current = os.getpriority(os.PRIO_PROCESS, 0)
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
            os.setpriority(os.PRIO_PROCESS, 0, current)
        except PermissionError as e:
            raise HarnessError(f"--nice {args.nice} needs CAP_SYS_NICE (run as root): {e}") from e
        NICE = args.nice

    sut_cpus = load_cpus = None
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise HarnessError("--pin needs at least 2 CPUs")
        sut_cpus, load_cpus = {cpus[-1]}, set(cpus[:-1])

    logdir = Path(tempfile.mkdtemp(prefix="weir-passthrough-"))
    log(f"logs and generated configs in {logdir}")
    background = background_cores()
    if background > 0.2:
        log(f"warning: {background:.2f} cores busy before the benchmark started; results will be noisy")
    runs: list[PhaseResult] = []
    failed = False
    sink = Sink(loadgen, logdir, load_cpus)
    try:
        for rep in range(args.repeat):
            for system in systems:
                if args.repeat > 1:
                    log(f"repetition {rep + 1}/{args.repeat}")
                sut, endpoint = system.start(logdir, sink, sut_cpus)
                try:
                    for phase in phases:
                        rate = args.rate if phase == "fixed" else 0
                        result = run_phase(
                            args, system, sut, endpoint, sink, loadgen, logdir, phase, rate, load_cpus
                        )
                        runs.append(result)
                        log(
                            f"{system.name} {phase}: delivered {fmt_rate(result.delivered_rate)} spans/s, "
                            f"{result.sut_cores:.2f} cores, {result.cpu_per_mspans:.2f} CPU-s/M spans"
                        )
                    peers = non_loopback_peers(sut.pid)
                    if peers:
                        log(f"warning: {system.name} has non-loopback connections: {sorted(peers)}")
                finally:
                    sut.stop()
    except HarnessError:
        failed = True
        raise
    finally:
        sink.proc.stop()
        if args.keep_logs or failed:
            log(f"logs kept in {logdir}")
        else:
            shutil.rmtree(logdir, ignore_errors=True)

    results = aggregate(runs)
    print_report(results, runs, args, versions)
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps([dataclasses.asdict(r) for r in runs], indent=2) + "\n"
        )
    return 0


def _terminate(signum, _frame) -> None:
    # Unwind through the `finally` blocks so child processes get stopped.
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.exit(main())
    except HarnessError as e:
        log(f"error: {e}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
