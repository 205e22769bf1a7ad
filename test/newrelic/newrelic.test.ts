/**
 * The New Relic adapter against the real `newrelic` agent (13.x on Node 20, 14.x on Node >= 22),
 * each scenario in child processes (the agent is a process singleton) reporting to a fake
 * collector over HTTPS on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { newrelicBackend } from '../../src/adapters/newrelic';
import { metricName } from '../../src/adapters/newrelic/metrics';
import { FakeCollector, agentHome, refusedPort, type NrEvent } from '../helpers/newrelic-collector';
import { runFixture, startFixture, type FixtureResult } from '../helpers/newrelic-fixture';

// A bound for the whole suite (ten agent start-ups on a busy 2-core machine), not a timing assertion.
const TIMEOUT = 240_000;
const INCOMING_TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const INCOMING_SPAN_ID = 'b7ad6b7169203331';
const SERVER_APP = 'ws-apm-server';
const CLIENT_APP = 'ws-apm-client';
const DATA_METHODS = ['metric_data', 'analytic_event_data', 'span_event_data', 'custom_event_data', 'error_event_data'];

function name(e: NrEvent): unknown {
  return e.intrinsics.name;
}

function txs(c: FakeCollector, txName: string): NrEvent[] {
  return c.transactions.filter((t) => name(t) === txName);
}

/** The entry span of a transaction (its root segment). */
function rootSpan(c: FakeCollector, tx: NrEvent): NrEvent {
  const span = c.spans.find((s) => s.intrinsics.transactionId === tx.intrinsics.guid && s.intrinsics['nr.entryPoint'] === true);
  assert.ok(span, `no entry span for ${String(name(tx))}`);
  return span;
}

function spansOf(c: FakeCollector, tx: NrEvent): NrEvent[] {
  return c.spans.filter((s) => s.intrinsics.transactionId === tx.intrinsics.guid);
}

/** Once `ws` is open, send `hi`; resolves with the first reply (rejects on a socket error). */
function sendHi(ws: WebSocket): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    ws.on('open', () => ws.send('hi'));
    ws.on('message', (data) => resolve(String(data)));
    ws.on('error', reject);
  });
}

function ok(result: FixtureResult): void {
  assert.equal(result.code, 0, `fixture failed (code ${result.code}, signal ${result.signal}):\n${result.stderr}`);
}

async function withCollector(
  mode: 'normal' | 'slow', fn: (c: FakeCollector) => Promise<void>,
): Promise<void> {
  const collector = await FakeCollector.start({ mode });
  try {
    await fn(collector);
    assert.deepEqual(collector.problems, []);
  } finally {
    await collector.close();
  }
}

describe('New Relic adapter', { timeout: TIMEOUT }, () => {
  test('drives the real agent: web and background transactions, segments, attributes, errors, event, metrics', async () => {
    await withCollector('normal', async (c) => {
      const home = agentHome(c.port, c.certPem, 'ws-apm-direct');
      try {
        const result = await runFixture('adapter-direct.js', home.env);
        ok(result);
        const out = result.reports[0];
        assert.equal(out.detected, true);
        assert.equal(out.traceId, INCOMING_TRACE_ID);
        assert.equal(out.caught, 'listener exploded');
        assert.equal(out.hasActiveOutside, false);
        assert.equal(out.insideApp, true);

        // The handshake continues the caller's W3C trace as a web transaction.
        const [connect] = txs(c, 'WebTransaction/Custom/WS CONNECT /chat');
        assert.ok(connect, 'WS CONNECT web transaction');
        assert.equal(connect.intrinsics.traceId, INCOMING_TRACE_ID);
        assert.equal(connect.intrinsics.parentSpanId, INCOMING_SPAN_ID);
        assert.equal(connect.user['http.response.status_code'], 101);
        assert.equal(connect.user['url.path'], '/chat');
        assert.equal(connect.agent['request.uri'], '/chat');

        // One background transaction per message, linked to the handshake by attribute.
        const receives = txs(c, 'OtherTransaction/WebSocket/WS RECEIVE /chat');
        assert.equal(receives.length, 2);
        for (const r of receives) {
          assert.equal(r.user['websocket.handshake.trace_id'], INCOMING_TRACE_ID);
          assert.notEqual(r.intrinsics.traceId, INCOMING_TRACE_ID, 'a message starts its own trace');
        }
        const first = receives.find((r) => r.user['messaging.message.body.size'] === 5)!;
        const root = rootSpan(c, first);
        const children = spansOf(c, first).filter((s) => s.intrinsics.parentId === root.intrinsics.guid);
        assert.ok(children.some((s) => /External\/127\.0\.0\.1:\d+\/lookup$/.test(String(name(s)))), 'http.get nests under WS RECEIVE');
        const send = children.find((s) => name(s) === 'WS SEND /chat');
        assert.ok(send, 'WS SEND segment under WS RECEIVE');
        assert.equal(send.user['messaging.message.body.size'], 3);

        // The throwing listener: error noticed on its transaction.
        const failed = receives.find((r) => r.intrinsics.error === true);
        assert.ok(failed, 'the failed message transaction is marked as error');
        assert.ok(c.errors.some((e) => e.intrinsics['error.message'] === 'listener exploded'
          && e.intrinsics.transactionName === 'OtherTransaction/WebSocket/WS RECEIVE /chat'));

        // The close: custom event plus a short transaction.
        assert.equal(txs(c, 'OtherTransaction/WebSocket/WS CLOSE /chat').length, 1);
        const events = c.customEvents.filter((e) => e.intrinsics.type === 'WebSocketConnection');
        assert.equal(events.length, 1);
        assert.deepEqual(
          pick(events[0].attributes, ['route', 'code', 'reason', 'initiator', 'durationMs', 'messagesIn', 'messagesOut', 'bytesIn', 'bytesOut', 'handshakeTraceId']),
          {
            route: '/chat', code: 1000, reason: 'bye', initiator: 'client', durationMs: 42, messagesIn: 2, messagesOut: 1,
            bytesIn: 10, bytesOut: 3, handshakeTraceId: INCOMING_TRACE_ID,
          },
        );

        // Started inside an open app transaction, a message is still a transaction of its own.
        const [trap] = txs(c, 'OtherTransaction/WebSocket/WS RECEIVE /trap');
        assert.ok(trap, 'WS RECEIVE /trap is a transaction');
        const [job] = txs(c, 'OtherTransaction/App/long job');
        assert.ok(job);
        assert.ok(!spansOf(c, job).some((s) => String(name(s)).includes('WS RECEIVE')), 'not a segment of the app transaction');

        // runWithRemote: a transaction continuing the carried trace; heartbeat: its own transaction.
        assert.equal(out.handoff, true);
        const [handoff] = txs(c, 'OtherTransaction/WebSocket/WS HANDOFF');
        assert.equal(handoff?.intrinsics.traceId, '1bf7651916cd43dd8448eb211c80319d');
        assert.equal(handoff?.intrinsics.parentSpanId, 'c7ad6b7169203332');
        const [ping] = txs(c, 'OtherTransaction/WebSocket/WS PING /chat');
        assert.equal(ping?.user['websocket.heartbeat.rtt_ms'], 4);

        // Metrics: counters read at harvest, histograms aggregated (seconds -> ms).
        assert.equal(c.metric('Custom/WebSocket/ActiveConnections/chat')?.total, 3);
        assert.equal(c.metric('Custom/WebSocket/ActiveConnections/all')?.total, 3);
        assert.equal(c.metric('Custom/WebSocket/Messages/in/chat')?.callCount, 7);
        assert.equal(c.metric('Custom/WebSocket/BrokenConnections/chat')?.callCount, 1);
        const rtt = c.metric('Custom/WebSocket/HeartbeatRtt/chat');
        assert.equal(rtt?.callCount, 2);
        assert.ok(Math.abs(rtt.total - 10) < 1e-6 && Math.abs(rtt.min - 4) < 1e-6 && Math.abs(rtt.max - 6) < 1e-6);
      } finally {
        home.cleanup();
      }
    });
  });

  test('a client process and a server process share one distributed trace', async () => {
    await withCollector('normal', async (c) => {
      const run = await clientServer(c, 'plain');
      const serverConnects = txs(c, 'WebTransaction/Custom/WS CONNECT /chat');
      const clientConnects = txs(c, `OtherTransaction/WebSocket/WS CONNECT 127.0.0.1:${run.port}/chat`);
      assert.equal(serverConnects.length, 2);
      assert.equal(clientConnects.length, 2, 'a connect outside any transaction is a background transaction');
      for (const server of serverConnects) {
        const client = clientConnects.find((t) => t.intrinsics.traceId === server.intrinsics.traceId);
        assert.ok(client, 'the server handshake continues the client trace');
        const parent = c.spans.find((s) => s.intrinsics.guid === server.intrinsics.parentSpanId);
        assert.ok(parent, 'the server handshake parent span was reported by the client');
        assert.equal(parent.intrinsics.transactionId, client.intrinsics.guid);
      }
      assertServerSide(c, run);
      assertClientSide(c);
    });
  });

  test('a client connecting inside an app transaction adds a segment to it', async () => {
    await withCollector('normal', async (c) => {
      const run = await clientServer(c, 'in-transaction');
      const [job] = txs(c, 'OtherTransaction/App/app job');
      assert.ok(job, 'the app transaction');
      const segment = spansOf(c, job).find((s) => name(s) === `WS CONNECT 127.0.0.1:${run.port}/chat`);
      assert.ok(segment, 'WS CONNECT segment in the app transaction');
      assert.equal(segment.intrinsics.parentId, rootSpan(c, job).intrinsics.guid);
      const server = txs(c, 'WebTransaction/Custom/WS CONNECT /chat').find((t) => t.intrinsics.traceId === job.intrinsics.traceId);
      assert.ok(server, 'the server handshake is in the app transaction trace');
      const parent = c.spans.find((s) => s.intrinsics.guid === server.intrinsics.parentSpanId);
      assert.equal(parent?.intrinsics.transactionId, job.intrinsics.guid);
      // Only the second connection (made outside the app transaction) is a transaction of its own.
      assert.equal(txs(c, `OtherTransaction/WebSocket/WS CONNECT 127.0.0.1:${run.port}/chat`).length, 1);
      // Messages that arrive while the app transaction is still open do not become its segments.
      assert.ok(!spansOf(c, job).some((s) => String(name(s)).includes('WS RECEIVE')));
      assertServerSide(c, run);
      assertClientSide(c);
    });
  });

  test('a collector that is down costs the app nothing', async () => {
    const port = await refusedPort();
    const home = agentHome(port, '', 'ws-apm-down');
    try {
      const result = await runFixture('echo-load.js', { ...home.env, WS_APM_FLUSH_TIMEOUT_MS: '500' }, { args: ['200', 'nowait'] });
      ok(result);
      assert.deepEqual(result.reports, [{ echoed: 200 }, { flushed: true }, { stopped: true }]);
    } finally {
      home.cleanup();
    }
  });

  test('a collector that never answers costs the app nothing', async () => {
    await withCollector('slow', async (c) => {
      const home = agentHome(c.port, c.certPem, 'ws-apm-slow');
      try {
        const result = await runFixture('echo-load.js', { ...home.env, WS_APM_FLUSH_TIMEOUT_MS: '500' }, { args: ['200', 'wait'] });
        ok(result);
        assert.deepEqual(result.reports, [{ echoed: 200 }, { flushed: true }, { stopped: true }]);
        assert.ok(c.calls.includes('connect'));
        assert.ok(c.calls.some((m) => DATA_METHODS.includes(m)), 'the agent did try to send (and got no answer)');
      } finally {
        home.cleanup();
      }
    });
  });

  test('a collector that refuses: one line on the console naming it (the agent writes only to its log file); the app runs unchanged', async () => {
    const port = await refusedPort();
    const home = agentHome(port, '', 'ws-apm-refused');
    const app = startFixture('app.js', { ...home.env, WS_APM_BACKEND: 'newrelic', WS_APM_FLUSH_TIMEOUT_MS: '500' }, {
      preload: false, execArgv: ['-r', 'ws-apm/register'],
    });
    try {
      const line = await app.stderrLine(/^\[ws-apm\]/, 'the warning');
      assert.equal(line, `[ws-apm] warn: the New Relic collector at 127.0.0.1:${port} cannot be reached or answered with an error (details in newrelic_agent.log): telemetry is dropped until it answers (reported again when it does)`);
      const { port: wsPort } = await app.report((r) => 'port' in r, 'its port');
      const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/down`);
      const echo = await sendHi(ws);
      assert.equal(echo, 'hi');
      ws.close(1000, 'bye');
      await app.report((r) => 'closed' in r, 'the close');
      app.kill('SIGTERM');
      const result = await app.done;
      assert.equal(result.signal, 'SIGTERM');
      // (Only the collector's lines: tsx's loader thread, which runs `-r` preloads too, loads newrelic as its stub and says so.)
      assert.deepEqual(result.stderr.split('\n').filter((l) => l.includes('New Relic collector')), [line]);
    } finally {
      app.kill();
      home.cleanup();
    }
  });

  test('a disabled agent (the no-op stub) is reported once and ws works unchanged', async () => {
    const home = agentHome(await refusedPort(), '', 'ws-apm-stub');
    try {
      const result = await runFixture('stub.js', { ...home.env, NEW_RELIC_ENABLED: 'false' });
      ok(result);
      assert.deepEqual(result.reports, [{ echo: 'ping', op: 'none', hasActive: false }, { stopped: true }]);
      assert.match(result.stderr, /no-op stub/);
      assert.equal(result.stderr.match(/no-op stub/g)?.length, 1);
    } finally {
      home.cleanup();
    }
  });

  const startups = [
    { title: 'node -r newrelic -r ws-apm/register app.js: auto picks the loaded agent', preload: true, env: {} },
    { title: 'node -r ws-apm/register app.js with WS_APM_BACKEND=newrelic loads the agent itself', preload: false, env: { WS_APM_BACKEND: 'newrelic' } },
  ];
  for (const startup of startups) {
    test(startup.title, async () => {
      await withCollector('normal', async (c) => {
        const home = agentHome(c.port, c.certPem, 'ws-apm-app');
        const app = startFixture('app.js', { ...home.env, ...startup.env }, { preload: startup.preload, execArgv: ['-r', 'ws-apm/register'] });
        try {
          const { port } = await app.report((r) => 'port' in r, 'its port');
          await c.waitFor(() => c.calls.includes('agent_settings'), 'the agent to connect');
          const ws = new WebSocket(`ws://127.0.0.1:${port}/chat`, {
            headers: { traceparent: `00-${INCOMING_TRACE_ID}-${INCOMING_SPAN_ID}-01` },
          });
          const echo = await sendHi(ws);
          assert.equal(echo, 'hi');
          ws.close(1000, 'bye');
          assert.deepEqual(await app.report((r) => 'closed' in r, 'the close'), { closed: 1000 });
          app.kill('SIGTERM');
          const result = await app.done;
          assert.equal(result.signal, 'SIGTERM', `the app still dies of SIGTERM:\n${result.stderr}`);
          await c.waitFor(() => c.calls.includes('shutdown'), 'the agent to shut down');
          const [connect] = txs(c, 'WebTransaction/Custom/WS CONNECT /chat');
          assert.equal(connect?.intrinsics.traceId, INCOMING_TRACE_ID);
          assert.equal(connect?.intrinsics.parentSpanId, INCOMING_SPAN_ID);
          const [receive] = txs(c, 'OtherTransaction/WebSocket/WS RECEIVE /chat');
          assert.equal(receive?.user['websocket.handshake.trace_id'], INCOMING_TRACE_ID);
          const event = c.customEvents.find((e) => e.intrinsics.type === 'WebSocketConnection');
          assert.deepEqual(pick(event?.attributes ?? {}, ['route', 'code', 'reason', 'initiator', 'messagesIn', 'messagesOut']), {
            route: '/chat', code: 1000, reason: 'bye', initiator: 'client', messagesIn: 1, messagesOut: 1,
          });
          assert.equal(c.metric('Custom/WebSocket/Messages/in/chat')?.callCount, 1);
        } finally {
          app.kill();
          home.cleanup();
        }
      });
    });
  }

  test('an app that ends by itself soon after start still sends its websocket metrics, once', async () => {
    await withCollector('normal', async (c) => {
      const home = agentHome(c.port, c.certPem, 'ws-apm-brief');
      const app = startFixture('app.js', { ...home.env, WS_APM_BACKEND: 'newrelic', FIXTURE_ONCE: '1' }, {
        preload: false, execArgv: ['-r', 'ws-apm/register'],
      });
      try {
        const { port } = await app.report((r) => 'port' in r, 'its port');
        // The agent harvests once 1 s after connecting, then every 60 s: traffic after that first
        // harvest reaches the collector only if the exit delivers it.
        await c.waitFor(() => c.calls.includes('metric_data'), 'the agent\'s initial harvest');
        const ws = new WebSocket(`ws://127.0.0.1:${port}/brief`);
        await sendHi(ws);
        ws.close(1000, 'bye');
        ok(await app.done);
        await c.waitFor(() => c.calls.includes('shutdown'), 'the agent to shut down');
        const messages = c.metrics.filter((m) => m.name === 'Custom/WebSocket/Messages/in/brief');
        assert.deepEqual(messages.map((m) => m.callCount), [1], 'reported once, at exit');
        assert.equal(c.metric('Custom/WebSocket/Connections/accepted/brief')?.callCount, 1);
      } finally {
        app.kill();
        home.cleanup();
      }
    });
  });

  test('detects New Relic from a license key', () => {
    assert.equal(newrelicBackend.detect({ NEW_RELIC_LICENSE_KEY: 'abc' }), 'NEW_RELIC_LICENSE_KEY is set');
    assert.equal(newrelicBackend.detect({ NEW_RELIC_LICENSE_KEY: ' ' }), undefined);
    assert.equal(newrelicBackend.detect({}), undefined);
  });

  test('names custom metrics per route, direction, outcome and side', () => {
    assert.equal(metricName('websocket.messages', { 'websocket.route': '/chat', 'websocket.direction': 'in', 'websocket.side': 'server' }),
      'WebSocket/Messages/in/chat');
    assert.equal(metricName('websocket.messages', { 'websocket.route': '/chat', 'websocket.direction': 'out', 'websocket.side': 'client' }),
      'WebSocket/Client/Messages/out/chat');
    assert.equal(metricName('websocket.server.connections', { 'websocket.route': '/', 'websocket.connection.outcome': 'rejected' }),
      'WebSocket/Connections/rejected/(root)');
    assert.equal(metricName('websocket.message.process.duration', { 'websocket.route': '/rooms/:id', 'websocket.message.name': 'join' }),
      'WebSocket/MessageProcessDuration/rooms/:id/join');
    assert.equal(metricName('websocket.heartbeat.rtt', {}), 'WebSocket/HeartbeatRtt/all');
  });
});

interface ClientServerRun {
  readonly port: number;
}

/**
 * Server process + client process against one collector: the client runs its script and exits;
 * the server reports the close and the listener's exception, then gets SIGTERM (ws-apm's exit hook
 * shuts the agent down with collectPendingData).
 */
async function clientServer(c: FakeCollector, mode: 'plain' | 'in-transaction'): Promise<ClientServerRun> {
  const serverHome = agentHome(c.port, c.certPem, SERVER_APP);
  const clientHome = agentHome(c.port, c.certPem, CLIENT_APP);
  const server = startFixture('server.js', serverHome.env);
  try {
    const { port } = await server.report((r) => 'port' in r, 'its port');
    const client = await runFixture('client.js', clientHome.env, { args: [String(port), mode] });
    ok(client);
    assert.deepEqual(client.reports, [{ received: ['echo:hello', 'flushed'] }]);
    assert.deepEqual(await server.report((r) => 'closed' in r, 'the close'), { closed: 1000, reason: 'done' });
    assert.deepEqual(await server.report((r) => 'uncaught' in r, 'the exception'), { uncaught: 'listener exploded' });
    server.kill('SIGTERM');
    ok(await server.done);
    await c.waitFor(() => c.calls.filter((m) => m === 'shutdown').length >= 2, 'both agents to shut down');
    return { port: Number(port) };
  } finally {
    server.kill();
    serverHome.cleanup();
    clientHome.cleanup();
  }
}

/** What the client process must have reported in both modes. */
function assertClientSide(c: FakeCollector): void {
  const receives = txs(c, 'OtherTransaction/WebSocket/WS RECEIVE /chat').filter((t) => t.app === CLIENT_APP);
  assert.deepEqual(receives.map((r) => r.user['messaging.message.body.size']).sort(), [10, 7].sort(),
    'echo:hello and flushed, each a transaction of its own');
  const firstTrace = txs(c, 'WebTransaction/Custom/WS CONNECT /chat')
    .find((t) => receives.some((r) => r.user['websocket.handshake.trace_id'] === t.intrinsics.traceId));
  assert.ok(firstTrace, 'client messages are linked to the trace of their handshake');
  const events = c.customEvents.filter((e) => e.intrinsics.type === 'WebSocketConnection' && e.app === CLIENT_APP);
  const byCode = new Map(events.map((e) => [e.attributes.code, e.attributes]));
  assert.deepEqual(pick(byCode.get(1000) ?? {}, ['route', 'side', 'initiator', 'reason', 'messagesIn', 'messagesOut', 'broken']), {
    route: '/chat', side: 'client', initiator: 'client', reason: 'done', messagesIn: 2, messagesOut: 2, broken: false,
  });
  assert.equal(byCode.get(1006)?.broken, true, 'the terminated connection is reported broken');
  assert.equal(c.metric('Custom/WebSocket/Client/Messages/in/chat', CLIENT_APP)?.callCount, 2);
  assert.equal(c.metric('Custom/WebSocket/Client/BrokenConnections/chat', CLIENT_APP)?.callCount, 1);
}

/** What the server process must have reported in both client modes. */
function assertServerSide(c: FakeCollector, run: ClientServerRun): void {
  void run;
  const receives = txs(c, 'OtherTransaction/WebSocket/WS RECEIVE /chat').filter((t) => t.app === SERVER_APP);
  assert.equal(receives.length, 3, 'hello, flush and boom');
  const connects = txs(c, 'WebTransaction/Custom/WS CONNECT /chat');

  const hello = receives.find((r) => r.user['messaging.message.body.size'] === 5 && r.intrinsics.error === false
    && spansOf(c, r).some((s) => name(s) === 'WS SEND /chat'))!;
  assert.ok(hello, 'the hello transaction with its send');
  assert.equal(hello.user['websocket.message.type'], 'text');
  assert.ok(connects.some((t) => t.intrinsics.traceId === hello.user['websocket.handshake.trace_id']), 'linked to its handshake');
  const root = rootSpan(c, hello);
  const children = spansOf(c, hello).filter((s) => s.intrinsics.parentId === root.intrinsics.guid);
  assert.ok(children.some((s) => /External\/127\.0\.0\.1:\d+\/lookup$/.test(String(name(s)))), 'http.get nests under WS RECEIVE');
  assert.ok(children.some((s) => name(s) === 'WS SEND /chat'), 'WS SEND nests under WS RECEIVE');

  const boom = receives.filter((r) => r.intrinsics.error === true);
  assert.equal(boom.length, 1);
  assert.ok(c.errors.some((e) => e.intrinsics['error.message'] === 'listener exploded'
    && e.intrinsics.transactionName === 'OtherTransaction/WebSocket/WS RECEIVE /chat'));

  const events = c.customEvents.filter((e) => e.intrinsics.type === 'WebSocketConnection' && e.app === SERVER_APP);
  // ws never emits 'close' for the socket whose listener threw; ws-apm records it as broken
  // when its TCP connection ends (1006).
  assert.equal(events.length, 2, 'the closed connection and the one whose listener threw');
  const brokenEvent = events.find((e) => e.attributes.broken === true)?.attributes;
  assert.ok(brokenEvent, 'the socket whose listener threw ends broken');
  assert.deepEqual(pick(brokenEvent, ['route', 'code', 'initiator']), { route: '/chat', code: 1006, initiator: 'network' });
  const event = events.find((e) => e.attributes.broken === false)!.attributes;
  assert.deepEqual(pick(event, ['route', 'code', 'reason', 'initiator', 'messagesIn', 'messagesOut', 'bytesIn', 'broken']), {
    route: '/chat', code: 1000, reason: 'done', initiator: 'client', messagesIn: 2, messagesOut: 2, bytesIn: 10, broken: false,
  });
  assert.equal(typeof event.durationMs, 'number');
  assert.ok(connects.some((t) => t.intrinsics.traceId === event.handshakeTraceId));
  assert.ok(txs(c, 'OtherTransaction/WebSocket/WS CLOSE /chat').length >= 1);

  assert.equal(c.metric('Custom/WebSocket/Messages/in/chat', SERVER_APP)?.callCount, 3);
  assert.equal(c.metric('Custom/WebSocket/Messages/out/chat', SERVER_APP)?.callCount, 2);
  assert.equal(c.metric('Custom/WebSocket/Connections/accepted/chat', SERVER_APP)?.callCount, 2);
  // Histograms from the tracer's cells, summed over harvests, match the traffic: in 'hello',
  // 'flush', 'boom' (5, 5, 4 bytes); out 'echo:hello', 'flushed' (10, 7).
  assert.deepEqual(pick(c.metric('Custom/WebSocket/MessageSize/in/all', SERVER_APP) ?? {}, ['callCount', 'total', 'min', 'max']),
    { callCount: 3, total: 14, min: 4, max: 5 });
  assert.deepEqual(pick(c.metric('Custom/WebSocket/MessageSize/out/all', SERVER_APP) ?? {}, ['callCount', 'total', 'min', 'max']),
    { callCount: 2, total: 17, min: 7, max: 10 });
  // Each harvest carries its own interval: a single value is its own min, max and total.
  for (const m of c.metrics.filter((m) => m.app === SERVER_APP && m.name.startsWith('Custom/WebSocket/MessageSize/'))) {
    assert.ok(m.min <= m.max && m.min * m.callCount <= m.total && m.total <= m.max * m.callCount, JSON.stringify(m));
    if (m.callCount === 1) assert.deepEqual([m.min, m.max], [m.total, m.total], JSON.stringify(m));
  }
  assert.ok(c.metrics.filter((m) => m.app === SERVER_APP && m.name === 'Custom/WebSocket/MessageSize/out/all').length >= 2,
    'the forced harvest and the final one');
  const processed = c.metric('Custom/WebSocket/MessageProcessDuration/chat', SERVER_APP);
  assert.equal(processed?.callCount, 3);
  assert.ok(processed.total >= 0 && processed.min <= processed.max, 'milliseconds');
  // The gauge sampled at the forced harvest ('flush' message): exactly one open connection then.
  assert.ok(c.metrics.some((m) => m.app === SERVER_APP && m.name === 'Custom/WebSocket/ActiveConnections/chat' && m.total === 1 && m.callCount === 1));
}

function pick(o: object, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) out[k] = (o as Record<string, unknown>)[k];
  return out;
}
