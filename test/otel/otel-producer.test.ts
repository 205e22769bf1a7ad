/**
 * ws-apm's OpenTelemetry MetricProducer in process, with the real SDK (sdk-metrics 2.x):
 * - what it hands a reader equals what the SDK's own per-record histograms make of the same
 *   values (every series: count, sum, min, max, buckets, boundaries), cumulative and delta;
 * - `metricProducer()` for the app's SDK: handed out before ws-apm starts, histograms go
 *   through it only (nothing recorded through the API); handed out later, it reports
 *   nothing and says why (the API path keeps every value, nothing counted twice);
 * - the app's SDK without it: ws-apm puts the producer on its readers (cumulative or delta,
 *   as each reader prefers) and takes it off at uninstrument, unless views or a histogram
 *   aggregation of the app's own mean the values must go through the API.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, afterEach, test } from 'node:test';
import { metrics } from '@opentelemetry/api';
import {
  AggregationTemporality, AggregationType, type DataPoint, type Histogram, MeterProvider, MetricReader, type MetricProducer, type ResourceMetrics,
  type ViewOptions,
} from '@opentelemetry/sdk-metrics';
import { HistogramProducer } from '../../src/adapters/otel/producer';
import { getInstrumentation, instrument, metricProducer } from '../../src/index';
import { METRIC_INFO } from '../../src/semconv';
import type { HistogramCell, HistogramForward } from '../../src/tracer/histograms';
import { Metrics } from '../../src/tracer/metrics';
import { closed, connect, nextConnection, startServer } from '../helpers/ws';

const ws = require('ws') as typeof import('ws');

class Reader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

interface Series {
  readonly temporality: AggregationTemporality;
  readonly count: number;
  readonly sum: number | undefined;
  readonly min: number | undefined;
  readonly max: number | undefined;
  readonly counts: number[];
  readonly boundaries: number[];
  readonly unit: string;
}

/** Histogram series of one scope: `name {attributes}` → values. */
function series(result: ResourceMetrics, scope: string): Map<string, Series> {
  const out = new Map<string, Series>();
  for (const sm of result.scopeMetrics.filter((s) => s.scope.name === scope)) {
    for (const m of sm.metrics) {
      for (const p of m.dataPoints as DataPoint<Histogram | number>[]) {
        if (typeof p.value === 'number') continue;
        const key = `${m.descriptor.name} ${JSON.stringify(Object.entries(p.attributes).sort())}`;
        assert.ok(!out.has(key), `${key} twice`);
        const v = p.value;
        out.set(key, {
          temporality: m.aggregationTemporality, count: v.count, sum: v.sum, min: v.min, max: v.max,
          counts: [...v.buckets.counts], boundaries: [...v.buckets.boundaries], unit: m.descriptor.unit,
        });
      }
    }
  }
  return out;
}

/** Equal series; sums bit for bit, or within floating-point rounding. */
function assertSameSeries(produced: Map<string, Series>, expected: Map<string, Series>, sums: 'exact' | 'rounded', message: string): void {
  if (sums === 'rounded') {
    const copy = new Map(produced);
    for (const [key, s] of copy) {
      const e = expected.get(key);
      assert.ok(e !== undefined && Math.abs(s.sum! - e.sum!) <= 1e-12 * Math.max(1, Math.abs(e.sum!)), `${message}, ${key}: ${s.sum} vs ${e?.sum}`);
      copy.set(key, { ...s, sum: e.sum });
    }
    produced = copy;
  }
  assert.deepEqual(produced, expected, message);
}

/** A deterministic stream of pseudo-random values, spread over every bucket of both units. */
function* values(seed: number, n: number): Generator<number> {
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const r = seed / 2147483648;
    yield i % 7 === 0 ? Math.round(r * 40000) : r ** 3 * 20;
  }
}

/** Feed every kind of cell (sizes, latencies by route and name, lifetimes by close class, heartbeats). */
function feed(m: Metrics, seed: number, n: number): void {
  const routes = [m.forRoute('/a', 'server'), m.forRoute('/b', 'server'), m.forRoute('/a', 'client')];
  let i = 0;
  for (const v of values(seed, n)) {
    const r = routes[Math.floor(i / 6) % routes.length];
    switch (i++ % 6) {
      case 0: r.sizeIn.record(v); break;
      case 1: r.sizeOut.record(v); break;
      case 2: r.process(undefined).record(v); break;
      case 3: r.process(i % 4 === 0 ? 'join' : 'leave').record(v); break;
      case 4: r.duration(Math.floor(i / 18) % 2 === 0 ? 1000 : 4001).record(v); break;
      default: r.heartbeat.record(v);
    }
  }
}

/** SDK histograms (scope `per-record`) with ws-apm's names, units and boundaries, as its API path creates them; each cell forwards every value to one. */
function perRecord(m: Metrics, provider: MeterProvider): (cell: HistogramCell) => HistogramForward | undefined {
  const meter = provider.getMeter('per-record');
  const sdk = new Map(m.histogramNames.map((name) => [
    name, meter.createHistogram(name, { unit: METRIC_INFO[name].unit, advice: { explicitBucketBoundaries: [...METRIC_INFO[name].buckets!] } }),
  ]));
  return (cell) => sdk.get(cell.name);
}

test('the producer reports exactly what per-record SDK histograms make of the same values (cumulative)', async () => {
  const m = new Metrics();
  const reader = new Reader({ metricProducers: [new HistogramProducer(() => m) as unknown as MetricProducer] });
  const provider = new MeterProvider({ readers: [reader] });
  m.forwardHistograms(perRecord(m, provider));
  feed(m, 7, 6000);
  const first = await reader.collect();
  const expected = series(first.resourceMetrics, 'per-record');
  const produced = series(first.resourceMetrics, 'ws-apm');
  assert.equal(expected.size, 17, 'every kind of series');
  assertSameSeries(produced, expected, 'exact', 'first collection');
  // A second collection after more values: the SDK's cumulative sum is now its previous sum
  // plus the new values' own sum, the cell's a running sum: equal up to rounding.
  feed(m, 11, 3000);
  const second = await reader.collect();
  assertSameSeries(series(second.resourceMetrics, 'ws-apm'), series(second.resourceMetrics, 'per-record'), 'rounded', 'second collection');
  await provider.shutdown();
});

test('delta: each collection reports what was recorded since the last one, per-record SDK alike', async () => {
  const m = new Metrics();
  const delta = () => AggregationTemporality.DELTA;
  const reader = new Reader({ aggregationTemporalitySelector: delta, metricProducers: [new HistogramProducer(() => m, 'delta') as unknown as MetricProducer] });
  const provider = new MeterProvider({ readers: [reader] });
  m.forwardHistograms(perRecord(m, provider));
  for (const [seed, n] of [[3, 4000], [5, 600], [9, 0], [13, 2500]]) {
    feed(m, seed, n);
    const { resourceMetrics } = await reader.collect();
    const produced = series(resourceMetrics, 'ws-apm');
    const expected = series(resourceMetrics, 'per-record');
    // The SDK reports a series with no new values as an empty point; the producer leaves it out.
    for (const [key, s] of expected) if (s.count === 0) expected.delete(key);
    // A delta sum is the difference of two cumulative sums: equal to the interval's own sum
    // up to floating-point rounding (the SDK adds the interval's values afresh).
    assertSameSeries(produced, expected, 'rounded', `after ${n} more values`);
    for (const s of produced.values()) assert.equal(s.temporality, AggregationTemporality.DELTA);
  }
  await provider.shutdown();
});

// ---------------------------------------------------------------- metricProducer() for the app's SDK

async function traffic(route: string, messages: string[]): Promise<void> {
  const server = await startServer(ws);
  const accepted = nextConnection(server);
  const client = await connect(ws, `${server.url}${route}`);
  const socket = await accepted;
  socket.on('message', (data) => socket.send(`echo ${data}`));
  for (const text of messages) {
    client.send(text);
    await once(client, 'message');
  }
  client.close(1000);
  await closed(socket);
  await server.close();
}

function appSdk(
  producers: unknown[],
  options: { views?: ViewOptions[]; reader?: ConstructorParameters<typeof Reader>[0] } = {},
): { reader: Reader; provider: MeterProvider } {
  metrics.disable();
  // As in a fresh process: no producer handed out by an earlier test (the hub is process-wide, producer.ts).
  delete (globalThis as Record<symbol, unknown>)[Symbol.for('ws-apm.otel-metric-producer')];
  const reader = new Reader({ ...options.reader, metricProducers: producers as MetricProducer[] });
  const provider = new MeterProvider({ readers: [reader], views: options.views });
  metrics.setGlobalMeterProvider(provider);
  return { reader, provider };
}

/** `metricProducer()` called now: the producer, after asserting the one warning it gave says `how` histograms already go. */
function lateProducer(how: RegExp): ReturnType<typeof metricProducer> {
  const warnings: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => (warnings.push(String(chunk)), true)) as typeof process.stderr.write;
  let late: ReturnType<typeof metricProducer>;
  try {
    late = metricProducer();
  } finally {
    process.stderr.write = write;
  }
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /metricProducer\(\) was called after ws-apm began reporting histograms/);
  assert.match(warnings[0], how);
  return late;
}

/** How many `websocket.message.size` metrics ws-apm's scopes hold in `result` (the producer's, the API's, or both). */
function sizeMetrics(result: ResourceMetrics): number {
  return result.scopeMetrics.filter((s) => s.scope.name === 'ws-apm').flatMap((s) => s.metrics).filter((m) => m.descriptor.name === 'websocket.message.size').length;
}

/** The producers on an app's reader besides the SDK's own (its `metricProducers`, and any ws-apm put there). */
function producersOn(reader: Reader): unknown[] {
  return (reader as unknown as { _metricProducers: unknown[] })._metricProducers;
}

/**
 * The histograms of `traffic(route, ['a', 'bb', 'x' × 100])` in `result`, exact, and from ws-apm's
 * producer only (nothing recorded through the API as well).
 */
function assertThroughProducerOnly(result: ResourceMetrics, route: string): void {
  assert.equal(sizeMetrics(result), 1, 'the producer\'s only: nothing recorded through the API');
  // Both ends are in this process: in and out are each the server's 1, 2, 100 and the client's 6, 7, 105 bytes.
  const h = series(result, 'ws-apm');
  const sizes = {
    temporality: AggregationTemporality.CUMULATIVE, count: 6, sum: 221, min: 1, max: 105,
    counts: [4, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0], boundaries: [16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216], unit: 'By',
  };
  assert.deepEqual(h.get('websocket.message.size [["websocket.direction","in"]]'), sizes);
  assert.deepEqual(h.get('websocket.message.size [["websocket.direction","out"]]'), sizes);
  assert.equal(h.get(`websocket.message.process.duration [["websocket.route","${route}"]]`)?.count, 6);
}

afterEach(async () => {
  await getInstrumentation()?.uninstrument();
});

after(() => {
  metrics.disable();
});

/** A view of the app's own metrics: ws-apm must not bypass the app's views, so it records through the API. */
const APP_VIEW: ViewOptions = { instrumentName: 'app.requests', name: 'app.requests.renamed' };

test('metricProducer() handed out after ws-apm chose the API path reports nothing, with one warning', async () => {
  const { reader, provider } = appSdk([], { views: [APP_VIEW] });
  instrument({ backend: 'otel', startSdk: false, flushOnExit: false, logLevel: 'warn', ws });
  await new Promise(setImmediate); // the adapter bootstraps once the main module has run (src/adapters/otel/index.ts)
  const late = lateProducer(/through the OpenTelemetry API/);
  await traffic('/late', ['a', 'bb']);
  assert.deepEqual((await late.collect()).resourceMetrics.scopeMetrics, []);
  // In: the server's 'a', 'bb' and the (instrumented, in-process) client's 'echo a', 'echo bb'.
  const viaApi = series((await reader.collect()).resourceMetrics, 'ws-apm');
  assert.equal(viaApi.get('websocket.message.size [["websocket.direction","in"]]')?.count, 4);
  assert.equal(viaApi.get('websocket.message.size [["websocket.direction","in"]]')?.sum, 1 + 2 + 6 + 7);
  await provider.shutdown();
});

test('metricProducer() handed out at start-up: histograms go through it only, exactly', async () => {
  const { reader, provider } = appSdk([metricProducer()]);
  instrument({ backend: 'otel', startSdk: false, flushOnExit: false, logLevel: 'silent', ws });
  await traffic('/app', ['a', 'bb', 'x'.repeat(100)]);
  const result = (await reader.collect()).resourceMetrics;
  // One ws-apm scope from the SDK's meter (counters only) and one from the producer (histograms).
  const scopes = result.scopeMetrics.filter((s) => s.scope.name === 'ws-apm');
  assert.equal(scopes.length, 2);
  assertThroughProducerOnly(result, '/app');
  await provider.shutdown();
});

// ---------------------------------------------------------------- the app's SDK without metricProducer()

test('an app SDK without metricProducer(): ws-apm puts its producer on the reader, exact, nothing through the API; off again at uninstrument', async () => {
  const { reader, provider } = appSdk([]);
  instrument({ backend: 'otel', startSdk: false, flushOnExit: false, logLevel: 'warn', ws });
  await traffic('/attached', ['a', 'bb', 'x'.repeat(100)]);
  const result = (await reader.collect()).resourceMetrics;
  assertThroughProducerOnly(result, '/attached');

  // A producer handed out now would double every value: it reports nothing, and says so.
  const late = lateProducer(/through the producer it put on the app's metric readers/);
  assert.deepEqual((await late.collect()).resourceMetrics.scopeMetrics, []);

  await getInstrumentation()?.uninstrument();
  assert.equal(producersOn(reader).length, 0, 'the app\'s reader is as the app made it');
  assert.equal(series((await reader.collect()).resourceMetrics, 'ws-apm').size, 0);
  await provider.shutdown();
});

test('an app SDK whose reader prefers delta: the producer it gets reports deltas', async () => {
  const { reader, provider } = appSdk([], { reader: { aggregationTemporalitySelector: () => AggregationTemporality.DELTA } });
  instrument({ backend: 'otel', startSdk: false, flushOnExit: false, logLevel: 'silent', ws });
  await traffic('/delta', ['a', 'bb']);
  const first = series((await reader.collect()).resourceMetrics, 'ws-apm').get('websocket.message.size [["websocket.direction","in"]]');
  assert.equal(first?.temporality, AggregationTemporality.DELTA);
  assert.equal(first?.count, 4);
  await traffic('/delta', ['ccc']);
  const second = series((await reader.collect()).resourceMetrics, 'ws-apm').get('websocket.message.size [["websocket.direction","in"]]');
  assert.deepEqual([second?.count, second?.sum], [2, 3 + 8], 'only what came since the last collection');
  await provider.shutdown();
});

test('an app SDK with views, or its own histogram aggregation: ws-apm leaves its readers alone and records through the API', async () => {
  for (const options of [{ views: [APP_VIEW] }, { reader: { aggregationSelector: () => ({ type: AggregationType.EXPONENTIAL_HISTOGRAM }) } }]) {
    const { reader, provider } = appSdk([], options);
    instrument({ backend: 'otel', startSdk: false, flushOnExit: false, logLevel: 'silent', ws });
    await traffic('/api', ['a', 'bb']);
    assert.equal(producersOn(reader).length, 0);
    assert.equal(sizeMetrics((await reader.collect()).resourceMetrics), 1, `the API's only: ${JSON.stringify(options)}`);
    await getInstrumentation()?.uninstrument();
    await provider.shutdown();
  }
});
