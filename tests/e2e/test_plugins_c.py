"""Plugins in C (the kit in plugins/sdk-c: wit-bindgen 0.63 bindings, Debian
clang/wasi-libc, the preview1 reactor adapter): the example processor of
examples/plugins/c passes the conformance suite through `weir plugin test
--expect`, runs end to end through `weir run`, names the bad key of a config,
and keeps its memory flat over many batches (the kit's per-call arena frees
everything and drops the borrowed batch)."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otlp_helpers import REPO_ROOT, attrs_to_dict, make_span, plugin_config_template, traces_request, weir_bin

CONFORMANCE = REPO_ROOT / "examples" / "plugins" / "conformance"
EXAMPLE = REPO_ROOT / "examples" / "plugins" / "c" / "tenant"


@pytest.fixture(scope="session")
def c_tenant(tmp_path_factory) -> Path:
    """The C example processor built as a component (once per run)."""
    out = tmp_path_factory.mktemp("c-plugin") / "tenant.wasm"
    r = subprocess.run([str(EXAMPLE / "build.sh"), str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def plugin_test(wasm: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(weir_bin()), "plugin", "test", "--wasm", str(wasm), "--cache-dir", str(cache), *args],
                          capture_output=True, text=True, timeout=300)


def test_the_c_example_passes_the_conformance_suite(c_tenant, plugin_cache_dir):
    r = plugin_test(c_tenant, plugin_cache_dir, "--input", str(CONFORMANCE / "tenant.input.json"),
                    "--expect", str(CONFORMANCE / "tenant.expected.json"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "output matches" in r.stderr and "dropped 2 spans" in r.stderr, r.stderr[-2000:]


def test_the_c_component_is_small_and_imports_only_what_weir_links(c_tenant):
    assert c_tenant.stat().st_size < 300_000, "the C component should stay around 90 KB"
    wit = subprocess.run([str(REPO_ROOT / "tests" / ".venv" / "bin" / "wasm-tools"), "component", "wit", str(c_tenant)],
                         capture_output=True, text=True, timeout=60)
    assert wit.returncode == 0, wit.stderr
    imports = {line.split()[1].rstrip(";") for line in wit.stdout.splitlines() if line.strip().startswith("import ")}
    assert "weir:plugin/types@0.2.0" in imports
    others = {i for i in imports if not i.startswith(("wasi:io/", "wasi:cli/", "wasi:clocks/", "wasi:random/",
                                                      "wasi:filesystem/", "wasi:sockets/", "weir:plugin/"))}
    assert not others, f"imports weir refuses: {others}"


LOGS = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
                           "scopeLogs": [{"scope": {"name": "s"}, "logRecords": [
                               {"timeUnixNano": "1", "body": {"stringValue": "GET /health"},
                                "attributes": [{"key": "tenant.id", "value": {"intValue": "7"}}]},
                               {"timeUnixNano": "2", "body": {"stringValue": "hello"}}]}]}]}
POINTS = [{"asInt": "3", "timeUnixNano": "1"}, {"asInt": "4", "timeUnixNano": "2"}]
METRICS = {"resourceMetrics": [{"resource": {"attributes": [{"key": "tenant.id", "value": {"stringValue": "acme"}}]},
                                "scopeMetrics": [{"scope": {"name": "s"}, "metrics": [
                                    {"name": "requests", "sum": {"aggregationTemporality": 2, "isMonotonic": True,
                                                                 "dataPoints": POINTS}}]}]}]}


@pytest.mark.parametrize("signal", ["logs", "metrics"])
def test_the_c_example_handles_logs_and_metrics(signal, tmp_path, c_tenant, plugin_cache_dir):
    """The other two exports: tenants are set (an int id as its text), nothing is dropped."""
    inp = tmp_path / f"{signal}.json"
    inp.write_text(json.dumps(LOGS if signal == "logs" else METRICS))
    r = plugin_test(c_tenant, plugin_cache_dir, "--input", str(inp))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "dropped" not in r.stderr, r.stderr[-2000:]
    res = json.loads(r.stdout)["default"]["resourceLogs" if signal == "logs" else "resourceMetrics"][0]
    attrs = {a["key"]: a["value"]["stringValue"] for a in res["resource"]["attributes"]}
    assert attrs["tenant"] == ("7" if signal == "logs" else "acme"), attrs
    items = res["scopeLogs"][0]["logRecords"] if signal == "logs" else \
        res["scopeMetrics"][0]["metrics"][0]["sum"]["dataPoints"]
    assert len(items) == 2


def test_a_c_plugin_runs_end_to_end(start_weir, sink, c_tenant, plugin_cache_dir):
    plugins = {"tenant": {"path": str(c_tenant), "config": {"drop_names": ["GET /health*", "GET /ready"]}}}
    w = start_weir(config_text=plugin_config_template(plugins, pipelines={"traces": {"plugins": ["tenant"]}},
                                                      cache_dir=plugin_cache_dir), ready_timeout=120)
    tid = bytes(range(16))
    with w.grpc_channel() as ch:
        stub = trace_service_pb2_grpc.TraceServiceStub(ch)
        # Several batches through one instance: state from one call must not leak into the next.
        for n in range(5):
            shop = ({"tenant.id": "acme"}, [make_span(f"GET /cart/{n}", tid), make_span("GET /ready", tid)])
            billing = ({"service.name": "billing"}, [make_span(f"charge-{n}", tid, attrs={"tenant.id": 42})])
            stub.Export(traces_request(shop, billing), timeout=30)
    spans = sink.wait_for_spans(10)
    assert not [s for s in spans if s.span.name == "GET /ready"]
    tenants = {s.span.name: attrs_to_dict(s.resource.attributes).get("tenant") for s in spans}
    assert tenants == {**{f"GET /cart/{n}": "acme" for n in range(5)}, **{f"charge-{n}": "42" for n in range(5)}}
    status = requests.get(w.admin_url("/status"), timeout=5).json()
    assert status["plugins"][0]["name"] == "tenant"


def test_a_c_config_error_names_the_key(tmp_path, c_tenant, plugin_cache_dir):
    cfg = tmp_path / "bad.json"
    cfg.write_text('{"drop_names": "GET /health"}')
    r = plugin_test(c_tenant, plugin_cache_dir, "--plugin-config", str(cfg),
                    "--input", str(CONFORMANCE / "tenant.input.json"))
    assert r.returncode == 2, r.stderr
    assert 'the plugin rejected its config: drop_names: expected list, got string "GET /health"' in r.stderr, \
        r.stderr[-2000:]
    cfg.write_text('{"colour": "red"}')
    r = plugin_test(c_tenant, plugin_cache_dir, "--plugin-config", str(cfg),
                    "--input", str(CONFORMANCE / "tenant.input.json"))
    assert r.returncode == 2 and "colour: unknown key; expected one of drop_names, from, to" in r.stderr, \
        r.stderr[-2000:]


def spans_input(path: Path, n: int = 512, resources: int = 8) -> None:
    """The benchmark's batch shape (bench/plugin_languages.py): health checks
    and tenant ids on spans or resources."""
    rng = random.Random(1)
    rs = []
    for r in range(resources):
        attrs = [{"key": "service.name", "value": {"stringValue": f"svc-{r}"}}]
        if r % 2 == 0:
            attrs.append({"key": "tenant.id", "value": {"stringValue": f"tenant-{r}"}})
        spans = []
        for i in range(n // resources):
            name = "GET /healthz" if rng.random() < 0.1 else f"GET /api/{rng.randrange(50)}"
            sattrs = [{"key": "http.route", "value": {"stringValue": name}}]
            if r % 2 == 1 and i % 3 == 0:
                sattrs.append({"key": "tenant.id", "value": {"stringValue": f"t-{r}-{i}"}})
            spans.append({"traceId": f"{rng.getrandbits(128):032x}", "spanId": f"{rng.getrandbits(64):016x}",
                          "name": name, "kind": 2, "startTimeUnixNano": "1", "endTimeUnixNano": "2",
                          "attributes": sattrs})
        rs.append({"resource": {"attributes": attrs}, "scopeSpans": [{"scope": {"name": "bench"}, "spans": spans}]})
    path.write_text(json.dumps({"resourceSpans": rs}))


def test_the_arena_frees_every_call(tmp_path, c_tenant, plugin_cache_dir):
    """1000 calls over a 512-span batch in one instance capped at 256 KiB of
    linear memory (the module starts with 128 KiB): a call that kept as little
    as ~130 bytes would run the instance into its limit and fail the run.
    (A kit build that skips the arena's free fails this within 20 calls.)"""
    inp = tmp_path / "spans.json"
    spans_input(inp)
    cfg = tmp_path / "weir.toml"
    cfg.write_text(f"""
[receivers.otlp]
type = "otlp"
grpc = {{ address = "127.0.0.1:0" }}

[plugins.tenant]
path = {json.dumps(str(c_tenant))}
memory_limit = "256KiB"
instances = 1

[exporters.backend]
type = "otlp_grpc"
endpoint = "http://127.0.0.1:9"

[pipelines.traces]
receivers = ["otlp"]
plugins = ["tenant"]
exporters = ["backend"]
""")
    r = subprocess.run([str(weir_bin()), "plugin", "test", "--config", str(cfg), "--cache-dir", str(plugin_cache_dir),
                        "--input", str(inp), "--repeat", "1000"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "chain over 512 spans x 1000" in r.stderr, r.stderr[-2000:]
    assert "memory limit" not in r.stderr, r.stderr[-2000:]
    out = json.loads(r.stdout)["default"]["resourceSpans"]
    assert all(any(a["key"] == "tenant" for a in res["resource"]["attributes"]) for res in out)
