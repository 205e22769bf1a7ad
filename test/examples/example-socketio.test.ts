/**
 * The socket.io example (examples/socketio) end to end: two server processes started with
 * `-r ws-apm/register`, scaled out through a real redis-server with @socket.io/redis-adapter, and
 * socket.io-client processes, exporting OTLP/HTTP JSON to a local receiver. Covers the JWT refused
 * in the connect middleware, a room message from instance A delivered on instance B, the counts of
 * every event and delivery on both instances, the trace from A's event to B's delivery through
 * Redis, and socket.io-client's reconnection when an instance restarts. The compose profile is
 * checked statically in test/examples/compose.test.ts.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import { run, type Child } from '../helpers/child';
import { CONSUMER, OtlpReceiver, otlpEnv, PRODUCER, type ReceivedSpan, SERVER } from '../helpers/otlp-receiver';
import { redisServerMissing, startRedis, type RedisServer } from '../helpers/example-redis';
import { suiteSkip } from '../helpers/requirements';

const ROOT = path.resolve(__dirname, '..', '..');
const SERVER_JS = path.join(ROOT, 'examples', 'socketio', 'server.js');
const CLIENT_JS = path.join(ROOT, 'examples', 'socketio', 'client.js');
const SECRET = 'example-socketio-secret-0123456789abcdef';
/** Messages alice sends from instance A. */
const MESSAGES = 5;

let receiver: OtlpReceiver;
const children: Child[] = [];

function otelEnv(service: string, extra: Record<string, string> = {}): Record<string, string> {
  return otlpEnv(receiver.url, service, {
    OTEL_METRIC_EXPORT_INTERVAL: '300',
    OTEL_METRIC_EXPORT_TIMEOUT: '250',
    OTEL_BSP_SCHEDULE_DELAY: '100',
    ...extra,
  });
}

function start(args: string[], env: Record<string, string>): Child {
  const child = run(['-r', 'ws-apm/register', ...args], env, 'example');
  children.push(child);
  return child;
}

function startServer(service: string, env: Record<string, string>): Child {
  return start([SERVER_JS], otelEnv(service, { JWT_SECRET: SECRET, HOST: '127.0.0.1', ...env }));
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

function count(child: Child, pattern: RegExp): number {
  return (child.stdout().match(pattern) ?? []).length;
}

/**
 * The value of a cumulative metric as `service` exports it after this call: a point from a
 * batch newer than every batch received so far (so nothing counted before now is missed).
 */
function freshValue(service: string, metric: string, match: Record<string, unknown>): Promise<number> {
  const seen = receiver.points.reduce((max, p) => Math.max(max, p.batch), 0);
  return eventually(`${metric} ${JSON.stringify(match)} from ${service}, exported after now`, () =>
    receiver.points.filter((p) =>
      p.service === service && p.name === metric && p.batch > seen && Object.entries(match).every(([k, v]) => p.attributes[k] === v),
    ).at(-1)?.value);
}

/** engine.io's frames (every socket.io packet is a text frame here), as one side counts them. */
const frames = (direction: 'in' | 'out', side = 'server') =>
  ({ 'websocket.route': '/socket.io/', 'websocket.side': side, 'websocket.direction': direction, 'websocket.message.type': 'text' });

before(async () => {
  receiver = await new OtlpReceiver().start();
});

after(async () => {
  await Promise.all(children.map(stop));
  await receiver.stop();
});

describe('examples/socketio bind address', () => {
  test('without HOST the server listens on 127.0.0.1 only, and says how to accept other machines', async () => {
    // HOST empty reads as unset (a HOST from the environment running the tests must not leak in).
    const server = start([SERVER_JS], otelEnv('sio-bind', { JWT_SECRET: SECRET, PORT: '0', INSTANCE: 'bind', HOST: '' }));
    const [, port] = await server.line(/^LISTENING bind (\d+)$/);
    await server.line(new RegExp(`^bind: listening on 127\\.0\\.0\\.1:${port} \\(this machine only; HOST=0\\.0\\.0\\.0 for other machines\\)$`));
    await server.line(/^READY memory$/);
    assert.deepEqual(await stop(server), { code: 0, signal: null }, server.stderr());
  });
});

describe('examples/socketio: two instances through Redis', { timeout: 120_000, skip: suiteSkip(redisServerMissing()) }, () => {
  let redis: RedisServer;
  let a: Child;
  let b: Child;
  let bob: Child;
  let portA = 0;
  let portB = 0;

  before(async () => {
    redis = await startRedis();
    a = startServer('sio-a', { PORT: '0', INSTANCE: 'a', REDIS_URL: redis.url });
    b = startServer('sio-b', { PORT: '0', INSTANCE: 'b', REDIS_URL: redis.url });
    portA = Number((await a.line(/^LISTENING a (\d+)$/))[1]);
    portB = Number((await b.line(/^LISTENING b (\d+)$/))[1]);
    await a.line(/^READY redis$/);
    await b.line(/^READY redis$/);
  });

  after(async () => {
    await Promise.all(children.map(stop));
    await redis?.stop();
  });

  test('a JWT refused in the connect middleware is a rejected WS CONNECT /chat with the reason', async () => {
    const forged = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJlLW9mLWFub3RoZXIta2V5';
    const refused = async (auth: Record<string, string>): Promise<string> => {
      const socket: Socket = io(`http://127.0.0.1:${portA}/chat`, { transports: ['websocket'], reconnection: false, forceNew: true, auth });
      try {
        const err = await new Promise<Error>((resolve) => socket.once('connect_error', resolve));
        return err.message;
      } finally {
        socket.disconnect();
      }
    };
    assert.equal(await refused({ token: forged, room: 'lobby' }), 'token signed with another key');
    assert.equal(await refused({ room: 'lobby' }), 'no token');
    await a.line(/^REFUSED a no token$/);

    const rejected = await eventually('two rejected WS CONNECT /chat', () => {
      const spans = receiver.spansOf('sio-a', 'WS CONNECT /chat').filter((s) => s.attributes['websocket.connection.outcome'] === 'rejected');
      return spans.length >= 2 && spans;
    });
    assert.deepEqual(rejected.map((s) => s.status.message).sort(), ['no token', 'token signed with another key']);
    for (const s of rejected) {
      assert.equal(s.kind, SERVER);
      assert.equal(s.status.code, 2, 'error status');
      assert.equal(s.attributes['error.type'], 'Error');
    }
    // The auth payload (the token) is never recorded.
    assert.doesNotMatch(JSON.stringify(receiver.spans), /eyJ[A-Za-z0-9_-]{10,}/);
    await eventually('websocket.server.connections{/chat, rejected} = 2', () =>
      receiver.lastPoint('sio-a', 'websocket.server.connections', { 'websocket.route': '/chat', 'websocket.connection.outcome': 'rejected' }) === 2);
  });

  test('a room message from a client on A reaches a client on B; every event and delivery is counted on both', async () => {
    bob = startClient('sio-client-bob', { CHAT_USER: 'bob', SERVER_URL: `http://127.0.0.1:${portB}`, SEND_EVERY_MS: '0' });
    await bob.line(/^OPEN bob instance=b connection=1$/);
    await b.line(/^JOINED b bob lobby$/);
    // What B wrote to bob so far (engine.io open, the CONNECT answer, the welcome).
    const bOutBefore = await freshValue('sio-b', 'websocket.messages', frames('out'));

    const alice = startClient('sio-client-alice', {
      CHAT_USER: 'alice', SERVER_URL: `http://127.0.0.1:${portA}`, SEND_EVERY_MS: '100', MESSAGES: String(MESSAGES),
    });
    await alice.line(/^OPEN alice instance=a connection=1$/);
    await eventually(`bob got alice's ${MESSAGES} messages through Redis`, () =>
      count(bob, /^GOT bob from=alice origin=a via=b text="alice says #\d+"$/gm) === MESSAGES);
    await eventually(`alice's ${MESSAGES} acks`, () => count(alice, /^ACKED alice id=a-\d+$/gm) === MESSAGES);
    assert.deepEqual(await stop(alice), { code: 0, signal: null }, alice.stderr());

    // A: every event (its handler's latency, per event name), its frames in, the acks out.
    assert.equal(await freshValue('sio-a', 'websocket.message.process.duration', { 'websocket.route': '/chat', 'websocket.message.name': 'chat message' }), MESSAGES);
    assert.ok((await freshValue('sio-a', 'websocket.messages', frames('in'))) >= MESSAGES, 'A counted the events in');
    assert.ok((await freshValue('sio-a', 'websocket.messages', frames('out'))) >= MESSAGES, 'A counted the acks out');
    // B: every delivery that came through Redis is a frame out, no more and no fewer.
    assert.equal(await freshValue('sio-b', 'websocket.messages', frames('out')), bOutBefore + MESSAGES);
    assert.equal(receiver.lastPoint('sio-b', 'websocket.message.process.duration', { 'websocket.message.name': 'chat message' }), undefined, 'no event was handled on B');
    // bob's end agrees: every frame B wrote arrived.
    assert.equal(await freshValue('sio-client-bob', 'websocket.messages', frames('in', 'client')), bOutBefore + MESSAGES);
  });

  test("one trace from A's event to B's delivery: A's WS RECEIVE → A's broadcast → B's WS SEND through Redis", async () => {
    const chains = await eventually(`${MESSAGES} chains through Redis`, () => {
      const found: { receive: ReceivedSpan; sendA: ReceivedSpan; sendB: ReceivedSpan }[] = [];
      for (const sendB of receiver.spansOf('sio-b', 'WS SEND /chat chat message')) {
        const sendA = receiver.spansOf('sio-a').find((s) => s.spanId === sendB.parentSpanId);
        const receive = sendA && receiver.spansOf('sio-a').find((s) => s.spanId === sendA.parentSpanId);
        if (sendA && receive) found.push({ receive, sendA, sendB });
      }
      return found.length >= MESSAGES && found;
    });
    for (const { receive, sendA, sendB } of chains) {
      assert.equal(receive.name, 'WS RECEIVE /chat chat message');
      assert.equal(receive.kind, CONSUMER);
      assert.equal(sendA.name, 'WS SEND /chat chat message');
      assert.equal(sendA.kind, PRODUCER);
      assert.equal(sendB.kind, PRODUCER);
      assert.equal(sendA.traceId, receive.traceId);
      assert.equal(sendB.traceId, receive.traceId);
      // A had no other member of the room; B delivered to bob.
      assert.equal(sendA.attributes['websocket.broadcast.recipients'], 0);
      assert.equal(sendB.attributes['websocket.broadcast.recipients'], 1);
      assert.equal(sendB.attributes['websocket.protocol'], 'socket.io');
    }
  });

  test("an instance that stops: its clients reconnect by socket.io-client's own reconnection and receive again", async () => {
    b.proc.kill('SIGTERM');
    await bob.line(/^CLOSED bob transport close$/);
    assert.deepEqual(await b.exited(), { code: 0, signal: null }, b.stderr());
    await bob.line(/^RECONNECT bob attempt=1$/);
    b = startServer('sio-b', { PORT: String(portB), INSTANCE: 'b', REDIS_URL: redis.url });
    await b.line(/^READY redis$/);
    await bob.line(/^OPEN bob instance=b connection=2$/);
    const carol = startClient('sio-client-carol', { CHAT_USER: 'carol', SERVER_URL: `http://127.0.0.1:${portA}`, SEND_EVERY_MS: '100' });
    await bob.line(/^GOT bob from=carol origin=a via=b /);
    assert.deepEqual(await stop(carol), { code: 0, signal: null }, carol.stderr());
  });

  test('an instance without ws-apm on the same Redis delivers to and from instances with it (the carried context is an element it never reads)', async () => {
    const plain = (args: string[], env: Record<string, string>): Child => {
      const child = run(args, env, 'example');
      children.push(child);
      return child;
    };
    const c = plain([SERVER_JS], { JWT_SECRET: SECRET, HOST: '127.0.0.1', PORT: '0', INSTANCE: 'c', REDIS_URL: redis.url });
    const portC = (await c.line(/^LISTENING c (\d+)$/))[1];
    await c.line(/^READY redis$/);
    const dave = plain([CLIENT_JS], { CHAT_USER: 'dave', SERVER_URL: `http://127.0.0.1:${portC}`, SEND_EVERY_MS: '100', BACKOFF_BASE_MS: '100' });
    const erin = startClient('sio-client-erin', { CHAT_USER: 'erin', SERVER_URL: `http://127.0.0.1:${portA}`, SEND_EVERY_MS: '100' });
    await dave.line(/^GOT dave from=erin origin=a via=c /);
    await bob.line(/^GOT bob from=dave origin=c via=b /);
    await erin.line(/^GOT erin from=dave origin=c via=a /);
    assert.doesNotMatch(c.stderr() + c.stdout(), /Error|error/);
    for (const child of [dave, erin, bob, a, b, c]) assert.deepEqual(await stop(child), { code: 0, signal: null }, child.stderr());
  });
});
