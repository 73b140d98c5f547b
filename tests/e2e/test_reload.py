"""Live reconfiguration: the config (and plugin files) in a directory updated the
way kubelet updates a ConfigMap volume, reloaded under load with zero loss.

Every test starts the real weir binary on loopback ports. The config directory
is written by `ConfigMapDir`, which repeats kubelet's AtomicWriter sequence:
the files go into a new `..<timestamp>` directory, a `..data_tmp` symlink to it
is renamed over `..data`, `weir.toml` is a symlink to `..data/weir.toml`, and
the old directory is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import requests

from otlp_helpers import (
    LOOPBACK,
    TRACE_EXPORT_METHOD,
    OtlpSink,
    TrackingSender,
    Weir,
    attrs_to_dict,
    free_port,
    plugin_wasm,
    toml_value,
    wait_until,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

# Span names carry both markers; the redaction rule in force masks one of them.
MARKERS = ("alpha", "beta")
NAME_PREFIX = "alpha-beta"


class ConfigMapDir:
    """A directory updated exactly like kubelet's AtomicWriter updates a ConfigMap volume."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._n = 0
        self._current: str | None = None

    def path(self, name: str) -> Path:
        return self.root / name

    def write(self, files: dict[str, bytes]) -> float:
        """Publishes `files` as the new content; returns when (monotonic) `..data` was swapped."""
        self._n += 1
        stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{self._n:09d}"
        new = self.root / stamp
        new.mkdir()
        for name, data in files.items():
            (new / name).write_bytes(data)
        tmp = self.root / "..data_tmp"
        os.symlink(stamp, tmp)
        os.rename(tmp, self.root / "..data")
        swapped = time.monotonic()
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                os.symlink(f"..data/{name}", link)
        if self._current is not None:
            shutil.rmtree(self.root / self._current)
        self._current = stamp
        return swapped


def with_custom_section(wasm: bytes, label: str) -> bytes:
    """The same component with a custom section appended: a new version of the
    plugin (different bytes and sha256) that behaves the same."""
    name = b"weir-e2e-version"
    payload = bytes([len(name)]) + name + label.encode()
    size, n = b"", len(payload)
    while True:
        byte = n & 0x7F
        n >>= 7
        size += bytes([byte | (0x80 if n else 0)])
        if not n:
            break
    return wasm + b"\x00" + size + payload


@dataclass
class State:
    """What one version of the test config says."""

    admin_port: int
    grpc_port: int
    cache_dir: Path
    redact_path: Path
    rule: str = "alpha"
    exporters: dict[str, str] | None = None  # name -> endpoint
    pipeline_exporters: tuple[str, ...] = ("a",)
    broken: str | None = None  # "undefined-exporter" or "toml"
    comment: str = ""

    def render(self) -> bytes:
        lines = [
            f"# {self.comment}",
            "[service]",
            'shutdown_grace = "5s"',
            f"plugin_cache_dir = {toml_value(str(self.cache_dir))}",
            "",
            "[service.reload]",
            'debounce = "50ms"',
            'poll_interval = "2s"',
            "",
            "[admin]",
            f'address = "{LOOPBACK}:{self.admin_port}"',
            "",
            "[receivers.otlp]",
            'type = "otlp"',
            f'grpc = {{ address = "{LOOPBACK}:{self.grpc_port}" }}',
            "",
            "[plugins.redact]",
            f"path = {toml_value(str(self.redact_path))}",
            "",
            "[plugins.redact.config]",
            "detectors = []",
            f"patterns = [{{ regex = {toml_value(self.rule)} }}]",
        ]
        for name, endpoint in (self.exporters or {}).items():
            lines += [
                "",
                f"[exporters.{name}]",
                'type = "otlp_grpc"',
                f"endpoint = {toml_value(endpoint)}",
                'batch = { max_items = 2048, timeout = "20ms" }',
                'retry = { initial_interval = "50ms", max_interval = "500ms", max_elapsed = "60s" }',
            ]
        exporters = list(self.pipeline_exporters)
        if self.broken == "undefined-exporter":
            exporters.append("nowhere")
        lines += [
            "",
            "[pipelines.traces]",
            'receivers = ["otlp"]',
            'plugins = ["redact"]',
            f"exporters = {toml_value(exporters)}",
        ]
        text = "\n".join(lines) + "\n"
        if self.broken == "toml":
            text += "[pipelines.traces\n"
        return text.encode()


@dataclass
class Sent:
    sent_at: float
    acked_at: float
    ids: tuple
    status: str
    attempts: int


class LoadSender:
    """Sends requests of `spans` spans at `rate` requests/s to `self.target`
    (which a test may move), retrying refusals like an SDK, and records when
    each was sent and acknowledged."""

    RETRY_ON = {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}

    def __init__(self, target: str, *, rate: float = 40, spans: int = 10):
        self.target = target
        self.rate = rate
        self.builder = TrackingSender(None, spans_per_request=spans, name_prefix=NAME_PREFIX)
        self.records: list[Sent] = []
        self.refusals: dict[str, int] = {}
        self._channels: dict[str, grpc.Channel] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.errors: list[BaseException] = []

    def _call(self, target: str):
        ch = self._channels.get(target)
        if ch is None:
            ch = self._channels[target] = grpc.insecure_channel(target, options=[
                ("grpc.enable_retries", 0),
                ("grpc.initial_reconnect_backoff_ms", 50),
                ("grpc.min_reconnect_backoff_ms", 50),
                ("grpc.max_reconnect_backoff_ms", 200),
            ])
        return ch.unary_unary(TRACE_EXPORT_METHOD, request_serializer=lambda b: b,
                              response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)

    def send_one(self) -> Sent:
        body, ids = self.builder.build()
        sent_at = time.monotonic()
        attempts, status = 0, ""
        while attempts < 200:
            attempts += 1
            try:
                self._call(self.target)(body, timeout=5)
                status = "OK"
                break
            except grpc.RpcError as e:
                status = e.code().name
                self.refusals[status] = self.refusals.get(status, 0) + 1
                if status not in self.RETRY_ON:
                    break
                time.sleep(0.05)
        record = Sent(sent_at, time.monotonic(), ids, status, attempts)
        self.records.append(record)
        return record

    def _loop(self):
        try:
            next_at = time.monotonic()
            while not self._stop.is_set():
                self.send_one()
                next_at += 1 / self.rate
                time.sleep(max(0.0, next_at - time.monotonic()))
        except BaseException as e:  # reported by stop()
            self.errors.append(e)

    def start(self) -> "LoadSender":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        for ch in self._channels.values():
            ch.close()
        assert not self.errors, self.errors

    def acknowledged_ids(self) -> set[bytes]:
        return {i for r in self.records if r.status == "OK" for i in r.ids}


def status(weir: Weir) -> dict:
    return requests.get(weir.admin_url("/status"), timeout=5).json()


def wait_for_reload(weir: Weir, before: dict, result: str, timeout: float = 15) -> dict:
    """Waits until /status counts one more reload with `result`; returns /status."""
    def done():
        s = status(weir)
        return s if s["reloads"][result] > before["reloads"][result] else None

    return wait_until(done, timeout, lambda: f"a {result} reload; /status: {status(weir)}\n{weir.stderr()[-3000:]}")


def start_weir(tmp_path: Path, cm: ConfigMapDir, state: State, files: dict[str, bytes]) -> Weir:
    cm.write({"weir.toml": state.render(), **files})
    w = Weir(tmp_path, "weir", None, state.admin_port, state.grpc_port, None,
             args=["run", "--config", str(cm.path("weir.toml"))])
    return w.start()


def rule_seen(span) -> str:
    """Which marker the redaction rule masked in this span's name."""
    name = span.span.name
    for m in MARKERS:
        if m not in name:
            return m
    return "none"


def test_thirty_reloads_from_a_configmap_under_load_lose_and_duplicate_nothing(tmp_path, plugin_cache_dir):
    sink_a, sink_b = OtlpSink(), OtlpSink()
    sink_a.start()
    sink_b.start()
    cm = ConfigMapDir(tmp_path / "configmap")
    redact = plugin_wasm("redact").read_bytes()
    state = State(admin_port=free_port(), grpc_port=free_port(), cache_dir=plugin_cache_dir,
                  redact_path=cm.path("redact.wasm"), exporters={"a": sink_a.endpoint})
    files = {"redact.wasm": redact}
    weir = start_weir(tmp_path, cm, state, files)
    try:
        reload_under_load(weir, cm, state, files, redact, sink_a, sink_b)
    finally:
        weir.terminate()
        sink_a.stop()
        sink_b.stop()


def reload_under_load(weir, cm, state, files, redact, sink_a, sink_b):
    load = LoadSender(f"{LOOPBACK}:{state.grpc_port}").start()
    # (written at, observed done at, rule in force after) per write
    epochs: list[tuple[float, float, str]] = [(0.0, 0.0, "alpha")]
    outcomes: dict[str, int] = {"success": 0, "failure": 0, "unchanged": 0}
    sha_before = sha_after = None

    last_good = [state.render()]

    def publish(result: str, n: int) -> dict:
        before = status(weir)
        state.comment = f"write {n}"
        text = state.render()
        written = cm.write({"weir.toml": text, **files})
        if result == "success":
            last_good[0] = text
        after = wait_for_reload(weir, before, result)
        outcomes[result] += 1
        epochs.append((written, time.monotonic(), state.rule))
        return after

    def flip(n: int) -> dict:
        state.rule = "beta" if state.rule == "alpha" else "alpha"
        return publish("success", n)

    try:
        time.sleep(0.5)
        n = 0
        for _ in range(8):
            n += 1
            flip(n)
            time.sleep(0.15)

        # An invalid config is refused; the old chain keeps serving.
        n += 1
        state.broken = "undefined-exporter"
        s = publish("failure", n)
        err = s["last_reload_error"]["error"]
        assert err["key"].startswith("pipelines.traces"), s
        assert "nowhere" in err["message"], s
        state.broken = None
        time.sleep(0.2)

        # The running content rewritten as it is: not reloaded, counted as unchanged.
        before = status(weir)
        written = cm.write({"weir.toml": last_good[0], **files})
        s = wait_for_reload(weir, before, "unchanged")
        assert s["reloads"]["success"] == before["reloads"]["success"], s
        outcomes["unchanged"] += 1
        epochs.append((written, time.monotonic(), state.rule))
        n += 1

        for _ in range(4):
            n += 1
            flip(n)
            time.sleep(0.15)

        # A new version of the plugin: its sha256 changes on /status.
        sha_before = {p["name"]: p["sha256"] for p in status(weir)["plugins"]}["redact"]
        files = {"redact.wasm": with_custom_section(redact, "v2")}
        n += 1
        s = publish("success", n)
        sha_after = {p["name"]: p["sha256"] for p in s["plugins"]}["redact"]
        assert sha_after != sha_before and s["last_reload"]["changed"] == ["plugins.redact"], s

        # An exporter added ...
        state.exporters = {"a": sink_a.endpoint, "b": sink_b.endpoint}
        state.pipeline_exporters = ("a", "b")
        n += 1
        s = publish("success", n)
        assert s["last_reload"]["added"] == ["exporters.b"], s
        for _ in range(3):
            n += 1
            flip(n)
            time.sleep(0.15)
        # ... and another removed.
        state.exporters = {"b": sink_b.endpoint}
        state.pipeline_exporters = ("b",)
        n += 1
        s = publish("success", n)
        assert s["last_reload"]["removed"] == ["exporters.a"], s

        # The receiver moves to a new port: bound before the old one stops.
        old_port, state.grpc_port = state.grpc_port, free_port()
        n += 1
        s = publish("success", n)
        assert {"receiver": "otlp", "transport": "grpc", "address": f"{LOOPBACK}:{state.grpc_port}"} in s["listeners"], s
        load.target = f"{LOOPBACK}:{state.grpc_port}"
        weir.grpc_port = state.grpc_port

        for _ in range(6):
            n += 1
            flip(n)
            time.sleep(0.15)

        n += 1
        state.broken = "toml"
        s = publish("failure", n)
        assert s["last_reload_error"]["error"]["key"].endswith("weir.toml"), s
        state.broken = None
        time.sleep(0.2)
        for _ in range(4):
            n += 1
            flip(n)
            time.sleep(0.15)
        time.sleep(0.5)
    finally:
        load.stop()

    reloads = outcomes["success"] + outcomes["failure"] + outcomes["unchanged"]
    assert reloads >= 30, outcomes
    failed = [r for r in load.records if r.status != "OK"]
    assert not failed, f"requests never acknowledged: {failed[:3]} (refusals {load.refusals})"
    acked = load.acknowledged_ids()

    # Every acknowledged span reached a sink; no sink got one twice.
    def delivered():
        got = set(sink_a.span_ids()) | set(sink_b.span_ids())
        return got if acked <= got else None

    wait_until(delivered, 20, lambda: f"{len(acked - (set(sink_a.span_ids()) | set(sink_b.span_ids())))} acknowledged spans missing")
    for sink in (sink_a, sink_b):
        ids = sink.span_ids()
        assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicate span ids"
    assert (set(sink_a.span_ids()) | set(sink_b.span_ids())) == acked, "spans nobody sent"

    # Spans sent after a reload completed carry the new rule; acknowledged
    # before the next write, they carry it as well.
    by_id = {s.span.span_id: s for sink in (sink_a, sink_b) for s in sink.spans()}
    checked = 0
    for r in load.records:
        inside = [e for i, e in enumerate(epochs)
                  if r.sent_at >= e[1] and (i + 1 == len(epochs) or r.acked_at <= epochs[i + 1][0])]
        if not inside:
            continue
        expected = inside[-1][2]
        seen = {rule_seen(by_id[i]) for i in r.ids}
        assert seen == {expected}, f"request sent at {r.sent_at:.3f} saw {seen}, expected {expected}; epochs {epochs}"
        checked += 1
    assert checked > len(load.records) / 2, f"only {checked} of {len(load.records)} requests fell inside one epoch"

    # /metrics reconciles: accepted = acknowledged; each exporter sent what its sink got.
    m = weir.metrics()
    assert m.sum("weir_receiver_accepted_spans_total") == len(acked)
    assert m.sum("weir_exporter_sent_spans_total", exporter="a") == len(sink_a.span_ids())
    assert m.sum("weir_exporter_sent_spans_total", exporter="b") == len(sink_b.span_ids())
    assert m.sum("weir_exporter_send_failed_spans_total") == 0
    assert m.sum("weir_reload_total", result="success") == outcomes["success"]
    assert m.sum("weir_reload_total", result="failure") == outcomes["failure"]
    assert m.sum("weir_reload_total", result="unchanged") == outcomes["unchanged"]
    info = m.values("weir_config_info")
    assert info == [1.0], info
    err = weir.stderr()
    assert "config reload failed; the running config stays" in err
    assert err.count("config reloaded:") == outcomes["success"]
    print(f"reloads {outcomes}, requests {len(load.records)} ({checked} checked against their epoch), "
          f"spans acknowledged {len(acked)}, refusals retried {load.refusals}")
    assert weir.terminate() == 0


def counter_config(admin: int, grpc_port: int, cache: Path, other_value: str) -> bytes:
    counter = plugin_wasm("misbehave")
    enrich = plugin_wasm("enrich")
    return f"""
[service]
plugin_cache_dir = {toml_value(str(cache))}

[admin]
address = "{LOOPBACK}:{admin}"

[receivers.otlp]
type = "otlp"
grpc = {{ address = "{LOOPBACK}:{grpc_port}" }}

[plugins.counter]
path = {toml_value(str(counter))}
instances = 1
config = {{ mode = "count" }}

[plugins.enrich]
path = {toml_value(str(enrich))}
config = {{ operations = [{{ set = {{ "e2e.other" = {toml_value(other_value)} }}, level = "item" }}] }}

[exporters.out]
type = "console"
verbosity = "basic"

[pipelines.traces]
receivers = ["otlp"]
plugins = ["counter", "enrich"]
exporters = ["out"]
""".encode()


def test_a_stateful_plugin_keeps_its_state_across_a_reload_of_another_plugin(tmp_path, plugin_cache_dir, sink):
    cm = ConfigMapDir(tmp_path / "cm")
    admin, grpc_port = free_port(), free_port()
    text = counter_config(admin, grpc_port, plugin_cache_dir, "one").decode().replace(
        '[exporters.out]\ntype = "console"\nverbosity = "basic"',
        f'[exporters.out]\ntype = "otlp_grpc"\nendpoint = "{sink.endpoint}"\nbatch = {{ timeout = "10ms" }}')
    cm.write({"weir.toml": text.encode()})
    weir = Weir(tmp_path, "weir", None, admin, grpc_port, None, args=["run", "--config", str(cm.path("weir.toml"))])
    weir.start()
    try:
        sender = LoadSender(f"{LOOPBACK}:{grpc_port}", spans=1)
        for _ in range(3):
            assert sender.send_one().status == "OK"
        sink.wait_for_spans(3)
        before = status(weir)
        cm.write({"weir.toml": text.replace('"one"', '"two"').encode()})
        s = wait_for_reload(weir, before, "success")
        assert s["last_reload"]["changed"] == ["plugins.enrich"], s
        for _ in range(2):
            assert sender.send_one().status == "OK"
        spans = sink.wait_for_spans(5)
        seen = [(attrs_to_dict(s.span.attributes)["misbehave.seen"], attrs_to_dict(s.span.attributes)["e2e.other"])
                for s in spans]
        # The counter instance survived: it goes on from 3, while enrich took its new config.
        assert seen == [("1", "one"), ("2", "one"), ("3", "one"), ("4", "two"), ("5", "two")], seen
        counter = [p for p in s["plugins"] if p["name"] == "counter"][0]
        assert counter["instances"] == 1, s
    finally:
        assert weir.terminate() == 0


def test_sighup_and_post_reload_each_reload_and_concurrent_requests_coalesce(tmp_path):
    admin, grpc_port = free_port(), free_port()
    path = tmp_path / "weir.toml"
    # Five plugins without a plugin_cache_dir: new versions of all of them
    # compile for a while, long enough for the requests below to queue up.
    names = ["misbehave", "redact", "sample", "enrich", "route"]
    wasm = {n: plugin_wasm(n).read_bytes() for n in names}
    for n in names:
        (tmp_path / f"{n}.wasm").write_bytes(wasm[n])
    plugin_tables = "".join(
        f"\n[plugins.{n}]\npath = {toml_value(str(tmp_path / f'{n}.wasm'))}\n"
        + ('config = { mode = "count" }\n' if n == "misbehave" else "")
        for n in names)

    def config(verbosity: str, admin_connections: int = 64) -> str:
        # No plugin_cache_dir: a new plugin version compiles (a slow reload).
        return f"""
[service.reload]
watch = false

[admin]
address = "{LOOPBACK}:{admin}"
max_connections = {admin_connections}

[receivers.otlp]
type = "otlp"
grpc = {{ address = "{LOOPBACK}:{grpc_port}" }}

{plugin_tables}
[exporters.out]
type = "console"
verbosity = "{verbosity}"

[pipelines.traces]
receivers = ["otlp"]
plugins = {toml_value(names)}
exporters = ["out"]
"""

    path.write_text(config("basic"))
    weir = Weir(tmp_path, "weir", None, admin, grpc_port, None, args=["run", "--config", str(path)])
    weir.start()
    try:
        # Without watching, a change waits for a trigger.
        path.write_text(config("detailed"))
        time.sleep(0.5)
        assert status(weir)["reloads"]["success"] == 0
        before = status(weir)
        weir.signal(signal.SIGHUP)
        s = wait_for_reload(weir, before, "success")
        assert s["last_reload"]["trigger"] == "sighup" and s["last_reload"]["changed"] == ["exporters.out"], s

        path.write_text(config("basic"))
        r = requests.post(weir.admin_url("/reload"), timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["result"] == "success" and body["trigger"] == "http", body
        r = requests.post(weir.admin_url("/reload"), timeout=30)
        assert r.status_code == 200 and r.json()["result"] == "unchanged", r.text

        # A refused config answers 422 with the key.
        path.write_text(config("loud"))
        r = requests.post(weir.admin_url("/reload"), timeout=30)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["key"] == "exporters.out.verbosity", r.text

        # Settings that need a restart are applied no further, and said so.
        path.write_text(config("basic", admin_connections=32))
        r = requests.post(weir.admin_url("/reload"), timeout=30)
        assert r.status_code == 200 and r.json()["restart_required"] == ["admin"], r.text
        assert status(weir)["restart_required"] == ["admin"]
        assert "apply only after a restart: admin" in weir.stderr()

        # A slow reload (new versions of five plugins compile) while requests keep
        # coming: they wait for the next run, which serves them all at once.
        for n in names:
            (tmp_path / f"{n}.wasm").write_bytes(with_custom_section(wasm[n], "v2"))
        before = status(weir)
        answers: list[dict] = []
        first = threading.Thread(target=lambda: answers.append(
            requests.post(weir.admin_url("/reload"), timeout=60).json()))
        first.start()
        time.sleep(0.05)
        threads = [threading.Thread(target=lambda: answers.append(
            requests.post(weir.admin_url("/reload"), timeout=60).json())) for _ in range(7)]
        for t in threads:
            t.start()
        for _ in range(4):
            weir.signal(signal.SIGHUP)
        first.join(60)
        for t in threads:
            t.join(60)
        assert len(answers) == 8, answers
        results = sorted(a["result"] for a in answers)
        assert results.count("success") == 1 and results.count("unchanged") == 7, results
        time.sleep(0.5)
        after = status(weir)
        runs = sum(after["reloads"].values()) - sum(before["reloads"].values())
        slow = [a["duration_ms"] for a in answers if a["result"] == "success"][0]
        print(f"12 reload requests (8 POST, 4 SIGHUP) during a {slow:.0f} ms reload -> {runs} reload runs")
        assert runs <= 3, f"{runs} reload runs for 12 requests: not coalesced"
        assert after["reloads"]["success"] == before["reloads"]["success"] + 1, after
    finally:
        assert weir.terminate() == 0


def four_plugin_config(admin: int, grpc_port: int, cache: Path, n: int) -> str:
    lines = [
        "[service]",
        f"plugin_cache_dir = {toml_value(str(cache))}",
        "[service.reload]",
        "watch = false",
        "[admin]",
        f'address = "{LOOPBACK}:{admin}"',
        "[receivers.otlp]",
        'type = "otlp"',
        f'grpc = {{ address = "{LOOPBACK}:{grpc_port}" }}',
        "[plugins.redact]",
        f"path = {toml_value(str(plugin_wasm('redact')))}",
        "[plugins.sample]",
        f"path = {toml_value(str(plugin_wasm('sample')))}",
        f"config = {{ rate = {1.0 - (n % 5) / 10} }}",
        "[plugins.enrich]",
        f"path = {toml_value(str(plugin_wasm('enrich')))}",
        f'config = {{ operations = [{{ set = {{ "e2e.n" = "{n % 7}" }}, level = "item" }}] }}',
        "[plugins.route]",
        f"path = {toml_value(str(plugin_wasm('route')))}",
        f'config = {{ rules = [{{ route = "r{n % 3}", attribute = "tenant", equals = "x" }}] }}',
        "[exporters.out]",
        'type = "console"',
        'verbosity = "basic"',
        "[pipelines.traces]",
        'receivers = ["otlp"]',
        'plugins = ["redact", "sample", "enrich", "route"]',
        'exporters = ["out"]',
    ]
    return "\n".join(lines) + "\n"


def test_two_hundred_reloads_of_a_four_plugin_chain_do_not_leak(tmp_path, plugin_cache_dir):
    admin, grpc_port = free_port(), free_port()
    path = tmp_path / "weir.toml"
    path.write_text(four_plugin_config(admin, grpc_port, plugin_cache_dir, 0))
    weir = Weir(tmp_path, "weir", None, admin, grpc_port, None, args=["run", "--config", str(path)])
    weir.start()
    sender = LoadSender(f"{LOOPBACK}:{grpc_port}", spans=20)
    rss: dict[int, int] = {}
    try:
        for n in range(1, 201):
            path.write_text(four_plugin_config(admin, grpc_port, plugin_cache_dir, n))
            r = requests.post(weir.admin_url("/reload"), timeout=30)
            assert r.status_code == 200 and r.json()["result"] == "success", r.text
            assert sender.send_one().status == "OK"
            if n in (10, 200):
                time.sleep(0.3)
                rss[n] = weir.rss()
        growth = rss[200] / rss[10]
        print(f"RSS after 10 reloads {rss[10] / 2**20:.1f} MiB, after 200 {rss[200] / 2**20:.1f} MiB ({growth:.3f}x)")
        assert growth <= 1.15, rss
        threads = len(os.listdir(f"/proc/{weir.pid}/task"))
        assert threads < 40, f"{threads} threads after 200 reloads"
        text = requests.get(weir.admin_url("/metrics"), timeout=5).text
        assert text.count("# TYPE weir_plugin_calls counter") == 1
    finally:
        assert weir.terminate() == 0


def test_a_failed_bind_fails_the_whole_reload_and_the_old_listener_keeps_serving(tmp_path, sink):
    admin, grpc_port, taken = free_port(), free_port(), free_port()
    blocker = __import__("socket").socket()
    blocker.bind((LOOPBACK, taken))
    blocker.listen()
    path = tmp_path / "weir.toml"

    def config(port: int, exporter: str) -> str:
        return f"""
[service.reload]
watch = false
[admin]
address = "{LOOPBACK}:{admin}"
[receivers.otlp]
type = "otlp"
grpc = {{ address = "{LOOPBACK}:{port}" }}
[exporters.{exporter}]
type = "otlp_grpc"
endpoint = "{sink.endpoint}"
batch = {{ timeout = "10ms" }}
[pipelines.traces]
receivers = ["otlp"]
exporters = ["{exporter}"]
"""

    path.write_text(config(grpc_port, "backend"))
    weir = Weir(tmp_path, "weir", None, admin, grpc_port, None, args=["run", "--config", str(path)])
    weir.start()
    try:
        path.write_text(config(taken, "other"))
        r = requests.post(weir.admin_url("/reload"), timeout=30)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["key"] == "receivers.otlp.grpc.address", r.text
        sender = LoadSender(f"{LOOPBACK}:{grpc_port}", spans=5)
        assert sender.send_one().status == "OK"
        sink.wait_for_spans(5)
        m = weir.metrics()
        assert m.sum("weir_exporter_sent_spans_total", exporter="backend") == 5, "the old exporter still serves"
        assert not m.has("weir_exporter_queue_size", exporter="other"), "nothing of the refused config runs"
    finally:
        blocker.close()
        assert weir.terminate() == 0


def test_a_removed_exporter_drains_its_queue_and_a_changed_one_keeps_it(tmp_path):
    """Data queued for an exporter whose destination is down survives its
    settings changing (the queue is handed over) and reaches the destination
    once it is back; a removed exporter's queue is drained before it goes."""
    admin, grpc_port = free_port(), free_port()
    down = OtlpSink()  # not started yet: the destination is down
    path = tmp_path / "weir.toml"

    def config(timeout: str, exporters: list[str]) -> str:
        blocks = "".join(f"""
[exporters.{e}]
type = "otlp_grpc"
endpoint = "{down.endpoint}"
timeout = "{timeout}"
batch = {{ timeout = "10ms" }}
retry = {{ initial_interval = "50ms", max_interval = "200ms", max_elapsed = "60s" }}
""" for e in exporters)
        return f"""
[service]
shutdown_grace = "20s"
[service.reload]
watch = false
[admin]
address = "{LOOPBACK}:{admin}"
[receivers.otlp]
type = "otlp"
grpc = {{ address = "{LOOPBACK}:{grpc_port}" }}
{blocks}
[pipelines.traces]
receivers = ["otlp"]
exporters = {json.dumps(exporters)}
"""

    path.write_text(config("2s", ["kept", "removed"]))
    weir = Weir(tmp_path, "weir", None, admin, grpc_port, None, args=["run", "--config", str(path)])
    weir.start()
    try:
        sender = LoadSender(f"{LOOPBACK}:{grpc_port}", spans=10)
        for _ in range(5):
            assert sender.send_one().status == "OK"
        acked = sender.acknowledged_ids()
        wait_until(lambda: weir.metrics().sum("weir_exporter_queue_size", exporter="kept") == 50, 5, "50 queued")
        path.write_text(config("3s", ["kept"]))
        r = requests.post(weir.admin_url("/reload"), timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["changed"] == ["exporters.kept", "pipelines.traces"] and body["removed"] == ["exporters.removed"], body
        assert weir.metrics().sum("weir_exporter_queue_size", exporter="kept") == 50, "handed over, not emptied"
        down.start()
        # Both deliver: "kept" with its new settings, "removed" while draining.
        wait_until(lambda: len(down.span_ids()) >= 100, 20, lambda: f"{len(down.span_ids())} of 100 delivered")
        counts: dict[bytes, int] = {}
        for i in down.span_ids():
            counts[i] = counts.get(i, 0) + 1
        assert set(counts) == acked and set(counts.values()) == {2}, "each span once per exporter"
        m = weir.metrics()
        assert m.sum("weir_exporter_sent_spans_total", exporter="kept") == 50
        assert m.sum("weir_exporter_sent_spans_total", exporter="removed") == 50
        assert m.sum("weir_exporter_send_failed_spans_total") == 0
        wait_until(lambda: not weir.metrics().has("weir_exporter_queue_size", exporter="removed"), 5,
                   "the removed exporter's queue gauge gone")
    finally:
        assert weir.terminate() == 0
        down.stop()


def test_a_queue_that_changes_type_hands_its_data_to_the_new_exporter(tmp_path):
    """memory -> disk queue: the new disk queue takes new data, and the old
    memory queue sends what it held through the new exporter; nothing is lost."""
    admin, grpc_port = free_port(), free_port()
    down = OtlpSink()
    path = tmp_path / "weir.toml"

    def config(queue: str) -> str:
        return f"""
[service]
data_dir = {toml_value(str(tmp_path / "data"))}
[service.reload]
watch = false
[admin]
address = "{LOOPBACK}:{admin}"
[receivers.otlp]
type = "otlp"
grpc = {{ address = "{LOOPBACK}:{grpc_port}" }}
[exporters.backend]
type = "otlp_grpc"
endpoint = "{down.endpoint}"
queue = {{ type = "{queue}" }}
batch = {{ timeout = "10ms" }}
retry = {{ initial_interval = "50ms", max_interval = "200ms", max_elapsed = "60s" }}
[pipelines.traces]
receivers = ["otlp"]
exporters = ["backend"]
"""

    path.write_text(config("memory"))
    weir = Weir(tmp_path, "weir", None, admin, grpc_port, None, args=["run", "--config", str(path)])
    weir.start()
    try:
        sender = LoadSender(f"{LOOPBACK}:{grpc_port}", spans=10)
        for _ in range(3):
            assert sender.send_one().status == "OK"
        wait_until(lambda: weir.metrics().sum("weir_exporter_queue_size", exporter="backend") == 30, 5, "30 queued")
        path.write_text(config("disk"))
        r = requests.post(weir.admin_url("/reload"), timeout=30)
        assert r.status_code == 200 and r.json()["changed"] == ["exporters.backend"], r.text
        for _ in range(3):
            assert sender.send_one().status == "OK"
        assert list((tmp_path / "data" / "queue" / "backend" / "traces").iterdir()), "the new queue is on disk"
        down.start()
        acked = sender.acknowledged_ids()
        wait_until(lambda: set(down.span_ids()) >= acked, 20,
                   lambda: f"{len(acked - set(down.span_ids()))} of {len(acked)} acknowledged spans missing")
        ids = down.span_ids()
        assert len(ids) == len(set(ids)) == 60, f"{len(ids)} delivered, {len(set(ids))} distinct"
        assert weir.metrics().sum("weir_exporter_send_failed_spans_total") == 0
    finally:
        assert weir.terminate() == 0
        down.stop()
