"""Canary test for the redact plugin: one secret (an email and a bearer JWT) is
planted in every place of an OTLP request where it can hide — resource, scope,
span, span event, span link, log record and metric data point attributes (as plain
strings and nested inside array and kvlist values), span names and log bodies
(string, kvlist, array, and a string holding JSON) — and sent through weir with
redact covering everything. The sink keeps the raw bytes it receives: the secret
must appear nowhere in them (nor in weir's log), while everything that is not
secret arrives intact, with its types.

`test_canary_other_locations` does the same for the remaining places a secret can
sit in OTLP (status messages, span and log event names, exemplars, metric
metadata), all of which weir:plugin@0.2.0 (wit/v0.2.0/plugin.wit) exposes — and
`test_canary_nested_after_escaped_character` for secrets inside nested values that
follow a newline or tab (which the plugin sees JSON-escaped) — one case each, so
each gap shows up on its own."""

from __future__ import annotations

import base64
import json
import random

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp_helpers import (
    OtlpSink,
    any_value_to_py,
    attrs_to_dict,
    dict_to_attrs,
    logs_request,
    make_log,
    make_span,
    plugin_config_template,
    traces_request,
)


def b64url(s: str) -> str:
    return base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")


EMAIL = "canary-7f3a@example.com"
JWT = ".".join([b64url('{"alg":"HS256","typ":"JWT"}'), b64url('{"sub":"canary-7f3a"}'), b64url("sig-canary-7f3a")])
# What must never leave weir: the whole secrets and each distinctive part of them.
NEEDLES = [EMAIL, "canary-7f3a", *JWT.split(".")]
SECRET = f"mail {EMAIL} auth Bearer {JWT}"
MASKED = "mail *** auth Bearer ***"

REDACT = {
    "redact": {
        "on_error": "reject",
        "config": {
            "detectors": ["email", "credit_card", "bearer", "jwt"],
            "levels": ["resource", "scope", "item", "event", "link", "metric", "exemplar"],
            "span_names": True,
            "log_bodies": True,
        },
    }
}


def secret(loc: str, masked: bool = False) -> str:
    return f"{loc}: {MASKED if masked else SECRET}"


def nested(loc: str, masked: bool = False) -> dict:
    """A kvlist value with the secret at several depths, next to non-secret values of every type."""
    return {
        "s": secret(f"{loc}.kv", masked),
        "n": 7,
        "ok": True,
        "x": 0.5,
        "list": ["plain", secret(f"{loc}.kv.list", masked), {"deep": secret(f"{loc}.kv.list.deep", masked)}],
    }


def array(loc: str, masked: bool = False) -> list:
    return ["plain", secret(f"{loc}.arr", masked), 3, [secret(f"{loc}.arr.arr", masked)], nested(f"{loc}.arr", masked)]


def attrs(loc: str, masked: bool = False) -> dict:
    return {
        f"{loc}.str": secret(loc, masked),
        f"{loc}.arr": array(loc, masked),
        f"{loc}.kv": nested(loc, masked),
        "keep.int": 42,
        "keep.str": "plain",
    }


def resource(loc: str, masked: bool = False) -> dict:
    return {"service.name": "canary-svc", **attrs(loc, masked)}


# Two of everything (resources, scopes, items, events, links), so that the secret
# sits in later entities too, not only at index 0.
R, S, I = range(2), range(2), range(2)


def traces():
    resources = []
    for r in R:
        scopes = []
        for sc in S:
            spans = []
            for i in I:
                at = f"r{r}.s{sc}.i{i}"
                links = [trace_pb2.Span.Link(trace_id=random.randbytes(16), span_id=random.randbytes(8),
                                             attributes=dict_to_attrs(attrs(f"link.{at}.l{k}"))) for k in range(2)]
                events = [trace_pb2.Span.Event(name=f"event-{k}", time_unix_nano=1,
                                               attributes=dict_to_attrs(attrs(f"event.{at}.e{k}"))) for k in range(2)]
                spans.append(make_span(secret(f"span.name.{at}"), random.randbytes(16), attrs=attrs(f"span.{at}"),
                                       events=events, links=links))
            spans.append(make_span(f"plain-{r}-{sc}", random.randbytes(16), attrs={"keep.str": "plain"}))
            scopes.append(trace_pb2.ScopeSpans(
                scope=common_pb2.InstrumentationScope(name=f"scope-{sc}", attributes=dict_to_attrs(attrs(f"scope.r{r}.s{sc}"))),
                spans=spans))
        resources.append(trace_pb2.ResourceSpans(
            resource=resource_pb2.Resource(attributes=dict_to_attrs(resource(f"resource.r{r}"))), scope_spans=scopes))
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=resources)


LOG_JSON_BODY = json.dumps({"user": EMAIL, "token": JWT, "n": 1})
LOG_JSON_BODY_MASKED = json.dumps({"user": "***", "token": "***", "n": 1})
BIG = "x" * 100_000


def log_bodies(at: str, masked: bool = False) -> list:
    return [secret(f"log.body.{at}", masked), nested(f"log.body.{at}", masked), array(f"log.body.{at}", masked),
            LOG_JSON_BODY_MASKED if masked else LOG_JSON_BODY, BIG + secret(f"log.body.big.{at}", masked),
            "plain body"]


def logs():
    resources = []
    for r in R:
        scopes = []
        for sc in S:
            at = f"r{r}.s{sc}"
            records = [make_log(body, attrs=attrs(f"log.{at}.b{k}")) for k, body in enumerate(log_bodies(at))]
            scopes.append(logs_pb2.ScopeLogs(
                scope=common_pb2.InstrumentationScope(name=f"scope-{sc}", attributes=dict_to_attrs(attrs(f"scope.{at}"))),
                log_records=records))
        resources.append(logs_pb2.ResourceLogs(
            resource=resource_pb2.Resource(attributes=dict_to_attrs(resource(f"resource.r{r}"))), scope_logs=scopes))
    return logs_service_pb2.ExportLogsServiceRequest(resource_logs=resources)


KINDS = ("gauge", "sum", "histogram", "exp", "summary")


def point_kwargs(loc: str) -> dict:
    return {"attributes": dict_to_attrs(attrs(loc)), "time_unix_nano": 1}


def metric(kind: str, at: str):
    """A metric of `kind` with two data points, each carrying the secret."""
    pts = [point_kwargs(f"point.{kind}.{at}.p{k}") for k in range(2)]
    name = f"{kind}.{at}"
    if kind == "gauge":
        return metrics_pb2.Metric(name=name, gauge=metrics_pb2.Gauge(
            data_points=[metrics_pb2.NumberDataPoint(as_int=1, **p) for p in pts]))
    if kind == "sum":
        return metrics_pb2.Metric(name=name, sum=metrics_pb2.Sum(
            aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE, is_monotonic=True,
            data_points=[metrics_pb2.NumberDataPoint(as_double=2.5, **p) for p in pts]))
    if kind == "histogram":
        return metrics_pb2.Metric(name=name, histogram=metrics_pb2.Histogram(
            aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_DELTA,
            data_points=[metrics_pb2.HistogramDataPoint(count=1, sum=1.0, bucket_counts=[0, 1], explicit_bounds=[0.5], **p)
                         for p in pts]))
    if kind == "exp":
        return metrics_pb2.Metric(name=name, exponential_histogram=metrics_pb2.ExponentialHistogram(
            aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_DELTA,
            data_points=[metrics_pb2.ExponentialHistogramDataPoint(count=1, scale=0, zero_count=1, **p) for p in pts]))
    return metrics_pb2.Metric(name=name, summary=metrics_pb2.Summary(
        data_points=[metrics_pb2.SummaryDataPoint(count=1, sum=1.0, **p) for p in pts]))


def metrics():
    resources = []
    for r in R:
        scopes = []
        for sc in S:
            at = f"r{r}.s{sc}"
            ms = [metric(kind, at) for kind in KINDS]
            ms.append(metrics_pb2.Metric(name=f"plain.{at}", gauge=metrics_pb2.Gauge(data_points=[
                metrics_pb2.NumberDataPoint(as_int=5, attributes=dict_to_attrs({"keep.str": "plain"}))])))
            scopes.append(metrics_pb2.ScopeMetrics(
                scope=common_pb2.InstrumentationScope(name=f"scope-{sc}", attributes=dict_to_attrs(attrs(f"scope.{at}"))),
                metrics=ms))
        resources.append(metrics_pb2.ResourceMetrics(
            resource=resource_pb2.Resource(attributes=dict_to_attrs(resource(f"resource.r{r}"))), scope_metrics=scopes))
    return metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=resources)


_HEX_IDS = {"traceId", "spanId", "parentSpanId"}


def to_otlp_json(message) -> bytes:
    """OTLP/JSON of a request: protobuf's JSON mapping (lowerCamelCase, int64 as
    strings, enums as integers) with trace/span ids as hex, as OTLP requires."""

    def fix(node):
        if isinstance(node, dict):
            return {k: (base64.b64decode(v).hex() if k in _HEX_IDS else fix(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [fix(x) for x in node]
        return node

    return json.dumps(fix(json_format.MessageToDict(message, use_integers_for_enums=True))).encode()


@pytest.fixture
def raw_sink():
    s = OtlpSink(keep_raw=True)
    s.start()
    yield s
    s.stop()


def leaks(raw: bytes) -> list[str]:
    return [n for n in NEEDLES if n.encode() in raw]


def where(raw_requests: list[bytes], needle: str) -> list[str]:
    """Context around each occurrence, for the failure message."""
    out = []
    for raw in raw_requests:
        i = raw.find(needle.encode())
        while i >= 0 and len(out) < 3:
            out.append(repr(raw[max(0, i - 60): i + len(needle) + 20]))
            i = raw.find(needle.encode(), i + 1)
    return out


def start_redacting(start_weir, raw_sink, cache):
    return start_weir(config_text=plugin_config_template(REDACT, cache_dir=cache, exporters={"backend": raw_sink.endpoint}))


def send(w, request, signal_name: str) -> None:
    r = w.post(signal_name, request.SerializeToString())
    assert r.status_code == 200, f"{signal_name}: {r.status_code}: {r.content[:300]!r}"


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_canary_appears_nowhere(start_weir, raw_sink, plugin_cache_dir, encoding):
    sent = {"traces": traces(), "logs": logs(), "metrics": metrics()}
    for req in sent.values():
        assert leaks(req.SerializeToString()) == NEEDLES, "the canary must be planted"
    w = start_redacting(start_weir, raw_sink, plugin_cache_dir)
    for name, req in sent.items():
        if encoding == "protobuf":
            send(w, req, name)
        else:
            r = w.post(name, to_otlp_json(req), content_type="application/json")
            assert r.status_code == 200, f"{name}: {r.status_code}: {r.content[:300]!r}"
    n_spans, n_logs, n_points = 4 * 3, 4 * 6, 4 * (2 * len(KINDS) + 1)
    raw_sink.wait_for_spans(n_spans)
    raw_sink.wait_for_logs(n_logs)
    raw_sink.wait_for_points(n_points)
    m = w.metrics()
    assert w.terminate() == 0
    assert m.sum("weir_plugin_calls_total", plugin="redact", outcome="ok") == 3, str(m)

    # 1. Not a trace of the secret in anything the sink received.
    for name in sent:
        raw = b"".join(raw_sink.raw_requests(name))
        assert raw, f"no {name} arrived"
        found = leaks(raw)
        assert not found, f"{name}: the canary leaked: {found}\n" + "\n".join(where(raw_sink.raw_requests(name), found[0]))
    assert not leaks(w.stderr().encode()), "the canary is in weir's log"

    # 2. Everything else arrived, with the secret masked in place and types intact.
    spans = {r.span.name: r for r in raw_sink.spans()}
    assert len(spans) == n_spans
    for r in R:
        for sc in S:
            for i in I:
                at = f"r{r}.s{sc}.i{i}"
                got = spans[secret(f"span.name.{at}", True)]
                assert attrs_to_dict(got.resource.attributes) == resource(f"resource.r{r}", True)
                assert got.scope.name == f"scope-{sc}"
                assert attrs_to_dict(got.scope.attributes) == attrs(f"scope.r{r}.s{sc}", True)
                assert attrs_to_dict(got.span.attributes) == attrs(f"span.{at}", True)
                assert [e.name for e in got.span.events] == ["event-0", "event-1"]
                for k in range(2):
                    assert attrs_to_dict(got.span.events[k].attributes) == attrs(f"event.{at}.e{k}", True)
                    assert attrs_to_dict(got.span.links[k].attributes) == attrs(f"link.{at}.l{k}", True)
            assert attrs_to_dict(spans[f"plain-{r}-{sc}"].span.attributes) == {"keep.str": "plain"}

    records = raw_sink.log_records()
    assert len(records) == n_logs
    by_scope = {}
    for rec in records:
        res = next(k for k in attrs_to_dict(rec.resource.attributes) if k.startswith("resource.") and k.endswith(".str"))
        by_scope.setdefault((res, rec.scope.name), []).append(rec)
    for r in R:
        for sc in S:
            at = f"r{r}.s{sc}"
            group = by_scope[(f"resource.r{r}.str", f"scope-{sc}")]
            assert attrs_to_dict(group[0].resource.attributes) == resource(f"resource.r{r}", True)
            assert len(group) == 6, f"{at}: {len(group)} records"
            assert attrs_to_dict(group[0].scope.attributes) == attrs(f"scope.{at}", True)
            assert [any_value_to_py(g.record.body) for g in group] == log_bodies(at, True)
            for k, g in enumerate(group):
                assert attrs_to_dict(g.record.attributes) == attrs(f"log.{at}.b{k}", True)

    points = raw_sink.metric_points()
    assert len(points) == n_points
    by_metric = {}
    for pt in points:
        by_metric.setdefault(pt.metric.name, []).append(pt)
    for r in R:
        for sc in S:
            at = f"r{r}.s{sc}"
            for kind in KINDS:
                pts = by_metric[f"{kind}.{at}"]
                assert len(pts) == 2
                assert attrs_to_dict(pts[0].resource.attributes) == resource(f"resource.r{r}", True)
                assert attrs_to_dict(pts[0].scope.attributes) == attrs(f"scope.{at}", True)
                for k, pt in enumerate(pts):
                    assert attrs_to_dict(pt.point.attributes) == attrs(f"point.{kind}.{at}.p{k}", True), (kind, at, k)
            assert by_metric[f"gauge.{at}"][0].point.as_int == 1
            assert by_metric[f"sum.{at}"][1].point.as_double == 2.5
            assert list(by_metric[f"histogram.{at}"][0].point.bucket_counts) == [0, 1]
            assert attrs_to_dict(by_metric[f"plain.{at}"][0].point.attributes) == {"keep.str": "plain"}


# ---------------------------------------------------------------------------
# the other places a secret can sit in OTLP


def other_location(loc: str):
    """(signal, request) with the secret only at `loc`."""
    tid = random.randbytes(16)
    if loc == "span status message":
        span = make_span("s", tid, status_code=trace_pb2.Status.STATUS_CODE_ERROR, status_message=secret(loc))
        return "traces", traces_request(({"service.name": "svc"}, [span]))
    if loc == "span event name":
        span = make_span("s", tid, events=[trace_pb2.Span.Event(name=secret(loc), time_unix_nano=1)])
        return "traces", traces_request(({"service.name": "svc"}, [span]))
    if loc == "log event_name":
        record = make_log("plain body")
        record.event_name = secret(loc)
        return "logs", logs_request(({"service.name": "svc"}, [record]))
    point = metrics_pb2.NumberDataPoint(as_int=1, time_unix_nano=1, attributes=dict_to_attrs({"keep.str": "plain"}))
    if loc == "metric exemplar attributes":
        point.exemplars.append(metrics_pb2.Exemplar(as_int=1, time_unix_nano=1, trace_id=tid,
                                                    filtered_attributes=dict_to_attrs({"user": secret(loc)})))
    metric = metrics_pb2.Metric(name="g", gauge=metrics_pb2.Gauge(data_points=[point]))
    if loc == "metric metadata attributes":
        metric.metadata.extend(dict_to_attrs({"owner": secret(loc)}))
    elif loc != "metric exemplar attributes":
        raise AssertionError(loc)
    return "metrics", metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(
        resource=resource_pb2.Resource(attributes=dict_to_attrs({"service.name": "svc"})),
        scope_metrics=[metrics_pb2.ScopeMetrics(metrics=[metric])])])


@pytest.mark.parametrize("loc", [
    "span status message",
    "span event name",
    "log event_name",
    "metric exemplar attributes",
    "metric metadata attributes",
])
def test_canary_other_locations(start_weir, raw_sink, plugin_cache_dir, loc):
    signal_name, req = other_location(loc)
    assert leaks(req.SerializeToString()) == NEEDLES, "the canary must be planted"
    w = start_redacting(start_weir, raw_sink, plugin_cache_dir)
    send(w, req, signal_name)
    {"traces": raw_sink.wait_for_spans, "logs": raw_sink.wait_for_logs, "metrics": raw_sink.wait_for_points}[signal_name](1)
    assert w.terminate() == 0
    raw = b"".join(raw_sink.raw_requests(signal_name))
    found = leaks(raw)
    assert not found, f"{loc}: the canary leaked through redact: {found}\n" + "\n".join(
        where(raw_sink.raw_requests(signal_name), found[0]))


# ---------------------------------------------------------------------------
# secrets inside nested values, after a character JSON escapes

CARD = "4111 1111 1111 1111"
BEARER_TOKEN = "tok-canary-7f3a-Zq9"
ESCAPED_CASES = {
    # kind: (secret text as it appears in the value, what it becomes, needles)
    "jwt": (JWT, "***", JWT.split(".")),
    "bearer": (f"Bearer {BEARER_TOKEN}", "Bearer ***", [BEARER_TOKEN]),
    "card": (CARD, "***", [CARD]),
    "email": (EMAIL, "***", [EMAIL, "canary-7f3a"]),
}


@pytest.mark.parametrize("kind", list(ESCAPED_CASES))
def test_canary_nested_after_escaped_character(start_weir, raw_sink, plugin_cache_dir, kind):
    """Array/kvlist values reach the plugin as OTLP/JSON text, where a newline or tab
    is written `\\n`/`\\t`. A secret right after one (a multi-line message: "token:\\n<jwt>")
    must be redacted inside nested values as it is in plain strings, and the value's
    other, non-secret parts must survive."""
    text, masked, needles = ESCAPED_CASES[kind]

    def value(m: bool) -> dict:
        t = masked if m else text
        return {"note": f"line one\n{t}", "tabbed": f"k:\t{t}", "list": ["plain", f"x\n{t}"], "n": 7}

    w = start_redacting(start_weir, raw_sink, plugin_cache_dir)
    tid = random.randbytes(16)
    send(w, traces_request(({"service.name": "svc", "r": value(False)},
                            [make_span("s", tid, attrs={"plain": f"line one\n{text}", "kv": value(False),
                                                        "arr": [value(False)]})])), "traces")
    send(w, logs_request(({"service.name": "svc"}, [make_log(value(False), attrs={"kv": value(False)})])), "logs")
    raw_sink.wait_for_spans(1)
    raw_sink.wait_for_logs(1)
    assert w.terminate() == 0

    raw = raw_sink.raw_bytes()
    found = [n for n in needles if n.encode() in raw]
    context = "\n".join(where(raw_sink.raw_requests("traces"), found[0]) if found else [])
    assert not found, f"{kind} after an escaped newline/tab leaked from a nested value: {found}\n{context}"

    (span,) = raw_sink.spans()
    assert attrs_to_dict(span.span.attributes) == {"plain": f"line one\n{masked}", "kv": value(True), "arr": [value(True)]}
    assert attrs_to_dict(span.resource.attributes) == {"service.name": "svc", "r": value(True)}
    (log,) = raw_sink.log_records()
    assert any_value_to_py(log.record.body) == value(True)
    assert attrs_to_dict(log.record.attributes) == {"kv": value(True)}
