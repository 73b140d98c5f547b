"""Acknowledged means delivered: when weir answers OK the client deletes its copy, so
every span a client saw acknowledged must reach the destination, under each fault.

Each test sends spans with unique ids (TrackingSender), records which requests were
acknowledged, injects a fault at a real OTLP destination (FaultSink) or at the input,
and checks `acknowledged ⊆ delivered` (printing missing and duplicate counts), plus
weir's own accounting: accepted = sent + send_failed + dropped + queued."""

from __future__ import annotations

import email.utils
import re
import signal
import threading
import time

import grpc
import pytest
import requests

from otlp_helpers import (
    GRPC_DEFAULT_MAX_MESSAGE,
    MetricsSnapshot,
    MiB,
    Fault,
    FaultSink,
    OtlpHttpSink,
    TrackingSender,
    assert_acknowledged_delivered,
    assert_reconciled,
    logs_request,
    make_log,
    nested_any_value,
    raw_attribute,
    raw_string_attribute,
    raw_trace_request,
    wait_until,
)
from opentelemetry.proto.trace.v1 import trace_pb2

# Exporter settings shared by these tests: quick retries (so a honoured server delay
# is distinguishable from the backoff) that last longer than any test.
# A short grace: a failing test's teardown need not wait 10 s for data it cannot deliver.
FAST_RETRY = dict(retry_initial="50ms", retry_max_interval="200ms", retry_max_elapsed="5m", timeout="2s",
                  shutdown_grace="3s")
RSS_BOUND = 200 * MiB  # documented bound for weir's RSS with a 16 MiB byte budget


@pytest.fixture
def fault_sink():
    s = FaultSink()  # 4 MiB receive limit, like a default gRPC server
    s.start()
    yield s
    s.stop()


@pytest.fixture
def http_sink():
    s = OtlpHttpSink()
    s.start()
    yield s
    s.stop()


def has_number(line: str, n: int) -> bool:
    """`n` appears in the line as a number of its own (not inside a timestamp)."""
    return re.search(rf"(?<![\d.:]){n}(?![\d.:])", line) is not None


def circuit_state(weir, exporter: str = "backend") -> float | None:
    """weir_exporter_circuit_state of the exporter's traces stage (0 closed, 1 open,
    2 half-open); None while the metric is absent."""
    m = weir.metrics()
    values = [s.value for s in m.samples if s.name == "weir_exporter_circuit_state"
              and s.labels.get("exporter") == exporter and s.labels.get("signal", "traces") == "traces"]
    return max(values) if values else None


# ---------------------------------------------------------------------------
# (a) outage and recovery: a backlog larger than the destination's 4 MiB limit


def test_outage_backlog_is_delivered_in_requests_under_4mib(start_weir, fault_sink):
    """~5 s of outage at ~3000 spans/s of ~700 bytes: the backlog (> 10 MiB) must
    reach a destination with gRPC's default 4 MiB receive limit in requests under
    it (batch.max_bytes defaults to 4 MiB - 1 KiB), and nothing acknowledged is lost."""
    weir = start_weir(sink_endpoint=fault_sink.endpoint, batch_timeout="100ms", **FAST_RETRY)
    sender = TrackingSender(weir, spans_per_request=50, attr_bytes=600, retries=3)
    fault_sink.stop()
    sender.start(rate=3000, threads=2)
    time.sleep(5)
    m = weir.metrics()
    queued = m.sum("weir_exporter_queue_size", exporter="backend", signal="traces")
    acked = sender.acknowledged_ids()
    backlog = sum(r.size for r in sender.requests() if r.acknowledged)
    print(f"after 5 s down: {sender.summary()}; queued {queued:.0f} spans, ~{backlog / MiB:.1f} MiB")
    assert backlog > GRPC_DEFAULT_MAX_MESSAGE, f"backlog of {backlog} bytes is too small to test the limit"
    assert queued >= len(acked) * 0.9, f"queued {queued} of {len(acked)} acknowledged spans\n{m}"

    fault_sink.start()
    time.sleep(2)  # recovery under continued load
    sender.stop()
    assert not sender.refused(), f"requests refused with a 64 MiB queue: {sender.summary()}"
    assert_acknowledged_delivered(sender.acknowledged_ids(), fault_sink, timeout=20,
                                  context=lambda: f"{sender.summary()}\n{weir.metrics()}")
    print(f"sink: {fault_sink.outcomes()}, largest request {fault_sink.max_request_bytes} bytes")
    assert fault_sink.oversized_rejections == 0, (
        f"{fault_sink.oversized_rejections} export requests exceeded the destination's 4 MiB limit")
    assert 0 < fault_sink.max_request_bytes <= GRPC_DEFAULT_MAX_MESSAGE
    r = assert_reconciled(weir, timeout=10)
    assert r["send_failed"] == 0, r


def test_slow_destination_past_the_timeout_duplicates_but_loses_nothing(start_weir, fault_sink):
    """A destination slower than the exporter's timeout (it still takes the data,
    after weir gave up waiting): weir retries, so spans may arrive twice, but every
    acknowledged span arrives."""
    weir = start_weir(sink_endpoint=fault_sink.endpoint, batch_timeout="50ms", batch_max_items=500,
                      **{**FAST_RETRY, "timeout": "500ms"})
    sender = TrackingSender(weir, spans_per_request=50, retries=3)
    fault_sink.delay = 0.8
    sender.start(rate=1000)
    time.sleep(3)
    fault_sink.delay = 0.0
    time.sleep(1)
    sender.stop()
    report = assert_acknowledged_delivered(sender.acknowledged_ids(), fault_sink, timeout=15,
                                           context=lambda: f"{sender.summary()}\n{weir.metrics()}")
    print(f"{sender.summary()}; sink {fault_sink.outcomes()}")
    assert report.duplicates > 0, "no call outlived the timeout: the test did not test it"
    r = assert_reconciled(weir)
    assert r["send_failed"] == 0, r


# ---------------------------------------------------------------------------
# (b) large items: a byte budget, not only an item count


def test_large_items_bounded_memory_and_byte_budget(start_weir):
    """1-span requests of ~2 MB with queue.max_bytes = 16MiB and the destination
    down: clients get UNAVAILABLE / 503 once the byte budget is full, weir's RSS
    stays bounded, and after recovery every acknowledged span is delivered."""
    sink = FaultSink(keep_requests=False)
    sink.start()
    try:
        weir = start_weir(sink_endpoint=sink.endpoint, queue_options={"max_bytes": "16MiB"},
                          max_request_size="16MiB", **FAST_RETRY)
        sink.stop()
        senders = [TrackingSender(weir, transport=t, spans_per_request=1, attr_bytes=2_000_000)
                   for t in ("grpc", "http")]
        max_rss = 0
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            for s in senders:
                s.send()
            max_rss = max(max_rss, weir.rss())
        grpc_sender, http_sender = senders
        print(f"{grpc_sender.summary()}\n{http_sender.summary()}\nmax RSS {max_rss / MiB:.0f} MiB")
        acked_bytes = sum(r.size for s in senders for r in s.requests() if r.acknowledged)
        assert acked_bytes <= 16 * MiB + 2_100_000, f"accepted {acked_bytes} bytes with a 16 MiB budget"
        assert grpc_sender.refused().get("UNAVAILABLE"), grpc_sender.summary()
        assert http_sender.refused().get("503"), http_sender.summary()
        assert set(grpc_sender.refused()) == {"UNAVAILABLE"}, grpc_sender.summary()
        assert set(http_sender.refused()) == {"503"}, http_sender.summary()
        assert max_rss < RSS_BOUND, f"RSS {max_rss / MiB:.0f} MiB with a 16 MiB queue"
        m = weir.metrics()
        assert m.sum("weir_receiver_refused_spans_total", reason="queue_full") > 0, str(m)

        sink.start()
        acked = grpc_sender.acknowledged_ids() | http_sender.acknowledged_ids()
        assert_acknowledged_delivered(acked, sink, timeout=20, context=lambda: str(weir.metrics()))
        assert sink.oversized_rejections == 0 and sink.max_request_bytes <= GRPC_DEFAULT_MAX_MESSAGE
        # Room again: new large requests are accepted and delivered.
        more = grpc_sender.send()
        assert more.acknowledged, more
        assert_acknowledged_delivered(more.ids, sink, timeout=10)
        assert_reconciled(weir, timeout=10)
    finally:
        sink.stop()


def test_span_larger_than_batch_max_bytes_is_refused_at_the_receiver(start_weir, fault_sink):
    """One span (5 MB) larger than batch.max_bytes can never be exported to a 4 MiB
    destination: refused at once (RESOURCE_EXHAUSTED / 413, not retryable) with a
    message naming the limit, instead of being acknowledged and dropped later."""
    weir = start_weir(sink_endpoint=fault_sink.endpoint, max_request_size="16MiB", **FAST_RETRY)
    answers = {}
    for transport in ("grpc", "http"):
        s = TrackingSender(weir, transport=transport, spans_per_request=1, attr_bytes=5_000_000)
        answers[transport] = s.send()
    print({t: (a.status, a.message) for t, a in answers.items()})
    assert answers["grpc"].status == "RESOURCE_EXHAUSTED", answers["grpc"]
    assert answers["http"].status == "413", answers["http"]
    for a in answers.values():
        assert "batch.max_bytes" in a.message and "4193280" in a.message, (
            f"the refusal does not name the limit (batch.max_bytes, 4193280 bytes): {a.message!r}")
    ok = TrackingSender(weir, spans_per_request=5).send()
    assert ok.acknowledged
    assert_acknowledged_delivered(ok.ids, fault_sink, timeout=10)
    assert not (fault_sink.delivered_ids() & (set(answers["grpc"].ids) | set(answers["http"].ids)))
    m = weir.metrics()
    assert m.sum("weir_receiver_refused_spans_total") >= 2, str(m)


# ---------------------------------------------------------------------------
# (c) retries: what a destination's answer means


def _send_and_wait_attempts(weir, sink, n_attempts: int, timeout: float = 10):
    s = TrackingSender(weir, spans_per_request=10)
    sent = s.send()
    assert sent.acknowledged, sent
    first = sent.ids[0]
    wait_until(lambda: len(sink.attempts_with(first)) >= n_attempts, timeout,
               lambda: f"{n_attempts} attempts at the sink (have {sink.attempts_with(first)})")
    return sent, sink.attempts_with(first)


def test_resource_exhausted_without_retry_info_is_not_retried(start_weir, fault_sink):
    weir = start_weir(sink_endpoint=fault_sink.endpoint, **FAST_RETRY)
    fault_sink.fail_next = [Fault(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota exceeded")]
    sent, _ = _send_and_wait_attempts(weir, fault_sink, 1)

    def failed():
        m = weir.metrics()
        return m.sum("weir_exporter_send_failed_spans_total", exporter="backend") == 10 and m.sum(
            "weir_exporter_queue_size", exporter="backend", signal="traces") == 0

    wait_until(failed, 10, lambda: f"10 failed spans, empty queue\n{weir.metrics()}")
    time.sleep(0.5)  # a retry would come within the 50-200 ms backoff
    assert len(fault_sink.attempts_with(sent.ids[0])) == 1, fault_sink.attempts_with(sent.ids[0])
    m = weir.metrics()
    assert m.sum("weir_exporter_send_failed_spans_total", exporter="backend", reason="permanent_error") == 10, str(m)
    assert not fault_sink.delivered_ids()
    assert_reconciled(weir)


def test_resource_exhausted_with_retry_info_is_retried_after_the_delay(start_weir, fault_sink):
    weir = start_weir(sink_endpoint=fault_sink.endpoint, **FAST_RETRY)
    fault_sink.fail_next = [Fault(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", retry_delay=1.0)]
    sent, attempts = _send_and_wait_attempts(weir, fault_sink, 2)
    gap = attempts[1].time - attempts[0].time
    print(f"attempts {[a.outcome for a in attempts]}, gap {gap:.3f}s (RetryInfo 1s, backoff 50-200 ms)")
    assert attempts[0].outcome == "RESOURCE_EXHAUSTED" and attempts[1].outcome == "OK", attempts
    assert 0.9 <= gap < 3, f"retried {gap:.3f}s after RESOURCE_EXHAUSTED with RetryInfo(retry_delay=1s)"
    assert_acknowledged_delivered(sent.ids, fault_sink)
    r = assert_reconciled(weir)
    assert r["send_failed"] == 0, r


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_http_429_retry_after_is_honoured(start_weir, http_sink, form):
    weir = start_weir(exporter_type="otlp_http", sink_endpoint=http_sink.endpoint, **FAST_RETRY)
    if form == "seconds":
        retry_after, at_least = "2", 1.9
    else:
        # HTTP-date has 1 s resolution: 3 s ahead, truncated, is at least 2 s ahead.
        retry_after, at_least = email.utils.formatdate(time.time() + 3, usegmt=True), 1.9
    http_sink.fail_next = [(429, {"Retry-After": retry_after})]
    s = TrackingSender(weir, spans_per_request=10)
    sent = s.send()
    assert sent.acknowledged, sent
    first = sent.ids[0]
    wait_until(lambda: len(http_sink.attempts_with(first)) >= 2, 10,
               lambda: f"a retry after 429 (attempts {http_sink.attempts_with(first)})")
    a = http_sink.attempts_with(first)
    gap = a[1].time - a[0].time
    print(f"Retry-After: {retry_after!r}; attempts {[x.status for x in a]}, gap {gap:.3f}s")
    assert [x.status for x in a[:2]] == [429, 200], a
    assert at_least <= gap < 5, f"retried {gap:.3f}s after 429 with Retry-After: {retry_after}"
    assert_acknowledged_delivered(sent.ids, http_sink)
    r = assert_reconciled(weir)
    assert r["send_failed"] == 0, r


def test_http_400_is_not_retried(start_weir, http_sink):
    weir = start_weir(exporter_type="otlp_http", sink_endpoint=http_sink.endpoint, **FAST_RETRY)
    http_sink.fail_next = [400]
    sent = TrackingSender(weir, spans_per_request=10).send()
    assert sent.acknowledged

    def failed():
        m = weir.metrics()
        return m.sum("weir_exporter_send_failed_spans_total", exporter="backend", reason="permanent_error") == 10

    wait_until(failed, 10, lambda: f"10 spans failed with permanent_error\n{weir.metrics()}")
    time.sleep(0.5)
    assert [x.status for x in http_sink.attempts_with(sent.ids[0])] == [400]
    assert_reconciled(weir)


# ---------------------------------------------------------------------------
# (d) isolation: one bad client or one bad request does not cost anyone else


def _bad_bodies(sender: TrackingSender) -> dict[str, tuple[bytes, tuple]]:
    """Two requests that are valid protobuf framing but not valid OTLP: a string
    attribute with invalid UTF-8, and an attribute value nested 100 deep."""
    out = {}
    for kind in ("utf8", "deep"):
        span_id = sender.next_ids(1)[0]
        span = trace_pb2.Span(trace_id=sender.prefix + bytes(13), span_id=span_id, name=f"bad-{kind}",
                              start_time_unix_nano=1, end_time_unix_nano=2).SerializeToString()
        if kind == "utf8":
            span += raw_string_attribute("bad.text", b"caf\xc3 \xff\xfe end")
        else:
            span += raw_attribute("bad.deep", nested_any_value(100))
        out[kind] = (raw_trace_request([span]), (span_id,))
    return out


def test_invalid_requests_are_refused_without_affecting_good_clients(start_weir, fault_sink):
    weir = start_weir(sink_endpoint=fault_sink.endpoint, **FAST_RETRY)
    good = [TrackingSender(weir, transport=t, spans_per_request=20, retries=3) for t in ("grpc", "http")]
    for g in good:
        g.start(rate=400)
    bad_answers = []
    bad_ids: set[bytes] = set()
    for transport in ("grpc", "http"):
        bad = TrackingSender(weir, transport=transport)
        for _ in range(5):
            for kind, (body, ids) in _bad_bodies(bad).items():
                bad_answers.append((transport, kind, bad.send_raw(body, ids)))
                bad_ids |= set(ids)
        time.sleep(0.1)
    time.sleep(1)
    for g in good:
        g.stop()
    for transport, kind, a in bad_answers:
        expected = "INVALID_ARGUMENT" if transport == "grpc" else "400"
        assert a.status == expected, (transport, kind, a.status, a.message)
    messages = {(t, k): a.message for t, k, a in bad_answers}
    print("refusals:", messages)
    for (t, k), msg in messages.items():
        assert "attribute" in msg.lower(), f"{t} {k}: the message does not name the field: {msg!r}"
        if k == "utf8":
            assert "utf-8" in msg.lower() or "utf8" in msg.lower(), f"{t}: {msg!r}"
        else:
            assert "deep" in msg.lower() or "depth" in msg.lower() or "nest" in msg.lower(), f"{t}: {msg!r}"
    m = weir.metrics()
    assert m.sum("weir_receiver_refused_requests_total", reason="invalid") == len(bad_answers), str(m)

    acked = set().union(*(g.acknowledged_ids() for g in good))
    assert len(acked) > 500, [g.summary() for g in good]
    for g in good:
        assert not g.refused(), g.summary()
    assert_acknowledged_delivered(acked, fault_sink, timeout=10)
    assert not fault_sink.delivered_ids() & bad_ids, "refused spans were delivered"
    assert_reconciled(weir)


def test_poison_request_in_a_merged_batch_fails_alone(start_weir, fault_sink):
    """The destination rejects (INVALID_ARGUMENT, permanent) any request holding a
    "poison" span. weir merges many clients' requests into one batch; when that batch
    is rejected it must be split back into the original requests, so only the poison
    request's spans fail and every good acknowledged span is delivered."""
    weir = start_weir(sink_endpoint=fault_sink.endpoint, batch_timeout="300ms", batch_max_items=100_000,
                      **FAST_RETRY)
    fault_sink.poison_prefix = "poison"
    good = [TrackingSender(weir, spans_per_request=20) for _ in range(4)]
    poison = TrackingSender(weir, spans_per_request=5, name_prefix="poison")
    barrier = threading.Barrier(len(good) + 1)

    def run_good(g):
        barrier.wait()
        for _ in range(15):
            assert g.send().acknowledged
            time.sleep(0.02)

    threads = [threading.Thread(target=run_good, args=(g,)) for g in good]
    for t in threads:
        t.start()
    barrier.wait()
    time.sleep(0.1)
    p = poison.send()
    assert p.acknowledged, p  # valid OTLP: weir cannot know the destination will refuse it
    for t in threads:
        t.join(30)
    acked = set().union(*(g.acknowledged_ids() for g in good))
    assert len(acked) == 4 * 15 * 20
    assert_acknowledged_delivered(acked, fault_sink, timeout=15,
                                  context=lambda: f"{fault_sink.outcomes()}\n{weir.metrics()}")
    merged_rejections = [a for a in fault_sink.attempts if a.outcome == "INVALID_ARGUMENT" and a.items > 5]
    print(f"sink outcomes {fault_sink.outcomes()}; rejected merged batches: {[a.items for a in merged_rejections]}")
    assert merged_rejections, "the poison request was never merged with others: the test did not test splitting"
    assert not fault_sink.delivered_ids() & set(p.ids)

    def settled():
        m = weir.metrics()
        return m.sum("weir_exporter_send_failed_spans_total", exporter="backend") == 5 and m.sum(
            "weir_exporter_queue_size", exporter="backend", signal="traces") == 0

    wait_until(settled, 10, lambda: f"exactly the 5 poison spans failed\n{weir.metrics()}")
    r = assert_reconciled(weir)
    assert r["sent"] == len(acked), r


# ---------------------------------------------------------------------------
# (e) circuit breaker


def test_circuit_breaker_opens_probes_and_closes(start_weir, fault_sink):
    cool_down = 1.0
    weir = start_weir(sink_endpoint=fault_sink.endpoint, batch_max_items=50, batch_timeout="20ms",
                      queue_concurrency=4, retry_initial="50ms", retry_max_interval="100ms", retry_max_elapsed="5m",
                      timeout="1s", shutdown_grace="3s",
                      exporter_options={"circuit_breaker": {"enabled": True, "failure_threshold": 3,
                                                            "cool_down": f"{cool_down:g}s"}})
    assert circuit_state(weir) in (0, None), f"circuit not closed at start\n{weir.metrics()}"
    # Down: connections refused. The circuit opens after 3 failed attempts.
    fault_sink.stop()
    sender = TrackingSender(weir, spans_per_request=50)
    for _ in range(10):
        assert sender.send().acknowledged
    wait_until(lambda: circuit_state(weir) == 1, 10, lambda: f"circuit open\n{weir.metrics()}")
    # Up but still failing (every call UNAVAILABLE), so the probes can be counted.
    fault_sink.unavailable_rate = 1.0
    fault_sink.start()
    time.sleep(0.2)
    n0 = len(fault_sink.attempts)
    window = 4.0
    states = set()
    end = time.monotonic() + window
    while time.monotonic() < end:
        states.add(circuit_state(weir))
        time.sleep(0.05)
    probes = len(fault_sink.attempts) - n0
    print(f"{probes} attempts in {window}s with the circuit open (cool_down {cool_down}s); states seen {states}")
    assert 1 <= probes <= window / cool_down + 2, f"{probes} attempts in {window}s, cool_down {cool_down}s"
    assert states <= {1, 2}, states

    fault_sink.unavailable_rate = 0.0
    wait_until(lambda: circuit_state(weir) == 0, cool_down * 3 + 5, lambda: f"circuit closed\n{weir.metrics()}")
    assert_acknowledged_delivered(sender.acknowledged_ids(), fault_sink, timeout=15)
    r = assert_reconciled(weir)
    assert r["send_failed"] == 0, r


# ---------------------------------------------------------------------------
# (f) shutdown with a dead destination


def test_sigterm_with_dead_backend_reports_what_was_not_delivered(start_weir, fault_sink):
    grace = 2.0
    weir = start_weir(sink_endpoint=fault_sink.endpoint, shutdown_grace=f"{grace:g}s", retry_initial="100ms",
                      retry_max_interval="200ms", retry_max_elapsed="5m", timeout="1s")
    fault_sink.stop()
    spans = TrackingSender(weir, spans_per_request=321).send()
    assert spans.acknowledged
    r = weir.post("logs", logs_request(({"service.name": "e2e"}, [make_log(f"l{i}") for i in range(57)]))
                  .SerializeToString())
    assert r.status_code == 200, r.status_code
    time.sleep(0.3)  # the batches went out and failed at least once

    # (time after SIGTERM, spans counted send_failed{reason="shutdown"}), from two
    # scrapers back to back, so that a scrape is under way whenever the counters move.
    scrapes: list[tuple[float, float]] = []
    lock = threading.Lock()
    started = time.monotonic()

    def scrape():
        s = requests.Session()
        while weir.alive() and time.monotonic() - started < grace + 5:
            try:
                r = s.get(weir.admin_url("/metrics"), timeout=0.5)
            except requests.RequestException:
                time.sleep(0.005)
                continue
            if r.status_code == 200:
                v = MetricsSnapshot(r.text).sum("weir_exporter_send_failed_spans_total", exporter="backend",
                                                reason="shutdown")
                with lock:
                    scrapes.append((time.monotonic() - started, v))

    scrapers = [threading.Thread(target=scrape) for _ in range(2)]
    weir.signal(signal.SIGTERM)
    for t in scrapers:
        t.start()
    code = weir.wait_exit(10)
    elapsed = time.monotonic() - started
    for t in scrapers:
        t.join(5)
    scrapes.sort()
    during = [s for s in scrapes if 0.1 < s[0]]
    print(f"exit {code} after {elapsed:.2f}s; {len(during)} scrapes during the drain, "
          f"last {scrapes[-1] if scrapes else None}")
    assert code == 0
    assert elapsed < grace + 1, f"exited {elapsed:.2f}s after SIGTERM with shutdown_grace = {grace}s"
    assert during, "/metrics was not scrapeable during the drain"
    assert max(v for _, v in scrapes) == 321, (
        f"no scrape showed the 321 undelivered spans as send_failed{{reason=\"shutdown\"}}: {scrapes[-5:]}")
    lines = [line for line in weir.stderr().splitlines()
             if "backend" in line and has_number(line, 321) and has_number(line, 57)]
    print("summary:", lines)
    assert len(lines) == 1, (
        f"expected one log line naming the 321 spans and 57 log records exporter backend did not deliver: {lines}")
