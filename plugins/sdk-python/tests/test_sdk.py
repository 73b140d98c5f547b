"""The Python SDK on its in-memory batch, and the example processor."""

import pytest

import weir_plugin as wp
from weir_plugin import Field, Level
from weir_plugin.testing import MemoryBatch


class Tagger(wp.Plugin):
    def process(self, batch: wp.Batch) -> None:
        emails = batch.select_attribute("user.email", glob=["*@*"])
        batch.set_attribute(Level.ITEM, emails, "user.email", "***")
        batch.set_field(Field.NAME, 0, "renamed")


def test_reads_edits_and_host_matching():
    b = MemoryBatch.traces()
    r = b.resource({"service.name": "shop"})
    b.span(r, "a", {"user.email": "x@y.z", "n": 1})
    b.span(r, "b", {"user.email": "nobody", "flag": True})
    b.run(Tagger())
    assert [n.attrs.get("user.email") for n in b.levels[Level.ITEM]] == ["***", "nobody"]
    assert b.levels[Level.ITEM][0].name == "renamed"
    view = wp.Batch(b)
    assert view.attribute("n") == [1, None] and view.attribute("flag") == [None, True]
    assert view.attribute("service.name", inherited=True) == ["shop", "shop"]
    assert view.attributes(Level.RESOURCE) == [{"service.name": "shop"}]


class Bad(wp.Plugin):
    def process(self, batch: wp.Batch) -> None:
        batch.set_attribute(Level.ITEM, 0, "ok", "yes")
        batch.set_field(Field.NAME, 0, 7)  # a span name must be a str


def test_a_refused_edit_list_applies_nothing_and_names_the_edit():
    b = MemoryBatch.traces()
    b.span(b.resource(), "a")
    with pytest.raises(wp.PluginError, match="edit 1: "):
        b.run(Bad())
    assert b.levels[Level.ITEM][0].attrs == {}


def test_config_errors_name_the_key():
    with pytest.raises(wp.ConfigError, match="^drop_names: expected list"):
        wp.parse_config({"drop_names": "GET /health"}, {"drop_names": ["x"]})
    with pytest.raises(wp.ConfigError, match="^nope: unknown key"):
        wp.parse_config('{"nope": 1}', {"drop_names": ["x"]})
    assert wp.parse_config({"rate": 1}, {"rate": 0.5}) == {"rate": 1}


def test_the_example_sets_tenants_and_drops_health_checks():
    import app
    b = MemoryBatch.traces()
    acme = b.resource({"tenant.id": "acme"})
    b.span(acme, "GET /cart")
    b.span(acme, "GET /healthz")
    other = b.resource({"service.name": "billing"})
    b.span(other, "charge", {"tenant.id": "globex"})
    b.run(app.Tenant(), config={})
    assert [n.attrs.get("tenant") for n in b.levels[Level.RESOURCE]] == ["acme", "globex"]
    assert b.dropped == {1}
