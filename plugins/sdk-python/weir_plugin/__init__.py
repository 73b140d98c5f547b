"""weir plugin SDK for Python (componentize-py), on weir:plugin@0.2.0.

Write a plugin as a subclass of `Plugin` and export it from your app module::

    import weir_plugin as wp

    class Tenant(wp.Plugin):
        def init(self, config: dict) -> None:
            self.key = config.get("from", "tenant.id")

        def process(self, batch: wp.Batch) -> None:
            ...

    WitWorld = wp.export(Tenant)   # componentize-py looks for `WitWorld`

Build with::

    componentize-py -d wit/v0.2.0 -w plugin componentize app \\
        -p . -p plugins/sdk-python -o tenant.wasm

Reads go to the host in bulk (one call per column) and matching runs on the
host (`select_field`, `select_attribute`), so a plugin does not loop over
spans in Python where it can avoid it. Edits are queued and handed to the host
once, after `process` returns: all of them apply, or none.
"""

from __future__ import annotations

import json
import traceback
from typing import Any, Iterable, Optional, Sequence

from componentize_py_types import Err
from wit_world.imports import types as wit

from ._codec import decode_field, decode_value, encode_value

Level = wit.Level
Field = wit.Field
Signal = wit.Signal

__all__ = ["Plugin", "Batch", "Level", "Field", "Signal", "PluginError", "ConfigError", "export", "parse_config"]


class PluginError(Exception):
    """Raise from `process` to fail the batch; the plugin's `on_error` policy decides what happens."""


class ConfigError(Exception):
    """Raise from `init` (or let `parse_config` raise it) to reject the config; name the key."""


def parse_config(config: dict | str, defaults: dict[str, Any]) -> dict[str, Any]:
    """The plugin's config (as `init` gets it, or JSON text) checked against
    `defaults`: every key must be one of them and of the same type as its default
    (ints pass for floats). Errors name the key."""
    given: Any = config
    if isinstance(config, str):
        try:
            given = json.loads(config or "{}")
        except json.JSONDecodeError as e:
            raise ConfigError(f"config is not JSON: {e}") from None
    if not isinstance(given, dict):
        raise ConfigError("config must be a table")
    out = dict(defaults)
    for key, value in given.items():
        if key not in defaults:
            raise ConfigError(f"{key}: unknown key; expected one of {', '.join(sorted(defaults))}")
        want = type(defaults[key])
        ok = isinstance(value, want) or (want is float and isinstance(value, int) and not isinstance(value, bool))
        if want is not bool and isinstance(value, bool):
            ok = False
        if not ok:
            raise ConfigError(f"{key}: expected {want.__name__}, got {type(value).__name__} {value!r}")
        out[key] = value
    return out


def _matcher(any_of: Optional[Iterable[str]], glob: Optional[Iterable[str]], present: Optional[bool]) -> Any:
    given = [x is not None for x in (any_of, glob, present)]
    if sum(given) != 1:
        raise ValueError("give exactly one of any_of, glob or present")
    if any_of is not None:
        return wit.Matcher_AnyOf(list(any_of))
    if glob is not None:
        return wit.Matcher_Glob(list(glob))
    return wit.Matcher_Present() if present else wit.Matcher_Absent()


class Batch:
    """One batch, as a plugin sees it. Entities are numbered per level from 0."""

    def __init__(self, host: Any):
        self._host = host
        self._edits: list = []
        self._drops: list[int] = []
        self._routes: list[tuple[str, list[int]]] = []

    # -- reads (one host call each) ---------------------------------------

    @property
    def signal(self) -> Signal:
        return self._host.signal()

    def __len__(self) -> int:
        return self._host.len()

    def count(self, level: Level) -> int:
        return self._host.count(level)

    def ancestors(self, level: Level, of: Level) -> list[int]:
        """Each entity's ancestor at level `of`, e.g. every span's resource."""
        return list(self._host.ancestors(level, of))

    def field(self, field: Field, level: Level = Level.ITEM) -> list[Any]:
        """A plain field of every entity: str for text, bytes for ids, int for numbers,
        a Python value for log bodies (None where absent)."""
        col = self._host.read_field(level, field)
        return [decode_field(field, _entry(col, i)) for i in range(len(col.offsets) - 1)]

    def attribute(self, key: str, level: Level = Level.ITEM, inherited: bool = False) -> list[Any]:
        """One attribute of every entity (None where absent). With `inherited`, taken
        from the nearest entity up the tree that has it (item, scope, resource)."""
        col = (self._host.read_attribute_inherited if inherited else self._host.read_attribute)(level, key)
        return [decode_value(_entry(col, i)) for i in range(len(col.offsets) - 1)]

    def attributes(self, level: Level = Level.ITEM) -> list[dict[str, Any]]:
        """Every attribute of every entity, as one dict per entity."""
        t = self._host.read_attributes(level)
        out = []
        for e in range(len(t.entity_offsets) - 1):
            out.append({_entry(t.keys, j).decode("utf-8", "replace"): decode_value(_entry(t.values, j))
                        for j in range(t.entity_offsets[e], t.entity_offsets[e + 1])})
        return out

    def select_field(self, field: Field, *, any_of: Optional[Iterable[str]] = None, glob: Optional[Iterable[str]] = None,
                     present: Optional[bool] = None, level: Level = Level.ITEM) -> list[int]:
        """The entities whose field is one of `any_of`, matches a `glob`, or is
        present/absent, matched on the host."""
        return list(self._host.match_field(level, field, _matcher(any_of, glob, present)))

    def select_attribute(self, key: str, *, any_of: Optional[Iterable[str]] = None,
                         glob: Optional[Iterable[str]] = None, present: Optional[bool] = None,
                         level: Level = Level.ITEM, inherited: bool = False) -> list[int]:
        """The entities whose attribute `key` matches, on the host."""
        return list(self._host.match_attribute(level, key, _matcher(any_of, glob, present), inherited))

    # -- edits (queued, handed over once) ---------------------------------

    def set_attribute(self, level: Level, entities: int | Sequence[int], key: str, value: Any) -> None:
        """Sets `key` on one entity, or on many in one edit."""
        v = encode_value(value)
        if isinstance(entities, int):
            self._edits.append(wit.Edit_Attribute(wit.AttributeEdit(level, entities, key, v)))
        elif entities:
            self._edits.append(wit.Edit_AttributeMany(wit.AttributeManyEdit(level, list(entities), key, v)))

    def remove_attribute(self, level: Level, entities: int | Sequence[int], key: str) -> None:
        if isinstance(entities, int):
            self._edits.append(wit.Edit_Attribute(wit.AttributeEdit(level, entities, key, None)))
        elif entities:
            self._edits.append(wit.Edit_AttributeMany(wit.AttributeManyEdit(level, list(entities), key, None)))

    def set_field(self, field: Field, entity: int, value: Any, level: Level = Level.ITEM) -> None:
        """Sets a plain field: a span's name, a log's body, an event's name, a metric's description..."""
        self._edits.append(wit.Edit_Field(wit.FieldEdit(level, entity, field, encode_value(value))))

    def drop(self, items: Iterable[int]) -> None:
        self._drops.extend(items)

    def route(self, name: str, items: Iterable[int]) -> None:
        items = list(items)
        if items:
            self._routes.append((name, items))

    def _flush(self) -> None:
        if self._edits:
            try:
                self._host.apply(self._edits)
            except Err as e:
                raise PluginError(f"edit {e.value.edit}: {e.value.message}") from None
        for call, args in ([(self._host.drop_items, (self._drops,))] if self._drops else []) + \
                [(self._host.route_items, r) for r in self._routes]:
            try:
                call(*args)
            except Err as e:
                raise PluginError(str(e.value)) from None


def _entry(col: Any, i: int) -> bytes:
    return bytes(col.data[col.offsets[i]:col.offsets[i + 1]])


class Plugin:
    """Subclass and override `init` and `process` (or `process_traces`, `process_logs`,
    `process_metrics` for one signal each)."""

    def init(self, config: dict) -> None:
        pass

    def process(self, batch: Batch) -> None:
        pass

    def process_traces(self, batch: Batch) -> None:
        self.process(batch)

    def process_logs(self, batch: Batch) -> None:
        self.process(batch)

    def process_metrics(self, batch: Batch) -> None:
        self.process(batch)


def run(plugin: Plugin, host: Any, signal: Signal) -> None:
    """Runs `plugin` over one host batch and hands its edits over: what the
    exported functions do, and what the in-memory test batch calls."""
    batch = Batch(host)
    {Signal.TRACES: plugin.process_traces, Signal.LOGS: plugin.process_logs,
     Signal.METRICS: plugin.process_metrics}[signal](batch)
    batch._flush()


def export(plugin_class: type[Plugin]) -> type:
    """The `WitWorld` class componentize-py exports, running one `plugin_class`."""
    import wit_world

    state: dict[str, Plugin] = {}

    def guard(fn, error):
        try:
            fn()
        except Err:
            raise
        except (PluginError, ConfigError) as e:
            raise Err(error(str(e))) from None
        except Exception:  # a bug in the plugin: fail the batch with its traceback
            raise Err(error(traceback.format_exc(limit=8))) from None

    class World(wit_world.WitWorld):
        def init(self, config: str) -> None:
            def go():
                p = plugin_class()
                p.init(json.loads(config or "{}"))
                state["plugin"] = p
            guard(go, lambda m: m)

        def _process(self, batch, signal) -> None:
            guard(lambda: run(state["plugin"], batch, signal), lambda m: wit.PluginError(m))

        def process_traces(self, batch, ctx) -> None:
            self._process(batch, Signal.TRACES)

        def process_logs(self, batch, ctx) -> None:
            self._process(batch, Signal.LOGS)

        def process_metrics(self, batch, ctx) -> None:
            self._process(batch, Signal.METRICS)

    World.__name__ = "WitWorld"
    return World
