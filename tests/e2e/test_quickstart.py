"""`weir run` without --config: the embedded quickstart (OTLP on 4317/4318, console
exporter). Skipped when those ports are taken on this machine."""

from __future__ import annotations

import json
import signal
import socket
import subprocess

import pytest
import requests

from otlp_helpers import LOOPBACK, make_trace_request, port_is_free, wait_until, weir_bin


def _connectable(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


def test_quickstart_prints_received_spans(tmp_path):
    for port in (4317, 4318):
        if not (port_is_free(port, "0.0.0.0") and port_is_free(port)):
            pytest.skip(f"port {port} is in use")
    out_path = tmp_path / "quickstart.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([str(weir_bin()), "run"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=tmp_path)
    try:
        wait_until(lambda: proc.poll() is not None or (_connectable(4317) and _connectable(4318)), 20,
                   "the quickstart's OTLP ports")
        assert proc.poll() is None, out_path.read_text(errors="replace")

        doc = {"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "quickstart-svc"}}]},
            "scopeSpans": [{"spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                "name": "quickstart-span-e2e", "startTimeUnixNano": "1544712660000000000",
                "endTimeUnixNano": "1544712661000000000", "kind": 2,
                "attributes": [{"key": "e2e.marker", "value": {"stringValue": "zebra-42"}}]}]}]}]}
        r = requests.post(f"http://{LOOPBACK}:4318/v1/traces", data=json.dumps(doc),
                          headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code == 200, r.status_code
        r = requests.post(f"http://{LOOPBACK}:4318/v1/traces",
                          data=make_trace_request(1, name_prefix="quickstart-proto").SerializeToString(),
                          headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        assert r.status_code == 200, r.status_code

        def printed():
            text = out_path.read_text(errors="replace")
            return "quickstart-span-e2e" in text and "zebra-42" in text and "quickstart-proto-0" in text

        wait_until(printed, 10, lambda: "the console exporter to print the spans:\n"
                   + out_path.read_text(errors="replace")[-3000:])
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = "hung after SIGTERM"
    assert code == 0, f"quickstart exit {code}\n{out_path.read_text(errors='replace')[-3000:]}"
