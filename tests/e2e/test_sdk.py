"""OpenTelemetry Python SDK -> weir (OTLP gRPC and OTLP/HTTP protobuf) -> OTLP gRPC sink.

Telemetry is made with the real SDK (recorded in memory first, so the test knows
exactly what was created), exported with the SDK's own OTLP exporters, and compared
item by item, field by field, with what the sink received."""

from __future__ import annotations

import logging
import time

import grpc
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from otlp_helpers import any_value_to_py, attrs_to_dict, wait_until

TRANSPORTS = [
    pytest.param("grpc", "none", id="grpc"),
    pytest.param("grpc", "gzip", id="grpc-gzip"),
    pytest.param("http", "none", id="http-protobuf"),
    pytest.param("http", "gzip", id="http-protobuf-gzip"),
]

RESOURCE_ATTRS = {
    "service.name": "weir-e2e-py",
    "service.version": "9.8.7",
    "e2e.team": "pipelines",
    "e2e.shard": 7,
    "e2e.canary": True,
}


def resource() -> Resource:
    # Resource.create adds the SDK's telemetry.sdk.* attributes; all are compared.
    return Resource.create(RESOURCE_ATTRS)


def exporter_for(signal_name: str, transport: str, compression: str, weir):
    if transport == "grpc":
        comp = grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression
        cls = {"traces": GrpcSpanExporter, "logs": GrpcLogExporter, "metrics": GrpcMetricExporter}[signal_name]
        return cls(endpoint=weir.grpc_target, insecure=True, timeout=10, compression=comp)
    comp = HttpCompression.Gzip if compression == "gzip" else HttpCompression.NoCompression
    cls = {"traces": HttpSpanExporter, "logs": HttpLogExporter, "metrics": HttpMetricExporter}[signal_name]
    return cls(endpoint=weir.http_url(signal_name), timeout=10, compression=comp)


def settle_then(count_fn, expected: int, what: str) -> None:
    """After the expected count arrived, give weir one batch period to show that it
    does not send anything twice, then check the count is still exact."""
    time.sleep(0.3)
    got = count_fn()
    assert got == expected, f"sink got {got} {what}, expected exactly {expected} (duplicates?)"


def accepted_transport(transport: str) -> str:
    return "grpc" if transport == "grpc" else "http"


# ---------------------------------------------------------------------------
# traces


def make_spans():
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=resource())
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("weir-e2e-tracer", "4.5.6")
    with tracer.start_as_current_span(
        "checkout", kind=SpanKind.SERVER, attributes={"http.route": "/checkout", "http.response.status_code": 200}
    ) as root:
        root.add_event("cart.loaded", {"cart.items": 3})
        for i in range(6):
            with tracer.start_as_current_span(
                f"db-query-{i}",
                kind=SpanKind.CLIENT,
                attributes={
                    "db.system": "postgresql",
                    "db.rows": i * 10,
                    "db.cached": i % 2 == 0,
                    "db.latency_ms": 1.5 * i,
                    "db.tables": ["orders", f"items_{i}"],
                },
            ) as span:
                if i == 3:
                    span.set_status(Status(StatusCode.ERROR, "deadlock detected"))
    provider.shutdown()
    spans = memory.get_finished_spans()
    assert len(spans) == 7
    return spans


@pytest.mark.parametrize("transport,compression", TRANSPORTS)
def test_sdk_traces_arrive_intact(weir, sink, transport, compression):
    spans = make_spans()
    exporter = exporter_for("traces", transport, compression, weir)
    try:
        assert exporter.export(spans) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()

    received = sink.wait_for_spans(len(spans))
    settle_then(lambda: len(sink.spans()), len(spans), "spans")
    by_id = {r.span.span_id: r for r in received}
    assert len(by_id) == len(spans), "span ids at the sink are not unique"

    expected_request = encode_spans(spans)
    expected = {
        s.span_id: (rs, ss, s) for rs in expected_request.resource_spans for ss in rs.scope_spans for s in ss.spans
    }
    assert set(by_id) == set(expected)

    for sdk_span in spans:
        ctx = sdk_span.get_span_context()
        got = by_id[ctx.span_id.to_bytes(8, "big")]
        assert got.span.trace_id == ctx.trace_id.to_bytes(16, "big")
        assert got.span.name == sdk_span.name
        assert attrs_to_dict(got.span.attributes) == {
            k: list(v) if isinstance(v, tuple) else v for k, v in sdk_span.attributes.items()
        }
        parent = sdk_span.parent.span_id.to_bytes(8, "big") if sdk_span.parent else b""
        assert got.span.parent_span_id == parent
        assert got.span.start_time_unix_nano == sdk_span.start_time
        assert got.span.end_time_unix_nano == sdk_span.end_time
        assert attrs_to_dict(got.resource.attributes) == dict(sdk_span.resource.attributes)
        assert got.scope.name == "weir-e2e-tracer" and got.scope.version == "4.5.6"
        # ...and every other field (kind, status, events, flags) exactly as encoded.
        assert got.span == expected[got.span.span_id][2]

    assert attrs_to_dict(received[0].resource.attributes)["service.name"] == "weir-e2e-py"
    assert attrs_to_dict(received[0].resource.attributes)["e2e.shard"] == 7
    failed = by_id[spans[3].get_span_context().span_id.to_bytes(8, "big")].span
    assert failed.name == "db-query-3" and failed.status.code == 2 and failed.status.message == "deadlock detected"
    root = by_id[spans[-1].get_span_context().span_id.to_bytes(8, "big")].span
    assert root.name == "checkout" and [e.name for e in root.events] == ["cart.loaded"]

    m = weir.metrics()
    t = accepted_transport(transport)
    assert m.sum("weir_receiver_accepted_spans_total", receiver="otlp", transport=t) == len(spans), str(m)
    wait_sent(weir, "spans", len(spans))


def wait_sent(weir, noun: str, n: int) -> None:
    wait_until(
        lambda: weir.metrics().sum(f"weir_exporter_sent_{noun}_total", exporter="backend") == n,
        5,
        lambda: f"weir_exporter_sent_{noun}_total == {n}\n{weir.metrics()}",
    )


# ---------------------------------------------------------------------------
# logs


def make_logs():
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=resource())
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))

    # The logs API directly...
    otel_logger = provider.get_logger("weir-e2e-logger", "1.0.1")
    base = time.time_ns()
    otel_logger.emit(
        timestamp=base,
        observed_timestamp=base + 5,
        severity_number=SeverityNumber.INFO,
        severity_text="INFO",
        body="order 42 accepted",
        attributes={"order.id": 42, "order.express": True, "order.total": 99.5},
    )
    otel_logger.emit(
        timestamp=base + 1000,
        severity_number=SeverityNumber.ERROR2,
        severity_text="ERROR2",
        body={"event": "payment.failed", "codes": [402, 409]},
        attributes={"payment.provider": "acme"},
        event_name="payment.failed",
    )
    # ...and the stdlib logging bridge.
    std_logger = logging.getLogger("weir.e2e.stdlib")
    std_logger.propagate = False
    std_logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    std_logger.addHandler(handler)
    try:
        std_logger.warning("disk %s is %d%% full", "/var", 91, extra={"disk.device": "sda1"})
        std_logger.debug("cache warmed")
    finally:
        std_logger.removeHandler(handler)
    provider.shutdown()
    logs = memory.get_finished_logs()
    assert len(logs) == 4
    return logs


@pytest.mark.parametrize("transport,compression", TRANSPORTS)
def test_sdk_logs_arrive_intact(weir, sink, transport, compression):
    logs = make_logs()
    exporter = exporter_for("logs", transport, compression, weir)
    try:
        assert exporter.export(logs) == LogRecordExportResult.SUCCESS
    finally:
        exporter.shutdown()

    received = sink.wait_for_logs(len(logs))
    settle_then(lambda: len(sink.log_records()), len(logs), "log records")

    by_body = {}
    for r in received:
        kind = r.record.body.WhichOneof("value")
        key = r.record.body.string_value if kind == "string_value" else kind
        by_body[key] = r

    info = by_body["order 42 accepted"]
    assert info.record.severity_number == SeverityNumber.INFO.value
    assert info.record.severity_text == "INFO"
    assert attrs_to_dict(info.record.attributes) == {"order.id": 42, "order.express": True, "order.total": 99.5}
    assert info.scope.name == "weir-e2e-logger" and info.scope.version == "1.0.1"

    structured = by_body["kvlist_value"]
    assert structured.record.severity_number == SeverityNumber.ERROR2.value
    assert any_value_to_py(structured.record.body) == {"event": "payment.failed", "codes": [402, 409]}
    assert structured.record.event_name == "payment.failed"
    assert attrs_to_dict(structured.record.attributes) == {"payment.provider": "acme"}

    warn = by_body["disk /var is 91% full"]
    assert warn.record.severity_number == SeverityNumber.WARN.value
    assert warn.record.severity_text == "WARN"
    assert attrs_to_dict(warn.record.attributes)["disk.device"] == "sda1"
    debug = by_body["cache warmed"]
    assert debug.record.severity_number == SeverityNumber.DEBUG.value

    for r in received:
        assert attrs_to_dict(r.resource.attributes) == dict(resource().attributes)

    # Every field of every record exactly as the SDK encodes it.
    expected = [lr for rl in encode_logs(logs).resource_logs for sl in rl.scope_logs for lr in sl.log_records]
    key = lambda lr: (lr.time_unix_nano, lr.body.SerializeToString(deterministic=True))  # noqa: E731
    assert sorted((r.record for r in received), key=key) == sorted(expected, key=key)

    m = weir.metrics()
    t = accepted_transport(transport)
    assert m.sum("weir_receiver_accepted_log_records_total", receiver="otlp", transport=t) == 4, str(m)
    wait_sent(weir, "log_records", 4)


# ---------------------------------------------------------------------------
# metrics


def make_metrics():
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=resource(), metric_readers=[reader])
    meter = provider.get_meter("weir-e2e-meter", "2.0.0")
    requests_counter = meter.create_counter("e2e.requests", unit="{request}", description="requests served")
    requests_counter.add(5, {"http.route": "/a"})
    requests_counter.add(2, {"http.route": "/b"})
    requests_counter.add(1, {"http.route": "/a"})
    latency = meter.create_histogram("e2e.latency", unit="ms", description="request latency")
    for v in (3, 7, 12, 480):
        latency.record(v, {"http.route": "/a"})
    latency.record(1500.0, {"http.route": "/b"})
    data = reader.get_metrics_data()
    provider.shutdown()
    return data


@pytest.mark.parametrize("transport,compression", TRANSPORTS)
def test_sdk_metrics_arrive_intact(weir, sink, transport, compression):
    data = make_metrics()
    exporter = exporter_for("metrics", transport, compression, weir)
    try:
        assert exporter.export(data) == MetricExportResult.SUCCESS
    finally:
        exporter.shutdown()

    expected_points = 4  # counter: /a and /b; histogram: /a and /b
    received = sink.wait_for_points(expected_points)
    settle_then(lambda: len(sink.metric_points()), expected_points, "metric points")

    points = {(p.metric.name, attrs_to_dict(p.point.attributes)["http.route"]): p for p in received}
    assert set(points) == {
        ("e2e.requests", "/a"),
        ("e2e.requests", "/b"),
        ("e2e.latency", "/a"),
        ("e2e.latency", "/b"),
    }
    a = points[("e2e.requests", "/a")]
    assert a.kind == "sum" and a.metric.sum.is_monotonic
    assert a.metric.unit == "{request}" and a.metric.description == "requests served"
    assert a.point.as_int == 6
    assert points[("e2e.requests", "/b")].point.as_int == 2

    ha = points[("e2e.latency", "/a")]
    assert ha.kind == "histogram" and ha.metric.unit == "ms"
    assert ha.point.count == 4 and ha.point.sum == 502
    assert ha.point.min == 3 and ha.point.max == 480
    assert sum(ha.point.bucket_counts) == 4
    assert len(ha.point.bucket_counts) == len(ha.point.explicit_bounds) + 1
    hb = points[("e2e.latency", "/b")]
    assert hb.point.count == 1 and hb.point.sum == 1500.0

    for p in received:
        assert p.scope.name == "weir-e2e-meter" and p.scope.version == "2.0.0"
        assert attrs_to_dict(p.resource.attributes) == dict(resource().attributes)

    # Every point exactly as the SDK encodes it.
    expected = {}
    for rm in encode_metrics(data).resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                for pt in getattr(metric, kind).data_points:
                    expected[(metric.name, attrs_to_dict(pt.attributes)["http.route"])] = pt
    for k, p in points.items():
        assert p.point == expected[k], k

    m = weir.metrics()
    t = accepted_transport(transport)
    assert m.sum("weir_receiver_accepted_metric_points_total", receiver="otlp", transport=t) == 4, str(m)
    wait_sent(weir, "metric_points", 4)
