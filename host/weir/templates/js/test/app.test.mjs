import { test } from "node:test";
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { MemoryBatch, loadPlugin } from "../weir-plugin/testing.mjs";

const app = join(dirname(fileURLToPath(import.meta.url)), "..", "app.js");

test("masks emails and drops health checks", async () => {
  const p = await loadPlugin(app);
  p.init("{}");
  const b = new MemoryBatch("traces");
  const r = b.resource({ "service.name": "shop" });
  b.span(r, "GET /cart", { "user.email": "ada@example.com" });
  b.span(r, "GET /healthz");
  p.processTraces(b, { sequence: 1n });
  assert.equal(b.levels.item[0].attrs["user.email"], "***");
  assert.deepEqual([...b.dropped], [1]);
});

test("a config error names the key", async () => {
  const p = await loadPlugin(app);
  assert.throws(() => p.init('{"drop_names": "GET /health"}'), /drop_names: expected array, got string/);
});
