/**
 * The OpenTelemetry SDK ws-apm starts itself (src/adapters/otel/sdk.ts) when the app has none,
 * configured by OTEL_* variables: settings sdk-node would refuse still give metrics, and a start
 * that fails all the same leaves nothing behind. Child processes under `-r ws-apm/register`,
 * exporting OTLP/HTTP JSON to a local receiver.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { type Child, run } from '../helpers/child';
import { OtlpReceiver, otlpEnv } from '../helpers/otlp-receiver';

let receiver: OtlpReceiver;
const children: Child[] = [];

before(async () => {
  receiver = await new OtlpReceiver().start();
});

after(async () => {
  for (const child of children) child.proc.kill('SIGKILL');
  await receiver.stop();
});

function start(args: string[], service: string, env: Record<string, string>): Child {
  const child = run(['-r', 'ws-apm/register', ...args], otlpEnv(receiver.url, service, env));
  children.push(child);
  return child;
}

/** Keep a connection open to the echo server `server`, on `path`, until the returned close. */
async function openConnection(server: Child, path: string): Promise<() => Promise<void>> {
  const [, port] = await server.line(/^PORT (\d+)/);
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
  await once(ws, 'open');
  return async () => {
    ws.close(1000, 'done');
    await once(ws, 'close');
  };
}

function ourWarnings(child: Child): string[] {
  return child.stderr().split('\n').filter((l) => /^\[ws-apm\] (warn|error):/.test(l));
}

describe('metric export settings', { timeout: 60_000 }, () => {
  test('a short OTEL_METRIC_EXPORT_INTERVAL (300 ms) exports websocket.server.active_connections while the connection is open', async () => {
    const server = start(['server.js'], 'short-interval', { OTEL_METRIC_EXPORT_INTERVAL: '300', FIXTURE_ONCE: '1' });
    const close = await openConnection(server, '/live');
    await receiver.waitFor('active_connections = 1 from a periodic export', () =>
      receiver.lastPoint('short-interval', 'websocket.server.active_connections', { 'websocket.route': '/live' }) === 1);
    await close();
    assert.deepEqual(await server.exited(), { code: 0, signal: null });
    assert.deepEqual(ourWarnings(server), []);
  });

  test('an export timeout longer than the interval: one warning naming both variables, then the interval as the timeout, and metrics flow', async () => {
    const server = start(['server.js'], 'timeout-over-interval', {
      OTEL_METRIC_EXPORT_INTERVAL: '300',
      OTEL_METRIC_EXPORT_TIMEOUT: '5000',
      FIXTURE_ONCE: '1',
    });
    const close = await openConnection(server, '/both');
    await receiver.waitFor('active_connections = 1 from a periodic export', () =>
      receiver.lastPoint('timeout-over-interval', 'websocket.server.active_connections', { 'websocket.route': '/both' }) === 1);
    await close();
    assert.deepEqual(await server.exited(), { code: 0, signal: null });
    assert.deepEqual(ourWarnings(server), [
      '[ws-apm] warn: invalid OTEL_METRIC_EXPORT_TIMEOUT="5000": expected at most OTEL_METRIC_EXPORT_INTERVAL (300); using 300',
    ]);
  });

  test('a negative interval: one warning, the SDK default (60 s), and the metrics still go out at exit', async () => {
    const server = start(['server.js'], 'negative-interval', { OTEL_METRIC_EXPORT_INTERVAL: '-5', FIXTURE_ONCE: '1' });
    const close = await openConnection(server, '/neg');
    await close();
    assert.deepEqual(await server.exited(), { code: 0, signal: null });
    assert.deepEqual(ourWarnings(server), [
      '[ws-apm] warn: invalid OTEL_METRIC_EXPORT_INTERVAL="-5": expected a positive number of milliseconds; using 60000',
    ]);
    assert.equal(receiver.lastPoint('negative-interval', 'websocket.server.connections', { 'websocket.route': '/neg', 'websocket.connection.outcome': 'accepted' }), 1);
  });
});

describe('the exit of a short-lived app', { timeout: 60_000 }, () => {
  /** The export requests (receiver batches) that carried metric points of `service`. */
  function metricExports(service: string): number[] {
    return [...new Set(receiver.points.filter((p) => p.service === service).map((p) => p.batch))];
  }

  test('ending by itself: exactly one metrics export, carrying the websocket metrics', async () => {
    const server = start(['server.js'], 'one-export', { FIXTURE_ONCE: '1' });
    const close = await openConnection(server, '/once');
    await close();
    assert.deepEqual(await server.exited(), { code: 0, signal: null });
    assert.deepEqual(ourWarnings(server), []);
    assert.equal(metricExports('one-export').length, 1, 'metrics exported once at exit');
    assert.equal(receiver.lastPoint('one-export', 'websocket.server.connections', { 'websocket.route': '/once', 'websocket.connection.outcome': 'accepted' }), 1);
    assert.equal(receiver.lastPoint('one-export', 'websocket.connection.duration', { 'websocket.route': '/once' }), 1);
  });

  test('ended by SIGTERM: exactly one metrics export, carrying the websocket metrics', async () => {
    const server = start(['server.js'], 'one-export-sigterm', {});
    const close = await openConnection(server, '/term');
    await close();
    server.proc.kill('SIGTERM');
    assert.deepEqual(await server.exited(), { code: null, signal: 'SIGTERM' });
    assert.equal(metricExports('one-export-sigterm').length, 1, 'metrics exported once at exit');
    assert.equal(receiver.lastPoint('one-export-sigterm', 'websocket.server.connections', { 'websocket.route': '/term', 'websocket.connection.outcome': 'accepted' }), 1);
  });

  test('uninstrument(): exactly one metrics export, carrying the websocket metrics', async () => {
    const server = start(['uninstrument.js'], 'uninstrument-export', {});
    const close = await openConnection(server, '/gone');
    await close();
    assert.deepEqual(await server.exited(), { code: 0, signal: null });
    assert.deepEqual(ourWarnings(server), []);
    assert.equal(metricExports('uninstrument-export').length, 1, 'metrics exported once by uninstrument');
    assert.equal(receiver.lastPoint('uninstrument-export', 'websocket.server.connections', { 'websocket.route': '/gone', 'websocket.connection.outcome': 'accepted' }), 1);
  });

  test('the app\'s own SDK, shut down by the app on SIGTERM: exactly one metrics export, carrying the websocket metrics', async () => {
    const server = start(['-r', './tracing-shutdown.js', 'server.js'], 'app-sdk-shutdown', { OTEL_METRICS_EXPORTER: 'otlp' });
    const close = await openConnection(server, '/app');
    await close();
    server.proc.kill('SIGTERM');
    assert.deepEqual(await server.exited(), { code: 0, signal: null });
    assert.equal(metricExports('app-sdk-shutdown').length, 1, 'metrics exported once at exit');
    assert.equal(receiver.lastPoint('app-sdk-shutdown', 'websocket.server.connections', { 'websocket.route': '/app', 'websocket.connection.outcome': 'accepted' }), 1);
  });
});

describe('an SDK start that fails part way', { timeout: 60_000 }, () => {
  test('is stopped and unregistered (no half-started SDK), and an SDK the app registers later gets the spans', async () => {
    // sdk-node 0.208 registers the tracer provider, then throws on the invalid gRPC metrics endpoint.
    const app = start(['sdk-state.js'], 'half-started', {
      OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: '::not-a-url',
    });
    assert.deepEqual(await app.exited(), { code: 0, signal: null }, app.stderr());
    assert.match(app.stdout(), /^REGISTERED none$/m);
    assert.match(app.stdout(), /^APP SDK SPANS .*WS CONNECT \/second/m);
    assert.deepEqual(receiver.spansOf('half-started'), [], 'the stopped SDK exported nothing');
    assert.match(app.stderr(), /^\[ws-apm\] warn: could not start the OpenTelemetry SDK \(Invalid URL\); stopped what it had started/m);
  });
});
