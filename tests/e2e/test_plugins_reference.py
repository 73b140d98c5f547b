"""The four reference plugins (plugins/redact, sample, enrich, route), each run end to
end through the real weir binary as a Wasm component, on hand-built OTLP requests
sent over OTLP/HTTP, checked at a real OTLP/gRPC sink — and all four chained."""

from __future__ import annotations

import hashlib
import random

import pytest

from otlp_helpers import (
    OtlpSink,
    attrs_to_dict,
    dict_to_attrs,
    logs_request,
    make_log,
    make_span,
    plugin_config_template,
    traces_request,
)
from opentelemetry.proto.trace.v1 import trace_pb2

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
ERROR = trace_pb2.Status.STATUS_CODE_ERROR


@pytest.fixture
def other_sinks():
    """Extra OTLP/gRPC sinks, started on demand, stopped at teardown."""
    started = []

    def make() -> OtlpSink:
        s = OtlpSink()
        s.start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def send(w, request, signal_name: str = "traces") -> None:
    r = w.post(signal_name, request.SerializeToString())
    assert r.status_code == 200, f"{signal_name}: {r.status_code}: {r.content[:300]!r}"


def by_name(received) -> dict:
    out = {}
    for r in received:
        assert r.span.name not in out, f"span {r.span.name!r} arrived twice"
        out[r.span.name] = r
    return out


def start(start_weir, cache, plugins: dict, **kw):
    return start_weir(config_text=plugin_config_template(plugins, cache_dir=cache, **kw))


def settle(w, sink, n_spans: int = 0, n_logs: int = 0):
    """Waits for what is expected, then stops weir (draining every queue), so that
    nothing else can still arrive: the sink's record is final."""
    if n_spans:
        sink.wait_for_spans(n_spans)
    if n_logs:
        sink.wait_for_logs(n_logs)
    assert w.terminate() == 0


# ---------------------------------------------------------------------------
# redact


REDACT_CASES = {
    # name: (input, expected)
    "email": ("mail jane.doe@example.com now", "mail *** now"),
    "card-spaced": ("card 4111 1111 1111 1111.", "card ***."),
    "card-dashed": ("paid with 5555-5555-5555-4444", "paid with ***"),
    "card-bad-luhn": ("order 4111111111111112", "order 4111111111111112"),
    "epoch-ns": ("ts 1712345678901234567", "ts 1712345678901234567"),
    "bearer": ("Authorization: Bearer abc123==", "Authorization: Bearer ***"),
    "jwt": (f"token={JWT}", "token=***"),
    "ipv4": ("from 10.1.2.3 via 192.168.0.254", "from *** via ***"),
    "ipv6": ("peer 2001:db8::1 ok", "peer *** ok"),
    "clean": ("all fine at 12:30, GET /users/{id}", "all fine at 12:30, GET /users/{id}"),
}


def test_redact_masks_by_detector_and_key(start_weir, sink, plugin_cache_dir):
    config = {
        "detectors": ["email", "credit_card", "bearer", "jwt", "ipv4", "ipv6"],
        "keys": ["*.password"],
    }
    w = start(start_weir, plugin_cache_dir, {"redact": {"on_error": "reject", "config": config}},
              pipelines={"traces": {"plugins": ["redact"]}, "logs": {"plugins": ["redact"]}})
    tid = random.randbytes(16)
    spans = [make_span(f"case-{k}", tid, attrs={"v": v, "n": 4111111111111111}) for k, (v, _) in REDACT_CASES.items()]
    spans.append(make_span("GET /users/jane@example.com", tid, attrs={"db.password": "hunter2", "user.password": 1234}))
    send(w, traces_request(({"service.name": "checkout", "owner": "ops@example.com"}, spans)))
    send(w, logs_request(({"service.name": "checkout"}, [
        make_log("login by jane@example.com from 10.0.0.7", attrs={"auth": f"Bearer {JWT}"}),
    ])), "logs")
    settle(w, sink, n_spans=len(spans), n_logs=1)

    got = by_name(sink.spans())
    for k, (_, expected) in REDACT_CASES.items():
        attrs = attrs_to_dict(got[f"case-{k}"].span.attributes)
        assert attrs["v"] == expected, f"{k}: {attrs['v']!r}"
        assert attrs["n"] == 4111111111111111, "ints are only touched by key rules"
    # The span name is scanned too, and the key rule masks whatever the value's type.
    named = got["GET /users/***"]
    assert attrs_to_dict(named.span.attributes) == {"db.password": "***", "user.password": "***"}
    assert attrs_to_dict(named.resource.attributes) == {"service.name": "checkout", "owner": "***"}
    assert len(got) == len(spans)

    (log,) = sink.log_records()
    assert log.record.body.string_value == "login by *** from ***"
    assert attrs_to_dict(log.record.attributes) == {"auth": "Bearer ***"}


def salted(salt: str, value: str) -> str:
    return hashlib.sha256((salt + value).encode()).hexdigest()


def test_redact_hash_mode_is_deterministic(start_weir, sink, plugin_cache_dir):
    """Hashing replaces a match with sha256(salt ‖ match): equal values give equal
    hashes — across spans, requests and weir processes — and different ones differ."""
    config = {"action": "hash", "salt": "pepper-7", "detectors": ["email"], "keys": ["user.id"]}
    plugins = {"redact": {"config": config}}
    for run in range(2):
        w = start(start_weir, plugin_cache_dir, plugins, pipelines={"traces": {"plugins": ["redact"]}})
        for i, email in enumerate(["jane@example.com", "jane@example.com", "joe@example.org"]):
            send(w, traces_request(({"service.name": "svc"}, [
                make_span(f"run{run}-req{i}", random.randbytes(16), attrs={"to": f"<{email}>", "user.id": "u-42"}),
            ])))
        settle(w, sink, n_spans=3 * (run + 1))

    got = by_name(sink.spans())
    assert len(got) == 6
    for run in range(2):
        for i, email in enumerate(["jane@example.com", "jane@example.com", "joe@example.org"]):
            attrs = attrs_to_dict(got[f"run{run}-req{i}"].span.attributes)
            assert attrs == {"to": f"<{salted('pepper-7', email)}>", "user.id": salted("pepper-7", "u-42")}, attrs
    assert salted("pepper-7", "jane@example.com") != salted("pepper-7", "joe@example.org")


# ---------------------------------------------------------------------------
# sample


def trace_randomness(trace_id: bytes) -> int:
    return int.from_bytes(trace_id[9:16], "big")


def threshold(rate: float) -> int:
    t = int((1.0 - rate) * 2.0**56 + 0.5)  # Rust's f64::round, for the positive values here
    return max(0, min(t, 2**56))


def sampled_traffic(n_traces: int, seed: int):
    """n_traces traces of 3 spans each, in requests of 25 traces; (requests, trace ids)."""
    rng = random.Random(seed)
    tids = [rng.randbytes(16) for _ in range(n_traces)]
    reqs = []
    for start_i in range(0, n_traces, 25):
        spans = [make_span(f"t{i}-s{j}", tids[i], span_id=rng.randbytes(8))
                 for i in range(start_i, min(start_i + 25, n_traces)) for j in range(3)]
        reqs.append(traces_request(({"service.name": "sampled"}, spans)))
    return reqs, tids


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_sample_extreme_rates(start_weir, sink, plugin_cache_dir, rate):
    w = start(start_weir, plugin_cache_dir, {"sample": {"on_error": "pass", "config": {"rate": rate}}},
              pipelines={"traces": {"plugins": ["sample"]}})
    reqs, _ = sampled_traffic(100, seed=1)
    for r in reqs:
        send(w, r)
    m = w.metrics()
    settle(w, sink, n_spans=300 if rate == 1.0 else 0)
    assert len(sink.spans()) == (300 if rate == 1.0 else 0)
    dropped = m.sum("weir_pipeline_dropped_spans_total", pipeline="traces", reason="plugin:sample")
    assert dropped == (0 if rate == 1.0 else 300), str(m)
    assert m.sum("weir_plugin_items_dropped_total", plugin="sample") == dropped, str(m)
    assert m.sum("weir_plugin_calls_total", plugin="sample", outcome="ok") == len(reqs), str(m)


def test_sample_is_consistent_across_processes(start_weir, sink, other_sinks, plugin_cache_dir):
    """Two separate weir processes with the same config keep exactly the same traces —
    the ones the th/rv rule predicts from the trace ids — and whole traces only."""
    rate = 0.3
    reqs, tids = sampled_traffic(400, seed=2)
    expected = {f"t{i}-s{j}" for i, t in enumerate(tids) if trace_randomness(t) >= threshold(rate) for j in range(3)}
    assert 0.2 * 1200 < len(expected) < 0.4 * 1200, len(expected)

    second = other_sinks()
    kept = []
    for target in (sink, second):
        w = start(start_weir, plugin_cache_dir, {"sample": {"config": {"rate": rate}}},
                  pipelines={"traces": {"plugins": ["sample"]}},
                  exporters={"backend": target.endpoint})
        for r in reqs:
            send(w, r)
        settle(w, target, n_spans=len(expected))
        kept.append({r.span.name for r in target.spans()})
        assert len(target.spans()) == len(expected)
    assert kept[0] == kept[1] == expected


def test_sample_keep_errors(start_weir, sink, plugin_cache_dir):
    """At rate 0 with keep_errors, an error span and the rest of its trace in the
    batch are kept; everything else goes."""
    w = start(start_weir, plugin_cache_dir, {"sample": {"config": {"rate": 0.0, "keep_errors": True}}},
              pipelines={"traces": {"plugins": ["sample"]}})
    err_trace, ok_trace, lone = random.randbytes(16), random.randbytes(16), random.randbytes(16)
    send(w, traces_request(({"service.name": "svc"}, [
        make_span("err-root", err_trace),
        make_span("err-child", err_trace, status_code=ERROR, status_message="boom"),
        make_span("ok-root", ok_trace),
        make_span("ok-child", ok_trace, status_code=trace_pb2.Status.STATUS_CODE_OK),
        make_span("lone-error", lone, status_code=ERROR),
    ])))
    settle(w, sink, n_spans=3)
    assert set(by_name(sink.spans())) == {"err-root", "err-child", "lone-error"}


# ---------------------------------------------------------------------------
# enrich


ENRICH_OPS = [
    {"set": {"deployment.environment.name": "prod", "cloud.region": "eu-west-1"}, "level": "resource"},
    {"lookup": "service.name", "level": "resource", "default": {"team": "unowned"},
     "table": {"checkout": {"team": "payments", "cost_center": "cc-1001"}, "cart": {"team": "shop"}}},
    {"rename": {"from": "http.url", "to": "url.full"}, "level": "item"},
    {"delete": ["debug.*", "http.request.header.cookie"], "level": ["item", "event"]},
    {"set": {"enriched": True, "tier": 2}, "level": "item"},
]


def test_enrich_operations(start_weir, sink, plugin_cache_dir):
    w = start(start_weir, plugin_cache_dir, {"enrich": {"on_error": "pass", "config": {"operations": ENRICH_OPS}}})
    item = {"http.url": "https://shop/x", "debug.a": 1, "debug.b": "x", "http.request.header.cookie": "c=1", "keep": "me"}
    event = trace_pb2.Span.Event(name="ev", attributes=dict_to_attrs({"debug.trace": "x", "ev.keep": 1}))
    send(w, traces_request(
        ({"service.name": "checkout"}, [make_span("s-checkout", random.randbytes(16), attrs=item, events=[event])]),
        ({"service.name": "cart", "cloud.region": "us-east-1"}, [make_span("s-cart", random.randbytes(16), attrs=item)]),
        ({"service.name": "mystery"}, [make_span("s-mystery", random.randbytes(16))]),
    ))
    send(w, logs_request(({"service.name": "checkout"}, [make_log("hello", attrs={"http.url": "/l", "debug.x": 1})])),
         "logs")
    settle(w, sink, n_spans=3, n_logs=1)

    got = by_name(sink.spans())
    env = {"deployment.environment.name": "prod", "cloud.region": "eu-west-1"}
    assert attrs_to_dict(got["s-checkout"].resource.attributes) == {
        "service.name": "checkout", **env, "team": "payments", "cost_center": "cc-1001"}
    # overwrite defaults to true: the set replaced the resource's own region.
    assert attrs_to_dict(got["s-cart"].resource.attributes) == {"service.name": "cart", **env, "team": "shop"}
    assert attrs_to_dict(got["s-mystery"].resource.attributes) == {"service.name": "mystery", **env, "team": "unowned"}
    for name in ("s-checkout", "s-cart"):
        assert attrs_to_dict(got[name].span.attributes) == {
            "url.full": "https://shop/x", "keep": "me", "enriched": True, "tier": 2}
    assert attrs_to_dict(got["s-checkout"].span.events[0].attributes) == {"ev.keep": 1}
    assert attrs_to_dict(got["s-mystery"].span.attributes) == {"enriched": True, "tier": 2}

    (log,) = sink.log_records()
    assert attrs_to_dict(log.resource.attributes)["team"] == "payments"
    assert attrs_to_dict(log.record.attributes) == {"url.full": "/l", "enriched": True, "tier": 2}


# ---------------------------------------------------------------------------
# route


ROUTE_RULES = [
    {"route": "pager", "severity_min": 17},
    {"route": "tenant-a", "attribute": "tenant", "level": "resource", "equals": "a"},
    {"route": "tenant-b", "attribute": "tenant", "in": ["b", "bee"]},
    {"route": "unmapped", "attribute": "tenant", "equals": "c"},  # not in `routes`: default
]


def test_route_by_tenant_to_separate_exporters(start_weir, sink, other_sinks, plugin_cache_dir):
    sink_a, sink_b = other_sinks(), other_sinks()
    routes = {"tenant-a": ["exp_a"], "tenant-b": ["exp_b"], "pager": ["exp_b"]}
    w = start(start_weir, plugin_cache_dir, {"route": {"config": {"rules": ROUTE_RULES}}},
              pipelines={s: {"plugins": ["route"], "routes": routes} for s in ("traces", "logs")},
              exporters={"backend": "{sink}", "exp_a": sink_a.endpoint, "exp_b": sink_b.endpoint})
    t = lambda: random.randbytes(16)  # noqa: E731
    # One request mixing tenants: weir splits it by route.
    send(w, traces_request(
        ({"service.name": "x", "tenant": "a"}, [make_span("a1", t()), make_span("a2", t())]),
        ({"service.name": "y", "tenant": "b"}, [make_span("b1", t()), make_span("bee1", t(), attrs={"tenant": "bee"})]),
        ({"service.name": "z"}, [make_span("none1", t()), make_span("b2", t(), attrs={"tenant": "b"})]),
        ({"service.name": "w", "tenant": "c"}, [make_span("c1", t())]),
    ))
    send(w, logs_request(({"tenant": "a"}, [make_log("info-a", severity=9), make_log("error-a", severity=17)])), "logs")

    sink_a.wait_for_spans(2)
    sink_b.wait_for_spans(3)
    sink.wait_for_spans(2)
    sink_a.wait_for_logs(1)
    sink_b.wait_for_logs(1)
    assert w.terminate() == 0
    assert set(by_name(sink_a.spans())) == {"a1", "a2"}
    assert set(by_name(sink_b.spans())) == {"b1", "bee1", "b2"}
    assert set(by_name(sink.spans())) == {"none1", "c1"}
    # Resources travel with their items.
    for r in sink_a.spans():
        assert attrs_to_dict(r.resource.attributes) == {"service.name": "x", "tenant": "a"}
    # The first matching rule wins: the ERROR log goes to the pager route, not tenant-a.
    assert [l.record.body.string_value for l in sink_a.log_records()] == ["info-a"]
    assert [l.record.body.string_value for l in sink_b.log_records()] == ["error-a"]
    assert sink.log_records() == []


# ---------------------------------------------------------------------------
# all four, chained


def test_four_plugin_chain(start_weir, sink, other_sinks, plugin_cache_dir):
    """enrich → redact → sample → route: enrich derives the tenant from service.name,
    redact masks emails (including in what enrich did not touch), sample keeps the
    predicted traces plus the error trace, route sends each tenant to its exporter.
    Each plugin sees the previous one's edits."""
    rate = 0.5
    plugins = {
        "enrich": {"on_error": "pass", "config": {"operations": [
            {"lookup": "service.name", "level": "resource",
             "table": {"checkout": {"tenant": "a"}, "cart": {"tenant": "b"}}},
            {"set": {"contact": "owner@example.com"}, "level": "item"},
        ]}},
        "redact": {"on_error": "reject", "config": {}},
        "sample": {"on_error": "pass", "config": {"rate": rate, "keep_errors": True}},
        "route": {"on_error": "reject", "config": {"rules": [
            {"route": "tenant-a", "attribute": "tenant", "level": "resource", "equals": "a"}]}},
    }
    sink_a = other_sinks()
    w = start(start_weir, plugin_cache_dir, plugins,
              pipelines={"traces": {"plugins": ["enrich", "redact", "sample", "route"],
                                    "routes": {"tenant-a": ["exp_a"]}}},
              exporters={"backend": "{sink}", "exp_a": sink_a.endpoint})
    rng = random.Random(3)
    expected_a, expected_default = set(), set()
    for n in range(4):
        resources = []
        for service, bucket in (("checkout", expected_a), ("cart", expected_default)):
            spans = []
            for i in range(20):
                tid = rng.randbytes(16)
                name = f"{service}-{n}-{i}"
                is_error = i == 0
                spans.append(make_span(name, tid, attrs={"user": f"{name}@example.com"},
                                       status_code=ERROR if is_error else 0))
                if is_error or trace_randomness(tid) >= threshold(rate):
                    bucket.add(name)
            resources.append(({"service.name": service}, spans))
        send(w, traces_request(*resources))

    sink_a.wait_for_spans(len(expected_a))
    sink.wait_for_spans(len(expected_default))
    m = w.metrics()
    assert w.terminate() == 0
    got_a, got_default = by_name(sink_a.spans()), by_name(sink.spans())
    assert set(got_a) == expected_a
    assert set(got_default) == expected_default
    for got, tenant in ((got_a, "a"), (got_default, "b")):
        for r in got.values():
            assert attrs_to_dict(r.resource.attributes)["tenant"] == tenant
            assert attrs_to_dict(r.span.attributes) == {"user": "***", "contact": "***"}, r.span
    dropped = 160 - len(expected_a) - len(expected_default)
    assert m.sum("weir_pipeline_dropped_spans_total", pipeline="traces", reason="plugin:sample") == dropped, str(m)
    for p in plugins:
        assert m.sum("weir_plugin_calls_total", plugin=p, outcome="ok") == 4, f"{p}\n{m}"
    assert m.sum("weir_plugin_items_in_total", plugin="route") == 160 - dropped, str(m)
    # Memory by part: each plugin's live instances, their total, the compiled code,
    # and the whole process, which holds them.
    per_plugin = {p: m.sum("weir_plugin_memory_bytes", plugin=p) for p in plugins}
    assert all(v >= 64 * 1024 for v in per_plugin.values()), per_plugin
    parts = {s.labels["part"]: s.value for s in m.samples if s.name == "weir_memory_bytes"}
    assert parts["plugin_instances"] == sum(per_plugin.values()), (parts, per_plugin)
    assert parts["plugin_code"] > 100_000, parts
    assert parts["resident"] > parts["plugin_instances"] + parts["plugin_code"], parts
    assert parts["queued"] >= 0, parts
