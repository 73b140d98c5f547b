"""The Parquet archive exporter (`type = "parquet"`, docs/archive-schema.md) end to end:
the OpenTelemetry Python SDK and raw OTLP clients send to weir, weir archives to a
local directory or to a real S3 API server (moto), and DuckDB and pyarrow read every
span and log record back. Also: Hive partition layout, rotation by rows and by age,
and a SIGKILL while writing (no partial file is ever visible).

Skipped until `weir validate` accepts an exporter of `type = "parquet"` (the exporter
is built in host/weir-parquet and wired into the binary separately)."""

from __future__ import annotations

import io
import random
import signal
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import grpc
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otlp_helpers import (
    MotoServer,
    archive_files,
    archive_temp_files,
    free_port,
    make_trace_request,
    read_archive_rows,
    render_archive_config,
    render_attrs,
    render_any_value,
    wait_until,
    weir_bin,
)

SCHEMA_VERSION = b"2"


def _parquet_exporter_supported() -> tuple[bool, str]:
    binary = weir_bin()
    if not binary.exists():
        return False, f"weir binary not found at {binary}"
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "probe.toml"
        cfg.write_text(
            render_archive_config({"path": str(Path(d) / "archive")}, signals=("traces",)).format(
                admin_port=free_port(), grpc_port=free_port(), http_port=free_port()
            )
        )
        r = subprocess.run([str(binary), "validate", "--config", str(cfg)], capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        return False, ('weir validate does not accept exporters of type = "parquet" yet (the archive exporter '
                       f"in host/weir-parquet is not wired into the binary): {r.stderr.strip()[:300]}")
    return True, ""


_SUPPORTED, _WHY = _parquet_exporter_supported()
pytestmark = pytest.mark.skipif(not _SUPPORTED, reason=_WHY)

RESOURCE_ATTRS = {
    "service.name": "weir-archive-e2e",
    "service.version": "9.8.7",
    "e2e.shard": 7,
    "e2e.canary": True,
}


def utc_partition(ns: int) -> tuple[str, str]:
    t = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
    return t.strftime("%Y-%m-%d"), t.strftime("%H")


def rows_written(w, signal_name: str) -> float:
    return w.metrics().sum("weir_archive_rows_written_total", exporter="archive", signal=signal_name)


def wait_rows_written(w, signal_name: str, n: int, timeout: float = 10) -> None:
    wait_until(lambda: rows_written(w, signal_name) >= n, timeout,
               lambda: f"weir_archive_rows_written_total{{signal={signal_name}}} >= {n}\n{w.metrics()}")


def parquet_metadata(data) -> dict[bytes, bytes]:
    import pyarrow.parquet as pq

    return pq.ParquetFile(data).metadata.metadata or {}


def duckdb_count(root: Path, where: str = "true") -> int:
    import duckdb

    glob = str(root / "**" / "*.parquet")
    return duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true, union_by_name = true) WHERE {where}"
    ).fetchall()[0][0]


def killed_on_purpose(w) -> None:
    """After a SIGKILL: tell the start_weir fixture not to expect a clean exit."""
    w.proc = None


# ---------------------------------------------------------------------------
# what the SDK makes


def make_spans():
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(RESOURCE_ATTRS))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("weir-archive-tracer", "4.5.6")
    with tracer.start_as_current_span(
        "checkout", kind=SpanKind.SERVER, attributes={"http.route": "/checkout", "http.response.status_code": 200}
    ) as root:
        root.add_event("cart.loaded", {"cart.items": 3, "cart.currency": "EUR"})
        for i in range(6):
            links = [Link(root.get_span_context(), {"link.reason": "retry"})] if i == 5 else []
            with tracer.start_as_current_span(
                f"db-query-{i}",
                kind=SpanKind.CLIENT,
                links=links,
                attributes={
                    "db.system": "postgresql",
                    "db.rows": i * 10,
                    "db.cached": i % 2 == 0,
                    "db.latency_ms": 1.5 * i,
                    "db.tables": ["orders", f"items_{i}"],
                },
            ) as span:
                if i == 3:
                    span.set_status(Status(StatusCode.ERROR, "deadlock detected"))
    provider.shutdown()
    spans = memory.get_finished_spans()
    assert len(spans) == 7
    return spans


def make_logs():
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create(RESOURCE_ATTRS))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("weir-archive-logger", "1.0.1")
    base = time.time_ns()
    logger.emit(timestamp=base, observed_timestamp=base + 5, severity_number=SeverityNumber.INFO,
                severity_text="INFO", body="order 42 accepted",
                attributes={"order.id": 42, "order.express": True, "order.total": 99.5})
    logger.emit(timestamp=base + 1000, severity_number=SeverityNumber.ERROR2, severity_text="ERROR2",
                body={"event": "payment.failed", "codes": [402, 409]}, attributes={"payment.provider": "acme"},
                event_name="payment.failed")
    logger.emit(observed_timestamp=base + 2000, severity_number=SeverityNumber.WARN, body="no event time")
    provider.shutdown()
    logs = memory.get_finished_logs()
    assert len(logs) == 3
    return logs


def expected_span_row(resource, scope, s: trace_pb2.Span) -> dict:
    return {
        "Timestamp": s.start_time_unix_nano,
        "Duration": s.end_time_unix_nano - s.start_time_unix_nano,
        "TraceId": s.trace_id,
        "SpanId": s.span_id,
        "ParentSpanId": s.parent_span_id or None,
        "TraceState": s.trace_state,
        "Flags": s.flags,
        "SpanName": s.name,
        "SpanKind": trace_pb2.Span.SpanKind.Name(s.kind),
        "StatusCode": trace_pb2.Status.StatusCode.Name(s.status.code),
        "StatusMessage": s.status.message,
        "SpanAttributes": render_attrs(s.attributes),
        "Events": [
            {"Timestamp": e.time_unix_nano, "Name": e.name, "Attributes": render_attrs(e.attributes),
             "DroppedAttributesCount": e.dropped_attributes_count}
            for e in s.events
        ],
        "Links": [
            {"TraceId": l.trace_id, "SpanId": l.span_id, "TraceState": l.trace_state, "Flags": l.flags,
             "Attributes": render_attrs(l.attributes), "DroppedAttributesCount": l.dropped_attributes_count}
            for l in s.links
        ],
        "DroppedAttributesCount": s.dropped_attributes_count,
        "DroppedEventsCount": s.dropped_events_count,
        "DroppedLinksCount": s.dropped_links_count,
        "ServiceName": RESOURCE_ATTRS["service.name"],
        "ResourceAttributes": render_attrs(resource.attributes, skip="service.name"),
        "ResourceSchemaUrl": "",
        "ScopeName": scope.name,
        "ScopeVersion": scope.version,
        "ScopeAttributes": render_attrs(scope.attributes),
        "ScopeSchemaUrl": "",
    }


def as_comparable(row: dict) -> dict:
    """An archive row without the Hive partition columns, maps as lists of pairs."""
    out = {k: v for k, v in row.items() if k not in ("date", "hour", "service")}
    for k, v in out.items():
        if isinstance(v, list) and v and isinstance(v[0], tuple):
            out[k] = [tuple(x) for x in v]
    for nested in ("Events", "Links"):
        for item in out.get(nested) or []:
            item["Attributes"] = [tuple(x) for x in item["Attributes"]]
    return out


# ---------------------------------------------------------------------------
# tests


def test_sdk_spans_and_logs_read_back_intact(start_weir, tmp_path):
    root = tmp_path / "archive"
    w = start_weir(config_text=render_archive_config({"path": str(root), "max_age": "1h"}))

    spans = make_spans()
    exporter = GrpcSpanExporter(endpoint=w.grpc_target, insecure=True, timeout=10)
    try:
        assert exporter.export(spans) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    logs = make_logs()
    log_exporter = HttpLogExporter(endpoint=w.http_url("logs"), timeout=10)
    try:
        assert log_exporter.export(logs) == LogRecordExportResult.SUCCESS
    finally:
        log_exporter.shutdown()
    wait_rows_written(w, "traces", 7)
    wait_rows_written(w, "logs", 3)

    # Open files are hidden: nothing a reader would pick up yet.
    assert archive_files(root) == []
    assert archive_temp_files(root), "the open files should exist under hidden temporary names"

    assert w.terminate() == 0
    files = archive_files(root)
    assert len(files) == 2, files
    assert archive_temp_files(root) == []
    for f in files:
        md = parquet_metadata(f)
        assert md.get(b"weir.archive.schema_version") == SCHEMA_VERSION
        assert md.get(b"weir.archive.signal") == f.relative_to(root).parts[0].split("=")[1].encode()

    # DuckDB over the whole tree, Hive partitions included.
    assert duckdb_count(root, "signal = 'traces'") == 7
    assert duckdb_count(root, "signal = 'logs'") == 3
    import duckdb

    glob = str(root / "signal=traces" / "**" / "*.parquet")
    got = duckdb.sql(
        f"SELECT SpanName, SpanKind, StatusCode, StatusMessage, SpanAttributes['db.rows'], hex(TraceId), "
        f"Duration, CAST(date AS VARCHAR), CAST(hour AS INTEGER) "
        f"FROM read_parquet('{glob}', hive_partitioning = true) WHERE SpanName = 'db-query-3'"
    ).fetchall()
    encoded = [(rs.resource, ss.scope, s) for rs in encode_spans(spans).resource_spans
               for ss in rs.scope_spans for s in ss.spans]
    q3 = next(s for _, _, s in encoded if s.name == "db-query-3")
    date, hour = utc_partition(q3.start_time_unix_nano)
    assert got == [("db-query-3", "SPAN_KIND_CLIENT", "STATUS_CODE_ERROR", "deadlock detected", "30",
                    q3.trace_id.hex().upper(), q3.end_time_unix_nano - q3.start_time_unix_nano, date, int(hour))]

    # Every field of every span, exactly (pyarrow, nanosecond timestamps).
    in_file_order = read_archive_rows(root, "traces")
    rows = {r["SpanId"]: r for r in in_file_order}
    assert len(rows) == 7
    # Rows are sorted by (service, resource, trace id, start time) within a batch.
    keys = [(r["ServiceName"], r["TraceId"], r["Timestamp"]) for r in in_file_order]
    assert keys == sorted(keys)
    for resource, scope, s in encoded:
        row = rows[s.span_id]
        assert (str(row["date"]), f"{int(row['hour']):02d}") == utc_partition(s.start_time_unix_nano)
        assert as_comparable(row) == expected_span_row(resource, scope, s), s.name
    checkout = next(r for r in rows.values() if r["SpanName"] == "checkout")
    assert checkout["ParentSpanId"] is None
    assert dict(checkout["SpanAttributes"]) == {"http.route": "/checkout", "http.response.status_code": "200"}
    assert dict(checkout["Events"][0]["Attributes"]) == {"cart.items": "3", "cart.currency": "EUR"}
    q0 = next(r for r in rows.values() if r["SpanName"] == "db-query-0")
    assert dict(q0["SpanAttributes"])["db.tables"] == '["orders","items_0"]'
    assert dict(q0["SpanAttributes"])["db.cached"] == "true"
    q5 = next(r for r in rows.values() if r["SpanName"] == "db-query-5")
    assert q5["Links"][0]["SpanId"] == checkout["SpanId"]
    assert dict(q5["ResourceAttributes"])["e2e.shard"] == "7"

    # Every log record.
    records = [(rl.resource, sl.scope, r) for rl in encode_logs(logs).resource_logs
               for sl in rl.scope_logs for r in sl.log_records]
    log_rows = read_archive_rows(root, "logs")
    assert len(log_rows) == 3
    by_body = {r["Body"]: as_comparable(r) for r in log_rows}
    for resource, scope, r in records:
        row = by_body[render_any_value(r.body)]
        assert row == {
            "Timestamp": r.time_unix_nano or None,
            "ObservedTimestamp": r.observed_time_unix_nano or None,
            "SeverityNumber": r.severity_number,
            "SeverityText": r.severity_text,
            "Body": render_any_value(r.body),
            "EventName": r.event_name,
            "LogAttributes": render_attrs(r.attributes),
            "TraceId": r.trace_id or None,
            "SpanId": r.span_id or None,
            "TraceFlags": r.flags,
            "DroppedAttributesCount": r.dropped_attributes_count,
            "ServiceName": RESOURCE_ATTRS["service.name"],
            "ResourceAttributes": render_attrs(resource.attributes, skip="service.name"),
            "ResourceSchemaUrl": "",
            "ScopeName": scope.name,
            "ScopeVersion": scope.version,
            "ScopeAttributes": render_attrs(scope.attributes),
            "ScopeSchemaUrl": "",
        }
    assert by_body['{"codes":[402,409],"event":"payment.failed"}']["EventName"] == "payment.failed"

    # Arrow types as documented.
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(next(f for f in files if "signal=traces" in str(f)))
    assert schema.field("TraceId").type == pa.binary(16)
    assert schema.field("SpanId").type == pa.binary(8)
    assert schema.field("Timestamp").type == pa.timestamp("ns", tz="UTC")
    assert pa.types.is_map(schema.field("SpanAttributes").type)
    assert pa.types.is_list(schema.field("Events").type)


def test_partitions_by_date_hour_and_service(start_weir, tmp_path):
    root = tmp_path / "archive"
    w = start_weir(config_text=render_archive_config(
        {"path": str(root), "partition_by_service": True}, signals=("traces",)))
    requests_ = [make_trace_request(30, service_name="cart api"), make_trace_request(20, service_name="checkout")]
    with w.grpc_channel() as ch:
        stub = trace_service_pb2_grpc.TraceServiceStub(ch)
        for r in requests_:
            stub.Export(r, timeout=10)
    wait_rows_written(w, "traces", 50)
    assert w.terminate() == 0

    expected = {}
    for r in requests_:
        service = r.resource_spans[0].resource.attributes[0].value.string_value
        for s in r.resource_spans[0].scope_spans[0].spans:
            date, hour = utc_partition(s.start_time_unix_nano)
            d = f"signal=traces/date={date}/hour={hour}/service={service.replace(' ', '%20')}"
            expected[d] = expected.get(d, 0) + 1
    dirs = {}
    for f in archive_files(root):
        rel = f.relative_to(root)
        assert rel.name.startswith("part-") and rel.name.endswith(".parquet"), rel
        d = str(rel.parent)
        import pyarrow.parquet as pq

        dirs[d] = dirs.get(d, 0) + pq.ParquetFile(f).metadata.num_rows
    assert dirs == expected

    import duckdb

    glob = str(root / "**" / "*.parquet")
    got = dict(duckdb.sql(
        f"SELECT ServiceName, count(*) FROM read_parquet('{glob}', hive_partitioning = true) "
        f"WHERE signal = 'traces' GROUP BY ALL").fetchall())
    assert got == {"cart api": 30, "checkout": 20}


def test_rotation_by_rows_and_by_age(start_weir, tmp_path):
    root = tmp_path / "archive"
    w = start_weir(config_text=render_archive_config(
        {"path": str(root), "max_rows": 50, "max_age": "2s"}, signals=("traces",)))
    with w.grpc_channel() as ch:
        stub = trace_service_pb2_grpc.TraceServiceStub(ch)
        for _ in range(3):
            stub.Export(make_trace_request(40), timeout=10)
    wait_rows_written(w, "traces", 120)

    import pyarrow.parquet as pq

    def rows_per_file():
        return sorted(pq.ParquetFile(f).metadata.num_rows for f in archive_files(root))

    # Two full files are finished at once; the rest waits for max_age.
    wait_until(lambda: rows_per_file()[-2:] == [50, 50] if len(rows_per_file()) >= 2 else False, 5,
               lambda: f"two files of 50 rows (have {rows_per_file()})")
    wait_until(lambda: sum(rows_per_file()) == 120, 10,
               lambda: f"the last file to be finished by age (have {rows_per_file()})")
    assert rows_per_file() == [20, 50, 50]
    m = w.metrics()
    assert m.sum("weir_archive_files_finished_total", exporter="archive", signal="traces") == 3, str(m)
    assert m.sum("weir_archive_oldest_unflushed_age_seconds", exporter="archive", signal="traces") == 0, str(m)
    assert m.sum("weir_archive_bytes_written_total", exporter="archive", signal="traces") == sum(
        f.stat().st_size for f in archive_files(root))
    assert w.alive()


def test_sigkill_while_writing_leaves_only_complete_files(start_weir, tmp_path):
    root = tmp_path / "archive"
    config = render_archive_config({"path": str(root), "max_rows": 3000, "max_age": "1s"}, signals=("traces",))
    w = start_weir(config_text=config)
    stop = threading.Event()
    sent = [0]

    def load():
        rng = random.Random(1)
        with w.grpc_channel() as ch:
            stub = trace_service_pb2_grpc.TraceServiceStub(ch)
            deadline = time.monotonic() + 20
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    stub.Export(make_trace_request(200, rng=rng, attr_padding=64), timeout=5)
                    sent[0] += 200
                except grpc.RpcError:
                    return

    sender = threading.Thread(target=load, daemon=True)
    sender.start()
    wait_until(lambda: len(archive_files(root)) >= 2 and archive_temp_files(root), 15,
               "some finished files and an open one")
    w.signal(signal.SIGKILL)
    w.wait_exit(10)
    killed_on_purpose(w)
    stop.set()
    sender.join(10)

    import pyarrow.parquet as pq

    files = archive_files(root)
    assert files
    total = 0
    for f in files:
        table = pq.read_table(f)  # every visible file is complete and readable
        assert table.num_rows == pq.ParquetFile(f).metadata.num_rows > 0
        total += table.num_rows
    assert 0 < total <= sent[0] + 200
    assert duckdb_count(root) == total
    leftovers = archive_temp_files(root)
    for t in leftovers:
        assert t.name.startswith(".part-") and t.name.endswith(".parquet.tmp"), t

    # The next start removes what the crash left.
    w2 = start_weir(config_text=config)
    assert archive_temp_files(root) == []
    assert archive_files(root) == files
    assert w2.terminate() == 0


# ---------------------------------------------------------------------------
# object storage (S3 API, moto server on loopback)


@pytest.fixture
def moto(tmp_path, monkeypatch):
    server = MotoServer(tmp_path).start()
    for k, v in server.env().items():
        monkeypatch.setenv(k, v)
    yield server
    server.stop()


def list_keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_s3_archive_objects_appear_complete_on_shutdown(start_weir, moto):
    s3 = moto.client()
    s3.create_bucket(Bucket="weir-archive")
    w = start_weir(config_text=render_archive_config({"url": "s3://weir-archive/otel", "max_age": "1h"}))
    with w.grpc_channel() as ch:
        trace_service_pb2_grpc.TraceServiceStub(ch).Export(make_trace_request(300), timeout=10)
    logs = make_logs()
    log_exporter = HttpLogExporter(endpoint=w.http_url("logs"), timeout=10)
    try:
        assert log_exporter.export(logs) == LogRecordExportResult.SUCCESS
    finally:
        log_exporter.shutdown()
    wait_rows_written(w, "traces", 300)
    wait_rows_written(w, "logs", 3)
    assert list_keys(s3, "weir-archive") == [], "no object before its file is finished"

    assert w.terminate() == 0
    keys = list_keys(s3, "weir-archive")
    assert len(keys) == 2, keys
    assert keys[0].startswith("otel/signal=logs/date=") and keys[1].startswith("otel/signal=traces/date=")
    import pyarrow.parquet as pq

    counts = {}
    for k in keys:
        body = s3.get_object(Bucket="weir-archive", Key=k)["Body"].read()
        assert parquet_metadata(io.BytesIO(body)).get(b"weir.archive.schema_version") == SCHEMA_VERSION
        counts[k.split("/")[1]] = pq.read_table(io.BytesIO(body)).num_rows
    assert counts == {"signal=logs": 3, "signal=traces": 300}


def _big_requests(n_requests: int, spans: int):
    """Requests whose spans carry 3 KiB of random base64 each (compresses poorly)."""
    import base64
    import os

    for _ in range(n_requests):
        r = make_trace_request(spans)
        for s in r.resource_spans[0].scope_spans[0].spans:
            kv = s.attributes.add()
            kv.key = "blob"
            kv.value.string_value = base64.b64encode(os.urandom(2304)).decode()
        yield r


def test_s3_multipart_upload_invisible_until_complete_even_after_sigkill(start_weir, moto):
    s3 = moto.client()
    s3.create_bucket(Bucket="weir-archive")
    config = render_archive_config(
        {"url": "s3://weir-archive/big", "max_age": "1h", "row_group_rows": 500}, signals=("traces",))

    # ~12 MiB of Parquet: streamed as a multipart upload, row group by row group.
    w = start_weir(config_text=config)
    with w.grpc_channel() as ch:
        stub = trace_service_pb2_grpc.TraceServiceStub(ch)
        for r in _big_requests(40, 100):
            stub.Export(r, timeout=20)
    wait_rows_written(w, "traces", 4000, timeout=30)
    wait_until(lambda: s3.list_multipart_uploads(Bucket="weir-archive").get("Uploads"), 10,
               "a multipart upload in progress")
    assert list_keys(s3, "weir-archive") == []
    w.signal(signal.SIGKILL)
    w.wait_exit(10)
    killed_on_purpose(w)
    assert list_keys(s3, "weir-archive") == [], "a killed upload must never become visible"

    # The same, shut down properly: one complete object.
    w2 = start_weir(config_text=config)
    with w2.grpc_channel() as ch:
        stub = trace_service_pb2_grpc.TraceServiceStub(ch)
        for r in _big_requests(40, 100):
            stub.Export(r, timeout=20)
    wait_rows_written(w2, "traces", 4000, timeout=30)
    assert list_keys(s3, "weir-archive") == []
    assert w2.terminate() == 0
    keys = list_keys(s3, "weir-archive")
    assert len(keys) == 1, keys
    head = s3.head_object(Bucket="weir-archive", Key=keys[0])
    assert head["ContentLength"] > 8 * 1024 * 1024
    import pyarrow.parquet as pq

    body = s3.get_object(Bucket="weir-archive", Key=keys[0])["Body"].read()
    assert pq.read_table(io.BytesIO(body)).num_rows == 4000


# ---------------------------------------------------------------------------
# configuration


def validate_text(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "archive.toml"
    cfg.write_text(text.format(admin_port=free_port(), grpc_port=free_port(), http_port=free_port()))
    return subprocess.run([str(weir_bin()), "validate", "--config", str(cfg)], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_validate_reports_archive_config_errors(tmp_path):
    bad = render_archive_config({"url": "ftp://nowhere/x", "max_rows": 0, "max_rowz": 5})
    r = validate_text(tmp_path, bad)
    assert r.returncode == 1, r.stdout + r.stderr
    for key in ("exporters.archive.max_rowz", "exporters.archive.url"):
        assert key in r.stderr, r.stderr

    both = render_archive_config({"path": str(tmp_path / "a"), "url": "s3://b/p"})
    r = validate_text(tmp_path, both)
    assert r.returncode == 1 and "exporters.archive.url" in r.stderr, r.stderr

    metrics = render_archive_config({"path": str(tmp_path / "a")}, signals=("traces", "metrics"))
    r = validate_text(tmp_path, metrics)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "pipelines.metrics.exporters" in r.stderr and "traces and logs only" in r.stderr, r.stderr

    good = render_archive_config({"path": str(tmp_path / "a"), "max_bytes": "64MiB", "max_age": "30s",
                                  "partition_by_service": True})
    r = validate_text(tmp_path, good)
    assert r.returncode == 0, r.stderr
