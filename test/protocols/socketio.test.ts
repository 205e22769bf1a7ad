/**
 * socket.io 4 on ws, with the real socket.io server and socket.io-client and the real
 * OpenTelemetry SDK exporting to memory: every event an operation named by namespace and
 * event that covers its handler, over websocket and long-polling; sends and acks under it;
 * the namespace connect and its middlewares; broadcasts; heartbeats; exact frame counts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Server, type Socket as ServerSocket } from 'socket.io';
import { io as connectIo, type Socket as ClientSocket } from 'socket.io-client';
import { getInstrumentation, instrument, type InstrumentOptions } from '../../src/index';
import { run } from '../helpers/child';
import { agentEnv, startIntake } from '../helpers/elastic-intake';
import { FakeCollector, agentHome } from '../helpers/newrelic-collector';
import { startFixture } from '../helpers/newrelic-fixture';
import { recordingAdapter } from '../helpers/reliability-adapter';
import { CONSUMER, OtlpReceiver, otlpEnv, PRODUCER } from '../helpers/otlp-receiver';
import { collectMetrics, metricValue, registerMemorySdk, resetSpans, spans, spansNamed, waitForSpans } from '../helpers/otel-memory';

registerMemorySdk();

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

async function use(options: InstrumentOptions = {}): Promise<void> {
  await getInstrumentation()?.uninstrument();
  instrument({ backend: 'otel', startSdk: false, flushOnExit: false, logLevel: 'silent', ...options });
}

interface App {
  readonly io: Server;
  readonly url: string;
  close(): Promise<void>;
}

let app: App | undefined;
const clients: ClientSocket[] = [];

async function startApp(options: Record<string, unknown> = {}): Promise<App> {
  const server = http.createServer();
  const io = new Server(server, options);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  app = {
    io,
    url,
    close: async () => {
      io.close();
      server.closeAllConnections();
      if (server.listening) await new Promise((resolve) => server.close(resolve));
    },
  };
  return app;
}

async function client(path: string, options: Record<string, unknown> = {}): Promise<ClientSocket> {
  const c = connectIo(`${app!.url}${path}`, { transports: ['websocket'], forceNew: true, reconnection: false, ...options });
  clients.push(c);
  await Promise.race([
    next(c, 'connect'),
    next(c, 'connect_error').then(([err]) => {
      throw err;
    }),
  ]);
  return c;
}

/** The arguments of the next `event` on a socket.io-client socket or its engine (not Node EventEmitters). */
function next(emitter: { once(event: string, listener: (...args: any[]) => void): unknown }, event: string): Promise<unknown[]> {
  return new Promise((resolve) => emitter.once(event, (...args: unknown[]) => resolve(args)));
}

function attr(span: ReadableSpan, key: string): unknown {
  return span.attributes[key];
}

function childrenOf(span: ReadableSpan): ReadableSpan[] {
  return spans().filter((s) => s.parentSpanContext?.spanId === span.spanContext().spanId);
}

/** Frame-level operations of engine.io's connection (what ws-apm recorded before socket.io was known). */
function frameOperations(): ReadableSpan[] {
  return spans().filter((s) => /^WS (RECEIVE|SEND) \/socket\.io\//.test(s.name));
}

const outFrames = (): Promise<number> =>
  metricValue('websocket.messages', { 'websocket.route': '/socket.io/', 'websocket.side': 'server', 'websocket.direction': 'out' });

after(async () => {
  await getInstrumentation()?.uninstrument();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await app?.close();
  app = undefined;
  await use();
  resetSpans();
});

describe('socket.io server', () => {
  test('an event is WS RECEIVE {namespace} {event}: a CONSUMER operation over its handler, linked to the namespace connect, itself a child of the ws handshake', async () => {
    await use();
    const { io } = await startApp();
    io.of('/chat').on('connection', (socket) => {
      socket.on('chat message', (text: string, ack: (reply: string) => void) => {
        trace.getTracer('app').startActiveSpan('db query', (span) => span.end());
        socket.emit('reply', text);
        ack('stored');
      });
    });
    const c = await client('/chat');
    const replied = next(c, 'reply');
    assert.equal(await c.emitWithAck('chat message', 'hello'), 'stored');
    await replied;

    const [event] = await waitForSpans('WS RECEIVE /chat chat message');
    assert.equal(event.kind, SpanKind.CONSUMER);
    assert.equal(attr(event, 'websocket.message.name'), 'chat message');
    assert.equal(attr(event, 'websocket.protocol'), 'socket.io');
    assert.equal(attr(event, 'websocket.transport'), 'websocket');
    assert.equal(attr(event, 'messaging.destination.name'), '/chat');
    const children = childrenOf(event).map((s) => s.name).sort();
    assert.deepEqual(children, ['WS SEND /chat ack', 'WS SEND /chat reply', 'db query']);
    const ack = spansNamed('WS SEND /chat ack')[0];
    assert.equal(ack.kind, SpanKind.PRODUCER);
    assert.equal(attr(ack, 'websocket.message.ack'), true);

    const [connect] = spansNamed('WS CONNECT /chat');
    const [handshake] = spansNamed('WS CONNECT /socket.io/');
    assert.equal(connect.parentSpanContext?.spanId, handshake.spanContext().spanId);
    assert.equal(attr(connect, 'websocket.connection.outcome'), 'accepted');
    assert.equal(event.links.length, 1);
    assert.equal(event.links[0].context.spanId, connect.spanContext().spanId);
    assert.notEqual(event.spanContext().traceId, connect.spanContext().traceId);
    assert.deepEqual(frameOperations().map((s) => s.name), [], 'no frame-level operation, on either side');
  });

  test('over long-polling: the same event operation, and the namespace connect continues the trace of the handshake request', async () => {
    await use();
    const { io } = await startApp();
    io.of('/chat').on('connection', (socket) => {
      socket.on('chat message', (_text: string, ack: (reply: string) => void) => ack('ok'));
    });
    const c = await client('/chat', { transports: ['polling'], extraHeaders: { traceparent: TRACEPARENT } });
    assert.equal(await c.emitWithAck('chat message', 'hello'), 'ok');
    const [event] = await waitForSpans('WS RECEIVE /chat chat message');
    assert.equal(attr(event, 'websocket.transport'), 'polling');
    const [connect] = spansNamed('WS CONNECT /chat');
    assert.equal(connect.spanContext().traceId, TRACE_ID);
    assert.equal(attr(connect, 'websocket.transport'), 'polling');
    assert.equal(event.links[0].context.spanId, connect.spanContext().spanId);
    assert.equal(childrenOf(event).map((s) => s.name).join(), 'WS SEND /chat ack');
  });

  test('across an upgrade from polling to websocket, events on both transports belong to the same socket.io connection', async () => {
    await use();
    const { io } = await startApp();
    // The transport each step ran over, as socket.io saw it (the upgrade races the first event).
    const seen: string[] = [];
    io.of('/chat').on('connection', (socket) => {
      seen.push(socket.conn.transport.name);
      socket.on('ping me', (ack: () => void) => {
        seen.push(socket.conn.transport.name);
        ack();
      });
    });
    const c = await client('/chat', { transports: ['polling', 'websocket'] });
    await c.emitWithAck('ping me');
    if (c.io.engine.transport.name !== 'websocket') await next(c.io.engine, 'upgrade');
    await c.emitWithAck('ping me');
    const events = await waitForSpans('WS RECEIVE /chat ping me', 2);
    const [connect] = spansNamed('WS CONNECT /chat');
    assert.equal(attr(connect, 'websocket.transport'), seen[0]);
    assert.equal(seen[0], 'polling');
    assert.deepEqual(events.map((s) => attr(s, 'websocket.transport')), seen.slice(1));
    assert.equal(seen[2], 'websocket');
    for (const event of events) assert.equal(event.links[0].context.spanId, connect.spanContext().spanId);
    assert.deepEqual(frameOperations().map((s) => s.name), []);
  });

  test('socket.use middlewares run inside the event operation, and next(err) fails it with the error', async () => {
    await use();
    const { io } = await startApp();
    const refused = new Promise<Error>((resolve) => {
      io.of('/chat').on('connection', (socket) => {
        socket.use(([event], next) => {
          trace.getTracer('app').startActiveSpan('permission check', (span) => span.end());
          next(event === 'forbidden' ? new Error('not allowed') : undefined);
        });
        socket.on('error', resolve);
        socket.on('allowed', (ack: () => void) => ack());
      });
    });
    const c = await client('/chat');
    await c.emitWithAck('allowed');
    c.emit('forbidden');
    assert.equal((await refused).message, 'not allowed');
    const [allowed] = await waitForSpans('WS RECEIVE /chat allowed');
    const [forbidden] = await waitForSpans('WS RECEIVE /chat forbidden');
    assert.deepEqual(childrenOf(allowed).map((s) => s.name).sort(), ['WS SEND /chat ack', 'permission check']);
    assert.equal(allowed.status.code, SpanStatusCode.UNSET);
    assert.equal(forbidden.status.code, SpanStatusCode.ERROR);
    assert.equal(forbidden.events.find((e) => e.name === 'exception')?.attributes?.['exception.message'], 'not allowed');
  });

  test('events waiting for dispatch on a socket that closes first are ended without their handlers; other sockets\' events still cover theirs', async () => {
    await use();
    const { io } = await startApp();
    const handled: string[] = [];
    io.of('/chat').on('connection', (socket) => {
      socket.on('closing', () => {
        handled.push('closing');
        socket.disconnect();
      });
      socket.on('queued', () => handled.push('queued'));
      socket.on('queued too', () => handled.push('queued too'));
      socket.on('after', (ack: () => void) => {
        trace.getTracer('app').startActiveSpan('after handler', (span) => span.end());
        handled.push('after');
        ack();
      });
    });
    const c = await client('/chat');
    // The three frames in one write: the server reads them in one chunk, so all three wait for
    // socket.io's ticks when the first handler closes the socket.
    const raw = (c.io as unknown as { engine: { transport: { ws: { _socket: { cork(): void; uncork(): void } } } } }).engine.transport.ws._socket;
    raw.cork();
    c.emit('closing');
    c.emit('queued');
    c.emit('queued too');
    await new Promise((resolve) => setImmediate(resolve));
    raw.uncork();
    const [queued] = await waitForSpans('WS RECEIVE /chat queued');
    const [queuedToo] = await waitForSpans('WS RECEIVE /chat queued too');
    await waitForSpans('WS RECEIVE /chat closing');
    assert.ok(queued.ended && queuedToo.ended);
    const other = await client('/chat');
    await other.emitWithAck('after');
    const [after] = await waitForSpans('WS RECEIVE /chat after');
    assert.deepEqual(childrenOf(after).map((s) => s.name).sort(), ['WS SEND /chat ack', 'after handler']);
    assert.deepEqual(handled, ['closing', 'after']);
  });

  test('io.use middlewares run inside WS CONNECT {namespace}; next(err) is a rejected connect with the error; the auth payload is never recorded', async () => {
    await use();
    const { io } = await startApp();
    const chat = io.of('/chat');
    chat.use((socket, next) => {
      trace.getTracer('app').startActiveSpan('verify token', (span) => span.end());
      next(socket.handshake.auth.token === 'good-secret-token' ? undefined : new Error('invalid token'));
    });
    chat.on('connection', () => {
      trace.getTracer('app').startActiveSpan('load profile', (span) => span.end());
    });
    await client('/chat', { auth: { token: 'good-secret-token' } });
    const rejected = connectIo(`${app!.url}/chat`, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { token: 'bad-secret-token' } });
    clients.push(rejected);
    const [err] = (await next(rejected, 'connect_error')) as [Error];
    assert.equal(err.message, 'invalid token');

    const connects = await waitForSpans('WS CONNECT /chat', 2);
    const accepted = connects.find((s) => attr(s, 'websocket.connection.outcome') === 'accepted')!;
    const refused = connects.find((s) => attr(s, 'websocket.connection.outcome') === 'rejected')!;
    assert.deepEqual(childrenOf(accepted).map((s) => s.name).sort(), ['load profile', 'verify token']);
    assert.equal(refused.status.code, SpanStatusCode.ERROR);
    assert.equal(refused.events.find((e) => e.name === 'exception')?.attributes?.['exception.message'], 'invalid token');
    assert.deepEqual(childrenOf(refused).map((s) => s.name), ['verify token']);
    assert.equal(await metricValue('websocket.server.connections', { 'websocket.route': '/chat', 'websocket.connection.outcome': 'rejected' }), 1);
    assert.equal(await metricValue('websocket.server.connections', { 'websocket.route': '/chat', 'websocket.connection.outcome': 'accepted' }), 1);
    assert.ok(!JSON.stringify(spans().map((s) => [s.attributes, s.events])).includes('secret-token'), 'the auth payload is never recorded');
  });

  test('active connections are counted per namespace, and go down when a socket disconnects', async () => {
    await use();
    const { io } = await startApp();
    const disconnected = new Promise((resolve) => io.of('/chat').on('connection', (socket) => socket.on('disconnect', resolve)));
    io.of('/news').on('connection', () => undefined);
    const first = await client('/chat');
    await client('/chat');
    await client('/news');
    assert.equal(await metricValue('websocket.server.active_connections', { 'websocket.route': '/chat' }), 2);
    assert.equal(await metricValue('websocket.server.active_connections', { 'websocket.route': '/news' }), 1);
    first.disconnect();
    await disconnected;
    assert.equal(await metricValue('websocket.server.active_connections', { 'websocket.route': '/chat' }), 1);
  });

  test('handler latency is recorded per event name; names past the cap are other', async () => {
    await use({ maxMessageNames: 1 });
    const { io } = await startApp();
    // No acks: the client (instrumented too, in this process) receives nothing that would use a name.
    let handled = 0;
    let allHandled!: () => void;
    const three = new Promise<void>((resolve) => (allHandled = resolve));
    const count = (): void => {
      if (++handled === 3) allHandled();
    };
    io.of('/chat').on('connection', (socket) => {
      socket.on('first', count);
      socket.on('second', count);
    });
    const c = await client('/chat');
    c.emit('first');
    c.emit('first');
    c.emit('second');
    await three;
    await waitForSpans('WS RECEIVE /chat other');
    const process = (name: string): Promise<number> =>
      metricValue('websocket.message.process.duration', { 'websocket.route': '/chat', 'websocket.message.name': name });
    assert.equal(await process('first'), 2);
    assert.equal(await process('other'), 1);
    assert.equal(spansNamed('WS RECEIVE /chat first').length, 2);
  });

  test('WS_APM_MESSAGE_PARENT=handshake: an event is a child of its namespace connect', async () => {
    await use({ messageParent: 'handshake' });
    const { io } = await startApp();
    io.of('/chat').on('connection', (socket) => socket.on('hi', (ack: () => void) => ack()));
    const c = await client('/chat', { transports: ['polling'], extraHeaders: { traceparent: TRACEPARENT } });
    await c.emitWithAck('hi');
    const [event] = await waitForSpans('WS RECEIVE /chat hi');
    const [connect] = spansNamed('WS CONNECT /chat');
    assert.equal(event.parentSpanContext?.spanId, connect.spanContext().spanId);
    assert.equal(event.spanContext().traceId, TRACE_ID);
    assert.equal(event.links.length, 0);
  });
});

describe('socket.io binary events and ignored namespaces', () => {
  test('a binary event (its attachment a frame of its own) is one operation; both frames are counted in', async () => {
    await use();
    const { io } = await startApp();
    io.of('/files').on('connection', (socket) => {
      socket.on('upload', (data: Buffer, ack: (size: number) => void) => ack(data.length));
    });
    const c = await client('/files');
    const inFrames = (): Promise<number> =>
      metricValue('websocket.messages', { 'websocket.route': '/socket.io/', 'websocket.side': 'server', 'websocket.direction': 'in' });
    const binaryIn = (): Promise<number> =>
      metricValue('websocket.messages', { 'websocket.route': '/socket.io/', 'websocket.side': 'server', 'websocket.direction': 'in', 'websocket.message.type': 'binary' });
    const [before, binaryBefore] = [await inFrames(), await binaryIn()];
    assert.equal(await c.emitWithAck('upload', Buffer.alloc(1000, 7)), 1000);
    const [event] = await waitForSpans('WS RECEIVE /files upload');
    assert.equal(attr(event, 'websocket.message.name'), 'upload');
    assert.equal((await inFrames()) - before, 2, 'the packet and its attachment');
    assert.equal((await binaryIn()) - binaryBefore, 1);
  });

  test('a namespace in WS_APM_IGNORE_ROUTES gets metrics only: no connect, no event operations', async () => {
    await use({ ignoreRoutes: ['/health'] });
    const { io } = await startApp();
    io.of('/health').on('connection', (socket) => {
      socket.on('probe', (ack: () => void) => {
        trace.getTracer('app').startActiveSpan('inside an ignored event', (span) => span.end());
        ack();
      });
    });
    const c = await client('/health');
    await c.emitWithAck('probe');
    assert.equal(await metricValue('websocket.server.active_connections', { 'websocket.route': '/health' }), 1);
    assert.equal(await metricValue('websocket.message.process.duration', { 'websocket.route': '/health', 'websocket.message.name': 'probe' }), 1);
    assert.deepEqual(spans().filter((s) => s.name.includes('/health')).map((s) => s.name), []);
  });
});

describe('socket.io broadcasts and frame counts', () => {
  test('a room broadcast is one PRODUCER operation with its recipient count, and every delivery is a frame counted out', async () => {
    await use();
    const { io } = await startApp();
    const chat = io.of('/chat');
    chat.on('connection', (socket: ServerSocket) => {
      socket.join('room-42');
      socket.on('shout', (kind: string) => {
        if (kind === 'room') chat.to('room-42').emit('news', 'to the room');
        else if (kind === 'others') socket.broadcast.emit('news', 'to the others');
        else chat.emit('news', 'to everyone');
      });
    });
    const members = [];
    for (let i = 0; i < 5; i++) members.push(await client('/chat'));
    const [sender] = members;

    for (const [kind, recipients] of [['room', 5], ['others', 4], ['everyone', 5]] as const) {
      const before = await outFrames();
      const delivered = Promise.all(members.filter((m) => kind !== 'others' || m !== sender).map((m) => next(m, 'news')));
      sender.emit('shout', kind);
      await delivered;
      assert.equal((await outFrames()) - before, recipients, `${kind}: one frame counted per delivery`);
    }
    const broadcasts = await waitForSpans('WS SEND /chat news', 3);
    assert.deepEqual(broadcasts.map((s) => attr(s, 'websocket.broadcast.recipients')).sort(), [4, 5, 5]);
    for (const span of broadcasts) {
      assert.equal(span.kind, SpanKind.PRODUCER);
      assert.equal(span.parentSpanContext?.spanId !== undefined, true);
      assert.ok(!Object.values(span.attributes).includes('room-42'), 'room names are not recorded');
    }
    const metrics = JSON.stringify([...(await collectMetrics()).values()]);
    assert.ok(!metrics.includes('room-42'), 'room names are never a metric attribute');
  });

  test('engine.io heartbeats are heartbeats: a round-trip metric, no operation, never messages, never charged to the rate limit', async () => {
    await use({ messageRateLimit: 1 });
    const { io } = await startApp({ pingInterval: 30, pingTimeout: 5000 });
    let beat!: () => void;
    let beats = 0;
    const threeBeats = new Promise<void>((resolve) => (beat = resolve));
    io.of('/chat').on('connection', (socket) => {
      socket.conn.on('heartbeat', () => {
        if (++beats === 3) beat();
      });
      socket.on('hi', (ack: () => void) => ack());
    });
    const c = await client('/chat');
    const inBefore = await metricValue('websocket.messages', { 'websocket.route': '/socket.io/', 'websocket.side': 'server', 'websocket.direction': 'in' });
    await threeBeats;
    const inAfter = await metricValue('websocket.messages', { 'websocket.route': '/socket.io/', 'websocket.side': 'server', 'websocket.direction': 'in' });
    assert.equal(inAfter, inBefore, 'pongs are not messages');
    const rtt = (await collectMetrics()).get('websocket.heartbeat.rtt') ?? [];
    const serverRtt = rtt.filter((p) => p.attributes['websocket.route'] === '/socket.io/' && p.attributes['websocket.side'] === 'server');
    assert.ok(serverRtt.reduce((n, p) => n + p.value, 0) >= 3);
    // The heartbeats did not use the one traced event per second this limit allows.
    await c.emitWithAck('hi');
    await waitForSpans('WS RECEIVE /chat hi');
    assert.deepEqual(spans().filter((s) => /^WS (PING|RECEIVE \/socket)/.test(s.name)).map((s) => s.name), []);
  });

  for (const [mode, perMessageDeflate] of [['uncompressed (read where ws writes them)', false], ['permessage-deflate (read at send)', { threshold: 0 }]] as const) {
    test(`${mode}: every frame written is counted out once with its message's size; the server's pings are heartbeats, not messages`, async () => {
      await use();
      const { io } = await startApp({ pingInterval: 30, pingTimeout: 5000, perMessageDeflate });
      const chat = io.of('/chat');
      let beats = 0;
      let beat: (() => void) | undefined;
      chat.on('connection', (socket: ServerSocket) => {
        socket.join('room');
        socket.conn.on('heartbeat', () => {
          beats++;
          beat?.();
        });
        socket.on('shout', (text: string) => {
          socket.emit('echo', text);
          chat.to('room').emit('news', text);
        });
      });
      const [a, b] = [await client('/chat'), await client('/chat')];
      // The size histogram is by direction only: the client's emit (in this process) is in it too.
      const sizes = async (): Promise<{ count: number; sum: number }> => {
        const points = ((await collectMetrics()).get('websocket.message.size') ?? []).filter((p) => p.attributes['websocket.direction'] === 'out');
        return { count: points.reduce((n, p) => n + (p.count ?? 0), 0), sum: points.reduce((n, p) => n + (p.sum ?? 0), 0) };
      };
      const [framesBefore, sizesBefore] = [await outFrames(), await sizes()];
      // Pings go out while the window is open: none of them may be counted.
      const target = beats + 4;
      await new Promise<void>((resolve) => (beat = () => beats >= target && resolve()));
      const text = 'x'.repeat(40);
      const delivered = Promise.all([next(a, 'echo'), next(a, 'news'), next(b, 'news')]);
      a.emit('shout', text);
      await delivered;
      const sizesAfter = await sizes();
      assert.equal((await outFrames()) - framesBefore, 3, 'the echo and the two broadcast deliveries');
      assert.equal(sizesAfter.count - sizesBefore.count, 4, "the server's three and the client's emit");
      const frame = (event: string): number => Buffer.byteLength(`42/chat,${JSON.stringify([event, text])}`);
      assert.equal(sizesAfter.sum - sizesBefore.sum, frame('shout') + frame('echo') + 2 * frame('news'), 'sizes of the messages as written, uncompressed');
      const rtt = ((await collectMetrics()).get('websocket.heartbeat.rtt') ?? []).filter((p) => p.attributes['websocket.side'] === 'server');
      assert.ok(rtt.reduce((n, p) => n + p.value, 0) >= 4, 'the pings were measured as heartbeats');
    });
  }

  test('WS_APM_TRACE_HEARTBEAT=true: an engine.io heartbeat is a WS PING operation', async () => {
    await use({ traceHeartbeat: true });
    const { io } = await startApp({ pingInterval: 30, pingTimeout: 5000 });
    io.of('/chat').on('connection', () => undefined);
    await client('/chat');
    const [ping] = await waitForSpans('WS PING /socket.io/');
    assert.equal(typeof attr(ping, 'websocket.heartbeat.rtt_ms'), 'number');
  });
});

describe('socket.io sampling and keeping', () => {
  test('an event not sampled runs its handler unsampled: nothing nested records, its latency still counts', async () => {
    await use({ messageSampleRate: 0 });
    const { io } = await startApp();
    io.of('/chat').on('connection', (socket) => {
      socket.on('quiet', (ack: () => void) => {
        trace.getTracer('app').startActiveSpan('db query', (span) => span.end());
        ack();
      });
    });
    const c = await client('/chat');
    await c.emitWithAck('quiet');
    await c.emitWithAck('quiet');
    assert.equal(await metricValue('websocket.message.process.duration', { 'websocket.route': '/chat', 'websocket.message.name': 'quiet' }), 2);
    assert.deepEqual(spans().filter((s) => /quiet|db query|WS SEND \/chat/.test(s.name)).map((s) => s.name), []);
  });

  test('an event not sampled that fails is kept: recorded afterwards with its error', async () => {
    await use({ messageSampleRate: 0 });
    const { io } = await startApp();
    const refused = new Promise<void>((resolve) => {
      io.of('/chat').on('connection', (socket) => {
        socket.use((_event, next) => next(new Error('rejected by middleware')));
        socket.on('error', () => resolve());
      });
    });
    const c = await client('/chat');
    c.emit('doomed');
    await refused;
    const [kept] = await waitForSpans('WS RECEIVE /chat doomed');
    assert.equal(attr(kept, 'websocket.message.kept'), 'error');
    assert.equal(kept.status.code, SpanStatusCode.ERROR);
  });
});

describe('socket.io with OpenTelemetry\'s socket.io instrumentation also on', () => {
  interface FixtureSpan {
    readonly name: string;
    readonly attributes: Record<string, unknown>;
  }

  async function spansOf(order: string): Promise<FixtureSpan[]> {
    const child = run(['coexist.js'], { ORDER: order, OTEL_NODE_RESOURCE_DETECTORS: 'env,host,os,process' }, 'socketio');
    const [, json] = await child.line(/^SPANS (.*)$/);
    await child.exited();
    return JSON.parse(json) as FixtureSpan[];
  }

  test('alone, OpenTelemetry\'s instrumentation records the event (what ws-apm makes stand aside)', async () => {
    const names = (await spansOf('otel-only')).map((s) => s.name);
    assert.ok(names.includes('receive /chat'), names.join());
  });

  for (const order of ['otel-first', 'ws-apm-first', 'ws-apm-after-socket.io']) {
    test(`${order}: each event, send and broadcast is recorded once, by ws-apm`, async () => {
      const all = await spansOf(order);
      const names = all.map((s) => s.name).filter((n) => !n.startsWith('WS CONNECT')).sort();
      assert.deepEqual(names, [
        // The server's event, its sends and its broadcast...
        'WS RECEIVE /chat chat message', 'WS SEND /chat ack', 'WS SEND /chat news', 'WS SEND /chat reply',
        // ...and the client's side (socket.io-client in the same process): what it received.
        'WS RECEIVE /chat ack', 'WS RECEIVE /chat news', 'WS RECEIVE /chat reply',
      ].sort());
      assert.ok(all.every((s) => s.attributes['messaging.socket.io.event_name'] === undefined));
    });
  }
});

describe('socket.io in an unchanged ESM app preloaded with --import ws-apm/register', () => {
  let receiver: OtlpReceiver;
  before(async () => {
    receiver = await new OtlpReceiver().start();
  });
  after(async () => {
    await receiver.stop();
  });

  for (const transport of ['websocket', 'polling']) {
    test(`${transport}: events named by namespace and event cover their handlers; a handler's exception is recorded and the app sees it as before`, async () => {
      const service = `esm-chat-${transport}`;
      const app = run(['--import', 'ws-apm/register', 'chat.mjs'], otlpEnv(receiver.url, service, { TRANSPORT: transport }), 'socketio');
      assert.deepEqual(await app.exited(), { code: 0, signal: null }, app.stderr());
      assert.match(app.stdout(), /ACK stored\nAPP CAUGHT handler failed\nDONE/);
      const event = await receiver.waitFor('the event', () => receiver.spansOf(service, 'WS RECEIVE /chat chat message')[0]);
      const boom = await receiver.waitFor('the failed event', () => receiver.spansOf(service, 'WS RECEIVE /chat boom')[0]);
      const [connect] = receiver.spansOf(service, 'WS CONNECT /chat');
      assert.equal(event.kind, CONSUMER);
      assert.equal(event.attributes['websocket.transport'], transport);
      assert.deepEqual(event.links, [{ traceId: connect.traceId, spanId: connect.spanId }]);
      const children = receiver.spans.filter((s) => s.parentSpanId === event.spanId).map((s) => s.name).sort();
      assert.deepEqual(children, ['WS SEND /chat ack', 'WS SEND /chat news', 'store message']);
      assert.equal(receiver.spansOf(service, 'WS SEND /chat news')[0].kind, PRODUCER);
      assert.equal(boom.status.code, 2);
      assert.deepEqual(receiver.spansOf(service, /^WS (RECEIVE|SEND) \/socket\.io\//).map((s) => s.name), []);
      assert.doesNotMatch(JSON.stringify(receiver.spans), /let-me-in/);
    });
  }
});

describe('socket.io on the agents (an unchanged CommonJS chat, -r ws-apm/register)', { timeout: 240_000 }, () => {
  test('Elastic: a transaction per event, named by namespace and event, with the handler\'s http call and broadcast as its spans; a rejected connect with its error; schema-valid', async () => {
    const intake = await startIntake();
    try {
      const app = run(['-r', 'ws-apm/register', 'chat.js'], agentEnv(intake.url, { WS_APM_BACKEND: 'elastic', CHAT_TOKEN: 'let-me-in', LINGER: '1500' }) as Record<string, string>, 'socketio');
      assert.deepEqual(await app.exited(), { code: 0, signal: null }, app.stderr());
      assert.match(app.stdout(), /REFUSED bad token/);
      assert.match(app.stdout(), /ACK stored/);
      const event = await intake.waitFor('the event transaction', () => intake.transactions('WS RECEIVE /chat chat message')[0]);
      assert.equal(event.type, 'messaging');
      assert.equal(event.outcome, 'success');
      const spans = await intake.waitFor('its spans', () => {
        const children = intake.spans().filter((s) => s.parent_id === event.id);
        return children.length >= 2 && children;
      });
      const names = spans.map((s) => String(s.name)).sort();
      assert.equal(names.length, 2, names.join());
      assert.match(names[0], /^GET 127\.0\.0\.1:\d+$/);
      assert.equal(names[1], 'WS SEND /chat news');
      const rejected = await intake.waitFor('the rejected connect', () => intake.transactions('WS CONNECT /chat').find((t) => t.outcome === 'failure'));
      assert.ok(intake.of('error').some((e) => e.exception?.message === 'bad token' && e.transaction_id === rejected.id));
      assert.deepEqual(intake.transactions().filter((t) => /^WS (RECEIVE|SEND) \/socket\.io\//.test(t.name)).map((t) => t.name), []);
      assert.doesNotMatch(JSON.stringify(intake.events), /let-me-in/);
      // Handler latency per event name, on the agent's own metric cycle.
      const latency = await intake.waitFor('the handler latency metricset', () =>
        intake.of('metricset').find((m) => m.tags?.websocket_route === '/chat' && m.tags?.websocket_message_name === 'chat message'),
      );
      assert.equal(latency.samples['websocket.message.process.duration.count'].value, 1);
      assert.deepEqual(intake.invalid, [], 'every intake event matches the APM Server schema');
    } finally {
      await intake.close();
    }
  });

  test('New Relic: a message transaction per event, named by namespace and event, with the handler\'s external call and broadcast as its segments; a rejected connect with its error', async () => {
    const c = await FakeCollector.start({ mode: 'normal' });
    const home = agentHome(c.port, c.certPem, 'ws-apm-socketio');
    try {
      const app = startFixture('../socketio/chat.js', { ...home.env, CHAT_TOKEN: 'let-me-in' }, { execArgv: ['-r', 'ws-apm/register'] });
      const result = await app.done;
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /ACK stored/);
      await c.waitFor(() => c.calls.includes('shutdown'), 'the agent to shut down');
      const event = c.transactions.find((t) => t.intrinsics.name === 'OtherTransaction/WebSocket/WS RECEIVE /chat chat message');
      assert.ok(event, c.transactions.map((t) => t.intrinsics.name).join());
      const segments = c.spans.filter((s) => s.intrinsics.transactionId === event.intrinsics.guid).map((s) => String(s.intrinsics.name));
      assert.ok(segments.some((n) => /External\/127\.0\.0\.1:\d+\/store$/.test(n)), segments.join());
      assert.ok(segments.includes('WS SEND /chat news'), segments.join());
      const rejected = c.transactions.find((t) => t.intrinsics.name === 'WebTransaction/Custom/WS CONNECT /chat' && t.intrinsics.error === true);
      assert.ok(rejected);
      assert.ok(c.errors.some((e) => e.intrinsics['error.message'] === 'bad token' && e.intrinsics.guid === rejected.intrinsics.guid));
      assert.deepEqual(c.transactions.map((t) => String(t.intrinsics.name)).filter((n) => /WS (RECEIVE|SEND) \/socket\.io\//.test(n)), []);
      assert.doesNotMatch(JSON.stringify([c.transactions, c.spans, c.errors]), /let-me-in/);
      const latency = c.metric('Custom/WebSocket/MessageProcessDuration/chat/chat message');
      assert.equal(latency?.callCount, 1, c.metrics.map((m) => m.name).filter((n) => n.includes('WebSocket')).join());
      assert.deepEqual(c.problems, []);
    } finally {
      home.cleanup();
      await c.close();
    }
  });
});

describe('socket.io through @socket.io/redis-adapter on the agents (test/fixtures/socketio/scaled.js)', { timeout: 120_000 }, () => {
  test("Elastic: B's delivery is a WS HANDOFF transaction, child of A's broadcast span, with its own WS SEND span; one trace", async () => {
    const intake = await startIntake();
    try {
      const app = run(['-r', 'ws-apm/register', 'scaled.js'], agentEnv(intake.url, { WS_APM_BACKEND: 'elastic', LINGER: '1500' }) as Record<string, string>, 'socketio');
      assert.deepEqual(await app.exited(), { code: 0, signal: null }, app.stderr());
      assert.match(app.stdout(), /NEWS hello/);
      const say = await intake.waitFor('A\'s event', () => intake.transactions('WS RECEIVE /chat say')[0]);
      const handoff = await intake.waitFor('B\'s hand-off', () => intake.transactions('WS HANDOFF')[0]);
      const sends = await intake.waitFor('both broadcasts', () => {
        const all = intake.spans('WS SEND /chat news');
        return all.length === 2 && all;
      });
      const onA = sends.find((s) => s.transaction_id === say.id)!;
      const onB = sends.find((s) => s.transaction_id === handoff.id)!;
      assert.ok(onA && onB, intake.summary());
      assert.equal(handoff.parent_id, onA.id);
      assert.equal(handoff.type, 'messaging');
      assert.deepEqual([handoff.trace_id, onA.trace_id, onB.trace_id], [say.trace_id, say.trace_id, say.trace_id]);
      assert.equal(onA.context.tags.websocket_broadcast_recipients, 0, 'no other member of lobby on A');
      assert.equal(onB.context.tags.websocket_broadcast_recipients, 1, 'bob on B');
      assert.deepEqual(intake.invalid, [], 'every intake event matches the APM Server schema');
    } finally {
      await intake.close();
    }
  });

  test("New Relic: B's delivery is a WS HANDOFF transaction continuing A's trace, with the WS SEND segment", async () => {
    const c = await FakeCollector.start({ mode: 'normal' });
    const home = agentHome(c.port, c.certPem, 'ws-apm-socketio');
    try {
      const result = await startFixture('../socketio/scaled.js', { ...home.env }, { execArgv: ['-r', 'ws-apm/register'] }).done;
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /NEWS hello/);
      await c.waitFor(() => c.calls.includes('shutdown'), 'the agent to shut down');
      const tx = (name: string) => c.transactions.find((t) => t.intrinsics.name === `OtherTransaction/WebSocket/${name}`);
      const [say, handoff] = [tx('WS RECEIVE /chat say'), tx('WS HANDOFF')];
      assert.ok(say && handoff, c.transactions.map((t) => t.intrinsics.name).join());
      const sendOf = (t: typeof say) => c.spans.find((s) => s.intrinsics.transactionId === t.intrinsics.guid && s.intrinsics.name === 'WS SEND /chat news');
      const [onA, onB] = [sendOf(say), sendOf(handoff)];
      assert.ok(onA && onB, c.spans.map((s) => s.intrinsics.name).join());
      assert.equal(handoff.intrinsics.traceId, say.intrinsics.traceId);
      assert.equal(handoff.intrinsics.parentSpanId, onA.intrinsics.guid);
      assert.equal(onB.intrinsics.traceId, say.intrinsics.traceId);
      assert.deepEqual(c.problems, []);
    } finally {
      home.cleanup();
      await c.close();
    }
  });
});

describe('socket.io-client under Node', () => {
  test('a received event is WS RECEIVE on the client over its listener, an emit there a WS SEND under it, and an ack received runs its callback inside WS RECEIVE ack', async () => {
    await use();
    const { io } = await startApp();
    io.of('/chat').on('connection', (socket) => {
      socket.on('thanks', (ack: (reply: string) => void) => ack('welcome'));
      socket.emit('hello');
    });
    const c = connectIo(`${app!.url}/chat`, { transports: ['websocket'], forceNew: true, reconnection: false });
    clients.push(c);
    const acked = new Promise<void>((resolve) => {
      c.on('hello', () => {
        c.emit('thanks', () => {
          trace.getTracer('app').startActiveSpan('after the ack', (span) => span.end());
          resolve();
        });
      });
    });
    await acked;
    const [hello] = await waitForSpans('WS RECEIVE /chat hello');
    const [ackReceived] = await waitForSpans('WS RECEIVE /chat ack');
    const [clientConnect] = spans().filter((s) => s.kind === SpanKind.CLIENT && /^WS CONNECT 127\.0\.0\.1:\d+\/socket\.io\/$/.test(s.name));
    assert.equal(hello.kind, SpanKind.CONSUMER);
    assert.equal(hello.links[0]?.context.spanId, clientConnect.spanContext().spanId);
    assert.deepEqual(childrenOf(hello).map((s) => s.name), ['WS SEND /chat thanks']);
    assert.equal(childrenOf(hello)[0].kind, SpanKind.PRODUCER);
    assert.deepEqual(childrenOf(ackReceived).map((s) => s.name), ['after the ack']);
    // The server's side of the same exchange.
    const [thanks] = await waitForSpans('WS RECEIVE /chat thanks');
    assert.deepEqual(childrenOf(thanks).map((s) => s.name), ['WS SEND /chat ack']);
  });
});

describe('socket.io acks received by the server', () => {
  test('the client\'s answer to a server emit with ack runs the server\'s callback inside WS RECEIVE {namespace} ack', async () => {
    await use();
    const { io } = await startApp();
    const answered = new Promise<unknown>((resolve) => {
      io.of('/chat').on('connection', async (socket) => {
        const answer = await new Promise((done) =>
          socket.emit('question', (reply: unknown) => {
            trace.getTracer('app').startActiveSpan('use the answer', (span) => span.end());
            done(reply);
          }),
        );
        resolve(answer);
      });
    });
    const c = connectIo(`${app!.url}/chat`, { transports: ['websocket'], forceNew: true, reconnection: false });
    clients.push(c);
    c.on('question', (ack: (r: string) => void) => ack('42'));
    assert.equal(await answered, '42');
    const [serverConnect] = await waitForSpans('WS CONNECT /chat');
    const acks = await waitForSpans('WS RECEIVE /chat ack');
    const serverAck = acks.find((s) => s.links[0]?.context.spanId === serverConnect.spanContext().spanId);
    assert.ok(serverAck, 'the server side received the ack');
    assert.deepEqual(childrenOf(serverAck).map((s) => s.name), ['use the answer']);
  });
});

describe('socket.io: the app\'s behaviour never changes', () => {
  /** What the app observes of one session: connects (one refused), an event with its ack, a broadcast, a middleware refusal, a disconnect. */
  async function session(): Promise<string[]> {
    const seen: string[] = [];
    const { io } = await startApp();
    const chat = io.of('/chat');
    chat.use((socket, next) => next(socket.handshake.auth.ok === true ? undefined : new Error('refused')));
    const gone = new Promise<void>((resolve) => {
      chat.on('connection', (socket) => {
        seen.push(`connected ${socket.nsp.name}`);
        socket.join('room');
        socket.use(([event], next) => next(event === 'nope' ? new Error('no such event') : undefined));
        socket.on('error', (err) => seen.push(`socket error ${err.message}`));
        socket.on('say', function (this: unknown, text: string, ack: (r: string) => void) {
          seen.push(`say ${text} this=${this === socket} args=${arguments.length}`);
          chat.to('room').emit('news', text);
          ack(`ok ${text}`);
        });
        socket.on('disconnect', (reason) => {
          seen.push(`disconnect ${reason}`);
          resolve();
        });
      });
    });
    const refused = connectIo(`${app!.url}/chat`, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { ok: false } });
    clients.push(refused);
    seen.push(`refused ${((await next(refused, 'connect_error'))[0] as Error).message}`);
    const c = await client('/chat', { auth: { ok: true } });
    const news = next(c, 'news');
    seen.push(`ack ${await c.emitWithAck('say', 'hi')}`);
    seen.push(`news ${(await news)[0]}`);
    c.emit('nope');
    await new Promise<void>((resolve) => {
      const check = (): void => (seen.some((l) => l.startsWith('socket error')) ? resolve() : void setImmediate(check));
      check();
    });
    c.disconnect();
    await gone;
    await app!.close();
    app = undefined;
    return seen;
  }

  test('with an adapter that throws from every method, a socket.io app sees exactly what it sees without ws-apm', async () => {
    await getInstrumentation()?.uninstrument();
    const bare = await session();
    const broken = new Proxy(recordingAdapter(), {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver) as unknown;
        if (typeof value !== 'function' || key === 'bindMetrics') return value;
        return () => {
          throw new Error('adapter broke');
        };
      },
    });
    instrument({ adapter: broken, flushOnExit: false, logLevel: 'silent' });
    assert.deepEqual(await session(), bare);
  });

  test('every operation started is ended, and uninstrument restores socket.io\'s prototypes', async () => {
    const { Socket } = require('socket.io') as { Socket: { prototype: Record<string, unknown> } };
    await getInstrumentation()?.uninstrument();
    const originals = ['run', 'packet', 'onack', '_onclose'].map((m) => Socket.prototype[m]);
    const recording = recordingAdapter();
    instrument({ adapter: recording, flushOnExit: false, logLevel: 'silent' });
    assert.notEqual(Socket.prototype.run, originals[0]);
    await session();
    assert.ok(recording.ops.some((op) => op.name === 'WS RECEIVE /chat say'));
    assert.equal(recording.open(), 0, 'no operation left open');
    await getInstrumentation()?.uninstrument();
    assert.deepEqual(['run', 'packet', 'onack', '_onclose'].map((m) => Socket.prototype[m]), originals);
  });
});
