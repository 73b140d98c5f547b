"""weir's exporters: otlp_http (with compression) to a real OTLP/HTTP sink, otlp_grpc
with gzip, console; retries on transient destination errors, and counting (not
retrying forever) on permanent ones."""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

from otlp_helpers import OtlpHttpSink, make_trace_request, span_ids_of, wait_until


@pytest.fixture
def http_sink():
    s = OtlpHttpSink()
    s.start()
    yield s
    s.stop()


def _logs(n):
    return logs_service_pb2.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(scope_logs=[
        logs_pb2.ScopeLogs(log_records=[logs_pb2.LogRecord(time_unix_nano=i + 1, severity_number=13) for i in range(n)])
    ])])


def _points(n):
    return metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(
        scope_metrics=[metrics_pb2.ScopeMetrics(metrics=[metrics_pb2.Metric(
            name="e2e.gauge", gauge=metrics_pb2.Gauge(data_points=[
                metrics_pb2.NumberDataPoint(time_unix_nano=i + 1, as_double=i * 0.5) for i in range(n)
            ]))])])])


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_otlp_http_exporter(start_weir, http_sink, compression):
    weir = start_weir(exporter_type="otlp_http", sink_endpoint=http_sink.endpoint, compression=compression)
    traces = make_trace_request(120)
    assert weir.post("traces", traces.SerializeToString()).status_code == 200
    assert weir.post("logs", _logs(9).SerializeToString()).status_code == 200
    assert weir.post("metrics", _points(4).SerializeToString()).status_code == 200

    http_sink.wait_for_spans(120)
    http_sink.wait_for_logs(9)
    http_sink.wait_for_points(4)
    assert sorted(http_sink.span_ids()) == sorted(span_ids_of(traces))
    assert sorted(r.record.time_unix_nano for r in http_sink.log_records()) == list(range(1, 10))
    assert sorted(p.point.as_double for p in http_sink.metric_points()) == [0.0, 0.5, 1.0, 1.5]

    paths = {path for path, _ in http_sink.http_requests}
    assert paths == {"/v1/traces", "/v1/logs", "/v1/metrics"}, paths
    for path, headers in http_sink.http_requests:
        assert headers.get("content-type", "").startswith("application/x-protobuf"), (path, headers)
        expected = None if compression == "none" else compression
        assert headers.get("content-encoding") == expected, (path, headers)


def test_otlp_grpc_exporter_with_gzip(start_weir, sink):
    weir = start_weir(compression="gzip")
    traces = make_trace_request(300)
    assert weir.post("traces", traces.SerializeToString()).status_code == 200
    sink.wait_for_spans(300)
    assert sorted(sink.span_ids()) == sorted(span_ids_of(traces))


def test_grpc_destination_transient_errors_are_retried(start_weir, sink):
    weir = start_weir(retry_initial="50ms", retry_max_interval="200ms")
    sink.fail_next = [grpc.StatusCode.UNAVAILABLE] * 3
    traces = make_trace_request(50)
    assert weir.post("traces", traces.SerializeToString()).status_code == 200
    sink.wait_for_spans(50)
    assert sink.calls >= 4
    assert sorted(sink.span_ids()) == sorted(span_ids_of(traces)), "lost or duplicated spans"
    wait_until(lambda: weir.metrics().sum("weir_exporter_sent_spans_total", exporter="backend") == 50, 5,
               lambda: str(weir.metrics()))
    assert weir.metrics().sum("weir_exporter_send_failed_spans_total") == 0


def test_http_destination_transient_errors_are_retried(start_weir, http_sink):
    weir = start_weir(exporter_type="otlp_http", sink_endpoint=http_sink.endpoint,
                      retry_initial="50ms", retry_max_interval="200ms")
    http_sink.fail_next = [503, 429, 502]
    traces = make_trace_request(50)
    assert weir.post("traces", traces.SerializeToString()).status_code == 200
    http_sink.wait_for_spans(50)
    assert http_sink.calls >= 4
    assert sorted(http_sink.span_ids()) == sorted(span_ids_of(traces)), "lost or duplicated spans"
    wait_until(lambda: weir.metrics().sum("weir_exporter_sent_spans_total", exporter="backend") == 50, 5,
               lambda: str(weir.metrics()))
    assert weir.metrics().sum("weir_exporter_send_failed_spans_total") == 0


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_permanent_destination_error_is_counted_not_retried(start_weir, sink, http_sink, transport):
    if transport == "grpc":
        dest = sink
        weir = start_weir(retry_initial="50ms")
        dest.fail_next = [grpc.StatusCode.INVALID_ARGUMENT]
    else:
        dest = http_sink
        weir = start_weir(exporter_type="otlp_http", sink_endpoint=http_sink.endpoint, retry_initial="50ms")
        dest.fail_next = [400]
    bad = make_trace_request(30, name_prefix="rejected")
    assert weir.post("traces", bad.SerializeToString()).status_code == 200

    def drained():
        m = weir.metrics()
        return (m.sum("weir_exporter_send_failed_spans_total", exporter="backend") == 30
                and m.sum("weir_exporter_queue_size", exporter="backend", signal="traces") == 0)

    wait_until(drained, 5, lambda: f"30 failed spans and an empty queue\n{weir.metrics()}")
    assert dest.calls == 1, f"a permanent error was retried: {dest.calls} calls"
    assert dest.spans() == []
    m = weir.metrics()
    assert m.sum("weir_exporter_sent_spans_total", exporter="backend") == 0
    assert m.sum("weir_receiver_accepted_spans_total") == 30

    good = make_trace_request(20, name_prefix="good")
    assert weir.post("traces", good.SerializeToString()).status_code == 200
    dest.wait_for_spans(20)
    assert sorted(dest.span_ids()) == sorted(span_ids_of(good))


def test_console_exporter_prints_items(start_weir):
    weir = start_weir(exporter_type="console", sink_endpoint="")
    traces = make_trace_request(3, name_prefix="console-span")
    assert weir.post("traces", traces.SerializeToString()).status_code == 200
    assert weir.post("logs", _logs(1).SerializeToString()).status_code == 200

    def printed():
        out = weir.stdout() + weir.stderr()
        return all(f"console-span-{i}" in out for i in range(3))

    wait_until(printed, 10, lambda: f"span names in weir's output:\n{weir.stdout()[-2000:]}")
    wait_until(lambda: weir.metrics().sum("weir_exporter_sent_spans_total", exporter="backend") == 3, 5,
               lambda: str(weir.metrics()))
