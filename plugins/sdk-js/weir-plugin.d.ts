// TypeScript types of the weir plugin SDK for JavaScript (weir-plugin.js).
// The `wp` object is defined by the SDK, which the build puts in front of the
// plugin's module; reference this file from a TypeScript plugin:
//   /// <reference path="path/to/plugins/sdk-js/weir-plugin.d.ts" />
// and compile to one ES module before `node build.mjs`.

type Level = "resource" | "scope" | "item" | "event" | "link" | "metric" | "exemplar";
type Field =
  | "name" | "trace-id" | "span-id" | "parent-span-id" | "kind" | "status-code" | "status-message"
  | "start-time" | "end-time" | "trace-state" | "flags" | "body" | "severity-text" | "severity-number"
  | "time" | "observed-time" | "event-name" | "unit" | "description";
type Signal = "traces" | "logs" | "metrics";
/** What reads give back: null when absent; int64 values as bigint. */
type PluginValue = string | number | bigint | boolean | Uint8Array | null | unknown[] | { [k: string]: unknown };
/** Exactly one of these. */
type Match = { anyOf: string[] } | { glob: string[] } | { present: boolean };

interface WeirBatch {
  readonly signal: Signal;
  readonly length: number;
  count(level: Level): number;
  ancestors(level: Level, of: Level): number[];
  field(field: Field, level?: Level): PluginValue[];
  attribute(key: string, opts?: { level?: Level; inherited?: boolean }): PluginValue[];
  selectField(field: Field, how: Match, level?: Level): number[];
  selectAttribute(key: string, how: Match, opts?: { level?: Level; inherited?: boolean }): number[];
  setAttribute(level: Level, entities: number | number[], key: string, value: PluginValue): void;
  removeAttribute(level: Level, entities: number | number[], key: string): void;
  setField(field: Field, entity: number, value: PluginValue, level?: Level): void;
  drop(items: number[]): void;
  route(name: string, items: number[]): void;
}

interface WeirPlugin {
  init?(config: Record<string, unknown>): void;
  process?(batch: WeirBatch): void;
  processTraces?(batch: WeirBatch): void;
  processLogs?(batch: WeirBatch): void;
  processMetrics?(batch: WeirBatch): void;
}

declare const wp: {
  PluginError: new (message: string) => Error;
  ConfigError: new (message: string) => Error;
  parseConfig<T extends Record<string, unknown>>(config: Record<string, unknown> | string, defaults: T): T;
  exportPlugin(plugin: WeirPlugin): {
    init(config: string): void;
    processTraces(batch: unknown, ctx: unknown): void;
    processLogs(batch: unknown, ctx: unknown): void;
    processMetrics(batch: unknown, ctx: unknown): void;
  };
};
