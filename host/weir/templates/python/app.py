"""{{name}}: a weir plugin in Python (weir:plugin@0.2.0). It masks email
addresses in span attributes and drops health-check spans; change `process`."""

import weir_plugin as wp
from weir_plugin import Field, Level

DEFAULTS = {"drop_names": ["GET /health*"], "mask": "***"}


class Plugin(wp.Plugin):
    def init(self, config: dict) -> None:
        cfg = wp.parse_config(config, DEFAULTS)
        self.drop_names, self.mask = cfg["drop_names"], cfg["mask"]

    def process(self, batch: wp.Batch) -> None:
        # Matching runs on the host: one call, no Python loop over spans.
        emails = batch.select_attribute("user.email", glob=["*@*"])
        batch.set_attribute(Level.ITEM, emails, "user.email", self.mask)
        batch.drop(batch.select_field(Field.NAME, glob=self.drop_names))


WitWorld = wp.export(Plugin)
