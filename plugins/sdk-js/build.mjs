// Builds a weir plugin written in JavaScript as a weir:plugin@0.2.0 component:
//   node plugins/sdk-js/build.mjs app.js plugin.wasm
// The SDK (weir-plugin.js) goes in front of app.js (componentize-js takes one
// module). wasi:http and the fetch event are left out: weir does not link them.
import { componentize } from "@bytecodealliance/componentize-js";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const [app, out] = process.argv.slice(2);
if (!app || !out) {
  console.error("usage: node build.mjs APP.js OUT.wasm");
  process.exit(2);
}
const sdk = await readFile(join(here, "weir-plugin.js"), "utf8");
const source = `${sdk}\n${await readFile(app, "utf8")}`;
// In the weir repository the WIT is at wit/v0.2.0; in a project written by
// `weir plugin new --lang js` it is at wit/plugin.wit beside this directory.
const candidates = [join(here, "..", "..", "wit", "v0.2.0", "plugin.wit"), join(here, "..", "wit", "plugin.wit")];
const witPath = candidates.find((p) => existsSync(p));
if (!witPath) {
  console.error(`weir:plugin@0.2.0 WIT not found; looked at ${candidates.join(", ")}`);
  process.exit(2);
}
const { component } = await componentize(source, {
  witPath,
  worldName: "plugin",
  disableFeatures: ["http", "fetch-event"],
});
await writeFile(out, component);
console.error(`built ${out} (${component.length} bytes)`);
