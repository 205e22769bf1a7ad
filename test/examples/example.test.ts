/**
 * The production example (examples/chat) end to end: real server and client processes started
 * with `-r ws-apm/register`, exporting OTLP/HTTP JSON to a local receiver. Covers the cross-instance
 * trace through the broker (in-process broker, then Redis), JWT rejection, heartbeat termination,
 * reconnection after a server restart, and the periodic refresh. The static checks of
 * docker-compose.yml, the collector config and the dashboards are in test/examples/compose.test.ts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { run, type Child } from '../helpers/child';
import { CLIENT, CONSUMER, OtlpReceiver, otlpEnv, PRODUCER, type ReceivedSpan, SERVER } from '../helpers/otlp-receiver';
import { redisServerMissing, startRedis, type RedisServer } from '../helpers/example-redis';
import { requireOrSkip } from '../helpers/requirements';
import { writeSelfSignedCert } from '../helpers/example-tls';

const ROOT = path.resolve(__dirname, '..', '..');
const SERVER_JS = path.join(ROOT, 'examples', 'chat', 'server.js');
const CLIENT_JS = path.join(ROOT, 'examples', 'chat', 'client.js');
const SECRET = 'example-test-secret-0123456789abcdef';
const ROUTE = '/rooms/:room';


let receiver: OtlpReceiver;
const children: Child[] = [];

function otelEnv(service: string, extra: Record<string, string> = {}): Record<string, string> {
  return otlpEnv(receiver.url, service, {
    OTEL_METRIC_EXPORT_INTERVAL: '300',
    OTEL_METRIC_EXPORT_TIMEOUT: '250',
    OTEL_BSP_SCHEDULE_DELAY: '100',
    WS_APM_ROUTES: ROUTE,
    WS_APM_MESSAGE_NAME: 'type',
    WS_APM_MESSAGE_PARENT: 'handshake',
    WS_APM_MESSAGE_CONTEXT: 'trace',
    ...extra,
  });
}

function start(args: string[], env: Record<string, string>): Child {
  const child = run(['-r', 'ws-apm/register', ...args], env, 'example');
  children.push(child);
  return child;
}

function startServer(service: string, env: Record<string, string>): Child {
  return start([SERVER_JS], otelEnv(service, { JWT_SECRET: SECRET, HOST: '127.0.0.1', HEARTBEAT_MS: '300', ...env }));
}

function startClient(service: string, env: Record<string, string>): Child {
  return start([CLIENT_JS], otelEnv(service, { BACKOFF_BASE_MS: '100', BACKOFF_MAX_MS: '800', ...env }));
}

async function stop(child: Child): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGTERM');
  return child.exited();
}

/** Resolve when `check` returns a value (re-checked on every OTLP batch), else fail after `ms`. */
function eventually<T>(what: string, check: () => T | undefined | false, ms = 15000): Promise<T> {
  return receiver.waitFor(what, check, ms);
}

function byId(spans: ReceivedSpan[], id: string): ReceivedSpan | undefined {
  return spans.find((s) => s.spanId === id);
}

/** The delivery of `sender`'s chat to `recipient` as one trace: client → A → broker → B. */
function crossInstanceChain(clientService: string, serverA: string, serverB: string, recipient: string) {
  const all = receiver.spans;
  for (const send of receiver.spansOf(serverB, `WS SEND ${ROUTE}`)) {
    if (send.attributes['enduser.id'] !== recipient) continue;
    const receive = byId(all, send.parentSpanId);
    if (!receive || receive.service !== serverA || receive.name !== `WS RECEIVE ${ROUTE} chat`) continue;
    const serverConnect = byId(all, receive.parentSpanId);
    if (!serverConnect || serverConnect.service !== serverA) continue;
    const clientConnect = byId(all, serverConnect.parentSpanId);
    if (!clientConnect || clientConnect.service !== clientService) continue;
    return { clientConnect, serverConnect, receive, send };
  }
  return undefined;
}

function points(service: string, metric: string, match: Record<string, unknown> = {}) {
  return receiver.points.filter(
    (p) => p.service === service && p.name === metric && Object.entries(match).every(([k, v]) => p.attributes[k] === v),
  );
}

async function token(port: number, user: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/token?user=${user}`);
  assert.equal(res.status, 200);
  return ((await res.json()) as { token: string }).token;
}

/** Open a WebSocket and resolve with the HTTP status of a refused handshake (or 101). */
function handshakeStatus(url: string, options: WebSocket.ClientOptions = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.once('unexpected-response', (req, res) => {
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    ws.once('open', () => {
      resolve(101);
      ws.close();
    });
    ws.once('error', (err) => {
      if (!/aborted|socket hang up/.test(err.message)) reject(err);
    });
  });
}

before(async () => {
  receiver = await new OtlpReceiver().start();
});

after(async () => {
  await Promise.all(children.map(stop));
  await receiver.stop();
});

describe('examples/chat bind address', () => {
  test('without HOST the server listens on 127.0.0.1 only, and says how to accept other machines', async () => {
    // HOST empty reads as unset (a HOST from the environment running the tests must not leak in).
    const server = start([SERVER_JS], otelEnv('chat-bind', { JWT_SECRET: SECRET, PORTS: '0', INSTANCE: 'bind', HOST: '' }));
    const [, port] = await server.line(/^LISTENING bind (\d+) ws$/);
    await server.line(new RegExp(`^bind: listening on 127\\.0\\.0\\.1:${port} \\(this machine only; HOST=0\\.0\\.0\\.0 for other machines\\)$`));
    assert.deepEqual(await stop(server), { code: 0, signal: null });
  });
});

describe('examples/chat with the in-process broker (two instances in one process)', { timeout: 90_000 }, () => {
  let server: Child;
  let alice: Child;
  let bob: Child;
  let port1 = 0;
  let port2 = 0;

  before(async () => {
    server = startServer('chat-mem', { PORTS: '0,0', INSTANCE: 'mem' });
    port1 = Number((await server.line(/^LISTENING mem-1 (\d+) ws$/))[1]);
    port2 = Number((await server.line(/^LISTENING mem-2 (\d+) ws$/))[1]);
    await server.line(/^READY memory$/);
    alice = startClient('chat-client-alice', {
      CHAT_USER: 'alice', SERVER_URLS: `ws://127.0.0.1:${port1}`, SEND_EVERY_MS: '200', REFRESH_MS: '1500',
    });
    bob = startClient('chat-client-bob', {
      CHAT_USER: 'bob', SERVER_URLS: `ws://127.0.0.1:${port2}`, SEND_EVERY_MS: '0',
    });
  });

  after(async () => {
    await Promise.all([alice, bob, server].filter(Boolean).map(stop));
  });

  test('a chat message is one trace: client → instance 1 → broker → instance 2 → client', async () => {
    await bob.line(/^GOT bob from=alice origin=mem-1 via=mem-2 /);
    const chain = await eventually('the cross-instance chain', () =>
      crossInstanceChain('chat-client-alice', 'chat-mem', 'chat-mem', 'bob'));
    const { clientConnect, serverConnect, receive, send } = chain;
    assert.equal(clientConnect.kind, CLIENT);
    assert.equal(serverConnect.kind, SERVER);
    assert.equal(receive.kind, CONSUMER);
    assert.equal(send.kind, PRODUCER);
    for (const s of [serverConnect, receive, send]) assert.equal(s.traceId, clientConnect.traceId);
    assert.equal(serverConnect.attributes['http.response.status_code'], 101);
    assert.equal(receive.attributes['enduser.id'], 'alice');
    assert.equal(receive.attributes['websocket.message.name'], 'chat');
    // The token went in a header: nothing secret in any recorded attribute.
    assert.doesNotMatch(JSON.stringify(receiver.spans), /eyJ[A-Za-z0-9_-]{10,}/);
    // The last hop: bob's client continues the context the message carries (WS_APM_MESSAGE_CONTEXT).
    const bobReceive = await eventually('bob\'s client-side receive in the same trace', () =>
      receiver.spansOf('chat-client-bob', `WS RECEIVE ${ROUTE} chat`).find((s) => s.traceId === clientConnect.traceId));
    assert.equal(bobReceive.kind, CONSUMER);
    assert.equal(bobReceive.parentSpanId, receive.spanId);
  });

  test('a bad or missing JWT is refused with 401 before the upgrade and recorded as a rejected handshake', async () => {
    const url = `ws://127.0.0.1:${port1}/rooms/lobby`;
    assert.equal(await handshakeStatus(url), 401);
    assert.equal(await handshakeStatus(`${url}?token=not.a.jwt`), 401);
    assert.equal(await handshakeStatus(url, { headers: { authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl' } }), 401);
    // A valid token in the browser's way (subprotocol) is accepted and answered with 'chat'.
    const valid = await token(port1, 'browser');
    const browser = new WebSocket(url, ['chat', `access_token.${valid}`]);
    await once(browser, 'open');
    assert.equal(browser.protocol, 'chat');
    browser.close();
    await once(browser, 'close');

    const rejected = await eventually('three rejected WS CONNECT spans', () => {
      const spans = receiver.spansOf('chat-mem', `WS CONNECT ${ROUTE}`).filter((s) => s.attributes['http.response.status_code'] === 401);
      return spans.length >= 3 && spans;
    });
    for (const s of rejected) assert.equal(s.kind, SERVER);
    assert.ok(rejected.every((s) => !String(s.attributes['url.query'] ?? '').includes('not.a.jwt')), 'token redacted from url.query');
    await eventually('websocket.server.connections{outcome=rejected} >= 3', () =>
      (receiver.lastPoint('chat-mem', 'websocket.server.connections', { 'websocket.connection.outcome': 'rejected', 'websocket.route': ROUTE }) ?? 0) >= 3);
  });

  test('a client that stops answering pings is terminated by the heartbeat and counted as broken', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port2}/rooms/lobby`, {
      headers: { authorization: `Bearer ${await token(port2, 'mallory')}` },
      autoPong: false,
    });
    const [code] = (await once(ws, 'close')) as [number];
    assert.equal(code, 1006, 'terminated without a close handshake');
    await server.line(/^TERMINATED mem-2 mallory$/);
    await eventually('websocket.connections.broken{side=server} >= 1', () =>
      (receiver.lastPoint('chat-mem', 'websocket.connections.broken', { 'websocket.side': 'server', 'websocket.route': ROUTE }) ?? 0) >= 1);
    const close = await eventually('mallory\'s WS CLOSE', () =>
      receiver.spansOf('chat-mem', `WS CLOSE ${ROUTE}`).find((s) => s.attributes['enduser.id'] === 'mallory'));
    assert.equal(close.attributes['websocket.connection.broken'], true);
    // Healthy clients answered the same pings: round trips were measured.
    assert.ok(points('chat-mem', 'websocket.heartbeat.rtt', { 'websocket.side': 'server' }).some((p) => p.value > 0), 'heartbeat RTT recorded');
  });

  test('the client refreshes its connection every REFRESH_MS (new token, make-before-break)', async () => {
    await alice.line(/^REFRESHED alice instance=mem-1$/);
    await alice.line(/^OPEN alice instance=mem-1 connection=2$/);
    const refreshClose = await eventually('the refreshed connection\'s WS CLOSE (1000 refresh)', () =>
      receiver.spansOf('chat-mem', `WS CLOSE ${ROUTE}`).find((s) =>
        s.attributes['enduser.id'] === 'alice' && s.attributes['websocket.close.code'] === 1000 && s.attributes['websocket.close.reason'] === 'refresh'));
    assert.equal(refreshClose.attributes['websocket.close.initiator'], 'client');
    assert.doesNotMatch(alice.stdout(), /^CLOSED alice/m, 'a refresh is not a disconnection');
  });

  test('SIGTERM closes clients with 1012; they reconnect with backoff once the server is back', async () => {
    const before = (alice.stdout().match(/^OPEN alice/gm) ?? []).length;
    server.proc.kill('SIGTERM');
    await alice.line(/^CLOSED alice 1012$/);
    await bob.line(/^CLOSED bob 1012$/);
    assert.deepEqual(await server.exited(), { code: 0, signal: null }, server.stderr());
    await alice.line(/^RECONNECT alice attempt=1 in=\d+ms \(closed 1012\)$/);
    const restartClose = await eventually('WS CLOSE 1012 by the server', () =>
      receiver.spansOf('chat-mem', `WS CLOSE ${ROUTE}`).find((s) =>
        s.attributes['websocket.close.code'] === 1012 && s.attributes['websocket.close.initiator'] === 'server'));
    assert.ok(restartClose);

    server = startServer('chat-mem', { PORTS: `${port1},${port2}`, INSTANCE: 'mem' });
    await server.line(/^READY memory$/);
    await bob.line(/^OPEN bob instance=mem-2 connection=2$/);
    await eventually('alice reconnected', () => (alice.stdout().match(/^OPEN alice/gm) ?? []).length > before);
    // And the room works again across instances.
    const seen = (bob.stdout().match(/^GOT bob /gm) ?? []).length;
    await eventually('a new message delivered after the restart', () => (bob.stdout().match(/^GOT bob /gm) ?? []).length > seen, 10000);
    assert.match(alice.stdout(), /^RECONNECT alice attempt=\d+ in=\d+ms/m);
  });
});

describe('examples/chat with Redis (two server processes)', { timeout: 60_000 }, () => {
  let redis: RedisServer | undefined;

  after(async () => {
    await redis?.stop();
  });

  test('client → instance A → Redis → instance B → client is one trace', async (t) => {
    if (requireOrSkip(t, redisServerMissing())) return;
    redis = await startRedis();
    const a = startServer('chat-a', { PORTS: '0', INSTANCE: 'a', REDIS_URL: redis.url });
    const b = startServer('chat-b', { PORTS: '0', INSTANCE: 'b', REDIS_URL: redis.url });
    const portA = (await a.line(/^LISTENING a (\d+) ws$/))[1];
    const portB = (await b.line(/^LISTENING b (\d+) ws$/))[1];
    await a.line(/^READY redis$/);
    await b.line(/^READY redis$/);
    const carol = startClient('redis-client-carol', { CHAT_USER: 'carol', SERVER_URLS: `ws://127.0.0.1:${portA}`, SEND_EVERY_MS: '200' });
    const dave = startClient('redis-client-dave', { CHAT_USER: 'dave', SERVER_URLS: `ws://127.0.0.1:${portB}`, SEND_EVERY_MS: '0' });
    try {
      await dave.line(/^GOT dave from=carol origin=a via=b /);
      const { clientConnect, serverConnect, receive, send } = await eventually('the chain through Redis', () =>
        crossInstanceChain('redis-client-carol', 'chat-a', 'chat-b', 'dave'));
      for (const s of [serverConnect, receive, send]) assert.equal(s.traceId, clientConnect.traceId);
      assert.equal(send.kind, PRODUCER);
      assert.equal(receive.attributes['enduser.id'], 'carol');
    } finally {
      await Promise.all([carol, dave].map(stop));
      assert.deepEqual(await stop(a), { code: 0, signal: null }, a.stderr());
      assert.deepEqual(await stop(b), { code: 0, signal: null }, b.stderr());
    }
  });
});

describe('examples/chat over WSS', { timeout: 60_000 }, () => {
  test('TLS_CERT/TLS_KEY serve wss:// (and the token over https); the client trusts the CA and joins the trace', async () => {
    const tls = await writeSelfSignedCert();
    const server = startServer('chat-tls', { PORTS: '0', INSTANCE: 'tls', TLS_CERT: tls.cert, TLS_KEY: tls.key });
    try {
      const port = (await server.line(/^LISTENING tls (\d+) wss$/))[1];
      const client = startClient('chat-client-tls', {
        CHAT_USER: 'erin', SERVER_URLS: `wss://127.0.0.1:${port}`, SEND_EVERY_MS: '0', NODE_EXTRA_CA_CERTS: tls.cert,
      });
      await client.line(/^OPEN erin instance=tls connection=1$/);
      assert.deepEqual(await stop(client), { code: 0, signal: null });
      const serverConnect = await eventually('the WSS handshake', () =>
        receiver.spansOf('chat-tls', `WS CONNECT ${ROUTE}`).find((s) => s.attributes['http.response.status_code'] === 101));
      const clientConnect = receiver.spansOf('chat-client-tls').find((s) => s.spanId === serverConnect.parentSpanId);
      assert.ok(clientConnect, 'the client handshake is the parent of the server handshake');
      assert.match(String(clientConnect.attributes['url.full']), /^wss:\/\/127\.0\.0\.1:\d+\/rooms\/lobby$/);
    } finally {
      assert.deepEqual(await stop(server), { code: 0, signal: null }, server.stderr());
      tls.remove();
    }
  });
});
