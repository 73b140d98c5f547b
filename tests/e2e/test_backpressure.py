"""Backpressure: with the destination down, weir fills its bounded queue, then refuses
(HTTP 503 + Retry-After, gRPC UNAVAILABLE) with bounded memory; when the destination
comes back, exactly the accepted spans are delivered and the metrics reconcile."""

from __future__ import annotations

import email.utils
import random

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otlp_helpers import MiB, make_trace_request, span_ids_of, wait_until

CAPACITY = 2000
SPANS_PER_REQUEST = 100
MAX_REQUESTS = 100  # far more than CAPACITY / SPANS_PER_REQUEST


def check_retry_after(value: str | None) -> None:
    assert value, "503 without a Retry-After header"
    value = value.strip()
    if value.isdigit():
        assert 0 <= int(value) <= 3600, value
    else:
        assert email.utils.parsedate_to_datetime(value) is not None, value


def test_backpressure_refuses_then_delivers_exactly_the_accepted(start_weir, sink):
    weir = start_weir(
        queue_capacity=CAPACITY,
        queue_concurrency=2,
        batch_max_items=500,
        batch_timeout="50ms",
        retry_initial="100ms",
        retry_max_interval="500ms",
        retry_max_elapsed="5m",
        timeout="2s",
    )
    m = weir.metrics()
    assert m.sum("weir_exporter_queue_capacity", exporter="backend", signal="traces") == CAPACITY, str(m)
    sink.stop()
    rng = random.Random(1234)

    accepted: list[bytes] = []
    refused_http = 0
    got_503 = None
    for i in range(MAX_REQUESTS):
        req = make_trace_request(SPANS_PER_REQUEST, rng=rng, name_prefix=f"bp{i}")
        r = weir.post("traces", req.SerializeToString())
        if r.status_code == 200:
            accepted += span_ids_of(req)
        elif r.status_code == 503:
            got_503 = r
            refused_http += SPANS_PER_REQUEST
            break
        else:
            pytest.fail(f"request {i}: unexpected {r.status_code}: {r.text[:300]}")
    assert got_503 is not None, f"no 503 after {MAX_REQUESTS} requests of {SPANS_PER_REQUEST} spans (queue {CAPACITY})"
    check_retry_after(got_503.headers.get("Retry-After"))
    print(f"accepted {len(accepted)} spans, then 503 with Retry-After: {got_503.headers.get('Retry-After')}")
    assert 0 < len(accepted) <= CAPACITY, f"accepted {len(accepted)} spans with a queue of {CAPACITY}"

    # Still full: more HTTP requests and a gRPC request are refused.
    for i in range(5):
        r = weir.post("traces", make_trace_request(SPANS_PER_REQUEST, rng=rng).SerializeToString())
        assert r.status_code == 503, f"extra request {i}: {r.status_code}"
        check_retry_after(r.headers.get("Retry-After"))
        refused_http += SPANS_PER_REQUEST
    with weir.grpc_channel() as ch:
        stub = trace_service_pb2_grpc.TraceServiceStub(ch)
        with pytest.raises(grpc.RpcError) as err:
            stub.Export(make_trace_request(SPANS_PER_REQUEST, rng=rng), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, (err.value.code(), err.value.details())

    print(f"RSS while full: {weir.rss() / MiB:.1f} MiB")
    assert weir.rss() < 200 * MiB, f"RSS {weir.rss() / MiB:.0f} MiB"
    m = weir.metrics()
    assert m.sum("weir_receiver_accepted_spans_total", receiver="otlp", transport="http") == len(accepted), str(m)
    assert m.sum("weir_receiver_refused_spans_total", receiver="otlp", transport="http") == refused_http, str(m)
    assert m.sum("weir_receiver_refused_spans_total", receiver="otlp", transport="grpc") == SPANS_PER_REQUEST, str(m)
    assert m.sum("weir_exporter_queue_size", exporter="backend", signal="traces") == len(accepted), str(m)
    assert m.sum("weir_exporter_sent_spans_total", exporter="backend") == 0, str(m)
    assert m.sum("weir_exporter_send_failed_spans_total", exporter="backend") == 0, (
        "retryable failures must not drop data while retries last\n" + str(m)
    )

    # The destination comes back on the same port.
    sink.start()
    wait_until(
        lambda: len(sink.spans()) >= len(accepted),
        30,
        lambda: f"{len(accepted)} spans at the restarted sink (have {len(sink.spans())})\n{weir.metrics()}",
    )
    received = sink.span_ids()
    assert len(received) == len(accepted), f"sink got {len(received)} spans for {len(accepted)} accepted"
    assert set(received) == set(accepted)

    def reconciled():
        m = weir.metrics()
        return (
            m.sum("weir_exporter_sent_spans_total", exporter="backend") == len(accepted)
            and m.sum("weir_exporter_queue_size", exporter="backend", signal="traces") == 0
        )

    wait_until(reconciled, 10, lambda: f"sent == accepted and empty queue\n{weir.metrics()}")
    m = weir.metrics()
    assert m.sum("weir_receiver_accepted_spans_total") == m.sum("weir_exporter_sent_spans_total", exporter="backend")
    assert m.sum("weir_exporter_send_failed_spans_total") == 0, str(m)

    # And it takes new data again.
    req = make_trace_request(SPANS_PER_REQUEST, rng=rng, name_prefix="after")
    r = weir.post("traces", req.SerializeToString())
    assert r.status_code == 200, r.status_code
    sink.wait_for_spans(len(accepted) + SPANS_PER_REQUEST)
    assert set(span_ids_of(req)) <= set(sink.span_ids())


def test_request_larger_than_the_whole_queue_is_not_retryable(start_weir, sink):
    """A request with more items than the queue can ever hold must not get 503 (a client
    would retry it forever); weir maps it to 413 / RESOURCE_EXHAUSTED."""
    weir = start_weir(queue_capacity=50, batch_max_items=10)
    req = make_trace_request(60)
    r = weir.post("traces", req.SerializeToString())
    assert r.status_code == 413, f"{r.status_code}: {r.text[:300]}"
    with weir.grpc_channel() as ch:
        with pytest.raises(grpc.RpcError) as err:
            trace_service_pb2_grpc.TraceServiceStub(ch).Export(req, timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.value.code(), err.value.details())
    ok = make_trace_request(40)
    assert weir.post("traces", ok.SerializeToString()).status_code == 200
    sink.wait_for_spans(40)
    assert set(sink.span_ids()) == set(span_ids_of(ok))
