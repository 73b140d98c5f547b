// {{name}}: a weir plugin in JavaScript (weir:plugin@0.2.0). It masks email
// addresses in span attributes and drops health-check spans; change `process`.
// `wp` is the SDK (weir-plugin/weir-plugin.js), which the build puts in front
// of this module; weir-plugin/weir-plugin.d.ts has its types.
const DEFAULTS = { drop_names: ["GET /health*"], mask: "***" };

class Plugin {
  init(config) {
    const c = wp.parseConfig(config, DEFAULTS);
    this.dropNames = c.drop_names;
    this.mask = c.mask;
  }

  process(batch) {
    // Matching runs on the host: one call, no JavaScript loop over spans.
    const emails = batch.selectAttribute("user.email", { glob: ["*@*"] });
    batch.setAttribute("item", emails, "user.email", this.mask);
    batch.drop(batch.selectField("name", { glob: this.dropNames }));
  }
}

export const { init, processTraces, processLogs, processMetrics } = wp.exportPlugin(new Plugin());
