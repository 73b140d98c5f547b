"""TLS and mTLS on the receivers, the admin server and the exporters, with
certificates generated here (certs.py): good clients served while clients
without a certificate or with one from another CA are refused; a rotated
certificate is picked up without a restart and without dropping open
connections; bad material refused at start with the key that names it; the
exposure warning."""

from __future__ import annotations

import http.client
import http.server
import os
import ssl
import subprocess
import time
from concurrent import futures

import grpc
import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otlp_helpers
from certs import Ca, expired
from otlp_helpers import LOOPBACK, OtlpHttpSink, OtlpSink, Weir, free_port, make_trace_request, wait_until, weir_bin


def sdk_spans(n: int, name: str = "tls-span"):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("e2e")
    for i in range(n):
        with tracer.start_as_current_span(f"{name}-{i}"):
            pass
    return memory.get_finished_spans()


def listener_tls(cert, key, client_ca=None, reload_interval="200ms") -> str:
    lines = [f'cert_file = "{cert}"', f'key_file = "{key}"', f'reload_interval = "{reload_interval}"']
    if client_ca is not None:
        lines.append(f'client_ca_file = "{client_ca}"')
    return "\n".join(lines)


def tls_config(server_tls: str, *, extra: str = "", exporter: str | None = None) -> str:
    """A config (for start_weir's config_text) with TLS on both receiver listeners."""
    exporter = exporter or '[exporters.backend]\ntype = "otlp_grpc"\nendpoint = "{sink}"\n'
    return f"""
[service]
shutdown_grace = "5s"

[admin]
address = "{LOOPBACK}:{{admin_port}}"

[receivers.otlp]
type = "otlp"
[receivers.otlp.grpc]
address = "{LOOPBACK}:{{grpc_port}}"
[receivers.otlp.grpc.tls]
{server_tls}
[receivers.otlp.http]
address = "{LOOPBACK}:{{http_port}}"
[receivers.otlp.http.tls]
{server_tls}
{extra}

{exporter}

[pipelines.traces]
receivers = ["otlp"]
exporters = ["backend"]
"""


@pytest.fixture
def pki(tmp_path):
    server_ca, client_ca, rogue_ca = Ca("server-ca"), Ca("client-ca"), Ca("rogue-ca")
    d = tmp_path / "pki"
    return {
        "dir": d,
        "server_ca": server_ca,
        "server_ca_file": server_ca.write(d / "server-ca.crt"),
        "client_ca_file": client_ca.write(d / "client-ca.crt"),
        "server": server_ca.issue("localhost").write(d, "server"),
        "client": client_ca.issue("good-client", client=True).write(d, "client"),
        "rogue": rogue_ca.issue("rogue-client", client=True).write(d, "rogue"),
    }


def export_raw(channel: grpc.Channel, n: int = 1, metadata=()):
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    return stub.Export(make_trace_request(n), timeout=5, metadata=metadata)


def refused_code(channel: grpc.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as e:
        export_raw(channel)
    return e.value.code()


def test_mtls_receivers_serve_good_clients_and_refuse_the_others(start_weir, sink, pki, monkeypatch):
    # requests lets these override a session's `verify`, which is how the SDK's
    # HTTP exporter passes certificate_file.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    (cert, key), (ccert, ckey), (rcert, rkey) = pki["server"], pki["client"], pki["rogue"]
    weir = start_weir(config_text=tls_config(listener_tls(cert, key, pki["client_ca_file"])))
    ca_pem = pki["server_ca_file"].read_bytes()
    target = f"localhost:{weir.grpc_port}"

    # The OpenTelemetry SDK's exporters, with a client certificate: served.
    good = grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=ckey.read_bytes(),
                                        certificate_chain=ccert.read_bytes())
    exporter = GrpcSpanExporter(endpoint=target, credentials=good, timeout=10)
    assert exporter.export(sdk_spans(3, "grpc")) == SpanExportResult.SUCCESS
    exporter.shutdown()
    http_exporter = HttpSpanExporter(endpoint=f"https://localhost:{weir.http_port}/v1/traces",
                                     certificate_file=str(pki["server_ca_file"]),
                                     client_certificate_file=str(ccert), client_key_file=str(ckey), timeout=10)
    assert http_exporter.export(sdk_spans(2, "http")) == SpanExportResult.SUCCESS
    http_exporter.shutdown()
    spans = sink.wait_for_spans(5)
    assert sorted(s.span.name for s in spans) == ["grpc-0", "grpc-1", "grpc-2", "http-0", "http-1"]

    # No client certificate, or one from another CA: the handshake fails.
    anonymous = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    rogue = grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=rkey.read_bytes(),
                                         certificate_chain=rcert.read_bytes())
    for creds in (anonymous, rogue):
        with grpc.secure_channel(target, creds) as ch:
            assert refused_code(ch) == grpc.StatusCode.UNAVAILABLE
    url = f"https://localhost:{weir.http_port}/v1/traces"
    body = make_trace_request(1).SerializeToString()
    ctype = {"Content-Type": "application/x-protobuf"}
    for cert_pair in (None, (str(rcert), str(rkey))):
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.post(url, data=body, headers=ctype, verify=str(pki["server_ca_file"]), cert=cert_pair, timeout=5)
    # Plain HTTP on the TLS port gets nowhere either.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(f"http://{LOOPBACK}:{weir.http_port}/v1/traces", data=body, headers=ctype, timeout=5)

    # The good client is still served, and nothing refused reached the sink.
    r = requests.post(url, data=body, headers=ctype, verify=str(pki["server_ca_file"]), cert=(str(ccert), str(ckey)),
                      timeout=5)
    assert r.status_code == 200, r.text
    sink.wait_for_spans(6)
    time.sleep(0.3)
    assert len(sink.spans()) == 6
    m = weir.metrics()
    assert m.sum("weir_receiver_connections_refused_total", reason="tls_handshake") >= 5, str(m)


def _symlinked_secret(directory, issued, generation: str):
    """Writes a Kubernetes-style Secret volume: files in ..<generation>, a ..data
    symlink to it swapped atomically, tls.crt/tls.key pointing through ..data."""
    directory.mkdir(parents=True, exist_ok=True)
    gen = directory / f"..{generation}"
    issued.write(gen, "tls")
    tmp = directory / "..data_tmp"
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(gen.name, tmp)
    os.replace(tmp, directory / "..data")
    for name in ("tls.crt", "tls.key"):
        link = directory / name
        if not link.is_symlink():
            os.symlink(f"..data/{name}", link)
    return directory / "tls.crt", directory / "tls.key"


def _issuer_seen(port: int, bundle) -> str:
    ctx = ssl.create_default_context(cafile=str(bundle))
    with ctx.wrap_socket(__import__("socket").create_connection((LOOPBACK, port), timeout=5),
                         server_hostname="localhost") as s:
        issuer = dict(x[0] for x in s.getpeercert()["issuer"])
        return issuer["commonName"]


def test_certificate_rotation_is_picked_up_without_restart_or_dropped_connections(start_weir, sink, tmp_path):
    old_ca, new_ca = Ca("old-ca"), Ca("new-ca")
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(old_ca.pem + new_ca.pem)
    secret = tmp_path / "secret"
    cert, key = _symlinked_secret(secret, old_ca.issue("localhost"), "2026_01")
    weir = start_weir(config_text=tls_config(listener_tls(cert, key)))
    assert _issuer_seen(weir.http_port, bundle) == "old-ca"

    # A kept-alive HTTP/1.1 connection opened before the rotation...
    conn = http.client.HTTPSConnection("localhost", weir.http_port, timeout=5,
                                       context=ssl.create_default_context(cafile=str(bundle)))
    body = make_trace_request(1).SerializeToString()
    ctype = {"Content-Type": "application/x-protobuf"}
    conn.request("POST", "/v1/traces", body=body, headers=ctype)
    assert conn.getresponse().read() == b"" and conn.sock is not None
    sock_before = conn.sock

    _symlinked_secret(secret, new_ca.issue("localhost"), "2026_02")
    wait_until(lambda: _issuer_seen(weir.http_port, bundle) == "new-ca", 10, "new connections get the rotated certificate")
    # ...is still open and served after it, without a restart.
    conn.request("POST", "/v1/traces", body=body, headers=ctype)
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200 and conn.sock is sock_before
    conn.close()
    sink.wait_for_spans(2)
    assert "TLS certificate reloaded" in weir.stderr()

    # A broken update is refused; the loaded certificate stays in use.
    (secret / "..2026_03").mkdir()
    (secret / "..2026_03" / "tls.crt").write_bytes(new_ca.pem)
    (secret / "..2026_03" / "tls.key").write_bytes(b"not a key")
    os.symlink("..2026_03", secret / "..data_tmp")
    os.replace(secret / "..data_tmp", secret / "..data")
    wait_until(lambda: "the changed TLS files were not loaded" in weir.stderr(), 10, "the refusal is logged")
    assert _issuer_seen(weir.http_port, bundle) == "new-ca"


def _start_fails(tmp_path, config: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(config)
    p = subprocess.run([str(weir_bin()), "run", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, p.stderr
    return p.stderr


def test_bad_material_is_refused_at_start_naming_the_key(tmp_path, pki):
    (cert, key), (ccert, ckey) = pki["server"], pki["client"]
    ports = {"admin_port": free_port(), "grpc_port": free_port(), "http_port": free_port(), "sink": "http://127.0.0.1:1"}
    bad_cert, bad_key = expired(pki["server_ca"]).write(pki["dir"], "expired")
    cases = [
        (listener_tls(cert, pki["dir"] / "missing.key"), "receivers.otlp.grpc.tls.key_file", "cannot read"),
        (listener_tls(cert, ckey), "receivers.otlp.grpc.tls.cert_file", "does not match the private key"),
        (listener_tls(bad_cert, bad_key), "receivers.otlp.grpc.tls.cert_file", "expired at"),
        (listener_tls(key, cert), "receivers.otlp.grpc.tls.cert_file", "holds no PEM certificate"),
        (listener_tls(cert, key, client_ca=key), "receivers.otlp.grpc.tls.client_ca_file", "holds no PEM certificate"),
    ]
    for tls, config_key, message in cases:
        config = tls_config(tls).format(**ports)
        stderr = _start_fails(tmp_path, config)
        assert config_key in stderr and message in stderr, (config_key, stderr)
        # `weir validate` loads the files too.
        p = subprocess.run([str(weir_bin()), "validate", "--config", str(tmp_path / "bad.toml")],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and config_key in p.stderr and message in p.stderr, p.stderr


class TlsGrpcSink(OtlpSink):
    """OtlpSink over TLS, requiring a client certificate."""

    def __init__(self, server: tuple, client_ca: bytes):
        super().__init__()
        self.credentials = grpc.ssl_server_credentials([(server[1], server[0])], root_certificates=client_ca,
                                                       require_client_auth=True)

    def start(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=self._server_options())
        self._add_services(server)
        assert server.add_secure_port(f"{LOOPBACK}:{self.port}", self.credentials) == self.port
        server.start()
        self._server = server


class _TlsHttpServer(http.server.ThreadingHTTPServer):
    context: ssl.SSLContext

    def get_request(self):
        sock, addr = super().get_request()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class TlsHttpSink(OtlpHttpSink):
    """OtlpHttpSink over TLS, requiring a client certificate."""

    def __init__(self, cert, key, client_ca):
        super().__init__()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(cafile=str(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.context = ctx

    def start(self) -> None:
        plain = otlp_helpers.http.server.ThreadingHTTPServer
        server_cls = type("Server", (_TlsHttpServer,), {"context": self.context})
        otlp_helpers.http.server.ThreadingHTTPServer = server_cls
        try:
            super().start()
        finally:
            otlp_helpers.http.server.ThreadingHTTPServer = plain


@pytest.mark.parametrize("exporter_type", ["otlp_grpc", "otlp_http"])
def test_exporters_speak_mtls_to_a_tls_sink(start_weir, sink, tmp_path, exporter_type):
    sink_ca, weir_ca = Ca("sink-ca"), Ca("weir-client-ca")
    d = tmp_path / "pki"
    # The sink's certificate names only sink.test: the exporter reaches it by
    # IP address and checks the name through tls.server_name.
    sink_pair = sink_ca.issue("sink.test", dns=("sink.test",), ips=())
    sink_cert, sink_key = sink_pair.write(d, "sink")
    ccert, ckey = weir_ca.issue("weir", client=True).write(d, "weir")
    weir_ca_file = weir_ca.write(d / "weir-ca.crt")
    ca_file = sink_ca.write(d / "sink-ca.crt")
    if exporter_type == "otlp_grpc":
        tls_sink = TlsGrpcSink((sink_pair.cert, sink_pair.key), weir_ca.pem)
    else:
        tls_sink = TlsHttpSink(sink_cert, sink_key, weir_ca_file)
    tls_sink.start()
    try:
        exporter = f"""[exporters.backend]
type = "{exporter_type}"
endpoint = "https://{LOOPBACK}:{tls_sink.port}"
batch = {{{{ timeout = "50ms" }}}}
[exporters.backend.tls]
ca_file = "{ca_file}"
cert_file = "{ccert}"
key_file = "{ckey}"
server_name = "sink.test"
"""
        config = f"""
[admin]
address = "{LOOPBACK}:{{admin_port}}"
[receivers.otlp]
type = "otlp"
http = {{{{ address = "{LOOPBACK}:{{http_port}}" }}}}
{exporter}
[pipelines.traces]
receivers = ["otlp"]
exporters = ["backend"]
"""
        weir = start_weir(config_text=config)
        assert weir.post("traces", make_trace_request(4).SerializeToString()).status_code == 200
        tls_sink.wait_for_spans(4)
        assert len(sink.spans()) == 0
    finally:
        tls_sink.stop()


def test_https_endpoint_without_tls_table_uses_system_roots(tmp_path):
    """Accepted by validate (verified against the system's trust store at run time)."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("""
[receivers.otlp]
type = "otlp"
[exporters.backend]
type = "otlp_grpc"
endpoint = "https://collector.example:4317"
[pipelines.traces]
receivers = ["otlp"]
exporters = ["backend"]
""")
    p = subprocess.run([str(weir_bin()), "validate", "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr


class HttpsAdminWeir(Weir):
    """A weir whose admin server speaks HTTPS (verified against `ca`)."""

    ca: str = ""

    def admin_url(self, path: str) -> str:
        return f"https://localhost:{self.admin_port}{path}"

    def wait_ready(self, timeout: float) -> None:
        def ready():
            assert self.proc.poll() is None, self.stderr()
            try:
                return requests.get(self.admin_url("/ready"), verify=self.ca, timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, timeout, lambda: f"https /ready\n{self.stderr()}")


def test_admin_over_tls(tmp_path, pki):
    (cert, key) = pki["server"]
    admin_port, grpc_port = free_port(), free_port()
    config = f"""
[admin]
address = "{LOOPBACK}:{admin_port}"
[admin.tls]
{listener_tls(cert, key)}
[receivers.otlp]
type = "otlp"
grpc = {{ address = "{LOOPBACK}:{grpc_port}" }}
[exporters.out]
type = "console"
[pipelines.traces]
receivers = ["otlp"]
exporters = ["out"]
"""
    w = HttpsAdminWeir(tmp_path, "admin-tls", config, admin_port, grpc_port, None)
    w.ca = str(pki["server_ca_file"])
    try:
        w.start()
        r = requests.get(w.admin_url("/metrics"), verify=w.ca, timeout=5)
        assert r.status_code == 200 and "weir_receiver_connections" in r.text
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://{LOOPBACK}:{admin_port}/health", timeout=5)
    finally:
        assert w.terminate() == 0


def test_listening_beyond_loopback_without_tls_warns_on_start_and_reload(start_weir):
    weir = start_weir(config_text="""
[admin]
address = "127.0.0.1:{admin_port}"
[receivers.otlp]
type = "otlp"
http = {{ address = "0.0.0.0:{http_port}" }}
grpc = {{ address = "127.0.0.1:{grpc_port}" }}
[exporters.backend]
type = "otlp_grpc"
endpoint = "{sink}"
[pipelines.traces]
receivers = ["otlp"]
exporters = ["backend"]
""")
    warning = "listening beyond loopback without TLS or authentication"
    lines = [line for line in weir.stderr().splitlines() if warning in line]
    assert len(lines) == 1 and "receivers.otlp.http" in lines[0], weir.stderr()
    assert "receivers.otlp.grpc" not in lines[0] and "listener=admin" not in weir.stderr()
    # A reload (of a changed file: an unchanged one is not applied) warns again.
    weir.config_path.write_text(weir.config_path.read_text() + "\n# touched\n")
    r = requests.post(weir.admin_url("/reload"), timeout=10)
    assert r.status_code == 200, r.text
    wait_until(lambda: weir.stderr().count(warning) >= 2, 5, "the warning again after the reload")
