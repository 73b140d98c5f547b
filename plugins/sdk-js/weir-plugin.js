// weir plugin SDK for JavaScript (componentize-js), on weir:plugin@0.2.0.
//
// componentize-js takes one module, so `build.mjs` puts this file in front of
// the plugin's own source: the plugin uses the `wp` object defined here and
// ends with `export const { init, processTraces, processLogs, processMetrics } =
// wp.exportPlugin(new MyPlugin());`. Types for editors: weir-plugin.d.ts.
//
// Reads go to the host in bulk (one call per column) and matching runs on the
// host (selectField, selectAttribute). Edits are queued and handed over once,
// after process() returns: all of them apply, or none.
const wp = (() => {
  const TEXT = new Set(["name", "status-message", "trace-state", "severity-text", "event-name", "unit", "description"]);
  const IDS = new Set(["trace-id", "span-id", "parent-span-id"]);
  const I32 = new Set(["kind", "status-code", "severity-number"]);
  const utf8 = new TextDecoder();

  class PluginError extends Error {}
  class ConfigError extends Error {}

  function entry(col, i) {
    return col.data.subarray(col.offsets[i], col.offsets[i + 1]);
  }
  function count(col) {
    return col.offsets.length - 1;
  }

  // The contract's tagged values: 0 absent, 1 string, 2 int, 3 double, 4 bool, 5 bytes, 6 JSON.
  function decodeValue(b) {
    if (b.length === 0 || b[0] === 0) return null;
    const rest = b.subarray(1);
    const view = new DataView(rest.buffer, rest.byteOffset, rest.byteLength);
    switch (b[0]) {
      case 1: return utf8.decode(rest);
      case 2: return view.getBigInt64(0, true);
      case 3: return view.getFloat64(0, true);
      case 4: return rest[0] === 1;
      case 5: return rest.slice();
      case 6: return JSON.parse(utf8.decode(rest));
      default: return null;
    }
  }

  function decodeField(field, b) {
    if (field === "body") return decodeValue(b);
    if (TEXT.has(field)) return utf8.decode(b);
    if (IDS.has(field)) return b.length ? b.slice() : null;
    if (b.length === 0) return null;
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    if (I32.has(field)) return view.getInt32(0, true);
    return b.length === 4 ? view.getUint32(0, true) : view.getBigUint64(0, true);
  }

  function encodeValue(v) {
    if (v === null || v === undefined) return undefined;
    switch (typeof v) {
      case "string": return { tag: "str", val: v };
      case "boolean": return { tag: "boolean", val: v };
      case "bigint": return { tag: "int", val: v };
      case "number": return Number.isInteger(v) ? { tag: "int", val: BigInt(v) } : { tag: "double", val: v };
      default:
        if (v instanceof Uint8Array) return { tag: "bytes", val: v };
        return { tag: "json", val: JSON.stringify(v) };
    }
  }

  function matcher({ anyOf, glob, present } = {}) {
    const given = [anyOf, glob, present].filter((x) => x !== undefined);
    if (given.length !== 1) throw new TypeError("give exactly one of anyOf, glob or present");
    if (anyOf !== undefined) return { tag: "any-of", val: [...anyOf] };
    if (glob !== undefined) return { tag: "glob", val: [...glob] };
    return { tag: present ? "present" : "absent" };
  }

  class Batch {
    constructor(host) {
      this.host = host;
      this.edits = [];
      this.drops = [];
      this.routes = [];
    }
    get signal() { return this.host.signal(); }
    get length() { return this.host.len(); }
    count(level) { return this.host.count(level); }
    ancestors(level, of) { return [...this.host.ancestors(level, of)]; }
    field(field, level = "item") {
      const col = this.host.readField(level, field);
      return Array.from({ length: count(col) }, (_, i) => decodeField(field, entry(col, i)));
    }
    attribute(key, { level = "item", inherited = false } = {}) {
      const col = inherited ? this.host.readAttributeInherited(level, key) : this.host.readAttribute(level, key);
      return Array.from({ length: count(col) }, (_, i) => decodeValue(entry(col, i)));
    }
    selectField(field, how, level = "item") { return [...this.host.matchField(level, field, matcher(how))]; }
    selectAttribute(key, how, { level = "item", inherited = false } = {}) {
      return [...this.host.matchAttribute(level, key, matcher(how), inherited)];
    }
    setAttribute(level, entities, key, value) {
      const v = encodeValue(value);
      if (typeof entities === "number") {
        this.edits.push({ tag: "attribute", val: { level, entity: entities, key, value: v } });
      } else if (entities.length) {
        this.edits.push({ tag: "attribute-many", val: { level, entities: [...entities], key, value: v } });
      }
    }
    removeAttribute(level, entities, key) { this.setAttribute(level, entities, key, null); }
    setField(field, entity, value, level = "item") {
      this.edits.push({ tag: "field", val: { level, entity, field, value: encodeValue(value) } });
    }
    drop(items) { this.drops.push(...items); }
    route(name, items) { if (items.length) this.routes.push([name, [...items]]); }
    flush() {
      const call = (f) => {
        try { f(); } catch (e) { throw new PluginError(describe(e)); }
      };
      if (this.edits.length) call(() => this.host.apply(this.edits));
      if (this.drops.length) call(() => this.host.dropItems(this.drops));
      for (const [name, items] of this.routes) call(() => this.host.routeItems(name, items));
    }
  }

  function describe(e) {
    const p = e && e.payload !== undefined ? e.payload : e;
    if (p && typeof p === "object" && "edit" in p) return `edit ${p.edit}: ${p.message}`;
    if (p && typeof p === "object" && "message" in p) return String(p.message);
    return String(p);
  }

  // The plugin's config checked against `defaults`: known keys, same types. Errors name the key.
  function parseConfig(config, defaults) {
    const given = typeof config === "string" ? JSON.parse(config || "{}") : config;
    const out = { ...defaults };
    for (const [k, v] of Object.entries(given || {})) {
      if (!(k in defaults)) throw new ConfigError(`${k}: unknown key; expected one of ${Object.keys(defaults).sort().join(", ")}`);
      const want = Array.isArray(defaults[k]) ? "array" : typeof defaults[k];
      const got = Array.isArray(v) ? "array" : typeof v;
      if (want !== got) throw new ConfigError(`${k}: expected ${want}, got ${got} ${JSON.stringify(v)}`);
      out[k] = v;
    }
    return out;
  }

  function run(plugin, host, signal) {
    const batch = new Batch(host);
    const f = { traces: plugin.processTraces, logs: plugin.processLogs, metrics: plugin.processMetrics }[signal] || plugin.process;
    f.call(plugin, batch);
    batch.flush();
  }

  // The component's exports for one plugin object (with init(config) and process(batch)).
  function exportPlugin(plugin) {
    const failure = (e) => ({ message: e instanceof Error ? `${e.message}${e instanceof PluginError ? "" : `\n${e.stack || ""}`}` : String(e) });
    const processWith = (signal) => (batch, _ctx) => {
      try { run(plugin, batch, signal); } catch (e) { throw failure(e); }
    };
    return {
      init(config) {
        try { if (plugin.init) plugin.init(JSON.parse(config || "{}")); } catch (e) { throw e instanceof Error ? e.message : String(e); }
      },
      processTraces: processWith("traces"),
      processLogs: processWith("logs"),
      processMetrics: processWith("metrics"),
    };
  }

  return { Batch, PluginError, ConfigError, parseConfig, exportPlugin, run, decodeValue, encodeValue };
})();
