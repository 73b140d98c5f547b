// The example processor in JavaScript: every resource gets a `tenant`
// attribute from `tenant.id` (found on the span, its scope or its resource),
// and health checks (`GET /health*` spans) are dropped. Build:
//   node plugins/sdk-js/build.mjs examples/plugins/js/tenant/app.js tenant.wasm
// (`wp` comes from plugins/sdk-js/weir-plugin.js, which the build puts first.)
const DEFAULTS = { from: "tenant.id", to: "tenant", drop_names: ["GET /health*"] };

class Tenant {
  init(config) {
    const c = wp.parseConfig(config, DEFAULTS);
    this.from = c.from;
    this.to = c.to;
    this.dropNames = c.drop_names;
  }

  process(batch) {
    const ids = batch.attribute(this.from, { inherited: true });
    const tenantOf = new Map();
    batch.ancestors("item", "resource").forEach((resource, item) => {
      if (ids[item] !== null && !tenantOf.has(resource)) tenantOf.set(resource, String(ids[item]));
    });
    for (const [resource, tenant] of tenantOf) batch.setAttribute("resource", resource, this.to, tenant);
    if (batch.signal === "traces" && this.dropNames.length) {
      batch.drop(batch.selectField("name", { glob: this.dropNames }));
    }
  }
}

export const { init, processTraces, processLogs, processMetrics } = wp.exportPlugin(new Tenant());
