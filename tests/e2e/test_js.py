"""OpenTelemetry JS SDK (OTLP/HTTP JSON exporter, tests/js/send-spans.mjs) -> weir -> sink."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from otlp_helpers import REPO_ROOT, attrs_to_dict

JS_DIR = REPO_ROOT / "tests" / "js"
N_SPANS = 25


@pytest.fixture(scope="module")
def node():
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not installed")
    if not (JS_DIR / "node_modules" / "@opentelemetry" / "exporter-trace-otlp-http").exists():
        pytest.fail("tests/js/node_modules is missing; run `npm ci --prefix tests/js` (tests/run-all.sh does)")
    return path


def test_js_sdk_spans_over_http_json(node, weir, sink):
    result = subprocess.run(
        [node, str(JS_DIR / "send-spans.mjs"), weir.http_url("traces"), str(N_SPANS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=JS_DIR,
    )
    assert result.returncode == 0, f"send-spans.mjs failed ({result.returncode}):\n{result.stderr}\n{result.stdout}"
    sent = json.loads(result.stdout)
    created = sent["spans"]
    assert len(created) == N_SPANS

    received = sink.wait_for_spans(N_SPANS)
    by_id = {r.span.span_id.hex(): r for r in received}
    assert len(received) == N_SPANS, f"sink got {len(received)} spans, expected exactly {N_SPANS}"
    assert set(by_id) == {s["span_id"] for s in created}

    for s in created:
        got = by_id[s["span_id"]]
        assert got.span.trace_id.hex() == s["trace_id"]
        assert got.span.parent_span_id.hex() == s["parent_span_id"]
        assert got.span.name == s["name"]
        # JSON numbers: the JS exporter sends whole numbers as intValue and others as doubleValue.
        assert attrs_to_dict(got.span.attributes) == s["attributes"], s["name"]
        assert got.span.start_time_unix_nano > 0 and got.span.end_time_unix_nano >= got.span.start_time_unix_nano
        assert got.scope.name == "weir-e2e-js-tracer" and got.scope.version == "1.2.3"
        resource = attrs_to_dict(got.resource.attributes)
        for k, v in sent["resource"].items():
            assert resource[k] == v, k

    kinds = {r.span.name: r.span.kind for r in received}
    assert kinds["js-root"] == 2  # SPAN_KIND_SERVER
    assert kinds["js-child-0"] == 1  # SPAN_KIND_INTERNAL

    m = weir.metrics()
    assert m.sum("weir_receiver_accepted_spans_total", receiver="otlp", transport="http") == N_SPANS, str(m)
