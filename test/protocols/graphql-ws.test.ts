/**
 * graphql-ws (GraphQL subscriptions over ws), with the real graphql-ws server (`useServer` on a
 * ws server) and client (ws as its WebSocket): a subscribe is an operation named by the GraphQL
 * operation, its results are sends under it, every next/error/complete is counted per
 * operation, its ping/pong are heartbeats, and neither connection_init's payload nor the
 * variables are recorded; on OpenTelemetry (in memory), Elastic and New Relic.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Server as IoServer } from 'socket.io';
import { io as connectIo } from 'socket.io-client';
import { WebSocket, WebSocketServer } from 'ws';
import { getInstrumentation, instrument, type InstrumentOptions } from '../../src/index';
import { run } from '../helpers/child';
import { agentEnv, startIntake } from '../helpers/elastic-intake';
import { FakeCollector, agentHome } from '../helpers/newrelic-collector';
import { startFixture } from '../helpers/newrelic-fixture';
import { collectMetrics, metricValue, registerMemorySdk, resetSpans, spans, spansNamed } from '../helpers/otel-memory';

registerMemorySdk();

const { scenario } = require('../fixtures/graphql-ws/scenario') as {
  scenario(secrets: { token: string; secret: string }): Promise<{ named: number; anonymous: number; query: number }>;
};

const TOKEN = 'tok-connection-init-7f3a';
const SECRET = 'var-secret-91c2';
const ROUTE = '/graphql';

async function use(options: InstrumentOptions = {}): Promise<void> {
  await getInstrumentation()?.uninstrument();
  instrument({ backend: 'otel', startSdk: false, flushOnExit: false, logLevel: 'silent', ...options });
  resetSpans();
}

function childrenOf(parent: ReadableSpan): ReadableSpan[] {
  return spans().filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);
}

/** The server's operation of that name (the client's link to its client connect, the server's to its handshake). */
function serverSide(name: string): ReadableSpan[] {
  const handshakes = new Set(spans().filter((s) => s.kind === SpanKind.SERVER).map((s) => s.spanContext().spanId));
  return spansNamed(name).filter((s) => s.links.some((l) => handshakes.has(l.context.spanId)));
}

/** `websocket.messages` of the current cumulative metrics, by attributes. */
function messages(match: Record<string, unknown>): Promise<number> {
  return metricValue('websocket.messages', { 'websocket.route': ROUTE, ...match });
}

describe('graphql-ws on OpenTelemetry (in memory)', () => {
  test('a subscribe is WS RECEIVE {route} {operation} on the server, its results WS SEND children; named by operationName, else by type', async () => {
    await use();
    assert.deepEqual(await scenario({ token: TOKEN, secret: SECRET }), { named: 3, anonymous: 2, query: 1 });
    const [named] = serverSide('WS RECEIVE /graphql OnGreeting');
    assert.ok(named, spans().map((s) => s.name).join());
    assert.equal(named.kind, SpanKind.CONSUMER);
    assert.equal(named.attributes['websocket.protocol'], 'graphql-ws');
    assert.equal(named.attributes['websocket.message.name'], 'OnGreeting');
    // Its 3 `next` and its `complete`, sent after graphql-ws's first await, in its context.
    const sends = childrenOf(named);
    assert.deepEqual(sends.map((s) => s.name), Array(4).fill('WS SEND /graphql OnGreeting'));
    assert.ok(sends.every((s) => s.kind === SpanKind.PRODUCER));
    const [anonymous] = serverSide('WS RECEIVE /graphql subscription anonymous');
    assert.equal(childrenOf(anonymous).length, 3);
    const [query] = serverSide('WS RECEIVE /graphql query anonymous');
    assert.equal(childrenOf(query).length, 2);
    // connection_init, ping and pong are no operations; the client's side runs its sink inside each result.
    assert.deepEqual(spansNamed('WS RECEIVE /graphql'), []);
    assert.equal(spansNamed('WS RECEIVE /graphql OnGreeting').length, 1 + 3);
    assert.doesNotMatch(JSON.stringify(spans().map((s) => [s.name, s.attributes])), new RegExp(`${TOKEN}|${SECRET}`));
  });

  test('next, error and complete are counted per operation; ping and pong are heartbeats, never messages', async () => {
    await use();
    const before = await collectMetrics();
    const count = (match: Record<string, unknown>): number =>
      (before.get('websocket.messages') ?? [])
        .filter((p) => p.attributes['websocket.route'] === ROUTE && Object.entries(match).every(([k, v]) => p.attributes[k] === v))
        .reduce((sum, p) => sum + p.value, 0);
    const server = { 'websocket.side': 'server' };
    const base = {
      in: count({ ...server, 'websocket.direction': 'in' }),
      out: count({ ...server, 'websocket.direction': 'out' }),
      next: count({ ...server, 'websocket.message.name': 'OnGreeting', 'websocket.protocol.message': 'next' }),
      rtt: 0,
    };
    const rtt = async (): Promise<number> =>
      ((await collectMetrics()).get('websocket.heartbeat.rtt') ?? [])
        .filter((p) => p.attributes['websocket.route'] === ROUTE && p.attributes['websocket.side'] === 'client')
        .reduce((sum, p) => sum + (p.count ?? 0), 0);
    base.rtt = await rtt();
    await scenario({ token: TOKEN, secret: SECRET });
    const named = { ...server, 'websocket.message.name': 'OnGreeting' };
    assert.equal((await messages({ ...named, 'websocket.protocol.message': 'next' })) - base.next, 3);
    assert.ok((await messages({ ...named, 'websocket.protocol.message': 'complete' })) >= 1);
    assert.ok((await messages({ ...server, 'websocket.message.name': 'subscription anonymous', 'websocket.protocol.message': 'next' })) >= 2);
    // However many pings the client's keep-alive sent: in, connection_init and 3 subscribes;
    // out, connection_ack, 3 + 2 + 1 results and 3 completes.
    assert.equal((await messages({ ...server, 'websocket.direction': 'in' })) - base.in, 4);
    assert.equal((await messages({ ...server, 'websocket.direction': 'out' })) - base.out, 10);
    assert.ok((await rtt()) > base.rtt, 'the client measured at least one ping → pong round trip');
  });

  test('WS_APM_PROTOCOL=graphql-ws reads every ws socket as graphql-ws, whatever its subprotocol (auto: only graphql-transport-ws)', async () => {
    for (const protocol of ['graphql-ws', 'auto'] as const) {
      await use({ protocol });
      const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/bare' });
      await once(wss, 'listening');
      const received = new Promise((resolve) => wss.once('connection', (ws) => ws.once('message', resolve)));
      const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/bare`);
      await once(client, 'open');
      client.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { operationName: 'Bare', query: 'subscription Bare { x }' } }));
      await received;
      client.close();
      await once(client, 'close');
      await new Promise((resolve) => wss.close(resolve));
      const names = spans().filter((s) => s.kind === SpanKind.CONSUMER).map((s) => s.name);
      assert.deepEqual(names, [protocol === 'auto' ? 'WS RECEIVE /bare' : 'WS RECEIVE /bare Bare']);
    }
    await getInstrumentation()?.uninstrument();
  });

  test('WS_APM_PROTOCOL=none also leaves socket.io plain ws: engine.io frames are WS RECEIVE /socket.io/, no event operations', async () => {
    await use({ protocol: 'none' });
    const server = http.createServer();
    const io = new IoServer(server);
    const handled = new Promise((resolve) => io.of('/chat').on('connection', (socket) => socket.on('hello', resolve)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const c = connectIo(`http://127.0.0.1:${(server.address() as AddressInfo).port}/chat`, { transports: ['websocket'], forceNew: true, reconnection: false });
    c.emit('hello');
    await handled;
    c.close();
    io.close();
    server.closeAllConnections();
    assert.deepEqual(spans().filter((s) => s.name.includes('/chat')).map((s) => s.name), []);
    assert.ok(spansNamed('WS RECEIVE /socket.io/').length >= 1, spans().map((s) => s.name).join());
    await getInstrumentation()?.uninstrument();
  });

  test('WS_APM_PROTOCOL=none leaves graphql-ws sockets plain ws: every frame a WS RECEIVE {route}', async () => {
    await use({ protocol: 'none' });
    await scenario({ token: TOKEN, secret: SECRET });
    assert.deepEqual(spans().filter((s) => /OnGreeting|anonymous/.test(s.name)), []);
    assert.ok(spansNamed('WS RECEIVE /graphql').length >= 4);
    await getInstrumentation()?.uninstrument();
  });
});

describe('graphql-ws on the agents (an unchanged CommonJS app, -r ws-apm/register)', { timeout: 240_000 }, () => {
  const env = { GQL_TOKEN: TOKEN, GQL_SECRET: SECRET };

  test('Elastic: a messaging transaction per subscribe named by operation, next counted per operation, ping/pong heartbeats and no messages; schema-valid', async () => {
    const intake = await startIntake();
    try {
      const app = run(['-r', 'ws-apm/register', 'app.js'], agentEnv(intake.url, { WS_APM_BACKEND: 'elastic', LINGER: '1500', ...env }) as Record<string, string>, 'graphql-ws');
      assert.deepEqual(await app.exited(), { code: 0, signal: null }, app.stderr());
      assert.match(app.stdout(), /RESULTS \{"named":3,"anonymous":2,"query":1\}/);
      // The results are sent after the transaction ended (graphql-ws executes asynchronously):
      // Elastic records each as a transaction of its own in the subscribe's trace, its child.
      const subscribe = await intake.waitFor('the subscribe transaction', () =>
        intake.transactions('WS RECEIVE /graphql OnGreeting').find((t) => intake.transactions('WS SEND /graphql OnGreeting').some((s) => s.parent_id === t.id)),
      );
      assert.equal(subscribe.type, 'messaging');
      assert.equal(subscribe.context?.tags?.websocket_protocol, 'graphql-ws');
      const sends = intake.transactions('WS SEND /graphql OnGreeting').filter((s) => s.parent_id === subscribe.id);
      assert.equal(sends.length, 4);
      assert.ok(sends.every((s) => s.trace_id === subscribe.trace_id));
      assert.ok(intake.transactions('WS RECEIVE /graphql subscription anonymous').length >= 1);
      assert.deepEqual(intake.transactions('WS RECEIVE /graphql'), []);
      const next = await intake.waitFor('next counted per operation', () =>
        intake.of('metricset').find((m) => m.tags?.websocket_side === 'server' && m.tags?.websocket_message_name === 'OnGreeting' && m.tags?.websocket_protocol_message === 'next'),
      );
      assert.equal(next.samples['websocket.messages'].value, 3);
      // Of the frames the server received, only connection_init is a plain message: pings are heartbeats.
      const plainIn = intake.of('metricset').filter((m) =>
        m.tags?.websocket_side === 'server' && m.tags?.websocket_route === '/graphql' && m.tags?.websocket_direction === 'in' && m.tags?.websocket_message_type === 'text' && m.tags?.websocket_message_name === undefined && m.samples['websocket.messages'] !== undefined,
      );
      assert.equal(plainIn.at(-1)?.samples['websocket.messages'].value, 1);
      const rtt = intake.of('metricset').find((m) => m.tags?.websocket_side === 'client' && m.samples['websocket.heartbeat.rtt.count'] !== undefined);
      assert.ok((rtt?.samples['websocket.heartbeat.rtt.count'].value ?? 0) >= 1);
      assert.doesNotMatch(JSON.stringify(intake.events), new RegExp(`${TOKEN}|${SECRET}`));
      assert.deepEqual(intake.invalid, [], 'every intake event matches the APM Server schema');
    } finally {
      await intake.close();
    }
  });

  test('New Relic: a message transaction per subscribe named by operation, next counted per operation, heartbeats measured', async () => {
    const c = await FakeCollector.start({ mode: 'normal' });
    const home = agentHome(c.port, c.certPem, 'ws-apm-graphql-ws');
    try {
      const app = startFixture('../graphql-ws/app.js', { ...home.env, ...env }, { execArgv: ['-r', 'ws-apm/register'] });
      const result = await app.done;
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /RESULTS \{"named":3,"anonymous":2,"query":1\}/);
      await c.waitFor(() => c.calls.includes('shutdown'), 'the agent to shut down');
      const names = c.transactions.map((t) => String(t.intrinsics.name));
      assert.ok(names.includes('OtherTransaction/WebSocket/WS RECEIVE /graphql OnGreeting'), names.join());
      assert.ok(names.includes('OtherTransaction/WebSocket/WS RECEIVE /graphql query anonymous'), names.join());
      assert.ok(!names.includes('OtherTransaction/WebSocket/WS RECEIVE /graphql'), names.join());
      // Its results, sent after it ended: transactions of their own, its children.
      const subscribe = c.transactions.filter((t) => t.intrinsics.name === 'OtherTransaction/WebSocket/WS RECEIVE /graphql OnGreeting');
      const sends = c.transactions.filter((t) => /WS SEND \/graphql OnGreeting$/.test(String(t.intrinsics.name)));
      assert.equal(sends.length, 4, names.join());
      // One server subscribe (its 4 results) and 3 results the client received, each its own trace.
      const traces = new Set(subscribe.map((r) => r.intrinsics.traceId));
      assert.equal(sends.filter((t) => traces.has(t.intrinsics.traceId)).length, sends.length, JSON.stringify(sends.map((t) => t.intrinsics)));
      const wsMetrics = c.metrics.map((m) => m.name).filter((n) => n.includes('WebSocket'));
      assert.equal(c.metric('Custom/WebSocket/Messages/out/graphql/OnGreeting/next')?.callCount, 3, wsMetrics.join());
      assert.equal(c.metric('Custom/WebSocket/Messages/in/graphql/OnGreeting/subscribe')?.callCount, 1, wsMetrics.join());
      assert.ok((c.metric('Custom/WebSocket/Client/HeartbeatRtt/graphql')?.callCount ?? 0) >= 1, wsMetrics.join());
      // Of the frames the server received, only connection_init is a plain message: pings are heartbeats.
      assert.equal(c.metric('Custom/WebSocket/Messages/in/graphql')?.callCount, 1, wsMetrics.join());
      assert.doesNotMatch(JSON.stringify([c.transactions, c.spans, c.errors, c.customEvents]), new RegExp(`${TOKEN}|${SECRET}`));
      assert.deepEqual(c.problems, []);
    } finally {
      home.cleanup();
      await c.close();
    }
  });
});
