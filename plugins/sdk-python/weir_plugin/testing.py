"""An in-memory batch with the host's interface, so plugin unit tests run under
plain CPython, without building a component:

    from weir_plugin import testing, Level
    b = testing.MemoryBatch.traces()
    r = b.resource({"tenant.id": "acme"})
    b.span(r, "GET /health")
    b.run(MyPlugin(), config={})
    assert b.dropped == {0}

It covers resources, scopes, spans or log records, and span events, with the
edit rules of the contract (entities must exist; names, status messages and
event names take str, kinds and severity numbers int). The host is the
authority: run `weir plugin test` on the built component too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from componentize_py_types import Err
from wit_world.imports import types as wit

from . import Plugin, run
from ._codec import BOOL, BYTES, DOUBLE, INT, JSON, STRING

L, F = wit.Level, wit.Field


@dataclass
class Node:
    owner: int = 0
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    body: Any = None


def _tag(v: Any) -> bytes:
    import struct
    if v is None:
        return b"\x00"
    if isinstance(v, bool):
        return bytes([BOOL, int(v)])
    if isinstance(v, int):
        return bytes([INT]) + struct.pack("<q", v)
    if isinstance(v, float):
        return bytes([DOUBLE]) + struct.pack("<d", v)
    if isinstance(v, str):
        return bytes([STRING]) + v.encode()
    if isinstance(v, bytes):
        return bytes([BYTES]) + v
    return bytes([JSON]) + json.dumps(v).encode()


def _column(entries: list[bytes]) -> Any:
    data, offsets = bytearray(), [0]
    for e in entries:
        data += e
        offsets.append(len(data))
    return wit.Column(bytes(data), offsets)


def _value(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, wit.Value_Json):
        return json.loads(v.value)
    return v.value


def _text(v: Any) -> Optional[str]:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return str(v)
    return None


def _glob(pattern: str) -> re.Pattern:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + r"\Z",
                      re.S)


def _hits(m: Any, text: Optional[str]) -> bool:
    if isinstance(m, wit.Matcher_Absent):
        return text is None
    if text is None:
        return False
    if isinstance(m, wit.Matcher_Present):
        return True
    if isinstance(m, wit.Matcher_AnyOf):
        return text in m.value
    return any(_glob(p).match(text) for p in m.value)


class MemoryBatch:
    def __init__(self, signal: Any):
        self._signal = signal
        self.levels: dict[Any, list[Node]] = {lv: [] for lv in L}
        self.dropped: set[int] = set()
        self.routes: dict[int, str] = {}

    @classmethod
    def traces(cls) -> "MemoryBatch":
        return cls(wit.Signal.TRACES)

    @classmethod
    def logs(cls) -> "MemoryBatch":
        return cls(wit.Signal.LOGS)

    # -- building ----------------------------------------------------------

    def resource(self, attrs: Optional[dict] = None) -> int:
        self.levels[L.RESOURCE].append(Node(0, dict(attrs or {})))
        self.levels[L.SCOPE].append(Node(len(self.levels[L.RESOURCE]) - 1))
        return len(self.levels[L.RESOURCE]) - 1

    def span(self, resource: int, name: str, attrs: Optional[dict] = None) -> int:
        scope = max(i for i, s in enumerate(self.levels[L.SCOPE]) if s.owner == resource)
        self.levels[L.ITEM].append(Node(scope, dict(attrs or {}), name))
        return len(self.levels[L.ITEM]) - 1

    def log(self, resource: int, body: Any, attrs: Optional[dict] = None) -> int:
        i = self.span(resource, "", attrs)
        self.levels[L.ITEM][i].body = body
        return i

    def event(self, item: int, name: str, attrs: Optional[dict] = None) -> int:
        self.levels[L.EVENT].append(Node(item, dict(attrs or {}), name))
        return len(self.levels[L.EVENT]) - 1

    def run(self, plugin: Plugin, config: Optional[dict] = None) -> None:
        """`init` with `config`, then one `process` call, as weir would."""
        plugin.init(config or {})
        run(plugin, self, self._signal)

    # -- what plugins see through weir_plugin.Batch --------------------------

    def signal(self) -> Any:
        return self._signal

    def len(self) -> int:
        return len(self.levels[L.ITEM])

    def count(self, level: Any) -> int:
        return len(self.levels[level])

    def owners(self, level: Any) -> list[int]:
        return [] if level == L.RESOURCE else [n.owner for n in self.levels[level]]

    def ancestors(self, level: Any, of: Any) -> list[int]:
        parents = {L.SCOPE: L.RESOURCE, L.ITEM: L.SCOPE, L.EVENT: L.ITEM, L.LINK: L.ITEM}
        idx, cur = list(range(self.count(level))), level
        while cur in parents:
            step = self.owners(cur)
            idx = [step[i] for i in idx]
            cur = parents[cur]
            if cur == of:
                return idx
        return []

    def read_field(self, level: Any, f: Any) -> Any:
        nodes = self.levels[level]
        if f == F.NAME and level in (L.ITEM, L.EVENT):
            return _column([n.name.encode() for n in nodes])
        if f == F.BODY and level == L.ITEM:
            return _column([_tag(n.body) for n in nodes])
        return _column([b"" for _ in nodes])

    def read_attribute(self, level: Any, key: str) -> Any:
        return _column([_tag(n.attrs.get(key)) for n in self.levels[level]])

    def read_attribute_inherited(self, level: Any, key: str) -> Any:
        up = [(lv, self.ancestors(level, lv)) for lv in (L.ITEM, L.SCOPE, L.RESOURCE) if self.ancestors(level, lv)]
        out = []
        for e, n in enumerate(self.levels[level]):
            v = n.attrs.get(key)
            for lv, anc in up:
                if v is None:
                    v = self.levels[lv][anc[e]].attrs.get(key)
            out.append(_tag(v))
        return _column(out)

    def read_attributes(self, level: Any) -> Any:
        keys, values, offs = [], [], [0]
        for n in self.levels[level]:
            for k, v in n.attrs.items():
                keys.append(k.encode())
                values.append(_tag(v))
            offs.append(len(keys))
        return wit.AttributeTable(offs, _column(keys), _column(values))

    def match_field(self, level: Any, f: Any, m: Any) -> list[int]:
        def text(n: Node) -> Optional[str]:
            return n.name if f == F.NAME else _text(n.body) if f == F.BODY else None
        return [i for i, n in enumerate(self.levels[level]) if _hits(m, text(n))]

    def match_attribute(self, level: Any, key: str, m: Any, inherited: bool) -> list[int]:
        from ._codec import decode_value
        col = self.read_attribute_inherited(level, key) if inherited else self.read_attribute(level, key)
        return [i for i in range(len(col.offsets) - 1)
                if _hits(m, _text(decode_value(bytes(col.data[col.offsets[i]:col.offsets[i + 1]]))))]

    def _check(self, i: int, e: Any) -> Optional[str]:
        v = e.value
        if isinstance(e, (wit.Edit_Attribute, wit.Edit_AttributeMany)):
            ents = [v.entity] if isinstance(e, wit.Edit_Attribute) else v.entities
            bad = [x for x in ents if x >= self.count(v.level)]
            return f"attribute edit names {v.level.name.title()} entity {bad[0]}" if bad else None
        if v.entity >= self.count(v.level):
            return f"field edit names entity {v.entity}"
        text = {(L.ITEM, F.NAME), (L.ITEM, F.STATUS_MESSAGE), (L.EVENT, F.NAME), (L.ITEM, F.SEVERITY_TEXT)}
        if (v.level, v.field) in text and not isinstance(v.value, wit.Value_Str):
            return f"field edit sets {v.field.name} to a non-str value"
        if (v.level, v.field) not in text | {(L.ITEM, F.BODY)}:
            return f"field {v.field.name} cannot be set here"
        return None

    def apply(self, edits: list) -> None:
        for i, e in enumerate(edits):
            why = self._check(i, e)
            if why:
                raise Err(wit.ChangeError(i, why))
        for e in edits:
            v = e.value
            if isinstance(e, (wit.Edit_Attribute, wit.Edit_AttributeMany)):
                for x in ([v.entity] if isinstance(e, wit.Edit_Attribute) else v.entities):
                    attrs = self.levels[v.level][x].attrs
                    if v.value is None:
                        attrs.pop(v.key, None)
                    else:
                        attrs[v.key] = _value(v.value)
            elif v.field == F.BODY:
                self.levels[v.level][v.entity].body = _value(v.value)
            else:
                self.levels[v.level][v.entity].name = _value(v.value)

    def drop_items(self, items: list[int]) -> None:
        if any(i >= self.len() for i in items):
            raise Err(f"drop-items names an item beyond {self.len()}")
        self.dropped.update(items)

    def route_items(self, route: str, items: list[int]) -> None:
        for i in items:
            self.routes[i] = route
