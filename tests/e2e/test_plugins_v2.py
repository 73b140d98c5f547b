"""weir:plugin@0.2.0 components beside 0.1.0 ones. `probe2` is written against
wit/v0.2.0/plugin.wit with wit-bindgen and no SDK, as an author in another
language would; `probe1` likewise against the frozen 0.1.0 WIT; `misbehave` is
built with the Rust SDK."""

from __future__ import annotations

import grpc
import requests
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_helpers import attrs_to_dict, dict_to_attrs, make_span, plugin_config_template, traces_request


def config(cache, probe_mode: str = "tenant") -> str:
    plugins = {
        "mis": {"wasm": "misbehave", "config": {"mode": "ok"}},
        "old": {"wasm": "probe1"},
        "probe": {"wasm": "probe2", "config": {"mode": probe_mode}},
    }
    pipelines = {"traces": {"plugins": ["mis", "old", "probe"]}, "metrics": {"plugins": ["probe"]}}
    return plugin_config_template(plugins, pipelines=pipelines, cache_dir=cache)


def export(weir, request) -> None:
    with weir.grpc_channel() as ch:
        if isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
            metrics_service_pb2_grpc.MetricsServiceStub(ch).Export(request, timeout=10)
        else:
            trace_service_pb2_grpc.TraceServiceStub(ch).Export(request, timeout=10)


def test_a_0_2_0_plugin_runs_beside_a_0_1_0_one_with_the_new_helpers(start_weir, sink, plugin_cache_dir):
    w = start_weir(config_text=config(plugin_cache_dir))
    tid = bytes(range(16))
    event = trace_pb2.Span.Event(name="mail sent to bob@example.com")
    req = traces_request(
        ({"service.name": "shop", "tenant.id": "acme"},
         [make_span("GET /cart", tid, events=[event]), make_span("GET /healthz", tid)]),
        ({"service.name": "billing"}, [make_span("charge", tid, attrs={"tenant.id": "globex"})]),
    )
    export(w, req)
    spans = sink.wait_for_spans(2)
    names = sorted(s.span.name for s in spans)
    assert names == ["GET /cart", "charge"], "the health check was dropped by host-side matching"
    by_name = {s.span.name: s for s in spans}
    assert attrs_to_dict(by_name["GET /cart"].resource.attributes)["tenant"] == "acme"
    assert attrs_to_dict(by_name["charge"].resource.attributes)["tenant"] == "globex", \
        "read with inheritance: the item's own tenant.id"
    assert by_name["GET /cart"].span.events[0].name == "***", "0.2.0 reaches span event names"
    assert all(attrs_to_dict(s.span.attributes)["misbehave"] == "ok" for s in spans), "the SDK plugin ran too"
    assert all(attrs_to_dict(s.span.attributes)["probe1"] == "0.1.0" for s in spans), "and the raw 0.1.0 one"

    status = requests.get(w.admin_url("/status"), timeout=5).json()
    assert {p["name"] for p in status["plugins"]} == {"mis", "old", "probe"}
    m = w.metrics()
    assert m.sum("weir_plugin_calls_total", plugin="probe", outcome="ok") == 1
    assert m.sum("weir_plugin_items_dropped_total", plugin="probe") == 1


def test_a_0_2_0_plugin_reaches_metrics_and_exemplars(start_weir, sink, plugin_cache_dir):
    w = start_weir(config_text=config(plugin_cache_dir))
    point = metrics_pb2.NumberDataPoint(
        as_int=3,
        exemplars=[metrics_pb2.Exemplar(as_int=1, filtered_attributes=dict_to_attrs({"user.email": "eve@example.com"}))],
    )
    req = metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(
        resource=resource_pb2.Resource(attributes=dict_to_attrs({"service.name": "shop"})),
        scope_metrics=[metrics_pb2.ScopeMetrics(
            scope=common_pb2.InstrumentationScope(name="e2e"),
            metrics=[metrics_pb2.Metric(name="orders", description="orders by alice@example.com", unit="1",
                                        gauge=metrics_pb2.Gauge(data_points=[point]))],
        )],
    )])
    export(w, req)
    got = sink.wait_for_points(1)
    assert got[0].metric.description == "***"
    assert attrs_to_dict(got[0].point.exemplars[0].filtered_attributes)["user.email"] == "***"


def test_a_refused_0_2_0_edit_list_names_its_edit_and_queues_nothing(start_weir, sink, plugin_cache_dir):
    w = start_weir(config_text=config(plugin_cache_dir, probe_mode="bad-edit"))
    export(w, traces_request(({"service.name": "shop"}, [make_span("GET /cart", bytes(16))])))
    span = sink.wait_for_spans(1)[0]
    assert span.span.name == "GET /cart", "neither of the two valid edits before the bad one was applied"
    assert attrs_to_dict(span.span.attributes)["probe.refused-edit"] == 2, "the host named the third edit"
    # 0.2.0 hands the refusal to the plugin, which carried on: the call succeeded.
    m = w.metrics()
    assert m.sum("weir_plugin_calls_total", plugin="probe", outcome="ok") == 1, str(m)
