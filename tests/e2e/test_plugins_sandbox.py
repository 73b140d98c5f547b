"""The plugin sandbox, end to end: a deliberately bad plugin (tests/plugins/misbehave)
loops, sleeps in WASI, exhausts its memory, traps, returns an error or returns
invalid edits, and weir contains each failure and applies the plugin's failure policy:

- pass: the batch goes on exactly as it was before the plugin;
- drop: the client is told OK, nothing is exported, and the items are counted in
  weir_pipeline_dropped_spans_total{reason="failed:mis"};
- reject: the client gets a retryable error (HTTP 503 / gRPC UNAVAILABLE) and
  nothing is exported.

Also: a trapped instance is replaced, bad plugin configs are refused naming
`plugins.mis`, and a chatty plugin cannot flood weir's log."""

from __future__ import annotations

import hashlib
import re
import subprocess
import time

import grpc
import pytest
import requests
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otlp_helpers import (
    attrs_to_dict,
    free_port,
    make_trace_request,
    plugin_config_template,
    plugin_wasm,
    weir_bin,
)

LABELS = {"pipeline": "traces", "plugin": "mis"}

# mode -> (outcome label of weir_plugin_calls_total, extra [plugins.mis] settings,
#          how weir describes the failure in its log and in a rejection)
BAD_MODES = {
    "loop": ("timeout", {"timeout": "50ms"}, "exceeded its time limit"),
    # Waits in WASI (std::thread::sleep): the epoch cannot interrupt it; the call's
    # own deadline ends it.
    "sleep": ("timeout", {"timeout": "50ms"}, "exceeded its time limit"),
    "oom": ("memory_limit", {"memory_limit": "16MiB"}, "exceeded its memory limit"),
    "trap": ("trap", {}, "trapped"),
    "error": ("error", {}, "returned an error: misbehave: deliberate error"),
    "garbage": ("invalid", {}, "returned invalid changes"),
    # Four good edits, then a span name set to an int: the host refuses the
    # list in `apply`, so none of the four is applied (checked under "pass").
    "half-bad": ("invalid", {}, "returned invalid changes: edit 4: field edit of item 0 sets Name to int 5, but Name takes a str"),
}


def mis_config(cache_dir, mode: str, on_error: str = "reject", every: int = 1, **settings) -> str:
    plugin = {"wasm": "misbehave", "on_error": on_error, **settings, "config": {"mode": mode, "every": every}}
    return plugin_config_template({"mis": plugin}, pipelines={"traces": {"plugins": ["mis"]}}, cache_dir=cache_dir)


def export_grpc(weir, request) -> grpc.StatusCode:
    with weir.grpc_channel() as ch:
        try:
            trace_service_pb2_grpc.TraceServiceStub(ch).Export(request, timeout=10)
        except grpc.RpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def span_key(s) -> bytes:
    return s.span_id


def assert_delivered_unchanged(sink, sent_requests) -> None:
    """Every sent span arrived exactly as sent (same span message, resource and scope),
    and nothing else arrived."""
    sent = {}
    for req in sent_requests:
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    sent[s.span_id] = (rs.resource, ss.scope, s)
    got = sink.wait_for_spans(len(sent))
    assert len(got) == len(sent), f"expected {len(sent)} spans, the sink has {len(got)}"
    for r in got:
        assert r.span.span_id in sent, f"unexpected span {r.span.name}"
        resource, scope, span = sent[r.span.span_id]
        assert r.span == span, f"span changed on the way:\nsent {span}\ngot {r.span}"
        assert r.resource == resource and r.scope == scope
        assert "misbehave" not in attrs_to_dict(r.span.attributes)


@pytest.mark.parametrize("policy", ["pass", "drop", "reject"])
@pytest.mark.parametrize("mode", list(BAD_MODES))
def test_failure_is_contained_by_policy(start_weir, sink, plugin_cache_dir, mode, policy):
    outcome, settings, described = BAD_MODES[mode]
    w = start_weir(config_text=mis_config(plugin_cache_dir, mode, policy, **settings))
    reqs = [make_trace_request(4, name_prefix=f"{mode}-{policy}-{i}") for i in range(2)]

    r = w.post("traces", reqs[0].SerializeToString())
    code = export_grpc(w, reqs[1])
    if policy == "reject":
        assert r.status_code == 503, f"HTTP: expected 503, got {r.status_code}: {r.content[:300]!r}"
        message = status_pb2.Status.FromString(r.content).message
        assert "plugin mis failed" in message and described in message, \
            f"the 503 should name the plugin and the failure: {message!r}"
        assert code == grpc.StatusCode.UNAVAILABLE, f"gRPC: expected UNAVAILABLE, got {code}"
    else:
        assert r.status_code == 200, f"HTTP: expected 200, got {r.status_code}: {r.content[:300]!r}"
        assert code == grpc.StatusCode.OK, f"gRPC: expected OK, got {code}"

    if policy == "pass":
        # Both batches went through untouched: weir kept serving after the failure.
        assert_delivered_unchanged(sink, reqs)

    m = w.metrics()
    # The `ok` series exists from the chain's start (at 0), so a rate over it is
    # defined before the first success; only outcomes that happened count here.
    calls = {s.labels["outcome"]: s.value for s in m.samples
             if s.name == "weir_plugin_calls_total" and s.labels.get("plugin") == "mis" and s.value}
    assert calls == {outcome: 2}, f"weir_plugin_calls_total by outcome: {calls}\n{m}"
    traps_expected = 2 if outcome in ("trap", "memory_limit") else 0
    assert m.sum("weir_plugin_traps_total", **LABELS) == traps_expected, str(m)
    assert m.sum("weir_plugin_timeouts_total", **LABELS) == (2 if outcome == "timeout" else 0), str(m)
    assert m.sum("weir_plugin_failure_policy_applied_total", outcome=policy, **LABELS) == 2, str(m)
    assert m.sum("weir_plugin_items_in_total", **LABELS) == 8, str(m)
    assert m.sum("weir_plugin_items_out_total", **LABELS) == (8 if policy == "pass" else 0), str(m)
    dropped = m.sum("weir_pipeline_dropped_spans_total", pipeline="traces", reason="failed:mis")
    assert dropped == (8 if policy == "drop" else 0), str(m)
    refused = m.sum("weir_receiver_refused_spans_total", reason="plugin_rejected")
    assert refused == (8 if policy == "reject" else 0), str(m)

    assert w.alive(), "weir exited"
    assert requests.get(w.admin_url("/health"), timeout=5).status_code == 200
    # weir logs each failure, naming the plugin and the policy.
    failures = [l for l in w.stderr().splitlines() if "plugin failed" in l and "plugin=mis" in l]
    assert len(failures) == 2, w.stderr()[-3000:]
    assert all(described in l and f'policy="{policy}"' in l for l in failures), failures

    # A graceful stop drains every queue: whatever was going to be exported has been.
    assert w.terminate() == 0
    if policy != "pass":
        assert sink.spans() == [], f"{policy}: {len(sink.spans())} spans leaked to the sink"


def test_trap_replaces_the_instance(start_weir, sink, plugin_cache_dir):
    """Every 2nd batch traps. The trapped instance is thrown away and a fresh one
    (from the precompiled component) takes the next batch, which goes through
    processed (misbehave="ok") — the pattern repeats, so the fresh instance counts
    from 1 again and weir never reuses a broken one."""
    w = start_weir(config_text=mis_config(plugin_cache_dir, "trap", "reject", every=2, instances=1))
    reqs = [make_trace_request(3, name_prefix=f"batch{i}") for i in range(5)]
    codes = [w.post("traces", r.SerializeToString()).status_code for r in reqs]
    assert codes == [200, 503, 200, 503, 200]
    got = sink.wait_for_spans(9)
    assert sorted({r.span.name.split("-")[0] for r in got}) == ["batch0", "batch2", "batch4"]
    assert len(got) == 9
    for r in got:
        assert attrs_to_dict(r.span.attributes).get("misbehave") == "ok", r.span
    m = w.metrics()
    assert m.sum("weir_plugin_calls_total", outcome="ok", **LABELS) == 3, str(m)
    assert m.sum("weir_plugin_calls_total", outcome="trap", **LABELS) == 2, str(m)
    assert m.sum("weir_plugin_traps_total", **LABELS) == 2, str(m)
    assert m.sum("weir_plugin_items_out_total", **LABELS) == 9, str(m)


# ---------------------------------------------------------------------------
# configs weir refuses


def concrete(template: str) -> str:
    return template.format(admin_port=free_port(), grpc_port=free_port(), http_port=free_port(),
                           sink=f"http://127.0.0.1:{free_port()}")


def run_weir(*args, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([str(weir_bin()), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def bad_configs(tmp_path):
    wasm = plugin_wasm("misbehave")
    wrong = "0" * 64
    return {
        "unknown mode": ({"wasm": "misbehave", "config": {"mode": "nonsense"}},
                         ["rejected its config", "nonsense"]),
        "every = 0": ({"wasm": "misbehave", "config": {"mode": "ok", "every": 0}},
                      ["rejected its config", "every: must be at least 1"]),
        "missing wasm": ({"path": str(tmp_path / "nowhere" / "mis.wasm"), "config": {"mode": "ok"}},
                         ["cannot read", str(tmp_path / "nowhere" / "mis.wasm")]),
        "wrong sha256": ({"path": str(wasm), "sha256": wrong, "config": {"mode": "ok"}},
                         ["sha256 mismatch", wrong, hashlib.sha256(wasm.read_bytes()).hexdigest()]),
    }


@pytest.mark.parametrize("case", ["unknown mode", "every = 0", "missing wasm", "wrong sha256"])
def test_bad_plugin_config_is_refused(tmp_path, case):
    plugin, fragments = bad_configs(tmp_path)[case]
    cfg = tmp_path / "weir.toml"
    cfg.write_text(concrete(plugin_config_template({"mis": plugin}, pipelines={"traces": {"plugins": ["mis"]}})))

    v = run_weir("validate", "--config", str(cfg))
    assert v.returncode == 1, f"validate exited {v.returncode}\nstdout: {v.stdout}\nstderr: {v.stderr}"
    error_lines = [l for l in v.stderr.splitlines() if "plugins.mis" in l]
    assert error_lines, f"validate does not name plugins.mis:\n{v.stderr}"
    for f in fragments:
        assert any(f in l for l in error_lines), f"validate's error lacks {f!r}:\n{v.stderr}"

    r = run_weir("run", "--config", str(cfg))
    assert r.returncode != 0, f"weir run started with a bad plugin config:\n{r.stderr[-2000:]}"
    assert "plugins.mis" in r.stderr, r.stderr[-2000:]
    for f in fragments:
        assert f in r.stderr, f"weir run's error lacks {f!r}:\n{r.stderr[-2000:]}"
    assert "listening" not in r.stderr, "weir opened listeners before refusing the config"


def test_right_sha256_pin_is_accepted(tmp_path):
    wasm = plugin_wasm("misbehave")
    pin = hashlib.sha256(wasm.read_bytes()).hexdigest().upper()  # hex case does not matter
    cfg = tmp_path / "weir.toml"
    cfg.write_text(concrete(plugin_config_template(
        {"mis": {"path": str(wasm), "sha256": pin, "config": {"mode": "ok"}}},
        pipelines={"traces": {"plugins": ["mis"]}})))
    v = run_weir("validate", "--config", str(cfg))
    assert v.returncode == 0, v.stderr
    assert "configuration OK" in v.stdout


# ---------------------------------------------------------------------------
# output


LOG_LINE = re.compile(r'misbehave (stdout|stderr) line (\d+)')
OUTPUT_CAP = 64 * 1024


def test_chatty_plugin_output_is_capped(start_weir, sink, plugin_cache_dir):
    """Each batch makes the plugin print 10,000 lines to stdout and 10,000 to stderr.
    weir logs at most 64 KiB of each stream per instance per minute — the first
    lines, whole — and discards the rest; the spans are not held up."""
    w = start_weir(config_text=mis_config(plugin_cache_dir, "chatty", "reject", timeout="10s", instances=1))
    reqs = [make_trace_request(5, name_prefix=f"chatty{i}") for i in range(3)]
    for r in reqs:
        resp = w.post("traces", r.SerializeToString())
        assert resp.status_code == 200, resp.content[:300]
    assert_delivered_unchanged(sink, reqs)

    log = w.stderr()
    for stream in ("stdout", "stderr"):
        lines = [l for l in log.splitlines() if f'stream="{stream}"' in l]
        numbers = []
        for l in lines:
            found = LOG_LINE.search(l)
            assert found and found.group(1) == stream, f"unexpected {stream} log line: {l!r}"
            numbers.append(int(found.group(2)))
        logged = sum(len(f"misbehave {stream} line {n}\n") for n in numbers)
        assert 0 < logged <= OUTPUT_CAP, f"{stream}: {logged} bytes of plugin output logged (cap {OUTPUT_CAP})"
        # What is kept is the start of the output, whole lines in order; nearly the full cap is used.
        assert numbers == list(range(len(numbers))), f"{stream}: logged lines are not 0..n in order"
        assert logged > OUTPUT_CAP - 100, f"{stream}: only {logged} bytes logged"
    assert "misbehave" not in w.stdout(), "plugin output leaked onto weir's own stdout"
    m = w.metrics()
    assert m.sum("weir_plugin_calls_total", outcome="ok", **LABELS) == 3, str(m)


def test_plugin_output_and_traps_on_the_receiving_task(start_weir, sink, plugin_cache_dir):
    """After its first second a fast chain runs on the task that received the
    request, not on a processing thread. A plugin printing (one line to each
    stream per batch) or trapping (Rust prints the panic message to stderr)
    calls WASI there; that must neither break the connection nor lose a span.
    Regression: wasmtime-wasi's sync bindings panicked the receiving task
    ("cannot start a runtime from within a runtime") and the client saw its
    connection closed with no answer."""
    plugins = {
        "chatty": {"wasm": "misbehave", "on_error": "reject", "instances": 1,
                   "config": {"mode": "chatty", "lines": 1}},
        "trapper": {"wasm": "misbehave", "on_error": "pass", "instances": 1,
                    "config": {"mode": "trap", "every": 3}},
    }
    config = plugin_config_template(plugins, pipelines={"traces": {"plugins": ["chatty", "trapper"]}},
                                    cache_dir=plugin_cache_dir)
    w = start_weir(config_text=config)
    time.sleep(1.5)  # past the start-up window, in which every batch goes to the threads
    reqs = [make_trace_request(3, name_prefix=f"inline{i}") for i in range(12)]
    for i, r in enumerate(reqs):
        if i % 2:
            assert export_grpc(w, r) == grpc.StatusCode.OK
        else:
            resp = w.post("traces", r.SerializeToString())
            assert resp.status_code == 200, resp.content[:300]
    assert_delivered_unchanged_names(sink, reqs)
    log = w.stderr()
    # The plugin's own panic message is logged as its stderr; weir's must not appear.
    host_panics = [l for l in log.splitlines() if "panicked" in l and "weir::plugin" not in l]
    assert not host_panics, "\n".join(host_panics)
    assert len([l for l in log.splitlines() if 'stream="stdout"' in l and "misbehave stdout line 0" in l]) == 12
    m = w.metrics()
    assert m.sum("weir_plugin_calls_total", outcome="trap", pipeline="traces", plugin="trapper") == 4, str(m)


def assert_delivered_unchanged_names(sink, sent_requests) -> None:
    """Every sent span arrived once (the chatty plugin changes nothing; the trapping
    one's policy is pass)."""
    sent = sorted(s.name for req in sent_requests for rs in req.resource_spans
                  for ss in rs.scope_spans for s in ss.spans)
    got = sorted(r.span.name for r in sink.wait_for_spans(len(sent)))
    assert got == sent
