"""Bad input: each request gets the right status, and weir still serves a good request
afterwards (checked end to end: the good request's spans reach the sink)."""

from __future__ import annotations

import gzip
import io
import json
import random
import threading

import grpc
import pytest
import requests
import zstandard
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.logs.v1 import logs_pb2

from otlp_helpers import MiB, make_trace_request, span_ids_of, wait_until

# A length-delimited field 1 claiming ~256 MiB, followed by fewer bytes: truncated in
# every protobuf decoder.
MALFORMED_PROTOBUF = b"\x0a\xff\xff\xff\x7f" + random.Random(7).randbytes(200)


def assert_status_body(r: requests.Response, json_body: bool) -> None:
    """Errors are answered in the request's content type, as a google.rpc.Status."""
    ctype = r.headers.get("Content-Type", "")
    if json_body:
        assert ctype.startswith("application/json"), r.headers
        assert r.json().get("message"), r.text
    else:
        assert ctype.startswith("application/x-protobuf"), r.headers
        assert status_pb2.Status.FromString(r.content).message, r.content


def assert_still_serves(weir, sink, transport: str = "http") -> None:
    """A fresh, valid request is accepted and delivered."""
    before = len(sink.spans())
    req = make_trace_request(5, name_prefix=f"after-bad-{transport}")
    if transport == "http":
        r = weir.post("traces", req.SerializeToString())
        assert r.status_code == 200, f"good request after bad input got {r.status_code}: {r.text[:300]}"
    else:
        with weir.grpc_channel() as ch:
            trace_service_pb2_grpc.TraceServiceStub(ch).Export(req, timeout=10)
    assert weir.alive(), "weir exited"
    sink.wait_for_spans(before + 5)
    assert set(span_ids_of(req)) <= set(sink.span_ids())


def test_malformed_protobuf_is_400(weir, sink):
    with pytest.raises(DecodeError):
        trace_service_pb2.ExportTraceServiceRequest.FromString(MALFORMED_PROTOBUF)
    r = weir.post("traces", MALFORMED_PROTOBUF)
    assert r.status_code == 400, f"{r.status_code}: {r.text[:300]}"
    assert_status_body(r, json_body=False)
    assert_still_serves(weir, sink)
    assert sink.spans() and all(s.span.name.startswith("after-bad") for s in sink.spans())


def test_malformed_json_is_400(weir, sink):
    for body in (b'{"resourceSpans": [', b"not json at all", b'{"resourceSpans": "nope"}'):
        r = weir.post("traces", body, content_type="application/json")
        assert r.status_code == 400, f"{body!r}: {r.status_code}: {r.text[:300]}"
        assert_status_body(r, json_body=True)
    assert_still_serves(weir, sink)


def test_wrong_content_type_is_415(weir, sink):
    body = make_trace_request(3).SerializeToString()
    r = weir.post("traces", body, content_type="text/plain")
    assert r.status_code == 415, f"{r.status_code}: {r.text[:300]}"
    assert_still_serves(weir, sink)
    assert len(sink.spans()) == 5, "the refused request's spans must not be exported"


def test_unknown_content_encoding_is_refused(weir, sink):
    body = make_trace_request(3).SerializeToString()
    r = weir.post("traces", body, headers={"Content-Encoding": "br"})
    assert 400 <= r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    assert_still_serves(weir, sink)


def test_oversized_body_is_413(start_weir, sink):
    weir = start_weir(max_request_size="64KiB")
    big = make_trace_request(40, attr_padding=2048).SerializeToString()
    assert len(big) > 64 * 1024
    r = weir.post("traces", big)
    assert r.status_code == 413, f"{r.status_code}: {r.text[:300]}"
    assert_status_body(r, json_body=False)
    # The same limit applies after decompression: a small gzip body that inflates past it.
    compressed = gzip.compress(big)
    assert len(compressed) < 64 * 1024
    r = weir.post("traces", compressed, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413, f"gzip: {r.status_code}: {r.text[:300]}"
    # Chunked (no Content-Length): the limit is enforced while reading.
    r = requests.post(weir.http_url("traces"), data=iter([big[i:i + 8192] for i in range(0, len(big), 8192)]),
                      headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 413, f"chunked: {r.status_code}: {r.text[:300]}"
    # JSON too.
    r = weir.post("traces", b'{"resourceSpans": [], "pad": "' + b"x" * (80 * 1024) + b'"}',
                  content_type="application/json")
    assert r.status_code == 413, f"json: {r.status_code}: {r.text[:300]}"
    assert_still_serves(weir, sink)
    assert all(s.span.name.startswith("after-bad") for s in sink.spans())
    m = weir.metrics()
    assert m.sum("weir_receiver_accepted_spans_total") == 5, str(m)


def _bomb(encoding: str, size: int) -> bytes:
    if encoding == "gzip":
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as f:
            chunk = b"\0" * MiB
            for _ in range(size // MiB):
                f.write(chunk)
        return buf.getvalue()
    cctx = zstandard.ZstdCompressor(level=19)
    return cctx.compress(b"\0" * size)


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_decompression_bomb_is_413_and_memory_stays_bounded(weir, sink, encoding):
    """50 MiB of zeros, compressed to a few tens of KB, against the default 16 MiB limit."""
    bomb = _bomb(encoding, 50 * MiB)
    assert len(bomb) < 100 * 1024, len(bomb)
    rss_before = weir.rss()
    peak = [rss_before]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], weir.rss())
            except Exception:
                return
            stop.wait(0.005)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        for _ in range(3):
            r = weir.post("traces", bomb, headers={"Content-Encoding": encoding}, timeout=30)
            assert r.status_code == 413, f"{r.status_code}: {r.text[:300]}"
    finally:
        stop.set()
        t.join()
    print(f"{encoding} bomb of {len(bomb)} bytes: RSS {rss_before / MiB:.1f} MiB before, peak {peak[0] / MiB:.1f} MiB")
    assert peak[0] < 200 * MiB, f"weir RSS peaked at {peak[0] / MiB:.0f} MiB while refusing a {encoding} bomb"
    assert weir.rss() < 200 * MiB
    assert_still_serves(weir, sink)


def test_grpc_request_over_limit_is_resource_exhausted(start_weir, sink):
    weir = start_weir(max_request_size="64KiB")
    big = make_trace_request(40, attr_padding=2048)
    assert big.ByteSize() > 64 * 1024
    with weir.grpc_channel() as ch:
        stub = trace_service_pb2_grpc.TraceServiceStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            stub.Export(big, timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.value.code(), err.value.details())
        # gzip-compressed over gRPC: the limit applies after decompression.
        with pytest.raises(grpc.RpcError) as err:
            stub.Export(big, timeout=10, compression=grpc.Compression.Gzip)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.value.code(), err.value.details())
    assert_still_serves(weir, sink, transport="grpc")
    assert_still_serves(weir, sink, transport="http")
    assert len(sink.spans()) == 10


def test_signal_without_pipeline_is_404_and_unimplemented(start_weir, sink):
    weir = start_weir(signals=("traces",))
    logs = logs_service_pb2.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(scope_logs=[
        logs_pb2.ScopeLogs(log_records=[logs_pb2.LogRecord(time_unix_nano=1, severity_number=9)])])])
    r = weir.post("logs", logs.SerializeToString())
    assert r.status_code == 404, f"{r.status_code}: {r.text[:300]}"
    r = weir.post("metrics", b'{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "g", "gauge": '
                  b'{"dataPoints": [{"asInt": "1", "timeUnixNano": "1"}]}}]}]}]}', content_type="application/json")
    assert r.status_code == 404, f"{r.status_code}: {r.text[:300]}"
    with weir.grpc_channel() as ch:
        with pytest.raises(grpc.RpcError) as err:
            logs_service_pb2_grpc.LogsServiceStub(ch).Export(logs, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, (err.value.code(), err.value.details())
    assert_still_serves(weir, sink)
    assert sink.log_records() == [] and sink.metric_points() == []


def test_empty_request_for_signal_without_pipeline_is_404(start_weir, sink):
    """The signal has no pipeline, whether or not the request holds any items."""
    weir = start_weir(signals=("traces",))
    r = weir.post("logs", logs_service_pb2.ExportLogsServiceRequest().SerializeToString())
    assert r.status_code == 404, f"{r.status_code}: {r.text[:300]}"
    with weir.grpc_channel() as ch:
        with pytest.raises(grpc.RpcError) as err:
            logs_service_pb2_grpc.LogsServiceStub(ch).Export(logs_service_pb2.ExportLogsServiceRequest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, (err.value.code(), err.value.details())


def test_empty_request_is_ok_and_unknown_path_is_404(weir, sink):
    r = weir.post("traces", b"")
    assert r.status_code == 200, f"an empty protobuf body is a valid, empty export; got {r.status_code}: {r.text[:300]}"
    r = requests.post(f"http://127.0.0.1:{weir.http_port}/v1/profiles-nope", data=b"",
                      headers={"Content-Type": "application/x-protobuf"}, timeout=5)
    assert r.status_code == 404, r.status_code
    assert_still_serves(weir, sink)


def test_http_success_answers_in_request_content_type(weir, sink):
    req = make_trace_request(2)
    r = weir.post("traces", req.SerializeToString())
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/x-protobuf"), r.headers
    resp = trace_service_pb2.ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 0
    r = weir.post("traces", json.dumps({"resourceSpans": []}).encode(), content_type="application/json")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    assert isinstance(r.json(), dict)
    sink.wait_for_spans(2)


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_compressed_http_request_is_accepted(weir, sink, encoding):
    req = make_trace_request(30, name_prefix=encoding)
    raw = req.SerializeToString()
    body = gzip.compress(raw) if encoding == "gzip" else zstandard.ZstdCompressor().compress(raw)
    r = weir.post("traces", body, headers={"Content-Encoding": encoding})
    assert r.status_code == 200, f"{r.status_code}: {r.text[:300]}"
    sink.wait_for_spans(30)
    assert sorted(sink.span_ids()) == sorted(span_ids_of(req))
    # JSON, compressed.
    doc = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "json-" + encoding,
        "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]}).encode()
    body = gzip.compress(doc) if encoding == "gzip" else zstandard.ZstdCompressor().compress(doc)
    r = weir.post("traces", body, content_type="application/json", headers={"Content-Encoding": encoding})
    assert r.status_code == 200, f"json: {r.status_code}: {r.text[:300]}"
    wait_until(lambda: any(s.span.name == "json-" + encoding for s in sink.spans()), 10, "the compressed JSON span")
