// An in-memory batch with the host's interface, so plugin unit tests run under
// node without building a component. It covers resources, scopes and spans or
// log records, with the contract's edit rules for attributes and names. The
// host is the authority: run `weir plugin test` on the built component too.
import { readFile, writeFile, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const enc = new TextEncoder();

function column(entries) {
  const parts = entries.map((e) => (typeof e === "string" ? enc.encode(e) : e));
  const data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  const offsets = [0];
  let at = 0;
  for (const p of parts) {
    data.set(p, at);
    at += p.length;
    offsets.push(at);
  }
  return { data, offsets: Uint32Array.from(offsets) };
}

function tagged(v) {
  if (v === null || v === undefined) return Uint8Array.of(0);
  if (typeof v === "string") return Uint8Array.of(1, ...enc.encode(v));
  if (typeof v === "boolean") return Uint8Array.of(4, v ? 1 : 0);
  const b = new Uint8Array(9);
  const view = new DataView(b.buffer);
  if (typeof v === "bigint" || Number.isInteger(v)) {
    b[0] = 2;
    view.setBigInt64(1, BigInt(v), true);
  } else {
    b[0] = 3;
    view.setFloat64(1, v, true);
  }
  return b;
}

const glob = (p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`, "s");
function hits(m, text) {
  if (m.tag === "absent") return text === null;
  if (text === null) return false;
  if (m.tag === "present") return true;
  if (m.tag === "any-of") return m.val.includes(text);
  return m.val.some((p) => glob(p).test(text));
}

export class MemoryBatch {
  constructor(signal = "traces") {
    this.sig = signal;
    this.levels = { resource: [], scope: [], item: [] };
    this.dropped = new Set();
  }
  resource(attrs = {}) {
    this.levels.resource.push({ owner: 0, attrs: { ...attrs } });
    this.levels.scope.push({ owner: this.levels.resource.length - 1, attrs: {} });
    return this.levels.resource.length - 1;
  }
  span(resource, name, attrs = {}) {
    const scope = this.levels.scope.findLastIndex((s) => s.owner === resource);
    this.levels.item.push({ owner: scope, attrs: { ...attrs }, name });
    return this.levels.item.length - 1;
  }
  signal() { return this.sig; }
  len() { return this.levels.item.length; }
  count(level) { return (this.levels[level] || []).length; }
  ancestors(level, of) {
    const parent = { scope: "resource", item: "scope" };
    let idx = this.levels[level].map((_, i) => i);
    for (let cur = level; parent[cur]; cur = parent[cur]) {
      idx = idx.map((i) => this.levels[cur][i].owner);
      if (parent[cur] === of) return idx;
    }
    return [];
  }
  readField(level, field) {
    return column((this.levels[level] || []).map((n) => (field === "name" ? n.name || "" : "")));
  }
  readAttribute(level, key) { return column((this.levels[level] || []).map((n) => tagged(n.attrs[key]))); }
  value(level, i, key, inherited) {
    let v = this.levels[level][i].attrs[key];
    if (inherited) {
      for (const up of ["scope", "resource"]) {
        const anc = this.ancestors(level, up);
        if ((v === undefined || v === null) && anc.length) v = this.levels[up][anc[i]].attrs[key];
      }
    }
    return v === undefined ? null : v;
  }
  readAttributeInherited(level, key) {
    return column(this.levels[level].map((_, i) => tagged(this.value(level, i, key, true))));
  }
  matchField(level, field, m) {
    return this.levels[level].flatMap((n, i) => (hits(m, field === "name" ? n.name : null) ? [i] : []));
  }
  matchAttribute(level, key, m, inherited) {
    return this.levels[level].flatMap((_, i) => {
      const v = this.value(level, i, key, inherited);
      return hits(m, v === null ? null : String(v)) ? [i] : [];
    });
  }
  apply(edits) {
    edits.forEach((e, i) => {
      const { level } = e.val;
      const ents = e.tag === "attribute-many" ? e.val.entities : [e.val.entity];
      if (ents.some((x) => x >= this.count(level))) throw { payload: { edit: i, message: `${level} entity out of range` } };
      if (e.tag === "field" && (e.val.field !== "name" || e.val.value.tag !== "str")) {
        throw { payload: { edit: i, message: `field ${e.val.field} cannot take a ${e.val.value.tag}` } };
      }
    });
    for (const e of edits) {
      const ents = e.tag === "attribute-many" ? e.val.entities : [e.val.entity];
      for (const x of ents) {
        const node = this.levels[e.val.level][x];
        if (e.tag === "field") node.name = e.val.value.val;
        else if (e.val.value === undefined) delete node.attrs[e.val.key];
        else node.attrs[e.val.key] = e.val.value.val;
      }
    }
  }
  dropItems(items) { items.forEach((i) => this.dropped.add(i)); }
  routeItems() {}
}

// Loads a plugin source the way build.mjs assembles it, and returns its exports.
export async function loadPlugin(appPath) {
  const sdk = await readFile(join(here, "weir-plugin.js"), "utf8");
  const dir = await mkdtemp(join(tmpdir(), "weir-js-plugin-"));
  const file = join(dir, "plugin.mjs");
  await writeFile(file, `${sdk}\n${await readFile(appPath, "utf8")}\nexport { wp };\n`);
  return import(pathToFileURL(file).href);
}
