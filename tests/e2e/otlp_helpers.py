"""Shared helpers for the weir end-to-end suite: ports, polling, the OTLP gRPC sink,
the weir process wrapper, config rendering, Prometheus parsing and OTLP builders."""

from __future__ import annotations

import gzip
import http.server
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import grpc
import psutil
import requests
import zstandard
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
MiB = 1024 * 1024


def weir_bin() -> Path:
    return Path(os.environ.get("WEIR_BIN") or REPO_ROOT / "target" / "release" / "weir")


# ---------------------------------------------------------------------------
# ports and polling

_handed_out: set[int] = set()
_port_lock = threading.Lock()


def free_port() -> int:
    """A loopback TCP port that nothing listens on now and that this run has not
    handed out before (so two fixtures of one test never get the same port)."""
    with _port_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((LOOPBACK, 0))
                port = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("no free port found")


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As servers bind (Rust's std does too): TIME_WAIT leftovers don't count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Polls `predicate` until it returns something truthy; fails after `timeout` seconds
    with `what` (a string, or a callable giving one, evaluated at failure time)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            message = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# OTLP value helpers


def any_value_to_py(v: common_pb2.AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value_to_py(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attrs_to_dict(v.kvlist_value.values)
    return getattr(v, kind)


def attrs_to_dict(kvs: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        assert kv.key not in out, f"duplicate attribute key {kv.key!r}"
        out[kv.key] = any_value_to_py(kv.value)
    return out


def py_to_any_value(value: Any) -> common_pb2.AnyValue:
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, str):
        return common_pb2.AnyValue(string_value=value)
    if isinstance(value, bytes):
        return common_pb2.AnyValue(bytes_value=value)
    if isinstance(value, (list, tuple)):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[py_to_any_value(x) for x in value]))
    if isinstance(value, dict):
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=dict_to_attrs(value)))
    raise TypeError(f"unsupported attribute value {value!r}")


def dict_to_attrs(d: dict[str, Any]) -> list[common_pb2.KeyValue]:
    return [common_pb2.KeyValue(key=k, value=py_to_any_value(v)) for k, v in d.items()]


def make_trace_request(
    n_spans: int,
    *,
    rng: random.Random | None = None,
    name_prefix: str = "span",
    service_name: str = "weir-e2e",
    attr_padding: int = 0,
) -> trace_service_pb2.ExportTraceServiceRequest:
    """An ExportTraceServiceRequest with `n_spans` spans, each with a unique random
    span id (spread over a few traces) and a few attributes. `attr_padding` adds a
    string attribute of that many bytes to every span (to make large requests)."""
    rng = rng or random.Random()
    now = time.time_ns()
    trace_ids = [rng.randbytes(16) for _ in range(max(1, n_spans // 50))]
    spans = []
    for i in range(n_spans):
        attrs = {"e2e.index": i, "e2e.kind": name_prefix}
        if attr_padding:
            attrs["e2e.padding"] = "x" * attr_padding
        spans.append(
            trace_pb2.Span(
                trace_id=trace_ids[i % len(trace_ids)],
                span_id=rng.randbytes(8),
                name=f"{name_prefix}-{i}",
                kind=trace_pb2.Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=now + i,
                end_time_unix_nano=now + i + 1000,
                attributes=dict_to_attrs(attrs),
            )
        )
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(attributes=dict_to_attrs({"service.name": service_name})),
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        scope=common_pb2.InstrumentationScope(name="weir-e2e-raw", version="0.0.1"),
                        spans=spans,
                    )
                ],
            )
        ]
    )


def span_ids_of(request: trace_service_pb2.ExportTraceServiceRequest) -> list[bytes]:
    return [s.span_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


# ---------------------------------------------------------------------------
# the OTLP gRPC sink


@dataclass(frozen=True)
class ReceivedSpan:
    resource: resource_pb2.Resource
    scope: common_pb2.InstrumentationScope
    span: trace_pb2.Span


@dataclass(frozen=True)
class ReceivedLog:
    resource: Any
    scope: Any
    record: Any


@dataclass(frozen=True)
class ReceivedPoint:
    resource: Any
    scope: Any
    metric: Any  # the Metric message (name, unit, description, and the data)
    kind: str  # "gauge", "sum", "histogram", "exponential_histogram", "summary"
    point: Any


@dataclass
class _Recorded:
    traces: list = field(default_factory=list)
    logs: list = field(default_factory=list)
    metrics: list = field(default_factory=list)
    metadata: list = field(default_factory=list)


class _RecordingSink:
    """What both sinks share: the record of decoded requests, queries over it, and
    failure injection (`fail_next`: answers to give instead of success, in order)."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._recorded = _Recorded()
        self.fail_next: list = []
        self.calls = 0

    def _next_failure(self):
        with self._lock:
            self.calls += 1
            return self.fail_next.pop(0) if self.fail_next else None

    def _record(self, signal_name: str, request, metadata) -> None:
        with self._lock:
            getattr(self._recorded, signal_name).append(request)
            self._recorded.metadata.append((signal_name, metadata))

    # -- what was received ------------------------------------------------

    def requests(self, signal_name: str) -> list:
        with self._lock:
            return list(getattr(self._recorded, signal_name))

    def metadata(self) -> list:
        with self._lock:
            return list(self._recorded.metadata)

    def spans(self) -> list[ReceivedSpan]:
        return [
            ReceivedSpan(rs.resource, ss.scope, s)
            for req in self.requests("traces")
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
        ]

    def log_records(self) -> list[ReceivedLog]:
        return [
            ReceivedLog(rl.resource, sl.scope, r)
            for req in self.requests("logs")
            for rl in req.resource_logs
            for sl in rl.scope_logs
            for r in sl.log_records
        ]

    def metric_points(self) -> list[ReceivedPoint]:
        out = []
        for req in self.requests("metrics"):
            for rm in req.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        kind = m.WhichOneof("data")
                        if kind is None:
                            continue
                        for p in getattr(m, kind).data_points:
                            out.append(ReceivedPoint(rm.resource, sm.scope, m, kind, p))
        return out

    def span_ids(self) -> list[bytes]:
        return [r.span.span_id for r in self.spans()]

    def wait_for_spans(self, n: int, timeout: float = 10) -> list[ReceivedSpan]:
        wait_until(lambda: len(self.spans()) >= n, timeout, lambda: f"{n} spans at the sink (have {len(self.spans())})")
        return self.spans()

    def wait_for_logs(self, n: int, timeout: float = 10) -> list[ReceivedLog]:
        wait_until(
            lambda: len(self.log_records()) >= n,
            timeout,
            lambda: f"{n} log records at the sink (have {len(self.log_records())})",
        )
        return self.log_records()

    def wait_for_points(self, n: int, timeout: float = 10) -> list[ReceivedPoint]:
        wait_until(
            lambda: len(self.metric_points()) >= n,
            timeout,
            lambda: f"{n} metric points at the sink (have {len(self.metric_points())})",
        )
        return self.metric_points()


class OtlpSink(_RecordingSink):
    """A real OTLP/gRPC server (grpcio, with the opentelemetry-proto services) on a
    loopback port. Records every Export request, decoded. It can be stopped and
    started again on the same port; what it recorded survives a restart.

    `keep_raw=True` also keeps each request's bytes exactly as they arrived (after
    gRPC decompression, before protobuf decoding): `raw_requests(signal)`,
    `raw_bytes()` — for checks that must see everything, unknown fields included."""

    def __init__(self, port: int | None = None, keep_raw: bool = False):
        super().__init__(port)
        self._server: grpc.Server | None = None
        self.keep_raw = keep_raw
        self._raw: dict[str, list[bytes]] = {"traces": [], "logs": [], "metrics": []}

    def raw_requests(self, signal_name: str) -> list[bytes]:
        assert self.keep_raw, "raw bytes are kept only by OtlpSink(keep_raw=True)"
        with self._lock:
            return list(self._raw[signal_name])

    def raw_bytes(self) -> bytes:
        """Every recorded request of every signal, concatenated."""
        return b"".join(r for s in ("traces", "logs", "metrics") for r in self.raw_requests(s))

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        assert self._server is None, "sink already running"
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[
                ("grpc.max_receive_message_length", 256 * MiB),
                ("grpc.so_reuseport", 0),
            ],
        )
        sink = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                return sink._answer("traces", request, context, trace_service_pb2.ExportTraceServiceResponse())

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request, context):
                return sink._answer("logs", request, context, logs_service_pb2.ExportLogsServiceResponse())

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request, context):
                return sink._answer("metrics", request, context, metrics_service_pb2.ExportMetricsServiceResponse())

        if self.keep_raw:
            self._add_raw_services(server)
        else:
            trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
            logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
            metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
        # Rebinding right after a stop can briefly fail; retry for a moment.
        deadline = time.monotonic() + 5
        while True:
            try:
                bound = server.add_insecure_port(f"{LOOPBACK}:{self.port}")
            except RuntimeError:
                bound = 0
            if bound == self.port:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"sink could not bind port {self.port}")
            time.sleep(0.1)
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def _answer(self, signal_name: str, request, context, response):
        failure = self._next_failure()
        if failure is not None:
            context.abort(failure, "injected failure")
        self._record(signal_name, request, tuple(context.invocation_metadata()))
        return response

    _SERVICES = {
        "traces": ("opentelemetry.proto.collector.trace.v1.TraceService",
                   trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
        "logs": ("opentelemetry.proto.collector.logs.v1.LogsService",
                 logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
        "metrics": ("opentelemetry.proto.collector.metrics.v1.MetricsService",
                    metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse),
    }

    def _add_raw_services(self, server: grpc.Server) -> None:
        """The same three Export methods, with a deserializer that hands over the
        raw bytes alongside the decoded request."""
        sink = self
        for signal_name, (service, req_cls, resp_cls) in self._SERVICES.items():

            def behavior(pair, context, signal_name=signal_name, resp_cls=resp_cls):
                raw, request = pair
                failure = sink._next_failure()
                if failure is not None:
                    context.abort(failure, "injected failure")
                with sink._lock:
                    sink._raw[signal_name].append(raw)
                sink._record(signal_name, request, tuple(context.invocation_metadata()))
                return resp_cls()

            handler = grpc.unary_unary_rpc_method_handler(
                behavior,
                request_deserializer=lambda b, req_cls=req_cls: (bytes(b), req_cls.FromString(b)),
                response_serializer=resp_cls.SerializeToString,
            )
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": handler}),))

class OtlpHttpSink(_RecordingSink):
    """A real OTLP/HTTP server (protobuf bodies, gzip/zstd Content-Encoding) on a
    loopback port, for weir's otlp_http exporter. Records decoded requests like
    OtlpSink, plus each request's path and headers (`http_requests`). `fail_next`
    holds HTTP status codes to answer instead of 200."""

    _MESSAGES = {
        "/v1/traces": ("traces", trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
        "/v1/logs": ("logs", logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
        "/v1/metrics": (
            "metrics",
            metrics_service_pb2.ExportMetricsServiceRequest,
            metrics_service_pb2.ExportMetricsServiceResponse,
        ),
    }

    def __init__(self, port: int | None = None):
        super().__init__(port)
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.http_requests: list[tuple[str, dict]] = []

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _reply(self, code: int, body: bytes = b"", ctype: str = "application/x-protobuf"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with sink._lock:
                    sink.http_requests.append((self.path, headers))
                entry = sink._MESSAGES.get(self.path)
                if entry is None:
                    return self._reply(404, b"no such path", "text/plain")
                failure = sink._next_failure()
                if failure is not None:
                    return self._reply(failure, b"injected failure", "text/plain")
                encoding = headers.get("content-encoding", "")
                if encoding == "gzip":
                    raw = gzip.decompress(raw)
                elif encoding == "zstd":
                    raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
                elif encoding not in ("", "identity"):
                    return self._reply(415, b"unsupported encoding", "text/plain")
                if not headers.get("content-type", "").startswith("application/x-protobuf"):
                    return self._reply(415, b"expected application/x-protobuf", "text/plain")
                signal_name, req_cls, resp_cls = entry
                try:
                    request = req_cls.FromString(raw)
                except Exception:
                    return self._reply(400, b"bad protobuf", "text/plain")
                sink._record(signal_name, request, tuple(headers.items()))
                self._reply(200, resp_cls().SerializeToString())

        self._server = http.server.ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# ---------------------------------------------------------------------------
# config rendering


def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(
    *,
    admin_port: int,
    grpc_port: int | None,
    http_port: int | None,
    sink_endpoint: str,
    signals: Iterable[str] = ("traces", "logs", "metrics"),
    exporter_type: str = "otlp_grpc",
    max_request_size: str = "16MiB",
    shutdown_grace: str = "10s",
    compression: str = "none",
    timeout: str = "5s",
    queue_capacity: int = 100_000,
    queue_concurrency: int = 4,
    batch_max_items: int = 8192,
    batch_timeout: str = "50ms",
    retry_enabled: bool = True,
    retry_initial: str = "100ms",
    retry_max_interval: str = "1s",
    retry_max_elapsed: str = "2m",
) -> str:
    listeners = []
    if grpc_port is not None:
        listeners.append(f'grpc = {{ address = "{LOOPBACK}:{grpc_port}" }}')
    if http_port is not None:
        listeners.append(f'http = {{ address = "{LOOPBACK}:{http_port}" }}')
    lines = [
        "[service]",
        f"shutdown_grace = {toml_str(shutdown_grace)}",
        "",
        "[admin]",
        f'address = "{LOOPBACK}:{admin_port}"',
        "",
        "[receivers.otlp]",
        'type = "otlp"',
        *listeners,
        f"max_request_size = {toml_str(max_request_size)}",
        "",
        "[exporters.backend]",
        f"type = {toml_str(exporter_type)}",
    ]
    if exporter_type != "console":
        lines += [
            f"endpoint = {toml_str(sink_endpoint)}",
            f"compression = {toml_str(compression)}",
            f"timeout = {toml_str(timeout)}",
        ]
    lines += [
        f"queue = {{ capacity = {queue_capacity}, concurrency = {queue_concurrency} }}",
        f"batch = {{ max_items = {batch_max_items}, timeout = {toml_str(batch_timeout)} }}",
        f"retry = {{ enabled = {'true' if retry_enabled else 'false'}, initial_interval = {toml_str(retry_initial)}, "
        f"max_interval = {toml_str(retry_max_interval)}, max_elapsed = {toml_str(retry_max_elapsed)} }}",
    ]
    for s in signals:
        lines += ["", f"[pipelines.{s}]", 'receivers = ["otlp"]', 'exporters = ["backend"]']
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Prometheus text

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict
    value: float


def parse_prometheus(text: str) -> list[Sample]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"unparseable Prometheus line: {line!r}"
        labels = dict(_LABEL.findall(m.group(3) or ""))
        value = m.group(4)
        out.append(Sample(m.group(1), labels, float(value)))
    return out


class MetricsSnapshot:
    def __init__(self, text: str):
        self.text = text
        self.samples = parse_prometheus(text)

    def sum(self, name: str, **labels: str) -> float:
        return sum(
            s.value for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def has(self, name: str, **labels: str) -> bool:
        return any(s.name == name and all(s.labels.get(k) == v for k, v in labels.items()) for s in self.samples)

    def __str__(self) -> str:
        return "\n".join(l for l in self.text.splitlines() if l.startswith("weir_") and "_bucket" not in l)


# ---------------------------------------------------------------------------
# the weir process


class Weir:
    """One `weir run` subprocess, its ports, and its captured output."""

    def __init__(self, workdir: Path, name: str, config_text: str | None, admin_port: int, grpc_port: int | None,
                 http_port: int | None, args: list[str] | None = None):
        self.name = name
        self.workdir = workdir
        self.admin_port = admin_port
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.config_path = workdir / f"{name}.toml"
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        if config_text is not None:
            self.config_path.write_text(config_text)
            self.args = ["run", "--config", str(self.config_path)]
        else:
            self.args = args or ["run"]
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None

    # -- lifecycle --------------------------------------------------------

    def start(self, ready_timeout: float = 20) -> "Weir":
        binary = weir_bin()
        assert binary.exists(), f"weir binary not found at {binary}; run `cargo build --release -p weir` or set WEIR_BIN"
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")  # plain logs in the captured stderr
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([str(binary), *self.args], stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env=env, cwd=self.workdir)
        self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"weir exited with code {self.proc.returncode} before becoming ready\n--- stderr ---\n{self.stderr()}"
                )
            try:
                return requests.get(self.admin_url("/ready"), timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, timeout, lambda: f"weir /ready on port {self.admin_port}\n--- stderr ---\n{self.stderr()}")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"weir did not exit within {timeout}s\n--- stderr ---\n{self.stderr()}")
        return self.returncode

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL if it hangs, and fail)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.returncode = self.proc.returncode
                raise AssertionError(f"weir ignored SIGTERM for {timeout}s and was killed")
        self.returncode = self.proc.returncode
        return self.returncode

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int:
        return psutil.Process(self.pid).memory_info().rss

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stdout(self) -> str:
        try:
            return self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- addresses --------------------------------------------------------

    def admin_url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.admin_port}{path}"

    def http_url(self, signal_name: str = "traces") -> str:
        assert self.http_port is not None
        return f"http://{LOOPBACK}:{self.http_port}/v1/{signal_name}"

    @property
    def grpc_target(self) -> str:
        assert self.grpc_port is not None
        return f"{LOOPBACK}:{self.grpc_port}"

    def metrics(self) -> MetricsSnapshot:
        r = requests.get(self.admin_url("/metrics"), timeout=5)
        assert r.status_code == 200, f"/metrics answered {r.status_code}: {r.text[:500]}"
        return MetricsSnapshot(r.text)

    # -- sending ----------------------------------------------------------

    def post(self, signal_name: str, body: bytes, content_type: str = "application/x-protobuf",
             headers: dict | None = None, timeout: float = 10) -> requests.Response:
        h = {"Content-Type": content_type}
        h.update(headers or {})
        return requests.post(self.http_url(signal_name), data=body, headers=h, timeout=timeout)

    def grpc_channel(self) -> grpc.Channel:
        return grpc.insecure_channel(
            self.grpc_target,
            options=[("grpc.max_send_message_length", 256 * MiB), ("grpc.enable_retries", 0)],
        )


# ---------------------------------------------------------------------------
# plugins


def plugin_dir() -> Path:
    """Where plugins/build.sh puts the plugin components ($WEIR_PLUGIN_DIR overrides)."""
    return Path(os.environ.get("WEIR_PLUGIN_DIR") or REPO_ROOT / "target" / "wasm32-wasip2" / "release")


def plugin_wasm(name: str) -> Path:
    """The component of a reference plugin (`redact`, `sample`, ...) or of a test
    plugin (`misbehave`); fails clearly when it has not been built."""
    candidates = [plugin_dir() / f"weir_plugin_{name}.wasm", plugin_dir() / f"weir_test_plugin_{name}.wasm"]
    for c in candidates:
        if c.exists():
            return c
    raise AssertionError(
        f"plugin component {name!r} not found (looked for {', '.join(str(c) for c in candidates)}); "
        "run plugins/build.sh or set WEIR_PLUGIN_DIR"
    )


def toml_value(v: Any) -> str:
    """A Python value as an inline TOML value (strings, numbers, bools, lists, dicts)."""
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(v, Path):
        return json.dumps(str(v), ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML form for {v!r}")


# Placeholders of start_weir(config_text=...), kept intact by plugin_config_template.
_PLACEHOLDERS = ("admin_port", "grpc_port", "http_port", "sink")


def plugin_config_template(
    plugins: dict[str, dict],
    *,
    pipelines: dict[str, dict] | None = None,
    exporters: dict[str, str] | None = None,
    cache_dir: Path | None = None,
    batch_timeout: str = "50ms",
) -> str:
    """A weir config for start_weir(config_text=...) (ports and `{sink}` left as
    placeholders, every other brace escaped).

    plugins: name -> settings; `path` (default: plugin_wasm(wasm), where `wasm`
      defaults to the name, e.g. {"wasm": "misbehave"}) and the other keys of
      [plugins.NAME] (on_error, timeout, memory_limit, instances, sha256), plus
      `config` (the plugin's own table).
    pipelines: signal -> {"plugins": [...], "exporters": [...], "routes": {...}};
      default: traces, logs and metrics, each with every plugin in order.
    exporters: name -> endpoint (otlp_grpc), "{sink}" for the `sink` fixture's;
      default {"backend": "{sink}"}.
    cache_dir: service.plugin_cache_dir (compiled plugins reused across weirs)."""
    mark = {p: f"\x00{p}\x00" for p in _PLACEHOLDERS}
    exporters = exporters or {"backend": mark["sink"]}
    if pipelines is None:
        pipelines = {s: {"plugins": list(plugins)} for s in ("traces", "logs", "metrics")}
    lines = ["[service]", 'shutdown_grace = "10s"']
    if cache_dir is not None:
        lines.append(f"plugin_cache_dir = {toml_value(str(cache_dir))}")
    lines += [
        "",
        "[admin]",
        f'address = "{LOOPBACK}:{mark["admin_port"]}"',
        "",
        "[receivers.otlp]",
        'type = "otlp"',
        f'grpc = {{ address = "{LOOPBACK}:{mark["grpc_port"]}" }}',
        f'http = {{ address = "{LOOPBACK}:{mark["http_port"]}" }}',
    ]
    for name, settings in plugins.items():
        settings = dict(settings)
        config = settings.pop("config", None)
        path = settings.pop("path", None)
        if path is None and "builtin" not in settings:
            path = plugin_wasm(settings.pop("wasm", name))
        lines += ["", f"[plugins.{name}]"]
        if path is not None:
            lines.append(f"path = {toml_value(str(path))}")
        lines += [f"{k} = {toml_value(v)}" for k, v in settings.items()]
        if config:
            lines += ["", f"[plugins.{name}.config]"]
            lines += [f"{json_key(k)} = {toml_value(v)}" for k, v in config.items()]
    for name, endpoint in exporters.items():
        if endpoint == "{sink}":
            endpoint = mark["sink"]
        lines += [
            "",
            f"[exporters.{name}]",
            'type = "otlp_grpc"',
            f'endpoint = "{endpoint}"',
            'timeout = "5s"',
            f'batch = {{ max_items = 8192, timeout = "{batch_timeout}" }}',
            'retry = { enabled = true, initial_interval = "100ms", max_interval = "1s", max_elapsed = "30s" }',
        ]
    for signal_name, p in pipelines.items():
        lines += [
            "",
            f"[pipelines.{signal_name}]",
            'receivers = ["otlp"]',
            f"plugins = {toml_value(list(p.get('plugins', [])))}",
            f"exporters = {toml_value(list(p.get('exporters', ['backend'])))}",
        ]
        if p.get("routes"):
            lines.append(f"routes = {toml_value(p['routes'])}")
    text = "\n".join(lines) + "\n"
    text = text.replace("{", "{{").replace("}", "}}")
    for p in _PLACEHOLDERS:
        text = text.replace(mark[p], "{" + p + "}")
    return text


def json_key(k: str) -> str:
    """A TOML key: bare when it can be, else quoted."""
    import json

    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


# ---------------------------------------------------------------------------
# the Parquet archive (test_archive*.py)


def _fmt_escape(s: str) -> str:
    """Escapes braces for the str.format that start_weir applies to config_text."""
    return s.replace("{", "{{").replace("}", "}}")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return toml_str(str(v))


def render_archive_config(
    archive: dict,
    *,
    signals: Iterable[str] = ("traces", "logs"),
    batch_timeout: str = "50ms",
    shutdown_grace: str = "10s",
) -> str:
    """A config template for start_weir(config_text=...): one OTLP receiver (gRPC and
    HTTP) and one `type = "parquet"` exporter named `archive` with the keys of
    `archive`, used by the pipelines of `signals`."""
    lines = [
        "[service]",
        f"shutdown_grace = {toml_str(shutdown_grace)}",
        "",
        "[admin]",
        f'address = "{LOOPBACK}:{{admin_port}}"',
        "",
        "[receivers.otlp]",
        'type = "otlp"',
        f'grpc = {{{{ address = "{LOOPBACK}:{{grpc_port}}" }}}}',
        f'http = {{{{ address = "{LOOPBACK}:{{http_port}}" }}}}',
        "",
        "[exporters.archive]",
        'type = "parquet"',
    ]
    lines += [f"{k} = {_fmt_escape(_toml_value(v))}" for k, v in archive.items()]
    lines.append(f"batch = {{{{ max_items = 8192, timeout = {toml_str(batch_timeout)} }}}}")
    for s in signals:
        lines += ["", f"[pipelines.{s}]", 'receivers = ["otlp"]', 'exporters = ["archive"]']
    return "\n".join(lines) + "\n"


def archive_files(root: Path) -> list[Path]:
    """The visible (finished) archive files under `root`."""
    return sorted(p for p in Path(root).rglob("*.parquet") if not p.name.startswith((".", "_")))


def archive_temp_files(root: Path) -> list[Path]:
    """Unfinished archive files (hidden temporary names)."""
    return sorted(p for p in Path(root).rglob(".*") if p.is_file())


def _without_timestamps(t):
    """The same Arrow type with every timestamp as int64 (exact nanoseconds in Python)."""
    import pyarrow as pa

    if pa.types.is_timestamp(t):
        return pa.int64()
    if pa.types.is_list(t):
        f = t.value_field
        return pa.list_(pa.field(f.name, _without_timestamps(f.type), f.nullable))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _without_timestamps(f.type), f.nullable) for f in t])
    return t


def nanos_table(table):
    """`table` with timestamps cast to int64 nanoseconds (also inside lists of structs)."""
    import pyarrow as pa

    schema = pa.schema([pa.field(f.name, _without_timestamps(f.type), f.nullable) for f in table.schema])
    return table.cast(schema)


def read_archive_rows(root: Path, signal_name: str) -> list[dict]:
    """Every row of one signal under a local archive root, read with pyarrow's dataset
    API (Hive partitioning; files starting with '.' or '_' are ignored, as by Hive).
    Timestamps are int64 nanoseconds; maps are lists of (key, value)."""
    import pyarrow.dataset as ds

    base = Path(root) / f"signal={signal_name}"
    if not base.exists():
        return []
    table = ds.dataset(str(base), format="parquet", partitioning="hive").to_table()
    return nanos_table(table).to_pylist()


def render_any_value(v: common_pb2.AnyValue) -> str | None:
    """The archive's string rendering of an OTLP value (docs/archive-schema.md)."""
    import base64
    import json

    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        return repr(v.double_value)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()

    def to_json(x: common_pb2.AnyValue):
        k = x.WhichOneof("value")
        if k == "bytes_value":
            return base64.b64encode(x.bytes_value).decode()
        if k == "array_value":
            return [to_json(e) for e in x.array_value.values]
        if k == "kvlist_value":
            return {kv.key: to_json(kv.value) for kv in x.kvlist_value.values}
        return any_value_to_py(x)

    return json.dumps(to_json(v), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def render_attrs(kvs: Iterable[common_pb2.KeyValue], skip: str | None = None) -> list[tuple[str, str | None]]:
    return [(kv.key, render_any_value(kv.value)) for kv in kvs if kv.key != skip]


class MotoServer:
    """A real S3 API server (moto's standalone server) on a loopback port."""

    ACCESS_KEY = "testing"
    SECRET_KEY = "testing"
    REGION = "us-east-1"

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.log_path = Path(workdir) / "moto.log"
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 30) -> "MotoServer":
        import sys

        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"moto server exited: {self.log_path.read_text(errors='replace')}")
            try:
                return requests.get(self.endpoint + "/", timeout=1).status_code < 500
            except requests.RequestException:
                return False

        wait_until(up, timeout, f"moto server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def env(self) -> dict[str, str]:
        """The environment weir needs to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.SECRET_KEY,
            "AWS_REGION": self.REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.ACCESS_KEY,
            aws_secret_access_key=self.SECRET_KEY,
            region_name=self.REGION,
        )


# ---------------------------------------------------------------------------
# small OTLP builders (hand-built requests for plugin tests)


def make_span(name: str, trace_id: bytes, *, attrs: dict | None = None, status_code: int = 0,
              status_message: str = "", kind: int = trace_pb2.Span.SPAN_KIND_INTERNAL,
              span_id: bytes | None = None, events: list | None = None, links: list | None = None,
              trace_state: str = "") -> trace_pb2.Span:
    now = time.time_ns()
    return trace_pb2.Span(
        trace_id=trace_id,
        span_id=span_id or random.randbytes(8),
        trace_state=trace_state,
        name=name,
        kind=kind,
        start_time_unix_nano=now,
        end_time_unix_nano=now + 1000,
        attributes=dict_to_attrs(attrs or {}),
        events=events or [],
        links=links or [],
        status=trace_pb2.Status(code=status_code, message=status_message),
    )


def traces_request(*resources: tuple[dict, list], scope_attrs: dict | None = None,
                   scope_name: str = "weir-e2e") -> trace_service_pb2.ExportTraceServiceRequest:
    """One ResourceSpans per (resource attributes, spans) pair, each with one scope."""
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[
        trace_pb2.ResourceSpans(
            resource=resource_pb2.Resource(attributes=dict_to_attrs(res)),
            scope_spans=[trace_pb2.ScopeSpans(
                scope=common_pb2.InstrumentationScope(name=scope_name, attributes=dict_to_attrs(scope_attrs or {})),
                spans=spans,
            )],
        )
        for res, spans in resources
    ])


def logs_request(*resources: tuple[dict, list], scope_attrs: dict | None = None):
    """One ResourceLogs per (resource attributes, log records) pair, each with one scope."""
    from opentelemetry.proto.logs.v1 import logs_pb2

    return logs_service_pb2.ExportLogsServiceRequest(resource_logs=[
        logs_pb2.ResourceLogs(
            resource=resource_pb2.Resource(attributes=dict_to_attrs(res)),
            scope_logs=[logs_pb2.ScopeLogs(
                scope=common_pb2.InstrumentationScope(name="weir-e2e", attributes=dict_to_attrs(scope_attrs or {})),
                log_records=records,
            )],
        )
        for res, records in resources
    ])


def make_log(body: Any, *, attrs: dict | None = None, severity: int = 9, trace_id: bytes = b"",
             span_id: bytes = b""):
    from opentelemetry.proto.logs.v1 import logs_pb2

    now = time.time_ns()
    return logs_pb2.LogRecord(
        time_unix_nano=now,
        observed_time_unix_nano=now,
        severity_number=severity,
        body=py_to_any_value(body),
        attributes=dict_to_attrs(attrs or {}),
        trace_id=trace_id,
        span_id=span_id,
    )
