"""The compiled-plugin cache cannot stand in for a pinned plugin: an artifact
planted under the redaction plugin's cache name (here the compiled `route`
plugin, the attack of issue 12) fails verification, is logged and counted, and
redact is compiled from its pinned wasm — emails leave masked. A shared cache
directory gets a private subdirectory instead of being trusted."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otlp_helpers import attrs_to_dict, make_span, plugin_config_template, plugin_wasm, traces_request, weir_bin

SPANS = Path(__file__).resolve().parents[2] / "examples" / "plugin-test" / "spans.json"


def populate(cache: Path, wasm: Path) -> Path:
    """Compiles `wasm` into `cache` with `weir plugin test`; returns the artifact."""
    r = subprocess.run([str(weir_bin()), "plugin", "test", "--wasm", str(wasm), "--cache-dir", str(cache),
                        "--input", str(SPANS)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    sha = hashlib.sha256(wasm.read_bytes()).hexdigest()
    [artifact] = [p for p in cache.iterdir() if p.name.startswith(sha)]
    return artifact


def send_email_span(w) -> None:
    req = traces_request(({"service.name": "shop"}, [make_span("GET /cart", bytes(16),
                                                               attrs={"user.email": "alice@example.com"})]))
    with w.grpc_channel() as ch:
        trace_service_pb2_grpc.TraceServiceStub(ch).Export(req, timeout=30)


def test_a_planted_artifact_is_refused_and_the_pinned_plugin_runs(start_weir, sink, tmp_path):
    cache = tmp_path / "cache"
    route = populate(cache, plugin_wasm("route"))
    redact_wasm = plugin_wasm("redact")
    redact_sha = hashlib.sha256(redact_wasm.read_bytes()).hexdigest()
    engine_key = route.name.split("-", 1)[1]
    planted = cache / f"{redact_sha}-{engine_key}"
    shutil.copy(route, planted)

    plugins = {"redact": {"sha256": redact_sha}}
    w = start_weir(config_text=plugin_config_template(plugins, pipelines={"traces": {"plugins": ["redact"]}},
                                                      cache_dir=cache), ready_timeout=120)
    send_email_span(w)
    [span] = sink.wait_for_spans(1)
    assert attrs_to_dict(span.span.attributes)["user.email"] != "alice@example.com", "the pinned redact ran"
    assert w.metrics().sum("weir_plugin_cache_rejected_total", reason="mac") == 1
    assert "failed verification" in w.stderr()
    # Recompiled and stored with a valid tag: the next start uses it silently.
    assert w.terminate() == 0
    w2 = w.respawn("weir-again", ready_timeout=60)
    try:
        assert w2.metrics().sum("weir_plugin_cache_rejected_total") == 0
    finally:
        assert w2.terminate() == 0


def test_a_shared_cache_directory_gets_a_private_subdirectory(start_weir, sink, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    plugins = {"redact": {}}
    w = start_weir(config_text=plugin_config_template(plugins, pipelines={"traces": {"plugins": ["redact"]}},
                                                      cache_dir=shared), ready_timeout=120)
    send_email_span(w)
    sink.wait_for_spans(1)
    own = shared / f"weir-{os.geteuid()}"
    assert stat.S_IMODE(own.stat().st_mode) == 0o700
    assert any(p.suffix == ".cwasm" for p in own.iterdir()), list(own.iterdir())
    assert not any(p.suffix == ".cwasm" for p in shared.iterdir()), "nothing is cached in the shared directory"
