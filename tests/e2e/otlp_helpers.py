"""Shared helpers for the weir end-to-end suite: ports, polling, the OTLP gRPC sink,
the weir process wrapper, config rendering, Prometheus parsing and OTLP builders;
for delivery checks a fault-injecting sink (FaultSink), a sender that records what
was acknowledged (TrackingSender), `assert_acknowledged_delivered` and
`assert_reconciled`."""

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
            options=self._server_options(),
            interceptors=self._interceptors(),
        )
        self._add_services(server)
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

    def _server_options(self) -> list:
        return [("grpc.max_receive_message_length", 256 * MiB), ("grpc.so_reuseport", 0)]

    def _interceptors(self) -> tuple:
        return ()

    def _add_services(self, server: grpc.Server) -> None:
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

@dataclass(frozen=True)
class HttpAttempt:
    time: float  # time.monotonic() when the request arrived
    path: str
    status: int  # what the sink answered
    span_ids: tuple  # span ids in the body (traces)


class OtlpHttpSink(_RecordingSink):
    """A real OTLP/HTTP server (protobuf bodies, gzip/zstd Content-Encoding) on a
    loopback port, for weir's otlp_http exporter. Records decoded requests like
    OtlpSink, plus each request's path and headers (`http_requests`). `fail_next`
    holds answers to give instead of 200: an HTTP status code, or a
    `(code, {header: value})` pair (e.g. `(429, {"Retry-After": "2"})`).
    `attempts` lists every POST as `HttpAttempt(time, path, status, span_ids)`
    (time.monotonic()), failed ones included, for measuring retry gaps."""

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
        self.attempts: list[HttpAttempt] = []

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def attempts_with(self, span_id: bytes) -> list["HttpAttempt"]:
        """The attempts (any outcome) whose body held `span_id`."""
        with self._lock:
            return [a for a in self.attempts if span_id in a.span_ids]

    def start(self) -> None:
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _reply(self, code: int, body: bytes = b"", ctype: str = "application/x-protobuf",
                       headers: dict | None = None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
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
                ids = tuple(span_ids_of(request)) if signal_name == "traces" else ()
                status = 200
                if failure is not None:
                    status, extra = (failure, {}) if isinstance(failure, int) else failure
                with sink._lock:
                    sink.attempts.append(HttpAttempt(time.monotonic(), self.path, status, ids))
                if failure is not None:
                    return self._reply(status, b"injected failure", "text/plain", extra)
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
# delivery checks: a fault-injecting sink, a sender that tracks what was
# acknowledged, and `acknowledged ⊆ delivered` (test_delivery.py, test_disk_queue.py)

TRACE_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
GRPC_DEFAULT_MAX_MESSAGE = 4 * MiB  # gRPC's (and the Collector's) default receive limit


@dataclass(frozen=True)
class Fault:
    """One injected gRPC failure, an entry of `FaultSink.fail_next`. `retry_delay`
    (seconds) adds a google.rpc.RetryInfo to the status details
    (`grpc-status-details-bin`), as a server that asks for a pause does."""

    code: grpc.StatusCode
    message: str = "injected failure"
    retry_delay: float | None = None

    def status_details(self) -> bytes:
        from google.protobuf import any_pb2, duration_pb2
        from google.rpc import error_details_pb2, status_pb2

        details = []
        if self.retry_delay is not None:
            whole = int(self.retry_delay)
            delay = duration_pb2.Duration(seconds=whole, nanos=int(round((self.retry_delay - whole) * 1e9)))
            info = any_pb2.Any()
            info.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
            details.append(info)
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=details).SerializeToString()


@dataclass(frozen=True)
class Attempt:
    """One Export call that reached a FaultSink's handler."""

    time: float  # time.monotonic() on arrival
    signal: str
    items: int
    size: int  # encoded request bytes (after gRPC decompression)
    outcome: str  # "OK" or the status code's name
    span_ids: tuple  # traces only


class _CallCounter(grpc.ServerInterceptor):
    """Counts calls when their headers arrive, before the message is read: a call
    that grpcio refuses itself (message over the receive limit) is counted here
    but never reaches the handler."""

    def __init__(self, sink: "FaultSink"):
        self.sink = sink

    def intercept_service(self, continuation, handler_call_details):
        with self.sink._lock:
            self.sink.calls_started += 1
        return continuation(handler_call_details)


class FaultSink(OtlpSink):
    """An OTLP/gRPC sink that keeps every delivered span id (with how many times it
    came) and injects faults, all changeable while it runs:

    - `fail_next`: answers for the next calls, in order: a grpc.StatusCode or a Fault
      (e.g. `Fault(RESOURCE_EXHAUSTED, retry_delay=1.0)`);
    - `unavailable_rate`: the fraction of calls answered UNAVAILABLE (seeded RNG);
    - `poison_prefix`: a call holding any span whose name starts with it gets
      INVALID_ARGUMENT (a strict destination rejecting a whole merged batch);
    - `delay`: seconds each call waits before it is answered;
    - `max_receive_bytes` (constructor; default gRPC's 4 MiB): larger messages get
      grpcio's own RESOURCE_EXHAUSTED "Received message larger than max", counted
      in `oversized_rejections`;
    - stop() / start() on the same port (what was recorded survives).

    `attempts` lists every call that reached the handler (any outcome) and
    `max_request_bytes` the largest request answered OK. With keep_requests=False
    decoded requests are not kept (spans() etc. are then empty; ids still are)."""

    def __init__(self, port: int | None = None, *, max_receive_bytes: int | None = GRPC_DEFAULT_MAX_MESSAGE,
                 seed: int = 0, keep_requests: bool = True):
        super().__init__(port)
        self.max_receive_bytes = max_receive_bytes
        self.keep_requests = keep_requests
        self.unavailable_rate = 0.0
        self.poison_prefix: str | None = None
        self.delay = 0.0
        self._rng = random.Random(seed)
        self._id_counts: dict[bytes, int] = {}
        self.attempts: list[Attempt] = []
        self.max_request_bytes = 0
        self.calls_started = 0
        self.handled = 0

    # -- server ------------------------------------------------------------

    def _server_options(self) -> list:
        limit = self.max_receive_bytes if self.max_receive_bytes is not None else 256 * MiB
        return [("grpc.max_receive_message_length", limit), ("grpc.so_reuseport", 0)]

    def _interceptors(self) -> tuple:
        return (_CallCounter(self),)

    def _add_services(self, server: grpc.Server) -> None:
        for signal_name, (service, req_cls, resp_cls) in self._SERVICES.items():
            def behavior(pair, context, signal_name=signal_name, resp_cls=resp_cls):
                size, request = pair
                return self._handle(signal_name, size, request, context, resp_cls())

            handler = grpc.unary_unary_rpc_method_handler(
                behavior,
                request_deserializer=lambda b, req_cls=req_cls: (len(b), req_cls.FromString(b)),
                response_serializer=resp_cls.SerializeToString,
            )
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": handler}),))

    def _handle(self, signal_name: str, size: int, request, context, response):
        with self._lock:
            self.handled += 1
        if self.delay:
            time.sleep(self.delay)
        ids = tuple(span_ids_of(request)) if signal_name == "traces" else ()
        fault = self._decide(signal_name, request)
        with self._lock:
            self.attempts.append(Attempt(time.monotonic(), signal_name, _count_items(signal_name, request), size,
                                         "OK" if fault is None else fault.code.name, ids))
        if fault is not None:
            if fault.retry_delay is not None:
                context.set_trailing_metadata((("grpc-status-details-bin", fault.status_details()),))
            context.abort(fault.code, fault.message)
        with self._lock:
            for i in ids:
                self._id_counts[i] = self._id_counts.get(i, 0) + 1
            self.max_request_bytes = max(self.max_request_bytes, size)
        if self.keep_requests:
            self._record(signal_name, request, tuple(context.invocation_metadata()))
        return response

    def _decide(self, signal_name: str, request) -> Fault | None:
        failure = self._next_failure()
        if failure is not None:
            return failure if isinstance(failure, Fault) else Fault(failure)
        if self.poison_prefix and signal_name == "traces":
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        if s.name.startswith(self.poison_prefix):
                            return Fault(grpc.StatusCode.INVALID_ARGUMENT,
                                         f"span {s.name!r} refused: names starting with {self.poison_prefix!r} "
                                         "are not accepted (the whole request is rejected)")
        with self._lock:
            unavailable = self.unavailable_rate > 0 and self._rng.random() < self.unavailable_rate
        if unavailable:
            return Fault(grpc.StatusCode.UNAVAILABLE, "injected outage")
        return None

    # -- what arrived --------------------------------------------------------

    def id_counts(self) -> dict[bytes, int]:
        """Delivered span id -> times delivered (requests answered OK only)."""
        with self._lock:
            return dict(self._id_counts)

    def delivered_ids(self) -> set[bytes]:
        with self._lock:
            return set(self._id_counts)

    def duplicates(self) -> int:
        with self._lock:
            return sum(c - 1 for c in self._id_counts.values())

    def span_ids(self) -> list[bytes]:
        return [i for i, c in self.id_counts().items() for _ in range(c)]

    def attempts_with(self, span_id: bytes) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts if span_id in a.span_ids]

    def outcomes(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for a in self.attempts:
                out[a.outcome] = out.get(a.outcome, 0) + 1
            return out

    @property
    def oversized_rejections(self) -> int:
        """Calls grpcio refused before the handler (over max_receive_bytes)."""
        with self._lock:
            return self.calls_started - self.handled


def _count_items(signal_name: str, request) -> int:
    if signal_name == "traces":
        return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if signal_name == "logs":
        return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
    n = 0
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind:
                    n += len(getattr(m, kind).data_points)
    return n


# -- hand-built protobuf (requests python's protobuf refuses to serialize) ------


def pb_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_len(field_number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return pb_varint(field_number << 3 | 2) + pb_varint(len(payload)) + payload


def raw_string_attribute(key: str, value: bytes) -> bytes:
    """A Span.attributes entry (field 9) whose string_value is `value` as given,
    e.g. invalid UTF-8."""
    return pb_len(9, pb_len(1, key.encode()) + pb_len(2, pb_len(1, value)))


def nested_any_value(depth: int) -> bytes:
    """An AnyValue holding arrays `depth` levels deep around a string."""
    v = pb_len(1, b"leaf")
    for _ in range(depth):
        v = pb_len(5, pb_len(1, v))  # AnyValue.array_value { values: [v] }
    return v


def raw_attribute(key: str, any_value: bytes) -> bytes:
    """A Span.attributes entry (field 9) with an encoded AnyValue."""
    return pb_len(9, pb_len(1, key.encode()) + pb_len(2, any_value))


def raw_trace_request(spans: Iterable[bytes], service_name: str = "weir-e2e") -> bytes:
    """An ExportTraceServiceRequest around encoded spans (one resource, one scope)."""
    resource = resource_pb2.Resource(attributes=dict_to_attrs({"service.name": service_name})).SerializeToString()
    scope = pb_len(1, pb_len(1, b"weir-e2e-raw")) + b"".join(pb_len(2, s) for s in spans)
    return pb_len(1, pb_len(1, resource) + pb_len(2, scope))


# -- the tracking sender --------------------------------------------------------

RETRYABLE_GRPC = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "ABORTED"})
RETRYABLE_HTTP = frozenset({"429", "502", "503", "504", "conn-error", "timeout"})

_prefix_lock = threading.Lock()
_prefixes_used: set[bytes] = set()


def _fresh_prefix(rng: random.Random) -> bytes:
    with _prefix_lock:
        while True:
            p = rng.randbytes(3)
            if p not in _prefixes_used and p != b"\0\0\0":
                _prefixes_used.add(p)
                return p


@dataclass
class SentRequest:
    ids: tuple  # span ids in the request
    status: str  # final answer: "OK", a gRPC code name, an HTTP code, "conn-error", "timeout"
    attempts: int
    message: str  # the last refusal's message ("" when OK)
    size: int  # encoded bytes

    @property
    def acknowledged(self) -> bool:
        return self.status == "OK"


def http_error_message(r: requests.Response) -> str:
    """The message of an OTLP/HTTP error answer (a google.rpc.Status, protobuf or
    JSON, or plain text)."""
    ctype = r.headers.get("Content-Type", "")
    if "protobuf" in ctype:
        from google.rpc import status_pb2

        try:
            return status_pb2.Status.FromString(r.content).message
        except Exception:
            pass
    if "json" in ctype:
        try:
            return str(r.json().get("message", r.text))
        except ValueError:
            pass
    return r.text


class TrackingSender:
    """Sends traces to weir over gRPC (grpcio, raw bytes) or OTLP/HTTP protobuf and
    records, per request, whether it was acknowledged (OK / 200) or refused (the
    code). Every span id is unique: a random 3-byte prefix of this sender and a
    5-byte counter. `retries` > 0 resends a refused request (same ids) like an SDK,
    on `retry_on` codes, with exponential backoff from `retry_backoff` up to 1 s.

    `start(rate, duration)` sends at `rate` spans/s from `threads` threads until
    stop() or `duration`; send()/send_raw() send one request now.
    `acknowledged_ids()`, `refused()` (final refusals by code),
    `refused_attempts()` (every refused attempt) and `summary()` report."""

    def __init__(self, weir: "Weir", *, transport: str = "grpc", spans_per_request: int = 10,
                 attr_bytes: int = 0, name_prefix: str = "span", retries: int = 0, retry_backoff: float = 0.1,
                 retry_on: Iterable[str] | None = None, timeout: float = 10.0, seed: int | None = None):
        assert transport in ("grpc", "http"), transport
        self.weir = weir
        self.transport = transport
        self.spans_per_request = spans_per_request
        self.attr_bytes = attr_bytes
        self.name_prefix = name_prefix
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.retry_on = frozenset(retry_on) if retry_on is not None else (
            RETRYABLE_GRPC if transport == "grpc" else RETRYABLE_HTTP)
        self.timeout = timeout
        self._rng = random.Random(seed)
        self.prefix = _fresh_prefix(self._rng)
        self._counter = 0
        self._lock = threading.Lock()
        self.sent: list[SentRequest] = []
        self._refused_attempts: dict[str, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._local = threading.local()
        self._channels: list[grpc.Channel] = []
        self.errors: list[BaseException] = []

    # -- building ------------------------------------------------------------

    def next_ids(self, n: int) -> list[bytes]:
        with self._lock:
            start = self._counter
            self._counter += n
        return [self.prefix + (start + i + 1).to_bytes(5, "big") for i in range(n)]

    def build(self, n: int | None = None, *, name_prefix: str | None = None,
              attr_bytes: int | None = None) -> tuple[bytes, tuple]:
        """An encoded request of `n` spans with fresh ids, and the ids."""
        n = self.spans_per_request if n is None else n
        name_prefix = self.name_prefix if name_prefix is None else name_prefix
        attr_bytes = self.attr_bytes if attr_bytes is None else attr_bytes
        ids = self.next_ids(n)
        now = time.time_ns()
        trace_id = self.prefix + ids[0][3:] + self._rng.randbytes(8)
        padding = "x" * attr_bytes if attr_bytes else None
        spans = []
        for i, span_id in enumerate(ids):
            attrs = [common_pb2.KeyValue(key="e2e.seq", value=common_pb2.AnyValue(int_value=i))]
            if padding:
                attrs.append(common_pb2.KeyValue(key="e2e.padding", value=common_pb2.AnyValue(string_value=padding)))
            spans.append(trace_pb2.Span(trace_id=trace_id, span_id=span_id, name=f"{name_prefix}-{span_id.hex()}",
                                        kind=trace_pb2.Span.SPAN_KIND_INTERNAL, start_time_unix_nano=now,
                                        end_time_unix_nano=now + 1000, attributes=attrs))
        req = trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
            resource=resource_pb2.Resource(attributes=dict_to_attrs({"service.name": "weir-e2e"})),
            scope_spans=[trace_pb2.ScopeSpans(scope=common_pb2.InstrumentationScope(name="weir-e2e-tracking"),
                                              spans=spans)],
        )])
        return req.SerializeToString(), tuple(ids)

    # -- sending -------------------------------------------------------------

    def _grpc_call(self):
        call = getattr(self._local, "call", None)
        if call is None:
            channel = grpc.insecure_channel(self.weir.grpc_target, options=[
                ("grpc.max_send_message_length", 256 * MiB),
                ("grpc.max_receive_message_length", 256 * MiB),
                ("grpc.enable_retries", 0),
                # Reconnect quickly to a restarted weir (the default backoff grows to 2 min).
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 500),
            ])
            call = channel.unary_unary(TRACE_EXPORT_METHOD, request_serializer=lambda b: b,
                                       response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)
            self._local.call = call
            with self._lock:
                self._channels.append(channel)
        return call

    def close(self) -> None:
        """Closes the gRPC channels (a later send opens a new one)."""
        with self._lock:
            channels, self._channels = self._channels, []
        for c in channels:
            c.close()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def _attempt(self, body: bytes) -> tuple[str, str]:
        if self.transport == "grpc":
            try:
                self._grpc_call()(body, timeout=self.timeout)
                return "OK", ""
            except grpc.RpcError as e:
                return e.code().name, e.details() or ""
        try:
            r = self._session().post(self.weir.http_url("traces"), data=body,
                                     headers={"Content-Type": "application/x-protobuf"}, timeout=self.timeout)
        except requests.Timeout as e:
            return "timeout", str(e)
        except requests.ConnectionError as e:
            self._local.session = None  # a new connection next time (weir may have restarted)
            return "conn-error", str(e)
        if r.status_code == 200:
            return "OK", ""
        return str(r.status_code), http_error_message(r)

    def send_raw(self, body: bytes, ids: Iterable[bytes] = ()) -> SentRequest:
        """Sends one encoded request (retrying as configured) and records it."""
        ids = tuple(ids)
        attempts = 0
        while True:
            attempts += 1
            status, message = self._attempt(body)
            if status != "OK":
                with self._lock:
                    self._refused_attempts[status] = self._refused_attempts.get(status, 0) + 1
            if status == "OK" or status not in self.retry_on or attempts > self.retries or self._stop.is_set():
                break
            time.sleep(min(1.0, self.retry_backoff * 2 ** (attempts - 1)))
        sent = SentRequest(ids, status, attempts, message, len(body))
        with self._lock:
            self.sent.append(sent)
        return sent

    def send(self, n: int | None = None, **build_kwargs) -> SentRequest:
        body, ids = self.build(n, **build_kwargs)
        return self.send_raw(body, ids)

    def start(self, rate: float, duration: float | None = None, threads: int = 1) -> "TrackingSender":
        """Sends `rate` spans/s in total from `threads` threads until stop() or
        `duration` seconds (requests of spans_per_request spans)."""
        self._stop.clear()
        interval = self.spans_per_request * threads / rate
        end = None if duration is None else time.monotonic() + duration

        def loop():
            try:
                next_at = time.monotonic()
                while not self._stop.is_set() and (end is None or time.monotonic() < end):
                    self.send()
                    next_at += interval
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        self._stop.wait(delay)
                    elif delay < -1:
                        next_at = time.monotonic()  # fell behind (an outage): no catch-up burst
            except BaseException as e:  # reported by join()
                self.errors.append(e)

        for _ in range(threads):
            t = threading.Thread(target=loop, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 30) -> None:
        """Stops the sending threads (a retry under way gives up) and closes the channels."""
        self._stop.set()
        try:
            self.join(timeout)
        finally:
            self.close()

    def join(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in self._threads if t.is_alive()]
        self._threads = alive
        assert not alive, f"{len(alive)} sender threads still running after {timeout}s"
        if self.errors:
            raise AssertionError(f"sender thread failed: {self.errors[0]!r}") from self.errors[0]

    # -- results -------------------------------------------------------------

    def requests(self) -> list[SentRequest]:
        with self._lock:
            return list(self.sent)

    def acknowledged_ids(self) -> set[bytes]:
        return {i for r in self.requests() if r.acknowledged for i in r.ids}

    def sent_ids(self) -> set[bytes]:
        return {i for r in self.requests() for i in r.ids}

    def refused(self) -> dict[str, int]:
        """Requests finally refused (after any retries), by code."""
        out: dict[str, int] = {}
        for r in self.requests():
            if not r.acknowledged:
                out[r.status] = out.get(r.status, 0) + 1
        return out

    def refused_attempts(self) -> dict[str, int]:
        """Every refused attempt, by code (also those a retry later got through)."""
        with self._lock:
            return dict(self._refused_attempts)

    def acknowledged_requests(self) -> int:
        return sum(1 for r in self.requests() if r.acknowledged)

    def summary(self) -> str:
        reqs = self.requests()
        acked = sum(1 for r in reqs if r.acknowledged)
        return (f"{self.transport} sender {self.prefix.hex()}: {len(reqs)} requests, {acked} acknowledged "
                f"({sum(len(r.ids) for r in reqs if r.acknowledged)} spans), refused {self.refused()}, "
                f"refused attempts {self.refused_attempts()}")


# -- acknowledged ⊆ delivered ------------------------------------------------------


@dataclass
class DeliveryReport:
    acknowledged: int  # distinct span ids the clients saw acknowledged
    delivered: int  # distinct span ids the sink answered OK
    missing: int  # acknowledged, never delivered: data loss
    duplicates: int  # extra copies delivered (allowed, reported)
    unacknowledged: int  # delivered but never acknowledged (refused or unknown outcome): allowed
    missing_sample: list

    def __str__(self) -> str:
        s = (f"acknowledged {self.acknowledged}, delivered {self.delivered} distinct, missing {self.missing}, "
             f"duplicates {self.duplicates}, delivered-but-unacknowledged {self.unacknowledged}")
        if self.missing:
            s += f"; missing e.g. {', '.join(self.missing_sample)}"
        return s


def sink_id_counts(sink) -> dict[bytes, int]:
    """Span id -> deliveries for any of the sinks."""
    if hasattr(sink, "id_counts"):
        return sink.id_counts()
    out: dict[bytes, int] = {}
    for i in sink.span_ids():
        out[i] = out.get(i, 0) + 1
    return out


def delivery_report(acknowledged: Iterable[bytes], sink) -> DeliveryReport:
    acked = set(acknowledged)
    counts = sink_id_counts(sink)
    missing = acked - counts.keys()
    return DeliveryReport(
        acknowledged=len(acked),
        delivered=len(counts),
        missing=len(missing),
        duplicates=sum(c - 1 for c in counts.values()),
        unacknowledged=len(counts.keys() - acked),
        missing_sample=[m.hex() for m in sorted(missing)[:5]],
    )


def assert_acknowledged_delivered(acknowledged: Iterable[bytes], sink, *, timeout: float = 10,
                                  context: Callable[[], str] | str = "") -> DeliveryReport:
    """Waits up to `timeout` s until every acknowledged span id reached the sink;
    prints the report (missing and duplicate counts) and fails if any is missing."""
    acked = set(acknowledged)
    deadline = time.monotonic() + timeout
    while True:
        report = delivery_report(acked, sink)
        if report.missing == 0 or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    print(f"delivery: {report}")
    if report.missing:
        extra = context() if callable(context) else context
        raise AssertionError(f"acknowledged spans were not delivered: {report}\n{extra}")
    return report


# -- metrics reconciliation ------------------------------------------------------

ITEM_NOUNS = {"traces": "spans", "logs": "log_records", "metrics": "metric_points"}


def reconciliation(m: MetricsSnapshot, exporter: str = "backend", signal_name: str = "traces") -> dict:
    """accepted, recovered (from a disk queue at start-up), sent, send_failed (total
    and by reason), dropped and queued items of one exporter and signal."""
    noun = ITEM_NOUNS[signal_name]
    return {
        "accepted": m.sum(f"weir_receiver_accepted_{noun}_total"),
        "recovered": m.sum("weir_exporter_queue_recovered_items_total", exporter=exporter, signal=signal_name),
        "sent": m.sum(f"weir_exporter_sent_{noun}_total", exporter=exporter),
        "send_failed": m.sum(f"weir_exporter_send_failed_{noun}_total", exporter=exporter),
        "failed_by_reason": m.by_label(f"weir_exporter_send_failed_{noun}_total", "reason", exporter=exporter),
        "dropped": m.sum(f"weir_pipeline_dropped_{noun}_total"),
        "queued": m.sum("weir_exporter_queue_size", exporter=exporter, signal=signal_name),
    }


def is_reconciled(r: dict) -> bool:
    return r["accepted"] + r["recovered"] == r["sent"] + r["send_failed"] + r["dropped"] + r["queued"]


def assert_reconciled(weir: "Weir", *, exporter: str = "backend", signal_name: str = "traces",
                      timeout: float = 10, settled: bool = True) -> dict:
    """accepted (+ recovered from a disk queue) = sent + send_failed + dropped +
    queued, and (settled=True) an empty queue, within `timeout` s; returns the figures."""
    def check():
        r = reconciliation(weir.metrics(), exporter, signal_name)
        return r if is_reconciled(r) and (not settled or r["queued"] == 0) else None

    last: dict = {}

    def what():
        m = weir.metrics()
        return (f"accepted + recovered = sent + send_failed + dropped + queued: "
                f"{reconciliation(m, exporter, signal_name)}\n{m}")

    last = wait_until(check, timeout, what)
    print(f"metrics: {last}")
    return last


def ids_in_bytes(data: bytes, prefix: bytes, known: set[bytes]) -> set[bytes]:
    """The span ids of a TrackingSender (its `prefix`) found in raw bytes (e.g. a
    queue segment file), keeping only ids in `known`."""
    found = set()
    pos = data.find(prefix)
    while pos != -1:
        candidate = data[pos:pos + 8]
        if candidate in known:
            found.add(candidate)
        pos = data.find(prefix, pos + 1)
    return found


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
    queue_options: dict | None = None,
    batch_options: dict | None = None,
    exporter_options: dict | None = None,
    receiver_options: dict | None = None,
    service_options: dict | None = None,
) -> str:
    """A weir config: one OTLP receiver, one exporter `backend`, a pipeline per signal.
    The `*_options` dicts add keys (values as Python, rendered to TOML): to the
    exporter's `queue` and `batch` inline tables (e.g. `{"type": "disk"}`,
    `{"max_bytes": "4MiB"}`), to `[exporters.backend]` (e.g.
    `{"circuit_breaker": {"failure_threshold": 3}}`), to `[receivers.otlp]` and to
    `[service]`."""
    def extra(options: dict | None) -> str:
        return "".join(f", {json_key(k)} = {toml_value(v)}" for k, v in (options or {}).items())

    listeners = []
    if grpc_port is not None:
        listeners.append(f'grpc = {{ address = "{LOOPBACK}:{grpc_port}" }}')
    if http_port is not None:
        listeners.append(f'http = {{ address = "{LOOPBACK}:{http_port}" }}')
    lines = [
        "[service]",
        f"shutdown_grace = {toml_str(shutdown_grace)}",
        *(f"{json_key(k)} = {toml_value(v)}" for k, v in (service_options or {}).items()),
        "",
        "[admin]",
        f'address = "{LOOPBACK}:{admin_port}"',
        "",
        "[receivers.otlp]",
        'type = "otlp"',
        *listeners,
        f"max_request_size = {toml_str(max_request_size)}",
        *(f"{json_key(k)} = {toml_value(v)}" for k, v in (receiver_options or {}).items()),
        "",
        "[exporters.backend]",
        f"type = {toml_str(exporter_type)}",
        *(f"{json_key(k)} = {toml_value(v)}" for k, v in (exporter_options or {}).items()),
    ]
    if exporter_type != "console":
        lines += [
            f"endpoint = {toml_str(sink_endpoint)}",
            f"compression = {toml_str(compression)}",
            f"timeout = {toml_str(timeout)}",
        ]
    lines += [
        f"queue = {{ capacity = {queue_capacity}, concurrency = {queue_concurrency}{extra(queue_options)} }}",
        f"batch = {{ max_items = {batch_max_items}, timeout = {toml_str(batch_timeout)}{extra(batch_options)} }}",
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

    def values(self, name: str, **labels: str) -> list[float]:
        """Every sample of `name` whose labels include `labels`."""
        return [
            s.value for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def by_label(self, name: str, label: str, **labels: str) -> dict[str, float]:
        """Sums of `name` per value of `label` (e.g. send_failed by reason)."""
        out: dict[str, float] = {}
        for s in self.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                key = s.labels.get(label, "")
                out[key] = out.get(key, 0) + s.value
        return out

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
        self.config_text = config_text
        self.killed = False

    # -- lifecycle --------------------------------------------------------

    def respawn(self, name: str, ready_timeout: float = 20, start: bool = True) -> "Weir":
        """Another weir with this one's config and ports (e.g. after kill()), its
        output kept under `name`. Started unless start=False."""
        w = Weir(self.workdir, name, self.config_text, self.admin_port, self.grpc_port, self.http_port,
                 args=None if self.config_text is not None else self.args)
        return w.start(ready_timeout) if start else w

    def kill(self) -> None:
        """SIGKILL and reap. terminate() then reports 0: the test killed it on purpose."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.returncode = self.proc.returncode
        self.killed = True

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
        if self.proc is None or self.killed:
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
