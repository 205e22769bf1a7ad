/**
 * ws-apm as a user runs it: unchanged apps started with `-r ws-apm/register` or
 * `--import ws-apm/register`, configured by environment only, exporting OTLP/HTTP JSON
 * to a local receiver. Each scenario runs real child processes.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/child';
import { CLIENT, CONSUMER, OtlpReceiver, otlpEnv, PRODUCER, SERVER } from '../helpers/otlp-receiver';
import { missingInstall, requireOrSkip } from '../helpers/requirements';


let receiver: OtlpReceiver;

function otelEnv(service: string, extra: Record<string, string> = {}): Record<string, string> {
  return otlpEnv(receiver.url, service, { OTEL_METRIC_EXPORT_INTERVAL: '60000', ...extra });
}

before(async () => {
  receiver = await new OtlpReceiver().start();
});

after(async () => {
  await receiver.stop();
});

describe('preloaded into unchanged apps', () => {
  test('CJS client process → CJS server process: one trace through the handshake, and nothing lost at exit', async () => {
    const server = run(['-r', 'ws-apm/register', 'server.js'], otelEnv('chat-server', { FIXTURE_ONCE: '1' }));
    const [, port] = await server.line(/^PORT (\d+)/);
    const client = run(
      ['-r', 'ws-apm/register', 'client.js', `ws://127.0.0.1:${port}/chat?token=s3cret`],
      otelEnv('chat-client', { MESSAGES: 'one,two' }),
    );
    assert.deepEqual(await client.exited(), { code: 0, signal: null });
    assert.deepEqual(await server.exited(), { code: 0, signal: null });
    assert.match(client.stdout(), /GOT echo one\nGOT echo two\nCLOSED 1000/);

    const [clientConnect] = receiver.spansOf('chat-client', new RegExp(`^WS CONNECT 127\\.0\\.0\\.1:${port}/chat$`));
    const [serverConnect] = receiver.spansOf('chat-server', 'WS CONNECT /chat');
    assert.ok(clientConnect && serverConnect, `both handshakes exported: ${JSON.stringify(receiver.spans.map((s) => [s.service, s.name]))}`);
    assert.equal(clientConnect.kind, CLIENT);
    assert.equal(serverConnect.kind, SERVER);
    assert.equal(serverConnect.traceId, clientConnect.traceId);
    assert.equal(serverConnect.parentSpanId, clientConnect.spanId);
    assert.doesNotMatch(JSON.stringify(receiver.spans), /s3cret/);

    const receives = receiver.spansOf('chat-server', 'WS RECEIVE /chat');
    assert.equal(receives.length, 2);
    for (const r of receives) {
      assert.equal(r.kind, CONSUMER);
      assert.deepEqual(r.links, [{ traceId: serverConnect.traceId, spanId: serverConnect.spanId }]);
      const [send] = receiver.spansOf('chat-server', 'WS SEND /chat').filter((s) => s.parentSpanId === r.spanId);
      assert.equal(send?.kind, PRODUCER);
    }
    const [close] = receiver.spansOf('chat-server', 'WS CLOSE /chat');
    assert.equal(close.attributes['websocket.close.code'], 1000);
    assert.equal(close.attributes['websocket.close.reason'], 'done');
    assert.equal(close.attributes['websocket.messages.in'], 2);
    // Metrics made it out at shutdown too.
    assert.ok(receiver.points.length > 0, 'metrics exported');
    assert.ok(receiver.points.some((p) => p.service === 'chat-server'), JSON.stringify(receiver.points.map((p) => [p.service, p.name, p.attributes, p.value])));
    assert.equal(receiver.lastPoint('chat-server', 'websocket.server.connections', { 'websocket.connection.outcome': 'accepted' }), 1);
    assert.equal(receiver.lastPoint('chat-server', 'websocket.server.active_connections', { 'websocket.route': '/chat' }), 0);
    assert.equal(receiver.lastPoint('chat-server', 'websocket.messages', { 'websocket.direction': 'in', 'websocket.side': 'server', 'websocket.message.type': 'text' }), 2, JSON.stringify(receiver.points.filter((p) => p.name === 'websocket.messages')));
  });

  test('ESM app with only `import { WebSocketServer } from "ws"` is instrumented by --import ws-apm/register', async () => {
    const server = run(['--import', 'ws-apm/register', 'server.mjs'], otelEnv('esm-server'));
    const [, port] = await server.line(/^PORT (\d+)/);
    const client = run(['client.js', `ws://127.0.0.1:${port}/esm`], {});
    assert.equal((await client.exited()).code, 0);
    assert.deepEqual(await server.exited(), { code: 0, signal: null });
    assert.equal(receiver.spansOf('esm-server', 'WS CONNECT /esm').length, 1);
    assert.equal(receiver.spansOf('esm-server', 'WS RECEIVE /esm').length, 1);
    assert.equal(receiver.spansOf('esm-server', 'WS CLOSE /esm').length, 1);
  });

  test('the app\'s own SDK is used as is, and its http instrumentation nests under WS RECEIVE', async () => {
    const target = http.createServer((_req, res) => res.end('ok'));
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    const targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}/data`;
    try {
      const server = run(
        ['-r', './tracing.js', '-r', 'ws-apm/register', 'server.js'],
        otelEnv('nesting-server', { FIXTURE_ONCE: '1', HTTP_TARGET: targetUrl }),
      );
      const [, port] = await server.line(/^PORT (\d+)/);
      const client = run(['client.js', `ws://127.0.0.1:${port}/api`], { MESSAGES: 'http' });
      assert.match((await client.exited()) && client.stdout(), /GOT fetched/);
      assert.equal((await server.exited()).code, 0);
      const [receive] = receiver.spansOf('nesting-server', 'WS RECEIVE /api');
      const get = receiver.spansOf('nesting-server').find((s) => s.kind === CLIENT && /^GET/.test(s.name));
      assert.ok(get, 'the http instrumentation exported its GET span');
      assert.equal(get.parentSpanId, receive.spanId);
      assert.equal(get.traceId, receive.traceId);
    } finally {
      target.close();
    }
  });

  test('SIGTERM flushes telemetry and the process still dies of SIGTERM, as without ws-apm', async () => {
    const server = run(['-r', 'ws-apm/register', 'server.js'], otelEnv('sigterm-server'));
    const [, port] = await server.line(/^PORT (\d+)/);
    const client = run(['client.js', `ws://127.0.0.1:${port}/term`], {});
    assert.equal((await client.exited()).code, 0);
    server.proc.kill('SIGTERM');
    assert.deepEqual(await server.exited(), { code: null, signal: 'SIGTERM' });
    assert.equal(receiver.spansOf('sigterm-server', 'WS RECEIVE /term').length, 1);
  });

  test('an unreachable collector costs nothing: the app serves and exits normally', async () => {
    const server = run(
      ['-r', 'ws-apm/register', 'server.js'],
      otelEnv('down-server', { FIXTURE_ONCE: '1', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_EXPORTER_OTLP_TIMEOUT: '500' }),
    );
    const [, port] = await server.line(/^PORT (\d+)/);
    const client = run(['client.js', `ws://127.0.0.1:${port}/x`], { MESSAGES: 'a,b,c' });
    assert.equal((await client.exited()).code, 0);
    assert.match(client.stdout(), /GOT echo a\nGOT echo b\nGOT echo c/);
    assert.deepEqual(await server.exited(), { code: 0, signal: null });
  });
});

describe('backend selection', () => {
  for (const [label, env] of [
    ['WS_APM_BACKEND=none', { WS_APM_BACKEND: 'none' }],
    ['WS_APM_ENABLED=false', { WS_APM_ENABLED: 'false', WS_APM_BACKEND: 'console' }],
    ['auto with nothing configured', {}],
  ] as const) {
    test(`${label} patches nothing`, async () => {
      const probe = run(['-r', 'ws-apm/register', 'probe.js'], env);
      assert.equal((await probe.exited()).code, 0);
      assert.match(probe.stdout(), /WS_PATCHED false/);
      assert.match(probe.stdout(), /HTTP_PATCHED false/);
    });
  }

  test('auto picks otel when an OTLP endpoint is set', async () => {
    const probe = run(['-r', 'ws-apm/register', 'probe.js'], { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' });
    assert.equal((await probe.exited()).code, 0);
    assert.match(probe.stdout(), /WS_PATCHED true/);
  });

  test('auto picks console when NODE_ENV=development: one readable line per operation on stderr', async () => {
    const server = run(['-r', 'ws-apm/register', 'server.js'], { NODE_ENV: 'development', FIXTURE_ONCE: '1' });
    const [, port] = await server.line(/^PORT (\d+)/);
    const client = run(['client.js', `ws://127.0.0.1:${port}/dev`], {});
    assert.equal((await client.exited()).code, 0);
    assert.equal((await server.exited()).code, 0);
    const err = server.stderr();
    assert.match(err, /WS CONNECT \/dev [\d.]+ms trace=[0-9a-f]{8} span=[0-9a-f]{8} parent=- ok status=101/);
    assert.match(err, /WS RECEIVE \/dev [\d.]+ms .* link=[0-9a-f]{8} ok type="text" bytes=5/);
    assert.match(err, /WS SEND \/dev .* parent=[0-9a-f]{8} ok/);
    assert.match(err, /WS CLOSE \/dev .* code=1000 reason="done" by="client"/);
    assert.match(err, /^metrics .*websocket\.server\.connections\{\/dev,accepted\}=1/m);
  });

  test('invalid settings: one warning naming each variable and the accepted values, then defaults; the app runs', async () => {
    const server = run(['-r', 'ws-apm/register', 'server.js'], {
      WS_APM_BACKEND: 'consol',
      WS_APM_MESSAGE_SAMPLE_RATE: '1.5',
      WS_APM_MAX_MESSAGE_NAMES: '-3',
      WS_APM_MESSAGE_PARENT: 'parent',
      WS_APM_TRACE_ORPHAN_SENDS: 'maybe',
      WS_APM_ROUTES: 'rooms/:id',
      FIXTURE_ONCE: '1',
    });
    const [, port] = await server.line(/^PORT (\d+)/);
    const client = run(['client.js', `ws://127.0.0.1:${port}/`], {});
    assert.equal((await client.exited()).code, 0);
    assert.equal((await server.exited()).code, 0);
    const warnings = server.stderr().trim().split('\n');
    for (const name of [
      'WS_APM_BACKEND',
      'WS_APM_MESSAGE_SAMPLE_RATE',
      'WS_APM_MAX_MESSAGE_NAMES',
      'WS_APM_MESSAGE_PARENT',
      'WS_APM_TRACE_ORPHAN_SENDS',
      'WS_APM_ROUTES',
    ]) {
      const lines = warnings.filter((l) => l.includes(`invalid ${name}=`));
      assert.equal(lines.length, 1, `one warning for ${name}`);
      assert.match(lines[0], /^\[ws-apm\] warn: invalid \S+=".*": expected .+; using the default/);
    }
  });
});

describe('OpenTelemetry JS SDK 3.x', () => {
  const [major, minor] = process.versions.node.split('.').map(Number);
  const supported = major > 22 || (major === 22 && minor >= 15);
  const sdk3 = path.join(__dirname, '..', 'matrix', 'otel-sdk-3');

  // SDK 3 needs Node >= 22.15; on such a Node it needs its own install (.ci/run makes it): skipped without it, required in CI.
  test('an app on SDK 3 (sdk-node 0.301) gets ws spans through its own SDK', { skip: !supported && `SDK 3 needs Node >= 22.15, this is ${process.version}` }, async (t) => {
    if (requireOrSkip(t, missingInstall(sdk3, '@opentelemetry/sdk-node', 'npm ci --prefix test/matrix/otel-sdk-3 (.ci/run installs it)'))) return;
    const server = run(['-r', '../../matrix/otel-sdk-3/tracing.js', '-r', 'ws-apm/register', 'server.js'], otelEnv('sdk3-server', { FIXTURE_ONCE: '1' }));
    await server.line(/^SDK 0\.30\d\.\d+/);
    const [, port] = await server.line(/^PORT (\d+)/);
    const client = run(['client.js', `ws://127.0.0.1:${port}/v3`], {});
    assert.equal((await client.exited()).code, 0);
    assert.deepEqual(await server.exited(), { code: 0, signal: null });
    assert.equal(receiver.spansOf('sdk3-server', 'WS CONNECT /v3').length, 1);
    assert.equal(receiver.spansOf('sdk3-server', 'WS RECEIVE /v3').length, 1);
    assert.equal(receiver.spansOf('sdk3-server', 'WS CLOSE /v3').length, 1);
  });
});
