import { test } from "node:test";
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { MemoryBatch, loadPlugin } from "../testing.mjs";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

test("the example sets tenants and drops health checks", async () => {
  const p = await loadPlugin(join(repo, "examples", "plugins", "js", "tenant", "app.js"));
  p.init("{}");
  const b = new MemoryBatch("traces");
  const acme = b.resource({ "tenant.id": "acme" });
  b.span(acme, "GET /cart");
  b.span(acme, "GET /healthz");
  const other = b.resource({ "service.name": "billing" });
  b.span(other, "charge", { "tenant.id": "globex" });
  p.processTraces(b, { sequence: 1n });
  assert.deepEqual(b.levels.resource.map((r) => r.attrs.tenant), ["acme", "globex"]);
  assert.deepEqual([...b.dropped], [1]);
});

test("a config error names the key", async () => {
  const p = await loadPlugin(join(repo, "examples", "plugins", "js", "tenant", "app.js"));
  assert.throws(() => p.init('{"drop_names": "GET /health"}'), /drop_names: expected array, got string/);
  assert.throws(() => p.init('{"nope": 1}'), /nope: unknown key/);
});

test("a refused edit list applies nothing and names the edit", async () => {
  const { wp } = await loadPlugin(join(repo, "examples", "plugins", "js", "tenant", "app.js"));
  const b = new MemoryBatch("traces");
  b.span(b.resource(), "a");
  const plugin = {
    process(batch) {
      batch.setAttribute("item", 0, "ok", "yes");
      batch.setField("name", 0, 7);
    },
  };
  assert.throws(() => wp.run(plugin, b, "traces"), /edit 1: /);
  assert.deepEqual(b.levels.item[0].attrs, {});
});
