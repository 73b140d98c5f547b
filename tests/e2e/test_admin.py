"""The admin server: /health, /ready, /metrics (OpenMetrics text) reconciling after a run."""

from __future__ import annotations

import re

import requests
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

from otlp_helpers import make_trace_request, wait_until

SIGNALS = ("traces", "logs", "metrics")
NOUNS = {"traces": "spans", "logs": "log_records", "metrics": "metric_points"}


def test_health_and_ready(weir):
    r = requests.get(weir.admin_url("/health"), timeout=5)
    assert r.status_code == 200
    r = requests.get(weir.admin_url("/ready"), timeout=5)
    assert r.status_code == 200
    r = requests.get(weir.admin_url("/nope"), timeout=5)
    assert r.status_code == 404


def test_metrics_exposition_names_and_capacity(start_weir, sink):
    weir = start_weir(queue_capacity=12345)
    r = requests.get(weir.admin_url("/metrics"), timeout=5)
    assert r.status_code == 200
    # OpenMetrics text (which Prometheus scrapes natively), not the classic text/plain format.
    assert r.headers["Content-Type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8", r.headers
    m = weir.metrics()
    for s in SIGNALS:
        assert m.sum("weir_exporter_queue_capacity", exporter="backend", signal=s) == 12345, (s, str(m))
        assert m.has("weir_exporter_queue_size", exporter="backend", signal=s), (s, str(m))
        assert m.sum("weir_exporter_queue_size", exporter="backend", signal=s) == 0
    assert "# TYPE weir_exporter_queue_size gauge" in r.text, r.text
    assert "# TYPE weir_exporter_queue_capacity gauge" in r.text, r.text

    # Counters (labelled families) appear once they have been used.
    assert weir.post("traces", make_trace_request(3).SerializeToString()).status_code == 200
    sink.wait_for_spans(3)
    wait_until(lambda: weir.metrics().sum("weir_exporter_sent_spans_total", exporter="backend") == 3, 5,
               lambda: f"sent spans == 3\n{weir.metrics()}")
    text = requests.get(weir.admin_url("/metrics"), timeout=5).text
    assert 'weir_receiver_accepted_spans_total{receiver="otlp",transport="http"} 3' in text, text
    assert 'weir_exporter_sent_spans_total{exporter="backend"} 3' in text, text
    assert re.search(r"^# TYPE weir_receiver_accepted_spans(_total)? counter$", text, re.M), text


def _logs(n):
    return logs_service_pb2.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(scope_logs=[
        logs_pb2.ScopeLogs(log_records=[logs_pb2.LogRecord(time_unix_nano=i + 1) for i in range(n)])
    ])])


def _gauge_points(n):
    return metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(
        scope_metrics=[metrics_pb2.ScopeMetrics(metrics=[metrics_pb2.Metric(
            name="g", gauge=metrics_pb2.Gauge(data_points=[
                metrics_pb2.NumberDataPoint(time_unix_nano=i + 1, as_int=i) for i in range(n)
            ]))])])])


def test_metrics_reconcile_after_a_run(weir, sink):
    sent = {  # signal -> {transport: items}
        "traces": {"http": 0, "grpc": 0},
        "logs": {"http": 0, "grpc": 0},
        "metrics": {"http": 0, "grpc": 0},
    }
    with weir.grpc_channel() as ch:
        traces = trace_service_pb2_grpc.TraceServiceStub(ch)
        logs = logs_service_pb2_grpc.LogsServiceStub(ch)
        metrics = metrics_service_pb2_grpc.MetricsServiceStub(ch)
        for i in range(4):
            traces.Export(make_trace_request(10 + i), timeout=10)
            sent["traces"]["grpc"] += 10 + i
            logs.Export(_logs(3 + i), timeout=10)
            sent["logs"]["grpc"] += 3 + i
            metrics.Export(_gauge_points(2 + i), timeout=10)
            sent["metrics"]["grpc"] += 2 + i
    for i in range(3):
        assert weir.post("traces", make_trace_request(7).SerializeToString()).status_code == 200
        sent["traces"]["http"] += 7
        assert weir.post("logs", _logs(5).SerializeToString()).status_code == 200
        sent["logs"]["http"] += 5
        assert weir.post("metrics", _gauge_points(4).SerializeToString()).status_code == 200
        sent["metrics"]["http"] += 4

    total = {s: sum(v.values()) for s, v in sent.items()}
    sink.wait_for_spans(total["traces"])
    sink.wait_for_logs(total["logs"])
    sink.wait_for_points(total["metrics"])

    def reconciled():
        m = weir.metrics()
        return all(
            m.sum(f"weir_exporter_sent_{NOUNS[s]}_total", exporter="backend") == total[s]
            and m.sum("weir_exporter_queue_size", exporter="backend", signal=s) == 0
            for s in SIGNALS
        )

    wait_until(reconciled, 5, lambda: f"sent == accepted for every signal\n{weir.metrics()}")
    m = weir.metrics()
    for s in SIGNALS:
        noun = NOUNS[s]
        for transport, n in sent[s].items():
            got = m.sum(f"weir_receiver_accepted_{noun}_total", receiver="otlp", transport=transport)
            assert got == n, f"{s}/{transport}: accepted {got}, sent {n}\n{m}"
        assert m.sum(f"weir_receiver_refused_{noun}_total") == 0, str(m)
        assert m.sum(f"weir_exporter_send_failed_{noun}_total") == 0, str(m)
        assert m.sum(f"weir_receiver_accepted_{noun}_total") == m.sum(f"weir_exporter_sent_{noun}_total")
    assert len(sink.spans()) == total["traces"]
    assert len(sink.log_records()) == total["logs"]
    assert len(sink.metric_points()) == total["metrics"]
