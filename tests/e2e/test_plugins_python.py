"""Plugins in Python (componentize-py, plugins/sdk-python) and JavaScript
(componentize-js, plugins/sdk-js), and the conformance suite: the example
processor of examples/plugins, in Rust, Python and JavaScript, gives the
expected output through `weir plugin test --expect`, and each runs end to end
through the binary (Go and C: test_plugins_go.py, test_plugins_c.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otlp_helpers import REPO_ROOT, attrs_to_dict, make_span, plugin_config_template, plugin_dir, traces_request, \
    weir_bin

CONFORMANCE = REPO_ROOT / "examples" / "plugins" / "conformance"


def componentize_py() -> str:
    return str(Path(sys.executable).parent / "componentize-py")


@pytest.fixture(scope="session")
def python_tenant(tmp_path_factory) -> Path:
    """The Python example processor built as a component (once per run)."""
    out = tmp_path_factory.mktemp("python-plugin") / "tenant.wasm"
    r = subprocess.run([componentize_py(), "-d", str(REPO_ROOT / "wit" / "v0.2.0"), "-w", "plugin", "componentize",
                        "app", "-p", str(REPO_ROOT / "examples" / "plugins" / "python" / "tenant"),
                        "-p", str(REPO_ROOT / "plugins" / "sdk-python"), "-o", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def conformance(wasm: Path, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(weir_bin()), "plugin", "test", "--wasm", str(wasm), "--cache-dir", str(cache),
                           "--input", str(CONFORMANCE / "tenant.input.json"),
                           "--expect", str(CONFORMANCE / "tenant.expected.json")],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def js_tenant(tmp_path_factory) -> Path:
    """The JavaScript example processor built as a component (once per run)."""
    out = tmp_path_factory.mktemp("js-plugin") / "tenant.wasm"
    r = subprocess.run(["node", str(REPO_ROOT / "plugins" / "sdk-js" / "build.mjs"),
                        str(REPO_ROOT / "examples" / "plugins" / "js" / "tenant" / "app.js"), str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


@pytest.mark.parametrize("language", ["rust", "python", "js"])
def test_the_example_processor_passes_the_conformance_suite(language, request, plugin_cache_dir):
    wasm = {
        "rust": lambda: plugin_dir() / "weir_example_tenant.wasm",
        "python": lambda: request.getfixturevalue("python_tenant"),
        "js": lambda: request.getfixturevalue("js_tenant"),
    }[language]()
    r = conformance(wasm, plugin_cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "output matches" in r.stderr and "dropped 2 spans" in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("language", ["rust", "python", "js"])
def test_the_example_runs_end_to_end(language, request, start_weir, sink, plugin_cache_dir):
    wasm = {
        "rust": lambda: plugin_dir() / "weir_example_tenant.wasm",
        "python": lambda: request.getfixturevalue("python_tenant"),
        "js": lambda: request.getfixturevalue("js_tenant"),
    }[language]()
    plugins = {"tenant": {"path": str(wasm), "config": {"drop_names": ["GET /health*", "GET /ready"]}}}
    w = start_weir(config_text=plugin_config_template(plugins, pipelines={"traces": {"plugins": ["tenant"]}},
                                                      cache_dir=plugin_cache_dir), ready_timeout=120)
    tid = bytes(range(16))
    req = traces_request(({"tenant.id": "acme"}, [make_span("GET /cart", tid), make_span("GET /ready", tid)]),
                         ({"service.name": "billing"}, [make_span("charge", tid, attrs={"tenant.id": 42})]))
    with w.grpc_channel() as ch:
        trace_service_pb2_grpc.TraceServiceStub(ch).Export(req, timeout=30)
    spans = sink.wait_for_spans(2)
    assert sorted(s.span.name for s in spans) == ["GET /cart", "charge"]
    tenants = {s.span.name: attrs_to_dict(s.resource.attributes).get("tenant") for s in spans}
    assert tenants == {"GET /cart": "acme", "charge": "42"}
    status = requests.get(w.admin_url("/status"), timeout=5).json()
    assert status["plugins"][0]["name"] == "tenant"


def test_a_python_config_error_names_the_key(tmp_path, python_tenant, plugin_cache_dir):
    cfg = tmp_path / "bad.json"
    cfg.write_text('{"drop_names": "GET /health"}')
    r = subprocess.run([str(weir_bin()), "plugin", "test", "--wasm", str(python_tenant), "--cache-dir",
                        str(plugin_cache_dir), "--plugin-config", str(cfg),
                        "--input", str(CONFORMANCE / "tenant.input.json")],
                       capture_output=True, text=True, timeout=300, env={**os.environ})
    assert r.returncode == 2, r.stderr
    assert "the plugin rejected its config: drop_names: expected list, got str" in r.stderr, r.stderr[-2000:]
