"""Config secrets: `${env:..}` and `${file:..}` are expanded inside string values
after parsing, so a value with quotes cannot add a header, and no value that came
from the environment or a file shows in `weir validate`, in weir's debug log, in a
failed reload's answer or in /status."""

from __future__ import annotations

import subprocess
from pathlib import Path

import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otlp_helpers import LOOPBACK, make_span, traces_request, weir_bin

# Quotes, a newline and a `${` — everything raw-text expansion used to mishandle.
SECRET = 'Bearer s3cr3t-"quoted"\n${not-a-ref} x", "x-injected" = "yes'
# A header value cannot hold a newline, so the running weir gets one without.
SECRET_RUN = SECRET.replace("\n", " ")
LEAKS = ("s3cr3t", "x-injected", "not-a-ref")

CONFIG = """
[admin]
address = "{loopback}:{{admin_port}}"

[receivers.otlp]
type = "otlp"
grpc.address = "{loopback}:{{grpc_port}}"
http.address = "{loopback}:{{http_port}}"

[exporters.backend]
type = "otlp_grpc"
endpoint = "{{sink}}"
headers = {{{{ authorization = "${{{{env:WEIR_TEST_SECRET}}}}" }}}}
batch.timeout = "20ms"
{extra}

[pipelines.traces]
receivers = ["otlp"]
exporters = ["backend"]
"""


def config(extra: str = "") -> str:
    # Rendered twice (here, then with the ports), so braces in `extra` are doubled.
    return CONFIG.format(loopback=LOOPBACK, extra=extra.replace("{", "{{").replace("}", "}}"))


def assert_no_leak(text: str, where: str) -> None:
    for leak in LEAKS:
        assert leak not in text, f"{where} shows {leak!r}: {text[-3000:]}"


def validate(tmp_path: Path, text: str, env: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "weir.toml"
    path.write_text(text.format(admin_port=1, grpc_port=2, http_port=3, sink="http://127.0.0.1:4"))
    return subprocess.run([str(weir_bin()), "validate", "--config", str(path)], capture_output=True, text=True,
                          timeout=60, env=env)


def test_a_secret_with_quotes_is_one_header_value_and_never_echoed(start_weir, sink, monkeypatch, tmp_path):
    import os
    monkeypatch.setenv("WEIR_TEST_SECRET", SECRET)
    ok = validate(tmp_path, config(), dict(os.environ))
    assert ok.returncode == 0, ok.stderr
    assert_no_leak(ok.stdout + ok.stderr, "weir validate")

    monkeypatch.setenv("WEIR_TEST_SECRET", SECRET_RUN)
    monkeypatch.setenv("RUST_LOG", "debug")

    w = start_weir(config_text=config())
    with w.grpc_channel() as ch:
        trace_service_pb2_grpc.TraceServiceStub(ch).Export(traces_request(({}, [make_span("a", bytes(16))])),
                                                            timeout=10)
    sink.wait_for_spans(1)
    headers = [dict(md) for _, md in sink.metadata()]
    assert headers and all(h.get("authorization") == SECRET_RUN and "x-injected" not in h for h in headers), headers

    # A failed reload names the key and where the value came from, not the value.
    w.config_path.write_text(config('timeout = "${env:WEIR_TEST_SECRET}"').format(
        admin_port=w.admin_port, grpc_port=w.grpc_port, http_port=w.http_port, sink=sink.endpoint))
    r = requests.post(w.admin_url("/reload"), timeout=30)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["key"] == "exporters.backend.timeout", r.text
    assert "${env:WEIR_TEST_SECRET}" in r.text, r.text
    assert_no_leak(r.text, "POST /reload")
    status = requests.get(w.admin_url("/status"), timeout=5).text
    assert_no_leak(status, "/status")
    assert_no_leak(w.stderr(), "weir's debug log")


def test_validate_names_the_key_of_a_bad_value_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("WEIR_TEST_SECRET", "Bearer x")
    monkeypatch.setenv("WEIR_TEST_BAD", SECRET)
    import os
    r = validate(tmp_path, config('retry.max_elapsed = "${env:WEIR_TEST_BAD}"'), dict(os.environ))
    assert r.returncode != 0
    assert "exporters.backend.retry.max_elapsed" in r.stderr and "${env:WEIR_TEST_BAD}" in r.stderr, r.stderr
    assert_no_leak(r.stdout + r.stderr, "weir validate")


def test_a_number_can_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("WEIR_TEST_SECRET", "Bearer x")
    monkeypatch.setenv("WEIR_TEST_ATTEMPTS", "4096")
    import os
    r = validate(tmp_path, config('queue.capacity = "${env:WEIR_TEST_ATTEMPTS}"'), dict(os.environ))
    assert r.returncode == 0, r.stderr
