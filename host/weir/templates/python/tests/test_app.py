from weir_plugin import Level
from weir_plugin.testing import MemoryBatch

import app


def test_masks_emails_and_drops_health_checks():
    b = MemoryBatch.traces()
    r = b.resource({"service.name": "shop"})
    b.span(r, "GET /cart", {"user.email": "ada@example.com"})
    b.span(r, "GET /healthz")
    b.run(app.Plugin(), config={})
    assert b.levels[Level.ITEM][0].attrs["user.email"] == "***"
    assert b.dropped == {1}
