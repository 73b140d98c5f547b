"""Connection hygiene: held and silent connections, the open-file limit, shutdown
with held connections, and /health staying responsive while the data listeners
are flooded (the admin server runs on its own thread)."""

from __future__ import annotations

import gzip
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otlp_helpers import LOOPBACK, free_port, make_trace_request, span_ids_of, wait_until

HEALTH_BUDGET = 0.1  # seconds
MiB = 1024 * 1024
# For tests that hold connections: long enough that none times out meanwhile.
HOLD = ', header_read_timeout = "60s"'


@pytest.fixture(autouse=True, scope="module")
def many_descriptors():
    """These tests hold thousands of sockets (and weir inherits the limit): raise the
    soft open-file limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard == resource.RLIM_INFINITY else min(hard, 1 << 16)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def need_fds(n: int) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n + 500:
        pytest.skip(f"needs an open-file limit of {n + 500} (it is {soft})")


def config(*, shutdown_grace: str = "5s", grpc_extra: str = "", http_extra: str = "", sink: str = "{sink}",
           retry: bool = True) -> str:
    """A config for start_weir(config_text=...): `{..}` placeholders are filled by the
    fixture, so TOML braces are doubled here."""
    return f"""
[service]
shutdown_grace = "{shutdown_grace}"

[admin]
address = "{LOOPBACK}:{{admin_port}}"

[receivers.otlp]
type = "otlp"
grpc = {{{{ address = "{LOOPBACK}:{{grpc_port}}"{grpc_extra} }}}}
http = {{{{ address = "{LOOPBACK}:{{http_port}}"{http_extra} }}}}

[exporters.backend]
type = "otlp_grpc"
endpoint = "{sink}"
timeout = "2s"
queue = {{{{ capacity = 1000000, concurrency = 4 }}}}
batch = {{{{ max_items = 100000, max_bytes = "32MiB", timeout = "50ms" }}}}
retry = {{{{ enabled = {"true" if retry else "false"}, initial_interval = "100ms", max_interval = "1s", max_elapsed = "30s" }}}}

[pipelines.traces]
receivers = ["otlp"]
exporters = ["backend"]
"""


def hold(port: int, n: int, batch: int = 64) -> list[socket.socket]:
    """Opens `n` connections that never send anything. Non-blocking connects in
    batches: one at a time, the occasional SYN retransmit (1 s) adds up."""
    out: list[socket.socket] = []
    while len(out) < n:
        pending = {}
        poller = select.epoll()
        try:
            for _ in range(min(batch, n - len(out))):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex((LOOPBACK, port))
                pending[s.fileno()] = s
                poller.register(s.fileno(), select.EPOLLOUT)
            deadline = time.monotonic() + 10
            while pending:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(pending)} connections to port {port} not established in 10s"
                for fd, _ in poller.poll(left):
                    s = pending.pop(fd)
                    poller.unregister(fd)
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    assert err == 0, f"connect to port {port} failed: {os.strerror(err)}"
                    s.setblocking(True)
                    s.settimeout(5)
                    out.append(s)
        finally:
            poller.close()
    return out


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def health_latency(weir) -> float:
    started = time.monotonic()
    r = requests.get(weir.admin_url("/health"), timeout=5)
    took = time.monotonic() - started
    assert r.status_code == 200, r.status_code
    return took


def health_latencies(weir, n: int = 20, pause: float = 0.02) -> list[float]:
    out = []
    for _ in range(n):
        out.append(health_latency(weir))
        time.sleep(pause)
    return out


def send_grpc(weir, n_spans: int = 5) -> list[bytes]:
    req = make_trace_request(n_spans)
    with weir.grpc_channel() as ch:
        trace_service_pb2_grpc.TraceServiceStub(ch).Export(req, timeout=10)
    return span_ids_of(req)


def send_http(weir, session: requests.Session | None = None, n_spans: int = 5) -> list[bytes]:
    req = make_trace_request(n_spans)
    r = (session or requests).post(weir.http_url("traces"), data=req.SerializeToString(),
                                   headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return span_ids_of(req)


def closed_by_peer(s: socket.socket, timeout: float) -> float:
    """Seconds until the server closes `s` (fails if it stays open)."""
    started = time.monotonic()
    s.settimeout(timeout)
    try:
        data = s.recv(1024)
    except ConnectionResetError:
        data = b""
    except socket.timeout:
        raise AssertionError(f"connection still open after {timeout}s")
    assert data == b"", f"unexpected data {data[:100]!r}"
    return time.monotonic() - started


def test_held_connections_do_not_stall_health_or_new_requests(start_weir, sink):
    need_fds(4000)
    weir = start_weir(config_text=config(grpc_extra=HOLD, http_extra=HOLD))
    held = hold(weir.grpc_port, 2000) + hold(weir.http_port, 2000)
    try:
        wait_until(lambda: weir.metrics().sum("weir_receiver_connections", receiver="otlp") >= 4000, 5,
                   lambda: f"4000 open connections\n{weir.metrics()}")
        lat = health_latencies(weir)
        print(f"/health with 4000 held connections: max {max(lat) * 1000:.1f} ms")
        assert max(lat) < HEALTH_BUDGET, lat
        ids = send_grpc(weir) + send_http(weir)
        sink.wait_for_spans(len(ids))
        assert set(ids) <= set(sink.span_ids())
    finally:
        close_all(held)


def test_at_the_fd_limit_health_answers_and_existing_clients_are_served(start_weir, sink):
    weir = start_weir(config_text=config())
    session = requests.Session()
    ids = send_http(weir, session)  # also connects the exporter to the sink
    sink.wait_for_spans(len(ids))
    subprocess.run(["prlimit", f"--pid={weir.pid}", "--nofile=256:256"], check=True)
    held = []
    try:
        held = hold(weir.http_port, 300) + hold(weir.grpc_port, 100)
        wait_until(lambda: "open-file limit reached" in weir.stderr(), 5, "the open-file limit warning")
        lat = health_latencies(weir)
        print(f"/health at the open-file limit: max {max(lat) * 1000:.1f} ms")
        assert max(lat) < HEALTH_BUDGET, lat
        ids += send_http(weir, session)  # the existing connection is still served
        m = weir.metrics()
        assert m.sum("weir_receiver_connections_refused_total", reason="fd_limit") > 0, str(m)
    finally:
        close_all(held)
    sink.wait_for_spans(len(ids))
    assert set(ids) <= set(sink.span_ids())
    # Below the limit again, new connections are served.
    wait_until(lambda: weir.metrics().sum("weir_receiver_connections", receiver="otlp") <= 2, 15,
               "held connections to be closed")
    send_http(weir)


def test_rss_with_10000_held_connections_stays_bounded(start_weir):
    need_fds(10_000)
    weir = start_weir(config_text=config(grpc_extra=HOLD, http_extra=HOLD))
    for name, port in (("http", weir.http_port), ("grpc", weir.grpc_port)):
        before = weir.rss()
        held = hold(port, 10_000)
        try:
            time.sleep(1)
            after = weir.rss()
            lat = health_latencies(weir, n=10)
            m = weir.metrics()
            print(f"10000 held connections to {name}: RSS {before / MiB:.0f} -> {after / MiB:.0f} MiB, "
                  f"/health max {max(lat) * 1000:.1f} ms, "
                  f"open {m.sum('weir_receiver_connections', transport=name):.0f}, "
                  f"refused {m.sum('weir_receiver_connections_refused_total', transport=name):.0f}")
            assert max(lat) < HEALTH_BUDGET, lat
            assert m.sum("weir_receiver_connections", transport=name) == 4096, str(m)
            assert m.sum("weir_receiver_connections_refused_total", transport=name, reason="max_connections") \
                >= 10_000 - 4096, str(m)
            assert after - before < 64 * MiB, (before, after)
        finally:
            close_all(held)
        wait_until(lambda: weir.metrics().sum("weir_receiver_connections", transport=name) == 0, 10,
                   f"the held {name} connections to close")


def test_header_read_timeout_closes_a_silent_connection(start_weir):
    weir = start_weir(config_text=config(grpc_extra=', header_read_timeout = "1s"',
                                         http_extra=', header_read_timeout = "1s"'))
    for port in (weir.grpc_port, weir.http_port):
        (s,) = hold(port, 1)
        took = closed_by_peer(s, 5)
        s.close()
        assert 0.7 < took < 3, took
    # A client that starts a request but never finishes its headers, too.
    (s,) = hold(weir.http_port, 1)
    s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: weir\r\nContent-Ty")
    took = closed_by_peer(s, 5)
    s.close()
    assert took < 3, took
    m = weir.metrics()
    assert m.sum("weir_receiver_connections_timed_out_total", reason="header_read_timeout") >= 2, str(m)


def hold_half_open(weir, n: int) -> list[socket.socket]:
    """Connections that began a request and stalled: HTTP/1.1 headers cut short, and
    HTTP/2 connections that sent only the preface and SETTINGS."""
    out = []
    for _ in range(n):
        (h1,) = hold(weir.http_port, 1)
        h1.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: weir\r\n")
        (h2,) = hold(weir.grpc_port, 1)
        h2.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        out += [h1, h2]
    return out


def test_sigterm_with_held_connections_exits_within_one_grace_period(start_weir, sink):
    need_fds(2100)
    grace = 5.0
    weir = start_weir(config_text=config(shutdown_grace=f"{grace:g}s", grpc_extra=HOLD, http_extra=HOLD))
    session = requests.Session()
    ids = send_http(weir, session)  # a kept-alive idle HTTP/1.1 connection
    channel = weir.grpc_channel()  # and an idle HTTP/2 one
    req = make_trace_request(3)
    trace_service_pb2_grpc.TraceServiceStub(channel).Export(req, timeout=10)
    ids += span_ids_of(req)
    held = hold(weir.grpc_port, 1000) + hold(weir.http_port, 1000) + hold_half_open(weir, 50)
    try:
        started = time.monotonic()
        weir.signal(signal.SIGTERM)
        code = weir.wait_exit(grace + 10)
        took = time.monotonic() - started
        print(f"SIGTERM with {len(held)} held connections: exited {code} after {took:.2f}s (grace {grace}s)")
        assert code == 0
        # Idle connections close at once and stalled ones within a second: the
        # exit does not wait for the grace period.
        assert took <= 2, took
    finally:
        close_all(held)
        channel.close()
    assert set(ids) <= set(sink.span_ids())


def test_sigterm_with_a_dead_backend_takes_one_grace_period_and_final_metrics_are_scrapable(start_weir, sink):
    """Held connections and undeliverable queued data share one deadline (not one
    grace period each), and /metrics answers until the abandoned data is counted."""
    grace = 2.0
    weir = start_weir(config_text=config(shutdown_grace=f"{grace:g}s", grpc_extra=HOLD, http_extra=HOLD))
    sink.stop()
    accepted = len(send_http(weir, n_spans=20))
    held = hold(weir.http_port, 200) + hold_half_open(weir, 20)
    scrapes: list[float] = []
    stop = threading.Event()

    def scrape():
        while not stop.is_set():
            try:
                m = weir.metrics()
            except (requests.RequestException, AssertionError):
                time.sleep(0.02)
                continue
            scrapes.append(m.sum("weir_exporter_send_failed_spans_total", reason="shutdown"))
            time.sleep(0.05)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        time.sleep(0.3)
        started = time.monotonic()
        weir.signal(signal.SIGTERM)
        code = weir.wait_exit(2 * grace + 10)
        took = time.monotonic() - started
    finally:
        stop.set()
        scraper.join()
        close_all(held)
    print(f"SIGTERM with a dead backend: exited {code} after {took:.2f}s (grace {grace}s); "
          f"last scrape counted {scrapes[-1] if scrapes else None} spans failed at shutdown")
    assert code == 0
    assert took <= grace + 1, took
    assert scrapes and scrapes[-1] == accepted, (accepted, scrapes[-5:])


def _big_json_request(target_bytes: int) -> bytes:
    span = json.dumps({
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "name": "GET /api/v1/items", "kind": 2,
        "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712661000000000",
        "attributes": [{"key": "http.method", "value": {"stringValue": "GET"}},
                       {"key": "http.status_code", "value": {"intValue": "200"}}],
    }, separators=(",", ":"))
    n = target_bytes // (len(span) + 1)
    body = ('{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"flood"}}]},'
            '"scopeSpans":[{"scope":{"name":"flood"},"spans":[' + ",".join([span] * n) + "]}]}]}")
    return body.encode()


def test_parallel_large_gzipped_json_does_not_stall_health(start_weir):
    # A dead backend without retries: accepted data is dropped at once, so the
    # test process does no work but sending and timing.
    weir = start_weir(config_text=config(sink=f"http://{LOOPBACK}:{free_port()}", retry=False,
                                         shutdown_grace="2s"))
    body = gzip.compress(_big_json_request(15 * 1024 * 1024), compresslevel=6)
    print(f"each request: {len(body)} bytes gzipped")
    statuses: list[int] = []
    lock = threading.Lock()

    def flood():
        s = requests.Session()
        for _ in range(3):
            r = s.post(weir.http_url("traces"), data=body, timeout=60,
                       headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
            with lock:
                statuses.append(r.status_code)

    # The probe runs in its own process, so the flood threads' share of this
    # interpreter's GIL does not count as weir's latency.
    probe = subprocess.Popen([sys.executable, "-c", _PROBE, weir.admin_url("/health")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    threads = [threading.Thread(target=flood) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out, _ = probe.communicate("", timeout=30)
    lat = [float(x) for x in out.split()]
    print(f"/health during the JSON flood: {len(lat)} samples, max {max(lat) * 1000:.1f} ms; statuses {statuses}")
    assert len(statuses) == 48
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) > 0
    assert len(lat) > 10, lat
    assert max(lat) < HEALTH_BUDGET, sorted(lat)[-5:]


# Times GET <argv[1]> every 20 ms until stdin closes; prints one latency (s) per line.
_PROBE = """
import sys, threading, time, urllib.request
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
url = sys.argv[1]
while not done.is_set():
    t = time.monotonic()
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.status == 200
        r.read()
    print(time.monotonic() - t, flush=True)
    time.sleep(0.02)
"""
