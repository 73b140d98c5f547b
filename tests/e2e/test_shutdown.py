"""Graceful shutdown: SIGTERM / Ctrl-C stop accepting, drain the queues within
service.shutdown_grace, and exit 0."""

from __future__ import annotations

import signal
import threading
import time

import requests
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.logs.v1 import logs_pb2

from otlp_helpers import dict_to_attrs, make_trace_request, span_ids_of


def _log_request(n: int) -> logs_service_pb2.ExportLogsServiceRequest:
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[logs_pb2.ResourceLogs(scope_logs=[logs_pb2.ScopeLogs(log_records=[
            logs_pb2.LogRecord(time_unix_nano=i + 1, severity_number=9, attributes=dict_to_attrs({"i": i}))
            for i in range(n)
        ])])]
    )


def test_sigterm_drains_everything_accepted(start_weir, sink):
    # A long batch timeout: nothing is sent before the signal, so everything must be
    # flushed by the shutdown itself.
    weir = start_weir(batch_timeout="30s", shutdown_grace="10s")
    accepted: list[bytes] = []
    for i in range(10):
        req = make_trace_request(100, name_prefix=f"http{i}")
        r = weir.post("traces", req.SerializeToString())
        assert r.status_code == 200, r.status_code
        accepted += span_ids_of(req)
    with weir.grpc_channel() as ch:
        stub = trace_service_pb2_grpc.TraceServiceStub(ch)
        for i in range(5):
            req = make_trace_request(100, name_prefix=f"grpc{i}")
            stub.Export(req, timeout=10)
            accepted += span_ids_of(req)
    r = weir.post("logs", _log_request(7).SerializeToString())
    assert r.status_code == 200
    assert sink.spans() == [], "the batch timeout is 30s; nothing should have been sent yet"

    started = time.monotonic()
    weir.signal(signal.SIGTERM)
    code = weir.wait_exit(15)
    elapsed = time.monotonic() - started
    assert code == 0, f"exit code {code}"
    assert elapsed < 10, f"took {elapsed:.1f}s to drain 1500 spans to a live sink"
    received = sink.span_ids()
    assert len(received) == len(accepted) == 1500, (len(received), len(accepted))
    assert set(received) == set(accepted)
    assert len(sink.log_records()) == 7


def test_ctrl_c_drains_and_exits_0(start_weir, sink):
    weir = start_weir(batch_timeout="30s")
    req = make_trace_request(250)
    assert weir.post("traces", req.SerializeToString()).status_code == 200
    weir.signal(signal.SIGINT)
    assert weir.wait_exit(15) == 0
    assert sorted(sink.span_ids()) == sorted(span_ids_of(req))


def test_sigterm_under_load_delivers_everything_accepted(start_weir, sink):
    """Clients keep sending while the signal arrives: every request answered 200 must be
    delivered; the rest must be refused (or fail to connect), never half-accepted."""
    weir = start_weir(batch_timeout="200ms", batch_max_items=300)
    accepted: list[bytes] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int):
        s = requests.Session()
        i = 0
        while not stop.is_set() and i < 400:
            req = make_trace_request(50, name_prefix=f"c{n}-{i}")
            i += 1
            try:
                r = s.post(weir.http_url("traces"), data=req.SerializeToString(),
                           headers={"Content-Type": "application/x-protobuf"}, timeout=5)
                key = str(r.status_code)
            except requests.RequestException:
                key = "conn-error"
                if not weir.alive():
                    return
                time.sleep(0.01)
            with lock:
                outcomes[key] = outcomes.get(key, 0) + 1
                if key == "200":
                    accepted.extend(span_ids_of(req))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.7)
    weir.signal(signal.SIGTERM)
    code = weir.wait_exit(15)
    stop.set()
    for t in threads:
        t.join(10)
    print(f"outcomes during shutdown: {outcomes}; accepted {len(accepted)} spans")
    assert code == 0, f"exit code {code}"
    assert outcomes.get("200", 0) > 0, outcomes
    bad = {k: v for k, v in outcomes.items() if k not in ("200", "503", "conn-error")}
    assert not bad, f"unexpected answers during shutdown: {outcomes}"
    received = sink.span_ids()
    assert len(received) == len(set(received)), "duplicates at the sink"
    assert set(received) == set(accepted), (
        f"accepted {len(accepted)}, received {len(received)}, "
        f"missing {len(set(accepted) - set(received))}, unexpected {len(set(received) - set(accepted))}; {outcomes}"
    )


def test_dead_destination_gives_up_after_grace_and_exits_0(start_weir, sink):
    weir = start_weir(shutdown_grace="2s", retry_initial="100ms", retry_max_interval="200ms", timeout="1s")
    sink.stop()
    req = make_trace_request(100)
    assert weir.post("traces", req.SerializeToString()).status_code == 200
    time.sleep(0.2)  # let the batch go out and fail at least once

    started = time.monotonic()
    weir.signal(signal.SIGTERM)
    ready_codes = set()
    post_codes = set()
    while weir.alive() and time.monotonic() - started < 10:
        try:
            ready = requests.get(weir.admin_url("/ready"), timeout=0.5).status_code
        except requests.RequestException:
            ready = "conn-error"
        ready_codes.add(ready)
        if ready == 200:
            time.sleep(0.02)
            continue  # the signal may not have been handled yet
        try:
            post_codes.add(weir.post("traces", make_trace_request(1).SerializeToString(), timeout=0.5).status_code)
        except requests.RequestException:
            post_codes.add("conn-error")
        time.sleep(0.05)
    code = weir.wait_exit(10)
    elapsed = time.monotonic() - started
    print(f"exit {code} after {elapsed:.2f}s; /ready answers {ready_codes}; POST answers {post_codes}")
    assert code == 0, f"exit code {code}"
    assert 1.5 <= elapsed < 6, f"exited {elapsed:.1f}s after SIGTERM with shutdown_grace = 2s"
    assert 503 in ready_codes, f"/ready never answered 503 during the 2s drain: {ready_codes}"
    assert 200 not in post_codes, f"a request was accepted after SIGTERM: {post_codes}"
    assert sink.spans() == []
