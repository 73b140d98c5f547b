// Sends spans made by the OpenTelemetry JS SDK to an OTLP/HTTP JSON endpoint.
//
//   node send-spans.mjs URL [COUNT]
//
// URL is the full traces URL, e.g. http://127.0.0.1:4318/v1/traces. Prints one JSON
// document on stdout describing every span created (ids in lowercase hex), and exits
// non-zero if any export failed.

import { trace, context, SpanKind } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

const [url, countArg] = process.argv.slice(2);
if (!url) {
  console.error('usage: node send-spans.mjs URL [COUNT]');
  process.exit(2);
}
const count = Number(countArg ?? '10');

const resourceAttributes = {
  'service.name': 'weir-e2e-js',
  'deployment.environment': 'e2e',
  'e2e.run': process.pid,
};

// Records the outcome of every export so that a refused request fails the script.
class RecordingExporter {
  constructor(inner) {
    this.inner = inner;
    this.results = [];
  }
  export(spans, done) {
    this.inner.export(spans, (result) => {
      this.results.push({ code: result.code, error: result.error ? String(result.error) : undefined, spans: spans.length });
      done(result);
    });
  }
  shutdown() {
    return this.inner.shutdown();
  }
  forceFlush() {
    return this.inner.forceFlush ? this.inner.forceFlush() : Promise.resolve();
  }
}

const exporter = new RecordingExporter(
  new OTLPTraceExporter({ url, timeoutMillis: 10000 }),
);
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes(resourceAttributes),
  spanProcessors: [
    new BatchSpanProcessor(exporter, { maxExportBatchSize: 64, scheduledDelayMillis: 50 }),
  ],
});
const tracer = provider.getTracer('weir-e2e-js-tracer', '1.2.3');

const created = [];
function record(span, name, attributes, parentSpanId) {
  const ctx = span.spanContext();
  created.push({
    trace_id: ctx.traceId,
    span_id: ctx.spanId,
    parent_span_id: parentSpanId ?? '',
    name,
    attributes,
  });
}

const root = tracer.startSpan('js-root', { kind: SpanKind.SERVER, attributes: { 'http.route': '/checkout', 'e2e.index': -1 } });
record(root, 'js-root', { 'http.route': '/checkout', 'e2e.index': -1 });
const rootCtx = trace.setSpan(context.active(), root);
for (let i = 0; i < count - 1; i++) {
  const name = `js-child-${i}`;
  const attributes = {
    'e2e.index': i,
    'e2e.label': `label-${i}`,
    'e2e.even': i % 2 === 0,
    'e2e.ratio': i + 0.5,
  };
  const span = tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes }, rootCtx);
  record(span, name, attributes, root.spanContext().spanId);
  span.end();
}
root.end();

await provider.forceFlush();
await provider.shutdown();

const failed = exporter.results.filter((r) => r.code !== 0);
const exported = exporter.results.reduce((n, r) => n + r.spans, 0);
process.stdout.write(JSON.stringify({ resource: resourceAttributes, spans: created, exports: exporter.results }) + '\n');
if (failed.length > 0 || exported !== created.length) {
  console.error(`export failed: ${JSON.stringify(exporter.results)}; created ${created.length}`);
  process.exit(1);
}
