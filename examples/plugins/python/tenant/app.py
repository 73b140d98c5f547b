"""The example processor, in Python: every resource gets a `tenant` attribute
from `tenant.id` (found on the span, its scope or its resource), and health
checks (`GET /health*` spans) are dropped. Matching and the tree walk run on
the host (weir:plugin@0.2.0 helpers); Python only decides."""

import weir_plugin as wp
from weir_plugin import Field, Level, Signal

DEFAULTS = {"from": "tenant.id", "to": "tenant", "drop_names": ["GET /health*"]}


class Tenant(wp.Plugin):
    def init(self, config: dict) -> None:
        cfg = wp.parse_config(config, DEFAULTS)
        self.source, self.target, self.drop_names = cfg["from"], cfg["to"], cfg["drop_names"]

    def process(self, batch: wp.Batch) -> None:
        ids = batch.attribute(self.source, inherited=True)
        tenant_of: dict[int, str] = {}
        for item, resource in enumerate(batch.ancestors(Level.ITEM, Level.RESOURCE)):
            if ids[item] is not None:
                tenant_of.setdefault(resource, str(ids[item]))
        for resource, tenant in tenant_of.items():
            batch.set_attribute(Level.RESOURCE, resource, self.target, tenant)
        if batch.signal == Signal.TRACES and self.drop_names:
            batch.drop(batch.select_field(Field.NAME, glob=self.drop_names))


WitWorld = wp.export(Tenant)
