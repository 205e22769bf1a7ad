/**
 * undici's WebSocket client — Node's built-in global `WebSocket` (Node 22+) and the `undici`
 * package's own — against an instrumented ws server in this process, with the real
 * OpenTelemetry SDK exporting to memory: connect and propagation, every listener API,
 * sends, closes both ways, metrics, heartbeat, a trace across two clients, uninstrument.
 * Then the behaviour suite (test/fixtures/undici/suite.js) with and without ws-apm.
 * Node 20 has no global WebSocket: the built-in part skips there, and nothing is patched.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { getInstrumentation, inject, instrument, type InstrumentOptions } from '../../src/index';
import { collectMetrics, metricValue, registerMemorySdk, resetSpans, spansNamed, waitForSpans } from '../helpers/otel-memory';
import { cleanEnv, FIXTURES } from '../helpers/child';
import { startServer, type Server } from '../helpers/ws';
import { assertSameOutcomes } from '../helpers/behaviour';

registerMemorySdk();

const ws = require('ws') as typeof import('ws');

/** What the tests use of undici's WebSocket (the global's and the package's typings differ in detail). */
interface Client extends EventTarget {
  readonly url: string;
  readonly readyState: number;
  binaryType: string;
  onmessage: ((this: unknown, e: any) => unknown) | null;
  onclose: ((this: unknown, e: any) => unknown) | null;
  send(data: unknown): void;
  close(code?: number, reason?: string): void;
}
interface Message {
  readonly data: unknown;
}
interface Closed {
  readonly code: number;
}
type ClientClass = new (url: string, protocols?: string | string[]) => Client;
type ServerSocket = import('ws').WebSocket;

const BUILT_IN = (globalThis as { WebSocket?: unknown }).WebSocket as ClientClass | undefined;
// Loaded before ws-apm instruments (each instrument() finds it in require.cache).
const UNDICI = require('undici') as typeof import('undici') & { ping?: (ws: unknown, payload?: Buffer) => void };
const UNDICI_VERSION = (require('undici/package.json') as { version: string }).version;

/** Each class's own methods before any instrumentation, to check uninstrument restores them. */
const ORIGINAL = new Map<unknown, Record<string, unknown>>();
for (const cls of [BUILT_IN, UNDICI.WebSocket]) {
  if (cls === undefined) continue;
  const proto = cls.prototype as unknown as Record<string, unknown>;
  ORIGINAL.set(cls, { send: proto.send, close: proto.close, own: Object.getOwnPropertyNames(proto).join() });
}
const BUILT = fs.existsSync(path.resolve(__dirname, '..', '..', 'dist', 'register.js'));

const KINDS: ReadonlyArray<{ label: string; kind: string; load: () => ClientClass; skip: string | false }> = [
  {
    label: `Node's built-in WebSocket (Node ${process.version}, undici ${process.versions.undici})`,
    kind: 'builtin',
    load: () => BUILT_IN!,
    skip: BUILT_IN === undefined ? `Node ${process.version} has no global WebSocket (Node 22+): nothing to test` : false,
  },
  {
    label: `the undici package's WebSocket (undici ${UNDICI_VERSION})`,
    kind: 'undici',
    load: () => UNDICI.WebSocket as unknown as ClientClass,
    skip: false,
  },
];

async function use(options: InstrumentOptions = {}): Promise<void> {
  await getInstrumentation()?.uninstrument();
  instrument({ backend: 'otel', startSdk: false, flushOnExit: false, logLevel: 'silent', ws, ...options });
}

function attr(span: ReadableSpan, key: string): unknown {
  return span.attributes[key];
}

/** The next `type` event of an EventTarget (resolves with the event). */
function event<E = Event>(target: EventTarget, type: string): Promise<E> {
  return new Promise((resolve) => target.addEventListener(type, (e) => resolve(e as E), { once: true }));
}

/** Resolves on `open`, rejects on `error` first. */
function opened(client: Client): Promise<void> {
  return new Promise((resolve, reject) => {
    client.addEventListener('open', () => resolve(), { once: true });
    client.addEventListener('error', () => reject(new Error(`${client.url} failed to open`)), { once: true });
  });
}

function messageOf(socket: ServerSocket): Promise<string> {
  return new Promise((resolve) => socket.once('message', (data) => resolve(String(data))));
}

/** Values recorded so far in a histogram for one side (histograms are cumulative across instrument() calls). */
async function histogramCount(name: string, side: string): Promise<number> {
  const points = (await collectMetrics()).get(name) ?? [];
  return points.filter((p) => p.attributes['websocket.side'] === side).reduce((n, p) => n + (p.count ?? 0), 0);
}

function sideOf(span: ReadableSpan): unknown {
  return span.attributes['websocket.side'];
}

after(async () => {
  await getInstrumentation()?.uninstrument();
});

for (const { label, load, skip } of KINDS) {
  describe(label, { skip }, () => {
    let WebSocketClass: ClientClass;
    let server: Server | undefined;
    const clients: Client[] = [];

    before(async () => {
      await use();
      WebSocketClass = load();
    });

    afterEach(async () => {
      for (const c of clients.splice(0)) {
        if (c.readyState === 1 || c.readyState === 2) {
          const closed = event(c, 'close');
          c.close();
          await closed;
        }
      }
      await server?.close();
      server = undefined;
      await use();
      resetSpans();
    });

    /** A server, one open client at `path`, and the server's socket for it. */
    async function pair(path = '/chat'): Promise<{ client: Client; socket: ServerSocket; headers: Record<string, unknown> }> {
      server ??= await startServer(ws);
      const accepted = once(server.wss, 'connection') as Promise<[ServerSocket, { headers: Record<string, unknown> }]>;
      const client = new WebSocketClass(`${server.url}${path}`);
      clients.push(client);
      await opened(client);
      const [socket, req] = await accepted;
      return { client, socket, headers: req.headers };
    }

    function clientConnect(path = '/chat'): Promise<ReadableSpan[]> {
      return waitForSpans(new RegExp(`^WS CONNECT 127\\.0\\.0\\.1:\\d+${path.replace('/', '\\/')}$`));
    }

    test('a connect is a CLIENT span of the active span, injected into the handshake so the server WS CONNECT is its child', async () => {
      server = await startServer(ws);
      const accepted = once(server.wss, 'connection') as Promise<[ServerSocket, { headers: Record<string, unknown> }]>;
      const parent = trace.getTracer('test').startSpan('app');
      const client = context.with(trace.setSpan(context.active(), parent), () => new WebSocketClass(`${server!.url}/chat?room=1&token=abc`));
      clients.push(client);
      await opened(client);
      const [, req] = await accepted;
      parent.end();
      const [connect] = await clientConnect();
      const [serverConnect] = await waitForSpans('WS CONNECT /chat');
      assert.equal(connect.kind, SpanKind.CLIENT);
      assert.equal(connect.parentSpanContext?.spanId, parent.spanContext().spanId);
      assert.equal(attr(connect, 'websocket.side'), 'client');
      assert.equal(attr(connect, 'http.response.status_code'), 101);
      assert.equal(attr(connect, 'url.path'), '/chat');
      assert.equal(attr(connect, 'server.address'), '127.0.0.1');
      assert.equal(attr(connect, 'server.port'), server.port);
      assert.match(attr(connect, 'url.full') as string, /^ws:\/\/127\.0\.0\.1:\d+\/chat\?room=1&token=REDACTED$/);
      assert.equal(connect.status.code, SpanStatusCode.UNSET);
      assert.equal(serverConnect.kind, SpanKind.SERVER);
      assert.equal(serverConnect.parentSpanContext?.spanId, connect.spanContext().spanId);
      assert.equal(serverConnect.spanContext().traceId, parent.spanContext().traceId);
      assert.match(String(req.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, 'exactly one traceparent');
    });

    test('a traceparent another undici instrumentation added first is replaced by ours, not repeated', async () => {
      const foreign = (message: unknown): void => {
        (message as { request: { addHeader(k: string, v: string): void } }).request.addHeader('traceparent', `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`);
      };
      diagnostics.subscribe('undici:request:create', foreign);
      try {
        await use(); // ws-apm subscribes after it
        const { headers } = await pair();
        const [connect] = await clientConnect();
        assert.equal(headers.traceparent, `00-${connect.spanContext().traceId}-${connect.spanContext().spanId}-01`);
      } finally {
        diagnostics.unsubscribe('undici:request:create', foreign);
      }
    });

    test('a rejected connect (401) and a refused one end the CLIENT span with an error; nothing is tracked', async () => {
      server = await startServer(ws, { verifyClient: () => false });
      const denied = new WebSocketClass(`${server.url}/deny`);
      await event(denied, 'error');
      const rejected = await clientConnect('/deny');
      // undici 7 retries a 401 once (fetch's credentials step): one span per request on the wire.
      for (const span of rejected) {
        assert.equal(span.status.code, SpanStatusCode.ERROR);
        assert.equal(attr(span, 'http.response.status_code'), 401);
      }
      const dead = net.createServer().listen(0, '127.0.0.1');
      await once(dead, 'listening');
      const port = (dead.address() as net.AddressInfo).port;
      await new Promise((resolve) => dead.close(resolve));
      const refused = new WebSocketClass(`ws://127.0.0.1:${port}/gone`);
      await event(refused, 'error');
      const [span] = await clientConnect('/gone');
      assert.equal(span.status.code, SpanStatusCode.ERROR);
      assert.equal(attr(span, 'error.type'), 'Error');
      assert.equal(spansNamed(/^WS CLOSE/).length, 0, 'a socket that never opened has no summary');
    });

    for (const api of ['onmessage', 'addEventListener'] as const) {
      test(`a message delivered through ${api} is a CONSUMER span, a new trace linked to the connect; data untouched`, async () => {
        const { client, socket } = await pair();
        const got = new Promise<{ data: unknown; self: unknown; active: string | undefined }>((resolve) => {
          const listener = function (this: unknown, e: Event): void {
            resolve({ data: (e as unknown as Message).data, self: this, active: (trace.getActiveSpan() as unknown as ReadableSpan | undefined)?.name });
          };
          if (api === 'onmessage') client.onmessage = listener;
          else client.addEventListener('message', listener);
        });
        socket.send('hello');
        const { data, self, active } = await got;
        assert.equal(data, 'hello');
        assert.equal(self, client);
        assert.equal(active, 'WS RECEIVE /chat');
        const [receive] = await waitForSpans('WS RECEIVE /chat');
        const [connect] = await clientConnect();
        assert.equal(receive.kind, SpanKind.CONSUMER);
        assert.equal(receive.parentSpanContext, undefined);
        assert.equal(receive.links.length, 1);
        assert.equal(receive.links[0].context.spanId, connect.spanContext().spanId);
        assert.equal(attr(receive, 'messaging.message.body.size'), 5);
        assert.equal(attr(receive, 'websocket.message.type'), 'text');
      });
    }

    test('binary messages (Blob and ArrayBuffer) are sized and typed; the listener gets the type binaryType asks for', async () => {
      const { client, socket } = await pair();
      const data: unknown[] = [];
      let done!: () => void;
      const both = new Promise<void>((resolve) => (done = resolve));
      client.addEventListener('message', (e) => {
        data.push((e as unknown as Message).data);
        if (data.length === 1) {
          client.binaryType = 'arraybuffer';
          socket.send(Buffer.from([1, 2, 3, 4]));
        } else done();
      });
      socket.send(Buffer.from([1, 2, 3]));
      await both;
      assert.ok(data[0] instanceof Blob);
      assert.ok(data[1] instanceof ArrayBuffer);
      const receives = await waitForSpans('WS RECEIVE /chat', 2);
      assert.deepEqual(receives.map((s) => [attr(s, 'websocket.message.type'), attr(s, 'messaging.message.body.size')]).sort(), [['binary', 3], ['binary', 4]]);
    });

    test('removeEventListener and onmessage = null still work: removed listeners are never called', async () => {
      const { client, socket } = await pair();
      const calls: string[] = [];
      const a = (): void => void calls.push('a');
      const b = (): void => void calls.push('b');
      client.addEventListener('message', a);
      client.addEventListener('message', b);
      client.removeEventListener('message', a);
      client.onmessage = () => calls.push('on');
      client.onmessage = null;
      const last = event(client, 'message');
      socket.send('x');
      await last;
      client.removeEventListener('message', b);
      const again = new Promise<void>((resolve) => client.addEventListener('message', () => resolve(), { once: true }));
      socket.send('y');
      await again;
      assert.deepEqual(calls, ['b']);
      assert.equal(client.onmessage, null);
      await waitForSpans('WS RECEIVE /chat', 2);
      assert.equal(await metricValue('websocket.messages', { 'websocket.side': 'client', 'websocket.direction': 'in' }), 2);
    });

    test('a send inside a message listener is a PRODUCER child of its WS RECEIVE; a send from a bare timer makes no span', async () => {
      const { client, socket } = await pair();
      client.onmessage = (e: Message) => {
        if (e.data === 'ask') client.send('answer');
      };
      const answer = messageOf(socket);
      socket.send('ask');
      assert.equal(await answer, 'answer');
      const fromTimer = messageOf(socket);
      setImmediate(() => client.send(new Uint8Array([1, 2])));
      await fromTimer;
      const [receive] = await waitForSpans('WS RECEIVE /chat');
      const sends = spansNamed('WS SEND /chat');
      assert.equal(sends.length, 1);
      assert.equal(sends[0].kind, SpanKind.PRODUCER);
      assert.equal(sends[0].parentSpanContext?.spanId, receive.spanContext().spanId);
      assert.equal(attr(sends[0], 'messaging.message.body.size'), 6);
      assert.equal(await metricValue('websocket.messages', { 'websocket.side': 'client', 'websocket.direction': 'out' }), 2);
      assert.equal(await metricValue('websocket.messages', { 'websocket.side': 'client', 'websocket.direction': 'out', 'websocket.message.type': 'binary' }), 1);
    });

    test('a close by the client: summary with code, reason, initiator client; close listeners run inside it', async () => {
      const { client, socket } = await pair();
      socket.send('one');
      await event(client, 'message');
      const durationsBefore = await histogramCount('websocket.connection.duration', 'client');
      const serverClosed = once(socket, 'close');
      let active: string | undefined;
      const closed = new Promise<Closed>((resolve) => {
        client.onclose = (e: Closed) => {
          active = (trace.getActiveSpan() as unknown as ReadableSpan | undefined)?.name;
          resolve(e);
        };
      });
      client.close(4000, 'bye');
      const e = await closed;
      await serverClosed;
      assert.equal(e.code, 4000);
      assert.equal(active, 'WS CLOSE /chat');
      const summary = (await waitForSpans('WS CLOSE /chat', 2)).find((s) => sideOf(s) === 'client')!;
      assert.equal(attr(summary, 'websocket.close.code'), 4000);
      assert.equal(attr(summary, 'websocket.close.reason'), 'bye');
      assert.equal(attr(summary, 'websocket.close.initiator'), 'client');
      assert.equal(attr(summary, 'websocket.connection.broken'), false);
      assert.equal(attr(summary, 'websocket.messages.in'), 1);
      const [connect] = await clientConnect();
      assert.equal(summary.links[0]?.context.spanId, connect.spanContext().spanId);
      assert.equal(await histogramCount('websocket.connection.duration', 'client'), durationsBefore + 1);
    });

    test('a close by the server (initiator server) and a dropped connection (1006, initiator network, broken)', async () => {
      const first = await pair();
      const byServer = event<Closed>(first.client, 'close');
      first.socket.close(4001, 'server says bye');
      assert.equal((await byServer).code, 4001);
      const second = await pair('/drop');
      second.client.addEventListener('error', () => undefined);
      const dropped = event<Closed>(second.client, 'close');
      second.socket.terminate();
      assert.equal((await dropped).code, 1006);
      const closes = (await waitForSpans(/^WS CLOSE/, 4)).filter((s) => sideOf(s) === 'client');
      const server = closes.find((s) => s.name === 'WS CLOSE /chat')!;
      assert.equal(attr(server, 'websocket.close.code'), 4001);
      assert.equal(attr(server, 'websocket.close.initiator'), 'server');
      const drop = closes.find((s) => s.name === 'WS CLOSE /drop')!;
      assert.equal(attr(drop, 'websocket.close.code'), 1006);
      assert.equal(attr(drop, 'websocket.close.initiator'), 'network');
      assert.equal(attr(drop, 'websocket.connection.broken'), true);
      assert.equal(await metricValue('websocket.connections.broken', { 'websocket.side': 'client', 'websocket.route': '/drop' }), 1);
    });

    test('twenty concurrent connects to distinct paths: every socket is paired with its own connect', async () => {
      server = await startServer(ws);
      const received: Promise<void>[] = [];
      server.wss.on('connection', (socket) => socket.send('hi'));
      for (let i = 0; i < 20; i++) {
        const client = new WebSocketClass(`${server.url}/p${i}`);
        clients.push(client);
        received.push(event(client, 'message').then(() => undefined));
      }
      await Promise.all(received);
      const receives = await waitForSpans(/^WS RECEIVE \/p\d+$/, 20);
      const connects = await waitForSpans(/^WS CONNECT 127\.0\.0\.1:\d+\/p\d+$/, 20);
      for (const receive of receives) {
        const path = receive.name.split(' ')[2];
        const connect = connects.find((c) => c.spanContext().spanId === receive.links[0]?.context.spanId);
        assert.ok(connect, `${receive.name} links a client connect`);
        assert.ok(connect.name.endsWith(path), `${receive.name} links ${connect.name}`);
      }
    });

    test('a trace goes client → server → second client (trace context carried in the messages)', async () => {
      await use({ messageContext: 'trace' });
      server = await startServer(ws);
      const sockets = new Map<string, ServerSocket>();
      server.wss.on('connection', (socket, req) => {
        sockets.set(req.url!, socket);
        socket.on('message', (data) => {
          const { text } = JSON.parse(String(data)) as { text: string };
          sockets.get('/b')!.send(JSON.stringify({ text, trace: inject({}) }));
        });
      });
      const a = new WebSocketClass(`${server.url}/a`);
      const b = new WebSocketClass(`${server.url}/b`);
      clients.push(a, b);
      await Promise.all([opened(a), opened(b)]);
      const delivered = event<Message>(b, 'message');
      const app = trace.getTracer('test').startSpan('app');
      context.with(trace.setSpan(context.active(), app), () => a.send(JSON.stringify({ text: 'hi', trace: inject({}) })));
      app.end();
      assert.equal(JSON.parse(String((await delivered).data)).text, 'hi');
      const [clientSend] = await waitForSpans('WS SEND /a');
      const [serverReceive] = await waitForSpans('WS RECEIVE /a');
      const [serverSend] = await waitForSpans('WS SEND /b');
      const [secondReceive] = await waitForSpans('WS RECEIVE /b');
      const traceId = app.spanContext().traceId;
      for (const span of [clientSend, serverReceive, serverSend, secondReceive]) assert.equal(span.spanContext().traceId, traceId, span.name);
      assert.equal(clientSend.parentSpanContext?.spanId, app.spanContext().spanId);
      assert.equal(serverReceive.parentSpanContext?.spanId, app.spanContext().spanId);
      assert.equal(serverSend.parentSpanContext?.spanId, serverReceive.spanContext().spanId);
      assert.equal(secondReceive.parentSpanContext?.spanId, serverReceive.spanContext().spanId);
    });

    test('uninstrument restores the prototype and unsubscribes the channels; connects then carry nothing', async () => {
      const proto = WebSocketClass.prototype as unknown as Record<string, unknown>;
      const original = ORIGINAL.get(WebSocketClass)!;
      assert.notEqual(proto.send, original.send, 'instrumented');
      await getInstrumentation()?.uninstrument();
      assert.equal(Object.getOwnPropertyNames(proto).join(), original.own, 'no own property added or left');
      assert.equal(proto.dispatchEvent, EventTarget.prototype.dispatchEvent);
      assert.equal(proto.send, original.send);
      assert.equal(proto.close, original.close);
      for (const name of ['request:create', 'request:headers', 'request:error', 'websocket:pong']) {
        assert.equal(diagnostics.channel(`undici:${name}`).hasSubscribers, false, `undici:${name}`);
      }
      const { client, socket, headers } = await pair();
      assert.equal(headers.traceparent, undefined);
      const sent = messageOf(socket);
      const got = event(client, 'message');
      client.send('x');
      await sent;
      socket.send('y');
      await got;
      assert.equal(spansNamed(/^WS /).length, 0);
    });
  });
}

describe('heartbeat: the undici package\'s ping(ws) export', () => {
  const undici = UNDICI;
  let server: Server | undefined;

  before(async () => {
    await use();
  });

  after(async () => {
    await server?.close();
    await use();
    resetSpans();
  });

  test('ping → pong round trip is recorded (websocket.heartbeat.rtt, side client)', { skip: typeof undici.ping !== 'function' && 'this undici has no ping export' }, async () => {
    server = await startServer(ws);
    const client = new (undici.WebSocket as unknown as ClientClass)(`${server.url}/hb`);
    await opened(client);
    const rttBefore = await histogramCount('websocket.heartbeat.rtt', 'client');
    const pong = new Promise<void>((resolve) => {
      const onPong = (): void => {
        diagnostics.unsubscribe('undici:websocket:pong', onPong);
        resolve();
      };
      diagnostics.subscribe('undici:websocket:pong', onPong);
    });
    undici.ping!(client);
    await pong;
    assert.equal(await histogramCount('websocket.heartbeat.rtt', 'client'), rttBefore + 1);
    const closed = event(client, 'close');
    client.close();
    await closed;
  });
});

// ------------------------------------------------------------------ child processes

interface Result {
  name: string;
  ok: boolean;
  value?: unknown;
  error?: string;
}

async function runChild(args: string[], env: Record<string, string>): Promise<{ stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, args, { cwd: path.join(FIXTURES, 'undici'), env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => (stdout += c));
  proc.stderr.on('data', (c: Buffer) => (stderr += c));
  const [code] = await once(proc, 'exit');
  assert.equal(code, 0, `exited with ${code}; stderr:\n${stderr.slice(-4000)}`);
  return { stdout, stderr };
}

describe('what gets patched, per Node line', { skip: !BUILT && 'dist/ not built (npm test builds it)' }, () => {
  test(BUILT_IN ? 'Node 22+: the global WebSocket is patched and the channels are listened to' : 'Node 20: no global WebSocket, nothing patched, one debug line', async () => {
    const probe = [
      "const dc = require('node:diagnostics_channel');",
      "const W = globalThis.WebSocket;",
      "console.log(JSON.stringify({ global: typeof W, own: W ? Object.getOwnPropertyNames(W.prototype).includes('dispatchEvent') : false, subscribed: dc.channel('undici:request:create').hasSubscribers }));",
    ].join('\n');
    const { stdout, stderr } = await runChild(['-r', 'ws-apm/register', '-e', probe], { WS_APM_BACKEND: 'console', WS_APM_LOG_LEVEL: 'debug' });
    const seen = JSON.parse(stdout.trim()) as { global: string; own: boolean; subscribed: boolean };
    if (BUILT_IN) {
      assert.deepEqual(seen, { global: 'function', own: true, subscribed: true });
      assert.doesNotMatch(stderr, /no built-in WebSocket/);
    } else {
      assert.deepEqual(seen, { global: 'undefined', own: false, subscribed: false });
      assert.match(stderr, /\[ws-apm\] debug: Node v20\.\d+\.\d+ has no built-in WebSocket client: nothing to instrument there/);
    }
  });
});

describe('ESM: named imports of the undici package', { skip: !BUILT && 'dist/ not built (npm test builds it)' }, () => {
  test('import { WebSocket, ping } from \'undici\' with --import ws-apm/register: connect, message, heartbeat', async () => {
    const { stdout, stderr } = await runChild(['--import', 'ws-apm/register', 'esm.mjs'], { WS_APM_BACKEND: 'console', WS_APM_TRACE_HEARTBEAT: 'true' });
    assert.equal(stdout.trim(), '{"message":"hi"}');
    assert.doesNotMatch(stderr, /\[ws-apm\] (error|warn)/);
    const connect = stderr.match(/WS CONNECT 127\.0\.0\.1:\d+\/esm .* span=([0-9a-f]+) parent=- ok status=101/);
    assert.ok(connect, stderr);
    assert.match(stderr, new RegExp(`WS RECEIVE /esm .* link=${connect[1]} ok type="text" bytes=2`));
    assert.match(stderr, new RegExp(`WS PING /esm .* link=${connect[1]} ok rtt_ms=`));
    assert.match(stderr, new RegExp(`WS CLOSE /esm .* link=${connect[1]} ok code=1005 by="client"`));
  });
});

const MODES: Array<[string, Record<string, string>, (stderr: string) => void]> = [
  ['console backend', { WS_APM_BACKEND: 'console' }, (stderr) => assert.match(stderr, /WS RECEIVE/, 'ws-apm was really instrumenting')],
  [
    'otel backend (SDK started, no exporter)',
    { WS_APM_BACKEND: 'otel', OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none', WS_APM_LOG_LEVEL: 'debug' },
    (stderr) => assert.match(stderr, /instrumenting ws with the otel backend/),
  ],
];

async function runSuite(preload: boolean, env: Record<string, string>): Promise<{ results: Result[]; stderr: string }> {
  const { stdout, stderr } = await runChild(preload ? ['-r', 'ws-apm/register', 'suite.js'] : ['suite.js'], env);
  const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Result & { done?: number });
  const done = lines.pop();
  assert.ok(done?.done !== undefined, 'the suite ran to its end');
  assert.equal(lines.length, done.done);
  return { results: lines, stderr };
}

for (const { label, kind, skip } of KINDS) {
  describe(`behaviour of ${label} with and without ws-apm`, { skip: skip || (!BUILT && 'dist/ not built (npm test builds it)') }, () => {
    // The run without ws-apm, made once by whichever test needs it first: each test stands alone.
    let baseline: Promise<Result[]> | undefined;
    const bareResults = (): Promise<Result[]> => (baseline ??= runSuite(false, { WS_CLIENT: kind }).then((r) => r.results));

    test('the suite passes without ws-apm', async (t) => {
      const bare = await bareResults();
      assert.deepEqual(bare.filter((r) => !r.ok), [], 'the suite itself is sound');
      assert.ok(bare.length >= 20, `${bare.length} checks`);
      t.diagnostic(`${bare.length} checks`);
    });

    for (const [mode, env, instrumented] of MODES) {
      test(`with -r ws-apm/register (${mode}): identical outcomes`, async () => {
        const bare = await bareResults();
        const { results, stderr } = await runSuite(true, { WS_CLIENT: kind, ...env });
        instrumented(stderr);
        assert.doesNotMatch(stderr, /\[ws-apm\] error/, 'no internal fault reported');
        assertSameOutcomes(results, bare);
      });
    }
  });
}
