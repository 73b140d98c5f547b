"""The example processor (examples/plugins/python/tenant) written the 0.1.0 way:
without the 0.2.0 host helpers, so Python walks the tree and matches names
itself. Only for bench/plugin_languages.py, to measure what the helpers save."""

import fnmatch

import weir_plugin as wp
from weir_plugin import Field, Level, Signal


class TenantLoop(wp.Plugin):
    def init(self, config: dict) -> None:
        self.source, self.target, self.drop_names = "tenant.id", "tenant", ["GET /health*"]

    def process(self, batch: wp.Batch) -> None:
        item_scope = batch._host.owners(Level.ITEM)
        scope_resource = batch._host.owners(Level.SCOPE)
        own = batch.attribute(self.source)
        scope = batch.attribute(self.source, Level.SCOPE)
        resource = batch.attribute(self.source, Level.RESOURCE)
        tenant_of: dict[int, str] = {}
        for item, s in enumerate(item_scope):
            r = scope_resource[s]
            v = own[item] if own[item] is not None else scope[s] if scope[s] is not None else resource[r]
            if v is not None:
                tenant_of.setdefault(r, str(v))
        for r, tenant in tenant_of.items():
            batch.set_attribute(Level.RESOURCE, r, self.target, tenant)
        if batch.signal == Signal.TRACES:
            names = batch.field(Field.NAME)
            batch.drop(i for i, n in enumerate(names) if any(fnmatch.fnmatchcase(n, p) for p in self.drop_names))


WitWorld = wp.export(TenantLoop)
