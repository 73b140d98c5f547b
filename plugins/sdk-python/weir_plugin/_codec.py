"""The contract's column encoding (wit/v0.2.0/plugin.wit, "Values inside
columns") to and from Python values."""

from __future__ import annotations

import json
import struct
from typing import Any, Optional

from wit_world.imports import types as wit

ABSENT, STRING, INT, DOUBLE, BOOL, BYTES, JSON = range(7)

_TEXT = {wit.Field.NAME, wit.Field.STATUS_MESSAGE, wit.Field.TRACE_STATE, wit.Field.SEVERITY_TEXT,
         wit.Field.EVENT_NAME, wit.Field.UNIT, wit.Field.DESCRIPTION}
_IDS = {wit.Field.TRACE_ID, wit.Field.SPAN_ID, wit.Field.PARENT_SPAN_ID}
_I32 = {wit.Field.KIND, wit.Field.STATUS_CODE, wit.Field.SEVERITY_NUMBER}


def decode_value(b: bytes) -> Any:
    """A tagged value: None when absent, else str, int, float, bool, bytes, or the
    parsed JSON of an array or map."""
    if not b or b[0] == ABSENT:
        return None
    tag, rest = b[0], b[1:]
    if tag == STRING:
        return rest.decode("utf-8", "replace")
    if tag == INT:
        return struct.unpack("<q", rest)[0]
    if tag == DOUBLE:
        return struct.unpack("<d", rest)[0]
    if tag == BOOL:
        return rest[:1] == b"\x01"
    if tag == BYTES:
        return rest
    if tag == JSON:
        return json.loads(rest.decode("utf-8", "replace"))
    return None


def decode_field(field: Any, b: bytes) -> Any:
    """A plain field: str for text, bytes for ids (None when empty), int for numbers."""
    if field == wit.Field.BODY:
        return decode_value(b)
    if field in _TEXT:
        return b.decode("utf-8", "replace")
    if field in _IDS:
        return b or None
    if not b:
        return None
    if field in _I32:
        return struct.unpack("<i", b)[0]
    if len(b) == 4:
        return struct.unpack("<I", b)[0]
    return struct.unpack("<Q", b)[0]


def encode_value(v: Any) -> Optional[Any]:
    """A Python value as the contract's `value` (None stays None: a removal)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return wit.Value_Boolean(v)
    if isinstance(v, int):
        return wit.Value_Int(v)
    if isinstance(v, float):
        return wit.Value_Double(v)
    if isinstance(v, str):
        return wit.Value_Str(v)
    if isinstance(v, (bytes, bytearray)):
        return wit.Value_Bytes(bytes(v))
    if isinstance(v, (list, tuple, dict)):
        return wit.Value_Json(json.dumps(v))
    raise TypeError(f"cannot send a {type(v).__name__} to weir: use str, int, float, bool, bytes, list or dict")
