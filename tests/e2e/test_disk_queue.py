"""The disk queue (`[exporters.X.queue] type = "disk"`): what weir acknowledged is on
disk, so it survives kill -9, a restart with a full queue, and a corrupted segment
costs only that segment.

Every check is `acknowledged ⊆ delivered` with unique span ids (TrackingSender,
FaultSink); duplicates after a crash are allowed and reported."""

from __future__ import annotations

import os
import random
import re
import signal
import time
from pathlib import Path

import pytest

from otlp_helpers import (
    FaultSink,
    TrackingSender,
    assert_acknowledged_delivered,
    assert_reconciled,
    delivery_report,
    ids_in_bytes,
    wait_until,
)

RETRY = dict(retry_initial="50ms", retry_max_interval="200ms", retry_max_elapsed="5m", timeout="1s")


@pytest.fixture
def fault_sink():
    s = FaultSink(keep_requests=False)
    s.start()
    yield s
    s.stop()


def disk_queue(directory: Path, fsync: str = "always", **extra) -> dict:
    return {"type": "disk", "directory": str(directory), "fsync": fsync, "fsync_interval": "10ms", **extra}


def segment_files(directory: Path, sender: TrackingSender) -> list[tuple[Path, set[bytes]]]:
    """Files under the queue directory holding this sender's spans, with the ids in
    each, in the order the spans were sent."""
    known = sender.sent_ids()
    out = []
    for p in sorted(directory.rglob("*")):
        if p.is_file():
            ids = ids_in_bytes(p.read_bytes(), sender.prefix, known)
            if ids:
                out.append((p, ids))
    out.sort(key=lambda e: min(e[1]))
    return out


@pytest.mark.parametrize("fsync", ["always", "interval"])
def test_kill9_loop_loses_nothing_acknowledged(request, start_weir, fault_sink, tmp_path, fsync):
    """Ten kill -9s under load, the destination intermittently down (and flaky while
    up); weir restarted each time on the same ports and queue directory. At the end
    every acknowledged span is delivered."""
    qdir = tmp_path / "queue"
    weir = start_weir(sink_endpoint=fault_sink.endpoint, queue_options=disk_queue(qdir, fsync, segment_size="1MiB"),
                      batch_timeout="50ms", shutdown_grace="5s", **RETRY)
    sender = TrackingSender(weir, spans_per_request=20, attr_bytes=200, retries=100, retry_backoff=0.05)
    http_sender = TrackingSender(weir, transport="http", spans_per_request=20, attr_bytes=200, retries=100,
                                 retry_backoff=0.05)
    sender.start(rate=2000, threads=2)
    http_sender.start(rate=500)
    rng = random.Random(99)
    fault_sink.unavailable_rate = 0.2
    current = weir
    kills = 0
    # CI runs 10 kills; the soak form is e.g. WEIR_SOAK_KILLS=500 (about 4 minutes per fsync policy).
    wanted = int(os.environ.get("WEIR_SOAK_KILLS", "10"))
    for i in range(wanted):
        time.sleep(rng.uniform(0.3, 0.7))
        if fault_sink.running and rng.random() < 0.5:
            fault_sink.stop()
        elif not fault_sink.running:
            fault_sink.start()
        current.kill()
        kills += 1
        current = current.respawn(f"{weir.name}-after-kill{i + 1}")
        request.node._weirs.append(current)  # stderr in the report, SIGTERM at teardown
    if not fault_sink.running:
        fault_sink.start()
    fault_sink.unavailable_rate = 0.0
    time.sleep(1)
    sender.stop()
    http_sender.stop()
    print(sender.summary())
    print(http_sender.summary())
    acked = sender.acknowledged_ids() | http_sender.acknowledged_ids()
    assert kills == wanted >= 10
    assert len(sender.acknowledged_ids()) > 2000 and len(http_sender.acknowledged_ids()) > 300, (
        sender.summary(), http_sender.summary())
    report = assert_acknowledged_delivered(
        acked, fault_sink, timeout=30,
        context=lambda: f"{sender.summary()}\n{http_sender.summary()}\n{current.metrics()}")
    print(f"after {kills} kill -9: {report}")


def test_restart_with_a_full_queue_delivers_what_was_queued(start_weir, fault_sink, tmp_path):
    """Destination dead; the disk queue fills until clients are refused; a clean
    SIGTERM keeps the data on disk; after a restart with the destination back,
    everything acknowledged is delivered."""
    qdir = tmp_path / "queue"
    grace = 2.0
    # weir requires queue.max_bytes >= batch.max_bytes and segment_size >= 1MiB.
    weir = start_weir(sink_endpoint=fault_sink.endpoint,
                      queue_options=disk_queue(qdir, max_bytes="4MiB", segment_size="1MiB"),
                      batch_options={"max_bytes": "1MiB"}, shutdown_grace=f"{grace:g}s", **RETRY)
    fault_sink.stop()
    sender = TrackingSender(weir, spans_per_request=20, attr_bytes=600)
    for _ in range(1000):
        if not sender.send().acknowledged:
            break
    print(sender.summary())
    assert sender.refused().get("UNAVAILABLE"), f"the 4 MiB disk queue never refused: {sender.summary()}"
    acked = sender.acknowledged_ids()
    assert acked

    started = time.monotonic()
    weir.signal(signal.SIGTERM)
    assert weir.wait_exit(grace + 5) == 0
    elapsed = time.monotonic() - started
    assert elapsed < grace + 1, f"exited {elapsed:.2f}s after SIGTERM with shutdown_grace = {grace}s"
    assert segment_files(qdir, sender), f"nothing of the queued spans on disk under {qdir}"
    summary = [line for line in weir.stderr().splitlines()
               if "backend" in line and re.search(rf"(?<![\d.:]){len(acked)}(?![\d.:])", line)]
    print("shutdown summary:", summary)
    assert len(summary) == 1, f"expected one summary line naming the {len(acked)} spans kept on disk: {summary}"

    fault_sink.start()
    again = weir.respawn(f"{weir.name}-restarted")
    try:
        assert_acknowledged_delivered(acked, fault_sink, timeout=20, context=lambda: str(again.metrics()))
        wait_until(lambda: again.metrics().sum("weir_exporter_queue_size", exporter="backend", signal="traces") == 0,
                   10, lambda: str(again.metrics()))
        more = sender.send()
        assert more.acknowledged, more
        assert_acknowledged_delivered(more.ids, fault_sink, timeout=10)
        r = assert_reconciled(again)
        assert r["recovered"] == len(acked), r
    finally:
        assert again.terminate() == 0


def test_corrupted_segment_is_set_aside_and_the_rest_delivered(start_weir, fault_sink, tmp_path):
    """Bytes flipped in the middle of one segment file while weir is stopped: weir
    starts anyway, names the file in its log, counts it in a metric, moves it aside,
    and delivers the spans of the other segments (and, best effort, the intact
    records of the damaged one: reported, not required)."""
    qdir = tmp_path / "queue"
    weir = start_weir(sink_endpoint=fault_sink.endpoint,
                      queue_options=disk_queue(qdir, segment_size="1MiB"), shutdown_grace="1s", **RETRY)
    fault_sink.stop()
    sender = TrackingSender(weir, spans_per_request=50, attr_bytes=600)
    for _ in range(130):  # ~4.6 MB: several 1 MiB segments
        assert sender.send().acknowledged, sender.summary()
    assert weir.terminate() == 0
    segments = segment_files(qdir, sender)
    print("segments:", [(str(p.relative_to(qdir)), p.stat().st_size, len(ids)) for p, ids in segments])
    assert len(segments) >= 3, f"expected several segment files under {qdir}: {segments}"
    victim, victim_ids = segments[len(segments) // 2]
    data = bytearray(victim.read_bytes())
    mid = len(data) // 2
    for i in range(mid, min(mid + 64, len(data))):
        data[i] ^= 0xFF
    victim.write_bytes(bytes(data))

    fault_sink.start()
    again = weir.respawn(f"{weir.name}-after-corruption")
    try:
        time.sleep(1)
        assert again.alive(), f"weir exited after finding a corrupted segment\n{again.stderr()}"
        log = again.stderr()
        assert victim.name in log, f"the log does not name the corrupted file {victim.name}:\n{log[-3000:]}"
        m = again.metrics()
        assert m.sum("weir_exporter_queue_corrupt_segments_total", exporter="backend", signal="traces") == 1, str(m)
        # Moved aside (weir-queue: to corrupt/<name>.<unix seconds>); a salvaged copy
        # of its intact records may take its place, but not the damaged bytes.
        aside = [p for p in qdir.rglob("*") if p.is_file() and p.name.startswith(victim.name) and p != victim]
        assert aside, f"the corrupted file was not kept aside under {qdir}: {sorted(qdir.rglob('*'))}"
        assert not victim.exists() or victim.read_bytes() != bytes(data), f"{victim} is still in place, damaged"
        others = sender.acknowledged_ids() - victim_ids
        assert_acknowledged_delivered(others, fault_sink, timeout=20, context=lambda: str(again.metrics()))
        report = delivery_report(sender.acknowledged_ids(), fault_sink)
        print(f"all acknowledged: {report} (the corrupted segment held {len(victim_ids)} spans)")
        assert report.missing <= len(victim_ids)
        assert_reconciled(again)
    finally:
        assert again.terminate() == 0
