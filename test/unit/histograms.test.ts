/**
 * The tracer's histogram cells: buckets, count, sum, min, max and sum of squares against
 * hand-computed values (boundary values, overflow, non-finite and negative input), and
 * against what the OpenTelemetry SDK's own per-record histogram makes of the same values.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AggregationTemporality, type DataPoint, type Histogram, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { METRIC_INFO, METRIC_MESSAGE_PROCESS_DURATION, METRIC_MESSAGE_SIZE } from '../../src/semconv';
import { HistogramCell } from '../../src/tracer/histograms';
import { Metrics } from '../../src/tracer/metrics';

const SIZE_BUCKETS = METRIC_INFO[METRIC_MESSAGE_SIZE].buckets!;

test('values land in OpenTelemetry buckets: (previous, boundary], overflow above the last boundary', () => {
  const cell = new HistogramCell(METRIC_MESSAGE_SIZE, Object.freeze({ 'websocket.direction': 'in' }), SIZE_BUCKETS);
  // boundaries: 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216
  for (const v of [0, 16, 17, 64, 65, 1048576, 16777216, 16777217]) cell.record(v);
  assert.deepEqual([...cell.counts], [2, 2, 1, 0, 0, 0, 0, 0, 1, 0, 1, 1]);
  assert.equal(cell.counts.length, SIZE_BUCKETS.length + 1);
  assert.equal(cell.count, 8);
  assert.equal(cell.sum, 34603171);
  assert.equal(cell.min, 0);
  assert.equal(cell.max, 16777217);
  assert.equal(cell.sumOfSquares, 0 + 256 + 289 + 4096 + 4225 + 1048576 ** 2 + 16777216 ** 2 + 16777217 ** 2);
  assert.deepEqual(cell.boundaries, SIZE_BUCKETS);
});

test('non-finite and negative values are ignored entirely', () => {
  const cell = new HistogramCell(METRIC_MESSAGE_PROCESS_DURATION, Object.freeze({}), METRIC_INFO[METRIC_MESSAGE_PROCESS_DURATION].buckets!);
  for (const v of [NaN, Infinity, -Infinity, -0.5]) cell.record(v);
  assert.equal(cell.count, 0);
  assert.equal(cell.sum, 0);
  assert.equal(cell.sumOfSquares, 0);
  assert.equal(cell.min, Infinity);
  assert.equal(cell.max, -Infinity);
  assert.ok(cell.counts.every((c) => c === 0));
  cell.record(0.0005); // a boundary: the bucket it closes (index 1: (0.0001, 0.0005])
  cell.record(NaN);
  assert.equal(cell.count, 1);
  assert.equal(cell.counts[1], 1);
  assert.equal(cell.sum, 0.0005);
});

test('interval min/max restart at resetInterval(); the cumulative ones do not', () => {
  const cell = new HistogramCell('h', Object.freeze({}), [1, 2]);
  cell.record(5);
  cell.record(0.5);
  assert.equal(cell.intervalMin, 0.5);
  assert.equal(cell.intervalMax, 5);
  cell.resetInterval();
  assert.equal(cell.intervalMin, Infinity);
  assert.equal(cell.intervalMax, -Infinity);
  cell.record(1.5);
  assert.equal(cell.intervalMin, 1.5);
  assert.equal(cell.intervalMax, 1.5);
  assert.equal(cell.min, 0.5);
  assert.equal(cell.max, 5);
  assert.deepEqual([...cell.counts], [1, 1, 1]);
});

test('a forward gets every accepted value with the cell\'s attributes; a throwing one costs nothing', () => {
  const cell = new HistogramCell('h', Object.freeze({ a: 'x' }), [1]);
  const seen: [number, unknown][] = [];
  cell.forward = { record: (v, attrs) => seen.push([v, attrs]) };
  cell.record(2);
  cell.record(NaN);
  assert.deepEqual(seen, [[2, { a: 'x' }]]);
  assert.equal(seen[0][1], cell.attributes);
  cell.forward = {
    record: () => {
      throw new Error('sdk exploded');
    },
  };
  cell.record(3);
  assert.equal(cell.count, 2);
});

test('Metrics: equal series share a cell, every cell is listed once, forwards reach present and future cells', () => {
  const metrics = new Metrics();
  const server = metrics.forRoute('/chat', 'server');
  const client = metrics.forRoute('/chat', 'client');
  assert.equal(server.sizeIn, client.sizeIn);
  assert.equal(server.sizeIn, metrics.forRoute('/other', 'server').sizeIn);
  assert.deepEqual(server.sizeIn.attributes, { 'websocket.direction': 'in' });
  assert.deepEqual(server.sizeOut.attributes, { 'websocket.direction': 'out' });
  // Handler latency has no side attribute: one series per route and message name.
  assert.equal(server.process(undefined), client.process(undefined));
  assert.equal(server.process('join'), client.process('join'));
  assert.notEqual(server.process('join'), server.process(undefined));
  assert.deepEqual(server.process('join').attributes, { 'websocket.route': '/chat', 'websocket.message.name': 'join' });
  assert.deepEqual(server.process(undefined).attributes, { 'websocket.route': '/chat' });
  assert.deepEqual(server.heartbeat.attributes, { 'websocket.route': '/chat', 'websocket.side': 'server' });
  assert.notEqual(server.heartbeat, client.heartbeat);
  assert.equal(server.duration(4001), server.duration(4999));
  assert.deepEqual(server.duration(4001).attributes, {
    'websocket.route': '/chat', 'websocket.side': 'server', 'websocket.close.code_class': '4xxx',
  });
  const cells = [...metrics.histograms()];
  assert.equal(new Set(cells).size, cells.length);
  for (const cell of cells) {
    assert.ok(Object.isFrozen(cell.attributes));
    assert.ok(metrics.histogramNames.includes(cell.name));
    assert.deepEqual(cell.boundaries, METRIC_INFO[cell.name].buckets);
  }

  const forwarded: string[] = [];
  metrics.forwardHistograms((cell) => (cell.name === METRIC_MESSAGE_SIZE ? undefined : { record: (v) => forwarded.push(`${cell.name}=${v}`) }));
  server.sizeIn.record(10);
  server.process('late').record(0.25); // a cell made after forwardHistograms
  server.heartbeat.record(0.5);
  metrics.forwardHistograms(undefined);
  server.heartbeat.record(0.75);
  assert.deepEqual(forwarded, ['websocket.message.process.duration=0.25', 'websocket.heartbeat.rtt=0.5']);
});

class MemoryReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

test('a cell holds exactly what the SDK\'s per-record histogram makes of the same values', async () => {
  const reader = new MemoryReader({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  const provider = new MeterProvider({ readers: [reader] });
  const buckets = METRIC_INFO[METRIC_MESSAGE_PROCESS_DURATION].buckets!;
  const histogram = provider.getMeter('check').createHistogram('h', { advice: { explicitBucketBoundaries: [...buckets] } });
  const attributes = Object.freeze({ 'websocket.route': '/chat' });
  const cell = new HistogramCell('h', attributes, buckets);
  // Deterministic pseudo-random latencies over every bucket, boundaries included.
  let seed = 42;
  const values: number[] = [...buckets];
  for (let i = 0; i < 5000; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    values.push(((seed / 2147483648) ** 4) * 12);
  }
  for (const v of values) {
    histogram.record(v, attributes);
    cell.record(v);
  }
  const { resourceMetrics } = await reader.collect();
  const point = resourceMetrics.scopeMetrics[0].metrics[0].dataPoints[0] as DataPoint<Histogram>;
  assert.equal(cell.count, point.value.count);
  assert.equal(cell.sum, point.value.sum);
  assert.equal(cell.min, point.value.min);
  assert.equal(cell.max, point.value.max);
  assert.deepEqual([...cell.counts], point.value.buckets.counts);
  assert.deepEqual(cell.boundaries, point.value.buckets.boundaries);
  await provider.shutdown();
});
