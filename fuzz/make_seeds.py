#!/usr/bin/env python3
"""Writes the checked-in seed corpora under fuzz/seeds/<target>/.

Run once after changing fuzz/data or a target's input layout, with the e2e
venv (it has opentelemetry-proto, protobuf and zstandard):

    tests/.venv/bin/python fuzz/make_seeds.py

Each seed is a handful of valid (or nearly valid) inputs in the layout its
target's doc comment describes; libFuzzer mutates from there.
"""
from __future__ import annotations

import base64
import gzip
import json
import struct
import zlib
from pathlib import Path

import zstandard
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
DATA = FUZZ / "data"
SEEDS = FUZZ / "seeds"

TRACES, LOGS, METRICS = 0, 1, 2
MESSAGES = {
    TRACES: trace_service_pb2.ExportTraceServiceRequest,
    LOGS: logs_service_pb2.ExportLogsServiceRequest,
    METRICS: metrics_service_pb2.ExportMetricsServiceRequest,
}
ID_KEYS = {"traceId", "spanId", "parentSpanId"}


def hex_ids_to_base64(v):
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping wants base64."""
    if isinstance(v, dict):
        return {
            k: (base64.b64encode(bytes.fromhex(x)).decode() if k in ID_KEYS and isinstance(x, str) else hex_ids_to_base64(x))
            for k, x in v.items()
        }
    if isinstance(v, list):
        return [hex_ids_to_base64(x) for x in v]
    return v


def protobuf(signal: int, otlp_json: str) -> bytes:
    msg = MESSAGES[signal]()
    json_format.ParseDict(hex_ids_to_base64(json.loads(otlp_json)), msg)
    return msg.SerializeToString()


def write(target: str, name: str, data: bytes) -> None:
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


def main() -> None:
    jsons = {
        "traces": (TRACES, (DATA / "traces.json").read_text()),
        "traces-min": (TRACES, (DATA / "traces-min.json").read_text()),
        "logs": (LOGS, (DATA / "logs.json").read_text()),
        "metrics": (METRICS, (DATA / "metrics.json").read_text()),
    }
    pbs = {name: (sig, protobuf(sig, text)) for name, (sig, text) in jsons.items()}

    for name, (sig, pb) in pbs.items():
        write("wire_count_items", name, bytes([sig]) + pb)
    # Two requests concatenated are one request (how weir batches).
    sig, pb = pbs["traces"]
    write("wire_count_items", "traces-concat", bytes([sig]) + pb + pbs["traces-min"][1])

    for name, (sig, text) in jsons.items():
        write("otlp_json", name, bytes([sig]) + text.encode())
    write("otlp_json", "empty", bytes([LOGS]) + b"{}")

    # http_decode: [encoding index][flags: signal | 0x10 json][limit/4 u16 LE] body
    ident, gz, zs = 0, 3, 5
    big = struct.pack("<H", 0xFFFF)
    cctx = zstandard.ZstdCompressor()
    for name, (sig, pb) in pbs.items():
        write("http_decode", f"{name}-pb-identity", bytes([ident, sig]) + big + pb)
        write("http_decode", f"{name}-pb-gzip", bytes([gz, sig]) + big + gzip.compress(pb))
        write("http_decode", f"{name}-pb-zstd", bytes([zs, sig]) + big + cctx.compress(pb))
    sig, text = jsons["metrics"]
    write("http_decode", "metrics-json-gzip", bytes([gz, sig | 0x10]) + big + gzip.compress(text.encode()))
    sig, text = jsons["logs"]
    write("http_decode", "logs-json-zstd", bytes([zs, sig | 0x10]) + big + cctx.compress(text.encode()))
    # Two gzip members back to back (MultiGzDecoder), and a bomb cut at a small limit.
    sig, pb = pbs["traces-min"]
    write("http_decode", "traces-gzip-members", bytes([gz, sig]) + big + gzip.compress(pb) + gzip.compress(pb))
    write("http_decode", "gzip-bomb", bytes([gz, TRACES]) + struct.pack("<H", 256) + gzip.compress(b"\0" * 100_000))

    for f in sorted((ROOT / "examples" / "configs").glob("*.toml")):
        write("config_parse", f.stem, f.read_bytes())
    write("config_parse", "env", b"""
[receivers.otlp]
type = "${env:WEIR_FUZZ_PLAIN}"
grpc = "${env:WEIR_FUZZ_ADDR:-127.0.0.1:4317}"

[exporters.out]
type = "otlp_http"
endpoint = "http://127.0.0.1:${env:WEIR_FUZZ_PORT}"
headers = { authorization = "Bearer ${env:WEIR_FUZZ_SECRET}" }

[pipelines.traces]
receivers = ["otlp"]
exporters = ["out"]
""")

    # plugin_changes: arbitrary::Unstructured bytes; any bytes are valid input.
    for i, pattern in enumerate([b"\x00" * 64, bytes(range(256)), b"\x01\x00\x02" * 40, b"\x02\xff" * 50]):
        write("plugin_changes", f"bytes-{i}", pattern)

    # queue_segments: chunks [kind: even seg, odd acks][base u8][len u16 LE][bytes]
    def seg_header() -> bytes:
        h = b"WEIRQSEG" + struct.pack("<I", 1)
        return h + struct.pack("<I", zlib.crc32(h))

    def record(rid: int, items: int, payload: bytes) -> bytes:
        crc = zlib.crc32(struct.pack("<QI", rid, items) + payload)
        return struct.pack("<IIQI", len(payload), crc, rid, items) + payload

    def acks(floor: int, runs: list[tuple[int, int]]) -> bytes:
        h = b"WEIRQACK" + struct.pack("<IQ", 1, floor)
        out = h + struct.pack("<I", zlib.crc32(h))
        for first, count in runs:
            e = struct.pack("<QI", first, count)
            out += e + struct.pack("<I", zlib.crc32(e))
        return out

    def chunk(kind: int, base: int, body: bytes) -> bytes:
        return struct.pack("<BBH", kind, base, len(body)) + body

    seg1 = seg_header() + b"".join(record(i, i, b"payload-%d" % i) for i in range(1, 4))
    seg4 = seg_header() + record(4, 1, b"four") + record(5, 2, b"five")
    write("queue_segments", "one-segment", chunk(0, 1, seg1))
    write("queue_segments", "acked", chunk(0, 1, seg1) + chunk(1, 0, acks(4, [(1, 2)])))
    write("queue_segments", "two-segments", chunk(0, 1, seg1) + chunk(0, 4, seg4) + chunk(1, 0, acks(6, [(2, 1)])))
    write("queue_segments", "torn-tail", chunk(0, 1, seg1 + record(4, 1, b"torn")[:-2]))
    damaged = bytearray(seg1)
    damaged[16 + 25] ^= 0xFF
    write("queue_segments", "damaged-middle", chunk(0, 1, bytes(damaged)))


if __name__ == "__main__":
    main()
