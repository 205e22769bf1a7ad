/**
 * ws-apm's histograms through OpenTelemetry, end to end: unchanged apps in child processes
 * export OTLP/HTTP JSON to a local receiver, and the exported `websocket.message.size`,
 * `websocket.message.process.duration` and `websocket.connection.duration` histograms hold
 * exactly what the traffic makes (counts, sums, min/max and bucket counts computed from the
 * known message sizes), with one data point per series whichever way they travel:
 * - the SDK ws-apm starts itself (its readers collect ws-apm's MetricProducer), cumulative and delta;
 * - the app's SDK with `metricProducer()` passed to its reader (SDK 2.x, and 3.x on Node >= 22.15);
 * - the app's SDK without it: ws-apm puts the producer on its readers itself (2.x and 3.x);
 * - the app's SDK without it and with views: each value recorded through the OpenTelemetry API.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { METRIC_INFO } from '../../src/semconv';
import { run } from '../helpers/child';
import { OtlpReceiver, otlpEnv, type ReceivedHistogram, type ReceivedPoint } from '../helpers/otlp-receiver';
import { missingInstall, requireOrSkip } from '../helpers/requirements';

const SIZES = [1, 16, 17, 64, 300, 5000]; // around the size boundaries 16, 64, 256, 1024, 4096
const MESSAGES = SIZES.map((n) => 'a'.repeat(n));
const ECHOED = SIZES.map((n) => n + 'echo '.length); // the fixture server answers `echo ${text}`
const SIZE = 'websocket.message.size';
const PROCESS = 'websocket.message.process.duration';
const CONNECTION = 'websocket.connection.duration';
const CUMULATIVE = 2;
const DELTA = 1;

let receiver: OtlpReceiver;

before(async () => {
  receiver = await new OtlpReceiver().start();
});

after(async () => {
  await receiver.stop();
});

/** What a per-record SDK histogram makes of `values` with `name`'s boundaries (bucket i: (b[i-1], b[i]]). */
function expected(name: string, values: number[]): Omit<ReceivedHistogram, 'temporality'> {
  const bounds = [...METRIC_INFO[name].buckets!];
  const bucketCounts = new Array<number>(bounds.length + 1).fill(0);
  for (const v of values) {
    let i = 0;
    while (i < bounds.length && v > bounds[i]) i++;
    bucketCounts[i]++;
  }
  return {
    count: values.length,
    sum: values.reduce((a, b) => a + b, 0),
    min: Math.min(...values),
    max: Math.max(...values),
    bucketCounts,
    explicitBounds: bounds,
  };
}

type Path = 'producer' | 'api';
const PATH_LINE: Record<Path, RegExp> = {
  producer: /\[ws-apm\] debug: otel: histograms are collected through ws-apm's metric producer/,
  api: /\[ws-apm\] debug: otel: histograms are recorded through the OpenTelemetry API/,
};

/** Serve MESSAGES once on `route` from a server started with `args` and `env`, its histograms going `via`; resolve when it exited. */
async function traffic(args: string[], env: Record<string, string>, route: string, via: Path): Promise<void> {
  const server = run(args, { FIXTURE_ONCE: '1', OTEL_METRIC_EXPORT_INTERVAL: '60000', WS_APM_LOG_LEVEL: 'debug', ...env });
  const [, port] = await server.line(/^PORT (\d+)/);
  const client = run(['client.js', `ws://127.0.0.1:${port}${route}`], { MESSAGES: MESSAGES.join(',') });
  assert.equal((await client.exited()).code, 0);
  assert.deepEqual(await server.exited(), { code: 0, signal: null }, server.stderr());
  assert.doesNotMatch(server.stderr(), /\[ws-apm\] (warn|error)/, server.stderr());
  assert.match(server.stderr(), PATH_LINE[via]);
  assert.doesNotMatch(server.stderr(), PATH_LINE[via === 'api' ? 'producer' : 'api']);
}

function histogramPoints(service: string): ReceivedPoint[] {
  return receiver.points.filter((p) => p.service === service && p.histogram !== undefined);
}

/** No series is reported twice in one export (the producer and the API never both). */
function assertOnePointPerSeries(service: string): void {
  const seen = new Set<string>();
  for (const p of histogramPoints(service)) {
    const key = `${p.batch} ${p.name} ${JSON.stringify(Object.entries(p.attributes).sort())}`;
    assert.ok(!seen.has(key), `${key} reported twice in one export`);
    seen.add(key);
  }
}

/** The cumulative point of (name, attributes) in the last export that has it. */
function last(service: string, name: string, attributes: Record<string, unknown>): ReceivedPoint {
  const points = histogramPoints(service).filter(
    (p) => p.name === name && JSON.stringify(Object.entries(p.attributes).sort()) === JSON.stringify(Object.entries(attributes).sort()),
  );
  assert.ok(points.length > 0, `${name} ${JSON.stringify(attributes)} exported: ${JSON.stringify(histogramPoints(service).map((p) => [p.name, p.attributes]))}`);
  return points[points.length - 1];
}

function withoutTemporality(h: ReceivedHistogram): Omit<ReceivedHistogram, 'temporality'> {
  const { temporality: _t, ...rest } = h;
  return rest;
}

/** Everything the traffic of `traffic()` must have produced, cumulative. */
function assertTrafficHistograms(service: string, route: string): void {
  assertOnePointPerSeries(service);
  const sizeIn = last(service, SIZE, { 'websocket.direction': 'in' });
  const sizeOut = last(service, SIZE, { 'websocket.direction': 'out' });
  assert.deepEqual(withoutTemporality(sizeIn.histogram!), expected(SIZE, SIZES));
  assert.deepEqual(withoutTemporality(sizeOut.histogram!), expected(SIZE, ECHOED));
  for (const p of [sizeIn, sizeOut]) {
    assert.equal(p.histogram!.temporality, CUMULATIVE);
    assert.equal(p.scope, 'ws-apm');
    assert.equal(p.unit, 'By');
  }

  const processed = last(service, PROCESS, { 'websocket.route': route }).histogram!;
  assert.equal(processed.count, SIZES.length);
  assert.deepEqual(processed.explicitBounds, METRIC_INFO[PROCESS].buckets);
  assert.equal(processed.bucketCounts.reduce((a, b) => a + b, 0), SIZES.length);
  assert.ok(processed.sum > 0 && processed.sum < 5, `${processed.sum} s for ${SIZES.length} echo handlers`);
  assert.ok(processed.min! >= 0 && processed.min! <= processed.max! && processed.max! <= processed.sum);

  const lifetime = last(service, CONNECTION, { 'websocket.route': route, 'websocket.side': 'server', 'websocket.close.code_class': '1000' });
  assert.equal(lifetime.histogram!.count, 1);
  assert.equal(lifetime.unit, 's');
  assert.deepEqual(lifetime.histogram!.explicitBounds, METRIC_INFO[CONNECTION].buckets);
}

describe('histograms through the SDK ws-apm starts itself', () => {
  test('cumulative (the default): exact counts, sums and buckets, one point per series', async () => {
    await traffic(['-r', 'ws-apm/register', 'server.js'], otlpEnv(receiver.url, 'own-sdk'), '/own', 'producer');
    assertTrafficHistograms('own-sdk', '/own');
    // Counters still arrive as before.
    assert.equal(receiver.lastPoint('own-sdk', 'websocket.messages', { 'websocket.direction': 'in', 'websocket.side': 'server', 'websocket.message.type': 'text' }), SIZES.length);
  });

  test('delta, when the exporter prefers it: the points of all exports add up to the traffic', async () => {
    const env = otlpEnv(receiver.url, 'own-sdk-delta', { OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'delta' });
    await traffic(['-r', 'ws-apm/register', 'server.js'], env, '/delta', 'producer');
    assertOnePointPerSeries('own-sdk-delta');
    const sizes = histogramPoints('own-sdk-delta').filter((p) => p.name === SIZE && p.attributes['websocket.direction'] === 'in');
    assert.ok(sizes.length >= 1);
    for (const p of sizes) assert.equal(p.histogram!.temporality, DELTA);
    const total = {
      count: sizes.reduce((a, p) => a + p.histogram!.count, 0),
      sum: sizes.reduce((a, p) => a + p.histogram!.sum, 0),
      min: Math.min(...sizes.map((p) => p.histogram!.min!)),
      max: Math.max(...sizes.map((p) => p.histogram!.max!)),
      bucketCounts: sizes.map((p) => p.histogram!.bucketCounts).reduce((a, b) => a.map((x, i) => x + b[i])),
      explicitBounds: sizes[0].histogram!.explicitBounds,
    };
    assert.deepEqual(total, expected(SIZE, SIZES));
  });
});

describe('histograms through the app\'s own SDK', () => {
  test('with metricProducer() passed to its reader: exact, one point per series', async () => {
    await traffic(['-r', './tracing-producer.js', '-r', 'ws-apm/register', 'server.js'], otlpEnv(receiver.url, 'app-producer'), '/app', 'producer');
    assertTrafficHistograms('app-producer', '/app');
  });

  test('without it: ws-apm puts its producer on the app\'s reader, the same values', async () => {
    const env = otlpEnv(receiver.url, 'app-readers', { OTEL_METRICS_EXPORTER: 'otlp' });
    await traffic(['-r', './tracing.js', '-r', 'ws-apm/register', 'server.js'], env, '/readers', 'producer');
    assertTrafficHistograms('app-readers', '/readers');
  });

  test('without it, and with views of its own: recorded through the API, the same values', async () => {
    const env = otlpEnv(receiver.url, 'app-api', { OTEL_METRICS_EXPORTER: 'otlp' });
    await traffic(['-r', './tracing-views.js', '-r', 'ws-apm/register', 'server.js'], env, '/api', 'api');
    assertTrafficHistograms('app-api', '/api');
  });

  const [major, minor] = process.versions.node.split('.').map(Number);
  const supported = major > 22 || (major === 22 && minor >= 15);
  const sdk3 = path.join(__dirname, '..', 'matrix', 'otel-sdk-3');
  // SDK 3 needs Node >= 22.15; on such a Node it needs its own install (.ci/run makes it): skipped without it, required in CI.
  test('SDK 3.x (sdk-node 0.301) with metricProducer(): exact, one point per series', { skip: !supported && `SDK 3 needs Node >= 22.15, this is ${process.version}` }, async (t) => {
    if (requireOrSkip(t, missingInstall(sdk3, '@opentelemetry/sdk-node', 'npm ci --prefix test/matrix/otel-sdk-3 (.ci/run installs it)'))) return;
    await traffic(['-r', '../../matrix/otel-sdk-3/tracing-producer.js', '-r', 'ws-apm/register', 'server.js'], otlpEnv(receiver.url, 'sdk3-producer'), '/v3', 'producer');
    assertTrafficHistograms('sdk3-producer', '/v3');
  });

  test('SDK 3.x (sdk-node 0.301) without metricProducer(): ws-apm puts its producer on the app\'s reader, exact', { skip: !supported && `SDK 3 needs Node >= 22.15, this is ${process.version}` }, async (t) => {
    if (requireOrSkip(t, missingInstall(sdk3, '@opentelemetry/sdk-node', 'npm ci --prefix test/matrix/otel-sdk-3 (.ci/run installs it)'))) return;
    const env = otlpEnv(receiver.url, 'sdk3-readers', { OTEL_METRICS_EXPORTER: 'otlp' });
    await traffic(['-r', '../../matrix/otel-sdk-3/tracing.js', '-r', 'ws-apm/register', 'server.js'], env, '/v3r', 'producer');
    assertTrafficHistograms('sdk3-readers', '/v3r');
  });
});
