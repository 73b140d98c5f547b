// The example processor (examples/plugins/js/tenant) written the 0.1.0 way:
// without the 0.2.0 host helpers, so JavaScript walks the tree and matches
// names itself. Only for bench/plugin_languages.py.
const glob = (p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`, "s");

class TenantLoop {
  init() {
    this.dropNames = ["GET /health*"].map(glob);
  }

  process(batch) {
    const itemScope = batch.host.owners("item");
    const scopeResource = batch.host.owners("scope");
    const own = batch.attribute("tenant.id");
    const scope = batch.attribute("tenant.id", { level: "scope" });
    const resource = batch.attribute("tenant.id", { level: "resource" });
    const tenantOf = new Map();
    itemScope.forEach((s, item) => {
      const r = scopeResource[s];
      const v = own[item] ?? scope[s] ?? resource[r];
      if (v !== null && v !== undefined && !tenantOf.has(r)) tenantOf.set(r, String(v));
    });
    for (const [r, tenant] of tenantOf) batch.setAttribute("resource", r, "tenant", tenant);
    if (batch.signal === "traces") {
      const names = batch.field("name");
      batch.drop(names.flatMap((n, i) => (this.dropNames.some((g) => g.test(n)) ? [i] : [])));
    }
  }
}

export const { init, processTraces, processLogs, processMetrics } = wp.exportPlugin(new TenantLoop());
