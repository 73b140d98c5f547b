"""OTLP/HTTP JSON in the shape of the official opentelemetry-proto examples
(examples/trace.json, logs.json, metrics.json): hex ids (upper and lower case),
64-bit integers as JSON numbers and as JSON strings, posted with plain requests."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from otlp_helpers import any_value_to_py, attrs_to_dict

TRACE_A = "5B8EFFF798038103D269B633813FC60C"
SPAN_A = "EEE19B7EC3C1B174"
PARENT_A = "EEE19B7EC3C1B173"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"
SPAN_B = "b7ad6b7169203331"
# Not representable as an IEEE double: a decoder that goes through f64 loses digits.
PRECISE_NS = 1700000000123456789


def scope():
    return {
        "name": "my.library",
        "version": "1.0.0",
        "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}],
    }


def resource():
    return {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]}


TRACES = {
    "resourceSpans": [
        {
            "resource": resource(),
            "scopeSpans": [
                {
                    "scope": scope(),
                    "spans": [
                        {
                            # As in the official example: upper-case hex, times as JSON numbers.
                            "traceId": TRACE_A,
                            "spanId": SPAN_A,
                            "parentSpanId": PARENT_A,
                            "name": "I'm a server span",
                            "startTimeUnixNano": 1544712660000000000,
                            "endTimeUnixNano": 1544712661000000000,
                            "kind": 2,
                            "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}],
                        },
                        {
                            # Lower-case hex, 64-bit integers as strings (what most SDKs send).
                            "traceId": TRACE_B,
                            "spanId": SPAN_B,
                            "name": "client span",
                            "startTimeUnixNano": str(PRECISE_NS),
                            "endTimeUnixNano": str(PRECISE_NS + 1_500_000),
                            "kind": 3,
                            "flags": 1,
                            "attributes": [
                                {"key": "int.as.string", "value": {"intValue": "-9007199254740993"}},
                                {"key": "int.as.number", "value": {"intValue": 42}},
                                {"key": "double", "value": {"doubleValue": 637.704}},
                                {"key": "bool", "value": {"boolValue": True}},
                                {"key": "bytes", "value": {"bytesValue": base64.b64encode(b"\x00\x01weir").decode()}},
                                {
                                    "key": "array",
                                    "value": {"arrayValue": {"values": [{"stringValue": "many"}, {"intValue": "2"}]}},
                                },
                            ],
                            "droppedAttributesCount": 3,
                            "events": [
                                {
                                    "timeUnixNano": str(PRECISE_NS + 1000),
                                    "name": "retry",
                                    "attributes": [{"key": "attempt", "value": {"intValue": "2"}}],
                                }
                            ],
                            "links": [{"traceId": TRACE_A, "spanId": SPAN_A}],
                            "status": {"code": 2, "message": "upstream timeout"},
                        },
                        {
                            # A precise timestamp as a JSON number.
                            "traceId": TRACE_B,
                            "spanId": "00f067aa0ba902b7",
                            "parentSpanId": SPAN_B,
                            "name": "precise number",
                            "startTimeUnixNano": PRECISE_NS,
                            "endTimeUnixNano": PRECISE_NS + 1,
                            "kind": 1,
                        },
                    ],
                }
            ],
        }
    ]
}

LOGS = {
    "resourceLogs": [
        {
            "resource": resource(),
            "scopeLogs": [
                {
                    "scope": scope(),
                    "logRecords": [
                        {
                            "timeUnixNano": 1544712660300000000,
                            "observedTimeUnixNano": "1544712660300000001",
                            "severityNumber": 9,
                            "severityText": "Information",
                            "traceId": TRACE_A,
                            "spanId": SPAN_A,
                            "body": {"stringValue": "Example log record"},
                            "attributes": [
                                {"key": "string.attribute", "value": {"stringValue": "some string"}},
                                {"key": "boolean.attribute", "value": {"boolValue": True}},
                                {"key": "int.attribute", "value": {"intValue": 10}},
                                {"key": "int.string.attribute", "value": {"intValue": "10"}},
                                {"key": "double.attribute", "value": {"doubleValue": 637.704}},
                                {
                                    "key": "array.attribute",
                                    "value": {"arrayValue": {"values": [{"stringValue": "many"}, {"stringValue": "values"}]}},
                                },
                                {
                                    "key": "map.attribute",
                                    "value": {
                                        "kvlistValue": {
                                            "values": [{"key": "some.map.key", "value": {"stringValue": "some value"}}]
                                        }
                                    },
                                },
                            ],
                        },
                        {
                            "timeUnixNano": str(PRECISE_NS),
                            "severityNumber": 17,
                            "severityText": "ERROR",
                            "body": {"stringValue": "second record"},
                        },
                    ],
                }
            ],
        }
    ]
}

METRICS = {
    "resourceMetrics": [
        {
            "resource": resource(),
            "scopeMetrics": [
                {
                    "scope": scope(),
                    "metrics": [
                        {
                            "name": "my.counter",
                            "unit": "1",
                            "description": "I am a Counter",
                            "sum": {
                                "aggregationTemporality": 1,
                                "isMonotonic": True,
                                "dataPoints": [
                                    {
                                        "asDouble": 5,
                                        "startTimeUnixNano": 1544712660300000000,
                                        "timeUnixNano": 1544712660300000000,
                                        "attributes": [{"key": "my.counter.attr", "value": {"stringValue": "some value"}}],
                                    },
                                    {
                                        "asInt": "9007199254740993",
                                        "startTimeUnixNano": "1544712660300000000",
                                        "timeUnixNano": str(PRECISE_NS),
                                        "attributes": [{"key": "my.counter.attr", "value": {"stringValue": "int"}}],
                                    },
                                ],
                            },
                        },
                        {
                            "name": "my.gauge",
                            "unit": "1",
                            "description": "I am a Gauge",
                            "gauge": {
                                "dataPoints": [
                                    {
                                        "asDouble": 10,
                                        "timeUnixNano": 1544712660300000000,
                                        "attributes": [{"key": "my.gauge.attr", "value": {"stringValue": "some value"}}],
                                    }
                                ]
                            },
                        },
                        {
                            "name": "my.histogram",
                            "unit": "1",
                            "description": "I am a Histogram",
                            "histogram": {
                                "aggregationTemporality": 1,
                                "dataPoints": [
                                    {
                                        "startTimeUnixNano": 1544712660300000000,
                                        "timeUnixNano": 1544712660300000000,
                                        "count": "3",
                                        "sum": 3,
                                        "bucketCounts": [1, "1", 1],
                                        "explicitBounds": [1, 2],
                                        "min": 1,
                                        "max": 1,
                                        "attributes": [
                                            {"key": "my.histogram.attr", "value": {"stringValue": "some value"}}
                                        ],
                                    }
                                ],
                            },
                        },
                    ],
                }
            ],
        }
    ]
}


def post_json(weir, signal_name, doc):
    r = weir.post(signal_name, json.dumps(doc).encode(), content_type="application/json")
    assert r.status_code == 200, f"{r.status_code}: {r.text[:500]}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body, dict), body
    partial = body.get("partialSuccess") or {}
    assert not int(partial.get("rejectedSpans", 0) or partial.get("rejectedLogRecords", 0)
                   or partial.get("rejectedDataPoints", 0)), body
    return body


def test_json_traces_official_shape(weir, sink):
    post_json(weir, "traces", TRACES)
    received = sink.wait_for_spans(3)
    assert len(received) == 3
    by_id = {r.span.span_id: r for r in received}
    assert set(by_id) == {bytes.fromhex(SPAN_A), bytes.fromhex(SPAN_B), bytes.fromhex("00f067aa0ba902b7")}

    a = by_id[bytes.fromhex(SPAN_A)]
    assert a.span.trace_id == bytes.fromhex(TRACE_A)
    assert a.span.parent_span_id == bytes.fromhex(PARENT_A)
    assert a.span.name == "I'm a server span"
    assert a.span.start_time_unix_nano == 1544712660000000000
    assert a.span.end_time_unix_nano == 1544712661000000000
    assert a.span.kind == 2
    assert attrs_to_dict(a.span.attributes) == {"my.span.attr": "some value"}
    assert attrs_to_dict(a.resource.attributes) == {"service.name": "my.service"}
    assert a.scope.name == "my.library" and a.scope.version == "1.0.0"
    assert attrs_to_dict(a.scope.attributes) == {"my.scope.attribute": "some scope attribute"}

    b = by_id[bytes.fromhex(SPAN_B)]
    assert b.span.trace_id == bytes.fromhex(TRACE_B)
    assert b.span.parent_span_id == b""
    assert b.span.start_time_unix_nano == PRECISE_NS
    assert b.span.end_time_unix_nano == PRECISE_NS + 1_500_000
    assert b.span.kind == 3 and b.span.flags == 1
    assert attrs_to_dict(b.span.attributes) == {
        "int.as.string": -9007199254740993,
        "int.as.number": 42,
        "double": 637.704,
        "bool": True,
        "bytes": b"\x00\x01weir",
        "array": ["many", 2],
    }
    assert b.span.dropped_attributes_count == 3
    assert len(b.span.events) == 1
    assert b.span.events[0].name == "retry" and b.span.events[0].time_unix_nano == PRECISE_NS + 1000
    assert attrs_to_dict(b.span.events[0].attributes) == {"attempt": 2}
    assert len(b.span.links) == 1
    assert b.span.links[0].trace_id == bytes.fromhex(TRACE_A) and b.span.links[0].span_id == bytes.fromhex(SPAN_A)
    assert b.span.status.code == 2 and b.span.status.message == "upstream timeout"

    c = by_id[bytes.fromhex("00f067aa0ba902b7")]
    assert c.span.start_time_unix_nano == PRECISE_NS, "64-bit JSON number lost precision"
    assert c.span.end_time_unix_nano == PRECISE_NS + 1
    assert c.span.parent_span_id == bytes.fromhex(SPAN_B)


def test_json_logs_official_shape(weir, sink):
    post_json(weir, "logs", LOGS)
    received = sink.wait_for_logs(2)
    assert len(received) == 2
    by_body = {r.record.body.string_value: r.record for r in received}
    first = by_body["Example log record"]
    assert first.time_unix_nano == 1544712660300000000
    assert first.observed_time_unix_nano == 1544712660300000001
    assert first.severity_number == 9 and first.severity_text == "Information"
    assert first.trace_id == bytes.fromhex(TRACE_A) and first.span_id == bytes.fromhex(SPAN_A)
    assert attrs_to_dict(first.attributes) == {
        "string.attribute": "some string",
        "boolean.attribute": True,
        "int.attribute": 10,
        "int.string.attribute": 10,
        "double.attribute": 637.704,
        "array.attribute": ["many", "values"],
        "map.attribute": {"some.map.key": "some value"},
    }
    second = by_body["second record"]
    assert second.time_unix_nano == PRECISE_NS
    assert second.severity_number == 17 and second.severity_text == "ERROR"
    assert attrs_to_dict(received[0].resource.attributes) == {"service.name": "my.service"}


def test_json_metrics_official_shape(weir, sink):
    post_json(weir, "metrics", METRICS)
    received = sink.wait_for_points(4)
    assert len(received) == 4
    points = {(p.metric.name, next(iter(attrs_to_dict(p.point.attributes).values()))): p for p in received}
    c = points[("my.counter", "some value")]
    assert c.kind == "sum" and c.metric.sum.is_monotonic and c.metric.sum.aggregation_temporality == 1
    assert c.point.WhichOneof("value") == "as_double" and c.point.as_double == 5.0
    assert c.point.start_time_unix_nano == 1544712660300000000 and c.point.time_unix_nano == 1544712660300000000
    ci = points[("my.counter", "int")]
    assert ci.point.WhichOneof("value") == "as_int" and ci.point.as_int == 9007199254740993
    assert ci.point.time_unix_nano == PRECISE_NS
    g = points[("my.gauge", "some value")]
    assert g.kind == "gauge" and g.point.as_double == 10.0 and g.metric.unit == "1"
    assert g.metric.description == "I am a Gauge"
    h = points[("my.histogram", "some value")]
    assert h.kind == "histogram"
    assert h.point.count == 3 and h.point.sum == 3.0
    assert list(h.point.bucket_counts) == [1, 1, 1] and list(h.point.explicit_bounds) == [1.0, 2.0]
    assert h.point.min == 1.0 and h.point.max == 1.0


@pytest.mark.parametrize(
    "mutate,why",
    [
        (lambda d: d["resourceSpans"][0]["scopeSpans"][0]["spans"][0].update(traceId="not-hex"), "trace id not hex"),
        (lambda d: d["resourceSpans"][0]["scopeSpans"][0]["spans"][0].update(spanId="EEE19B7E"), "span id too short"),
        (lambda d: d["resourceSpans"][0]["scopeSpans"][0]["spans"][0].update(startTimeUnixNano="soon"), "bad int64"),
    ],
    ids=["bad-trace-id", "short-span-id", "bad-int64"],
)
def test_json_semantically_invalid_is_400(weir, sink, mutate, why):
    doc = copy.deepcopy(TRACES)
    mutate(doc)
    r = weir.post("traces", json.dumps(doc).encode(), content_type="application/json")
    assert r.status_code == 400, f"{why}: expected 400, got {r.status_code}: {r.text[:300]}"
    # Still serves a good request afterwards.
    post_json(weir, "traces", TRACES)
    sink.wait_for_spans(3)
    assert len(sink.spans()) == 3


def test_json_any_value_roundtrip_keeps_types(weir, sink):
    """Nested kvlist/array values and empty values survive JSON decoding."""
    doc = copy.deepcopy(TRACES)
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["attributes"] = [
        {"key": "nested", "value": {"kvlistValue": {"values": [
            {"key": "inner", "value": {"arrayValue": {"values": [{"doubleValue": 1.5}, {"boolValue": False}]}}},
        ]}}},
        {"key": "empty", "value": {}},
    ]
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"] = [span]
    post_json(weir, "traces", doc)
    got = sink.wait_for_spans(1)[0]
    attrs = {kv.key: kv.value for kv in got.span.attributes}
    assert any_value_to_py(attrs["nested"]) == {"inner": [1.5, False]}
    assert attrs["empty"].WhichOneof("value") is None
