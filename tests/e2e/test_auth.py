"""Bearer-token authentication of the receivers and the admin server: tokens
from a file and an environment variable, several valid at once; a bad or
missing token refused with 401 / UNAUTHENTICATED and no detail while good
clients are served; a token's tenant set as a resource attribute (a forged
one replaced); token files reread without a restart."""

from __future__ import annotations

import os

import grpc
import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otlp_helpers import LOOPBACK, attrs_to_dict, make_trace_request, wait_until

ENV = "WEIR_E2E_INGEST_TOKEN"


def spans(n: int, name: str, resource: dict | None = None):
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource or {}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("e2e")
    for i in range(n):
        with tracer.start_as_current_span(f"{name}-{i}"):
            pass
    return memory.get_finished_spans()


def auth_config(tokens_file, *, admin_tokens: bool = False) -> str:
    admin_auth = f'\n[admin.auth]\ntokens = [{{{{ file = "{tokens_file}" }}}}]\n' if admin_tokens else ""
    return f"""
[admin]
address = "{LOOPBACK}:{{admin_port}}"
{admin_auth}
[receivers.otlp]
type = "otlp"
grpc = {{{{ address = "{LOOPBACK}:{{grpc_port}}" }}}}
http = {{{{ address = "{LOOPBACK}:{{http_port}}" }}}}
[receivers.otlp.auth]
tenant_attribute = "tenant"
reload_interval = "200ms"
tokens = [
  {{{{ file = "{tokens_file}", tenant = "team-a" }}}},
  {{{{ env = "{ENV}" }}}},
]

[exporters.backend]
type = "otlp_grpc"
endpoint = "{{sink}}"
batch = {{{{ timeout = "50ms" }}}}

[pipelines.traces]
receivers = ["otlp"]
exporters = ["backend"]
"""


@pytest.fixture
def tokens(tmp_path, monkeypatch):
    path = tmp_path / "tokens"
    # Two tokens at once: the old one and its replacement during a rotation.
    path.write_text("# team a\nteam-a-old\nteam-a-new\n")
    monkeypatch.setenv(ENV, "env-token")
    return path


def grpc_export(weir, token: str | None):
    stub = trace_service_pb2_grpc.TraceServiceStub(weir.grpc_channel())
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    return stub.Export(make_trace_request(1), timeout=5, metadata=metadata)


def http_export(weir, token: str | None) -> requests.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return weir.post("traces", make_trace_request(1).SerializeToString(), headers=headers)


def test_tokens_admit_good_clients_and_refuse_others_without_detail(start_weir, sink, tokens):
    weir = start_weir(config_text=auth_config(tokens))

    # The OpenTelemetry SDK's exporters with a token header: served.
    g = GrpcSpanExporter(endpoint=f"{LOOPBACK}:{weir.grpc_port}", insecure=True, timeout=10,
                         headers={"authorization": "Bearer team-a-old"})
    assert g.export(spans(2, "grpc", {"tenant": "forged", "service.name": "svc"})) == SpanExportResult.SUCCESS
    g.shutdown()
    h = HttpSpanExporter(endpoint=weir.http_url("traces"), timeout=10, headers={"Authorization": "Bearer env-token"})
    assert h.export(spans(1, "http")) == SpanExportResult.SUCCESS
    h.shutdown()
    assert http_export(weir, "team-a-new").status_code == 200

    for token in ("wrong", None, "team-a-ol", "team-a-old2"):
        with pytest.raises(grpc.RpcError) as e:
            grpc_export(weir, token)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert e.value.details() in ("", None), e.value.details()
        r = http_export(weir, token)
        assert r.status_code == 401 and r.content == b"", (r.status_code, r.content)
        assert r.headers.get("WWW-Authenticate") == "Bearer"
    r = weir.post("traces", b"x", headers={"Authorization": "Basic dGVhbS1hLW9sZA=="})
    assert r.status_code == 401

    got = sink.wait_for_spans(4)
    tenants = {s.span.name: attrs_to_dict(s.resource.attributes).get("tenant") for s in got}
    # The file's tokens carry tenant team-a (the client's own value replaced);
    # the env token has none.
    assert tenants["grpc-0"] == "team-a" and tenants["grpc-1"] == "team-a"
    assert tenants["http-0"] is None
    assert [attrs_to_dict(s.resource.attributes).get("service.name") for s in got
            if s.span.name.startswith("grpc")] == ["svc", "svc"]
    m = weir.metrics()
    assert m.sum("weir_receiver_refused_requests_total", reason="unauthenticated") == 9, str(m)


def test_rotated_token_file_is_reread(start_weir, sink, tokens):
    weir = start_weir(config_text=auth_config(tokens))
    assert http_export(weir, "team-a-old").status_code == 200
    tmp = tokens.with_suffix(".tmp")
    tmp.write_text("team-a-newest\n")
    os.replace(tmp, tokens)
    wait_until(lambda: http_export(weir, "team-a-newest").status_code == 200, 10, "the new token is accepted")
    assert http_export(weir, "team-a-old").status_code == 401
    # A file emptied by mistake keeps the tokens loaded before.
    tokens.write_text("\n")
    wait_until(lambda: "the previous tokens stay accepted" in weir.stderr(), 10, "the refusal is logged")
    assert http_export(weir, "team-a-newest").status_code == 200


def test_admin_tokens_protect_metrics_status_and_reload_but_not_probes(start_weir, tokens):
    weir = start_weir(config_text=auth_config(tokens, admin_tokens=True))
    assert requests.get(weir.admin_url("/health"), timeout=5).status_code == 200
    assert requests.get(weir.admin_url("/ready"), timeout=5).status_code == 200
    for path in ("/metrics", "/status"):
        r = requests.get(weir.admin_url(path), timeout=5)
        assert r.status_code == 401 and r.content == b"", path
    assert requests.post(weir.admin_url("/reload"), timeout=5).status_code == 401
    r = requests.get(weir.admin_url("/metrics"), headers={"Authorization": "Bearer team-a-old"}, timeout=5)
    assert r.status_code == 200 and "weir_receiver" in r.text


def test_missing_token_source_fails_start_naming_the_entry(tmp_path):
    import subprocess

    from otlp_helpers import free_port, weir_bin

    text = auth_config(tmp_path / "absent").format(admin_port=free_port(), grpc_port=free_port(),
                                                   http_port=free_port(), sink="http://127.0.0.1:1")
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != ENV}
    p = subprocess.run([str(weir_bin()), "run", "--config", str(cfg)], capture_output=True, text=True, timeout=30,
                       env=env)
    assert p.returncode != 0
    assert "receivers.otlp.auth.tokens[0].file" in p.stderr and "cannot read" in p.stderr, p.stderr
