/**
 * socket.io scaled out with @socket.io/redis-adapter: the real adapter and its notepack.io parser
 * on two socket.io servers in this process, joined by an in-process stand-in for Redis pub/sub
 * (the ioredis calls the adapter makes; delivery on a later turn, in no context of the publisher,
 * as from a real Redis), and the real OpenTelemetry SDK exporting to memory. The same path with a
 * real redis-server and separate processes: test/examples/example-socketio.test.ts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, describe, test } from 'node:test';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createAdapter, RedisAdapter } from '@socket.io/redis-adapter';
import { Server } from 'socket.io';
import { io as connectIo, type Socket as ClientSocket } from 'socket.io-client';
import { getInstrumentation, instrument, type InstrumentOptions } from '../../src/index';
import { run } from '../helpers/child';
import { Bus } from '../fixtures/socketio/fake-redis';
import { registerMemorySdk, resetSpans, spans, waitForSpans } from '../helpers/otel-memory';

registerMemorySdk();

interface Parser {
  encode(value: unknown): Buffer;
  decode(buffer: Buffer): unknown;
}
/** The adapter's parser (notepack.io), and its functions as they were before ws-apm first wrapped them. */
let notepack: Parser;
let originalEncode: Parser['encode'];
let originalDecode: Parser['decode'];

/** Redis pub/sub between the instances of this process, and what went through it (decoded as the adapter encoded it). */
class Recorded {
  readonly published: { channel: string; message: unknown[] }[] = [];
  readonly bus = new Bus((channel, message) => this.published.push({ channel, message: originalDecode(message) as unknown[] }));
}

interface Instance {
  readonly io: Server;
  readonly url: string;
  close(): Promise<void>;
}

const instances: Instance[] = [];
const clients: ClientSocket[] = [];

async function use(options: InstrumentOptions = {}): Promise<void> {
  await getInstrumentation()?.uninstrument();
  instrument({ backend: 'otel', startSdk: false, flushOnExit: false, logLevel: 'silent', ...options });
}

/** A socket.io server on the bus; `/chat` joins each socket to room `lobby`, and relays `say` to it. */
async function instance(bus: Bus): Promise<Instance> {
  const server = http.createServer();
  const io = new Server(server, { adapter: createAdapter(bus.client(), bus.client()) });
  if (notepack === undefined) {
    // Read before any broadcast: ws-apm wraps the parser at the first one.
    notepack = (io.of('/chat').adapter as unknown as { parser: Parser }).parser;
    originalEncode = notepack.encode;
    originalDecode = notepack.decode;
  }
  io.of('/chat').on('connection', (socket) => {
    socket.join('lobby');
    socket.on('say', (text: string) => {
      socket.to('lobby').emit('news', text);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const made = {
    io,
    url,
    close: async () => {
      io.close();
      server.closeAllConnections();
      if (server.listening) await new Promise((resolve) => server.close(resolve));
    },
  };
  instances.push(made);
  return made;
}

async function client(url: string): Promise<ClientSocket> {
  const c = connectIo(`${url}/chat`, { transports: ['websocket'], forceNew: true, reconnection: false });
  clients.push(c);
  await new Promise((resolve, reject) => {
    c.once('connect', () => resolve(undefined));
    c.once('connect_error', reject);
  });
  return c;
}

function next(c: ClientSocket, event: string): Promise<unknown> {
  return new Promise((resolve) => c.once(event, resolve));
}

/** Two instances on one bus, alice on A and bob on B (both in `lobby`). */
async function scaledOut(recorded = new Recorded()) {
  const [a, b] = [await instance(recorded.bus), await instance(recorded.bus)];
  const [alice, bob] = [await client(a.url), await client(b.url)];
  return { bus: recorded, a, b, alice, bob };
}

const sendsOf = (name: string): ReadableSpan[] => spans().filter((s) => s.name === name);

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  for (const i of instances.splice(0)) await i.close();
  resetSpans();
});

after(async () => {
  await getInstrumentation()?.uninstrument();
});

describe('socket.io through @socket.io/redis-adapter', { timeout: 60_000 }, () => {
  test("a broadcast's trace context rides in the published message; the other instance's delivery is WS SEND, a child of the broadcast, with its own recipients", async () => {
    await use();
    const { bus, alice, bob } = await scaledOut();
    // Closing any socket.io server reassigns the in-memory adapter's `broadcast` (io.close() → restoreAdapter).
    await new Server(http.createServer()).close();
    const news = next(bob, 'news');
    alice.emit('say', 'hello');
    assert.equal(await news, 'hello');

    const [delivery] = await waitForSpans('WS SEND /chat news', 2).then((all) => all.filter((s) => s.parentSpanContext?.isRemote));
    const receive = spans().find((s) => s.name === 'WS RECEIVE /chat say')!;
    const broadcast = sendsOf('WS SEND /chat news').find((s) => s.parentSpanContext?.spanId === receive.spanContext().spanId)!;
    assert.ok(delivery && broadcast, 'the broadcast on A and its delivery on B');
    assert.equal(delivery.parentSpanContext?.spanId, broadcast.spanContext().spanId);
    assert.equal(delivery.spanContext().traceId, receive.spanContext().traceId);
    assert.equal(broadcast.attributes['websocket.broadcast.recipients'], 0, 'no other member of lobby on A');
    assert.equal(delivery.attributes['websocket.broadcast.recipients'], 1, 'bob on B');

    // What went through Redis: [uid, packet, opts, carrier], the carrier naming A's broadcast.
    const [published] = bus.published;
    assert.equal(published.message.length, 4);
    const carrier = published.message[3] as Record<string, string>;
    assert.equal(carrier.traceparent, `00-${broadcast.spanContext().traceId}-${broadcast.spanContext().spanId}-01`);
    assert.deepEqual((published.message[1] as { data: unknown }).data, ['news', 'hello'], 'the packet itself is unchanged');
  });

  test('a broadcast outside any operation publishes exactly what the adapter encodes, and its delivery records no span', async () => {
    await use();
    const { bus, a, bob } = await scaledOut();
    const news = next(bob, 'news');
    a.io.of('/chat').to('lobby').emit('news', 'from a timer');
    assert.equal(await news, 'from a timer');
    assert.equal(bus.published[0].message.length, 3);
    assert.deepEqual(sendsOf('WS SEND /chat news'), []);
  });

  test('an unsampled event: the delivery is made, in no trace', async () => {
    await use({ messageSampleRate: 0 });
    const { alice, bob } = await scaledOut();
    const news = next(bob, 'news');
    alice.emit('say', 'quiet');
    assert.equal(await news, 'quiet');
    assert.deepEqual(sendsOf('WS SEND /chat news'), []);
  });

  test("the app's own notepack.io calls are untouched: nothing is appended or taken off outside the adapter's publish and delivery", async () => {
    await use();
    const { alice, bob } = await scaledOut();
    const news = next(bob, 'news');
    alice.emit('say', 'wrap the parser');
    await news;
    assert.notEqual(notepack.encode, originalEncode, 'the parser is wrapped');
    const three = ['uid', { type: 2, data: ['news', 1], nsp: '/chat' }, { rooms: ['lobby'], except: [] }];
    assert.deepEqual(originalDecode(notepack.encode(three)), three);
    const four = [...three, { traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01` }];
    assert.deepEqual(notepack.decode(originalEncode(four)), four);
  });

  test('uninstrument() restores the adapter and the parser', async () => {
    await use();
    const { alice, bob } = await scaledOut();
    const news = next(bob, 'news');
    alice.emit('say', 'wrap the parser');
    await news;
    assert.notEqual(notepack.encode, originalEncode, 'the parser was wrapped while instrumented');
    await getInstrumentation()?.uninstrument();
    assert.equal(notepack.encode, originalEncode);
    assert.equal(notepack.decode, originalDecode);
    assert.equal((RedisAdapter.prototype.broadcast as unknown as Record<symbol, unknown>)[Symbol.for('ws-apm.wrapped')], undefined);
  });

  test('an ESM app that imports the adapter gets it patched too (--import ws-apm/register)', async () => {
    const code = "import { RedisAdapter } from '@socket.io/redis-adapter'; console.log(`PATCHED ${RedisAdapter.prototype.broadcast[Symbol.for('ws-apm.wrapped')] === true}`);";
    const child = run(['--import', 'ws-apm/register', '--input-type=module', '-e', code], { WS_APM_BACKEND: 'console', WS_APM_LOG_LEVEL: 'silent' }, 'example');
    await child.line(/^PATCHED true$/);
    assert.deepEqual(await child.exited(), { code: 0, signal: null }, child.stderr());
  });
});
