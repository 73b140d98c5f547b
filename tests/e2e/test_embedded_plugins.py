"""The reference plugins carried inside the weir binary as Wasm components:
`path = "builtin:NAME"` in a config, and `weir run --demo` (no --config), the
newcomer's first command, which runs them on demo data."""

from __future__ import annotations

import subprocess
import time

import requests

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otlp_helpers import (
    LOOPBACK,
    Weir,
    attrs_to_dict,
    free_port,
    make_span,
    port_is_free,
    traces_request,
    wait_until,
    weir_bin,
)


def test_demo_masks_samples_enriches_and_routes(tmp_path):
    for port in (4317, 4318, 13133):
        assert port_is_free(port), f"the demo's port {port} is taken on this machine"
    w = Weir(tmp_path, "demo", None, 13133, 4317, 4318, args=["run", "--demo"])
    w.start(ready_timeout=60)
    try:
        def shown():
            out = w.stdout()
            return out if out.count("span \"GET /checkout\"") >= 3 and "is running low" in out else None

        out = wait_until(shown, 30, lambda: f"three demo ticks on stdout\n{w.stdout()[-2000:]}\n{w.stderr()[-2000:]}")
        assert 'user.email="***"' in out and "alice@example.com" not in out, "redact masks the email"
        assert "card ***" in out and "4111" not in out, "redact masks the card number in log bodies"
        assert "GET /health" not in out, "sample drops the health checks"
        assert 'deployment.environment.name="demo"' in out and 'team="checkout"' in out, "enrich"
        m = w.metrics()
        assert m.sum("weir_exporter_sent_log_records_total", exporter="alerts") >= 1, "route sends WARN logs to alerts"
        assert m.sum("weir_pipeline_dropped_spans_total", pipeline="traces") >= 3, str(m)
        status = requests.get(w.admin_url("/status"), timeout=5).json()
        plugins = {p["name"]: p for p in status["plugins"]}
        assert set(plugins) == {"sample", "redact", "enrich", "route"}, status
        assert all(len(p["sha256"]) == 64 for p in plugins.values()), status
        assert "embedded demo config" in w.stderr()
    finally:
        assert w.terminate() == 0


def builtin_config(admin: str, grpc_port: str, sink: str, path: str, sha256: str | None = None) -> str:
    pin = f'sha256 = "{sha256}"' if sha256 else ""
    return "\n".join([
        "[admin]", f'address = "{LOOPBACK}:{admin}"',
        "[receivers.otlp]", 'type = "otlp"', f'grpc = {{ address = "{LOOPBACK}:{grpc_port}" }}',
        "[plugins.redact]", f'path = "{path}"', pin,
        "[exporters.backend]", 'type = "otlp_grpc"', f'endpoint = "{sink}"', 'batch = { timeout = "10ms" }',
        "[pipelines.traces]", 'receivers = ["otlp"]', 'plugins = ["redact"]', 'exporters = ["backend"]',
    ]) + "\n"


def test_a_builtin_plugin_loads_by_name_and_can_be_pinned(start_weir, sink, tmp_path):
    template = (builtin_config("ADMIN", "GRPC", "SINK", "builtin:redact")
                .replace("{", "{{").replace("}", "}}")
                .replace("ADMIN", "{admin_port}").replace("GRPC", "{grpc_port}").replace("SINK", "{sink}"))
    w = start_weir(config_text=template)
    req = traces_request(({"service.name": "e2e"}, [make_span(f"s{i}", bytes([i + 1]) * 16,
                                                              attrs={"user.email": "bob@example.com"})
                                                    for i in range(2)]))
    with w.grpc_channel() as ch:
        trace_service_pb2_grpc.TraceServiceStub(ch).Export(req, timeout=10)
    spans = sink.wait_for_spans(2)
    assert all(attrs_to_dict(s.span.attributes)["user.email"] == "***" for s in spans)
    sha = requests.get(w.admin_url("/status"), timeout=5).json()["plugins"][0]["sha256"]

    # The same plugin pinned by its sha256 validates; a wrong pin, or a name
    # the binary does not carry, is refused with the key and the fix.
    def validate(path: str, pin: str | None) -> subprocess.CompletedProcess:
        cfg = tmp_path / f"v-{time.monotonic_ns()}.toml"
        cfg.write_text(builtin_config(str(free_port()), str(free_port()), "http://127.0.0.1:1", path, pin))
        return subprocess.run([str(weir_bin()), "validate", "--config", str(cfg)], capture_output=True, text=True,
                              timeout=60)

    ok = validate("builtin:redact", sha)
    assert ok.returncode == 0, ok.stderr
    wrong = validate("builtin:redact", "0" * 64)
    assert wrong.returncode == 1 and "plugins.redact" in wrong.stderr and "sha256 mismatch" in wrong.stderr, wrong.stderr
    unknown = validate("builtin:nope", None)
    assert unknown.returncode == 1, unknown.stderr
    assert "plugins.redact: builtin:nope is not a plugin this weir carries" in unknown.stderr, unknown.stderr
    assert "builtin:redact, builtin:sample, builtin:enrich, builtin:route" in unknown.stderr, unknown.stderr
