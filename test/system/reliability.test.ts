/**
 * ws-apm never hurts the app: rejected promises from listeners, sockets that
 * die at awkward moments, handshakes that never complete, ws-apm loaded twice or late,
 * hostile headers, frames and JSON, cardinality floods, secrets in URLs and logs, and
 * body capture on ignored routes. In process with a recording adapter (it sees exactly
 * what any backend would be handed) unless a clean process is needed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, describe, test } from 'node:test';
import { getInstrumentation, instrument, type InstrumentOptions } from '../../src/index';
import { isWrapped } from '../../src/patch/wrap';
import { isValidTraceparent } from '../../src/tracer/propagation';
import { cleanEnv, FIXTURES, run } from '../helpers/child';
import { ACTIVE, CONNECTIONS, recordingAdapter, type RecordingAdapter } from '../helpers/reliability-adapter';
import { clientFrame, heapAfterGc, pool, rawExchange, refusingPort, upgradeRequest } from '../helpers/reliability-net';
import { closed, connect, nextConnection, rawUpgrade, socketClass, startServer, WS_VERSIONS, type Server, type WsModule } from '../helpers/ws';

const ws8 = require('ws') as WsModule;
const ROOT = path.resolve(__dirname, '..', '..');
const VALID_TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

async function uninstrumentAll(): Promise<void> {
  await getInstrumentation()?.uninstrument();
}

async function apm(ws: WsModule, options: InstrumentOptions = {}, adapterOptions: Parameters<typeof recordingAdapter>[0] = {}): Promise<RecordingAdapter> {
  await uninstrumentAll();
  const adapter = recordingAdapter(adapterOptions);
  instrument({ adapter, ws, flushOnExit: false, logLevel: 'silent', ...options });
  return adapter;
}

/** Capture ws-apm's (and anything's) stderr while `fn` runs. */
async function captureStderr<T>(fn: () => Promise<T>): Promise<{ result: T; stderr: string }> {
  let stderr = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof process.stderr.write;
  try {
    const result = await fn();
    return { result, stderr };
  } finally {
    process.stderr.write = write;
  }
}

/** Counts that must hold after every scenario: no open operation, gauge 0, opened = closed. */
function assertConsistent(adapter: RecordingAdapter, label: string): void {
  assert.equal(adapter.open(), 0, `${label}: every started operation ended`);
  assert.equal(adapter.counter(ACTIVE), 0, `${label}: active-connections gauge back to 0`);
  const accepted = adapter.counter(CONNECTIONS, { 'websocket.connection.outcome': 'accepted' });
  // One connection-duration value per closed socket, ignored routes included.
  const serverCloses = adapter.histogramCount('websocket.connection.duration', { 'websocket.side': 'server' });
  assert.equal(serverCloses, accepted, `${label}: opened = closed (server sockets)`);
}

/**
 * What ws-apm recorded, one line per operation, sorted: a handshake or connect with its status
 * (and `failed`), a close with its code, initiator, broken flag and message counts. A client's
 * port in an operation name reads `PORT`.
 */
function recorded(adapter: RecordingAdapter): string[] {
  return adapter.ops.map((o) => {
    const a = { ...o.attributes, ...o.outcome?.attributes };
    const name = o.name.replace(/:\d+\//, ':PORT/');
    if (o.role === 'close') {
      return `${name} code=${a['websocket.close.code']} by=${a['websocket.close.initiator']} broken=${a['websocket.connection.broken']} in=${a['websocket.messages.in']} out=${a['websocket.messages.out']}`;
    }
    return `${name} status=${a['http.response.status_code']}${o.outcome?.failed || o.outcome?.error !== undefined ? ' failed' : ''}`;
  }).sort();
}

after(async () => {
  await uninstrumentAll();
});

/**
 * Run a fixture of test/fixtures/reliability (`script`, with `env`) to its end and return the JSON
 * report it prints last; it must exit 0.
 */
function runReliabilityFixture(script: string, env: Record<string, string>): Promise<Record<string, unknown>> {
  const proc = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: path.join(FIXTURES, 'reliability'),
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (c: Buffer) => (out += c));
  proc.stderr.on('data', (c: Buffer) => (err += c));
  return once(proc, 'exit').then(([code]) => {
    assert.equal(code, 0, `${out}\n${err}`);
    return JSON.parse(out.trim().split('\n').pop() as string) as Record<string, unknown>;
  });
}

// ------------------------------------------------------------------ rejected promises

describe('a listener that returns a rejected promise', () => {
  for (const ws of ['ws', 'ws7']) {
    for (const capture of ['0', '1']) {
      test(`${ws}, captureRejections ${capture === '1' ? 'on' : 'off'}: same rejections, same objects, same place as without ws-apm; every operation ends`, async () => {
        const [bare, withApm] = await Promise.all([
          runReliabilityFixture('rejections.js', { WS_MODULE: ws, CAPTURE: capture, WITH_APM: '0' }),
          runReliabilityFixture('rejections.js', { WS_MODULE: ws, CAPTURE: capture, WITH_APM: '1' }),
        ]);
        assert.equal(bare.fatal, undefined, String(bare.fatal));
        const { opsOpen, ops, active, ...observed } = withApm;
        assert.deepEqual(observed, bare, 'the app observes exactly the same with ws-apm');
        assert.equal(bare.sameObjects, true);
        // 5 rejections (connection, 3 messages, close): all unhandled (capture off) or all as 'error' events (on).
        const reported = capture === '1' ? (bare.errorEvents as unknown[]) : (bare.unhandled as unknown[]);
        assert.equal(reported.length, 5);
        assert.equal(opsOpen, 0, 'no operation left open');
        assert.ok((ops as number) >= 9, `operations were recorded (${ops})`);
        assert.equal(active, 0);
      });
    }
  }
});

// ------------------------------------------------------------------ a listener that throws

describe('a message listener that throws, in an app that survives it', () => {
  for (const ws of ['ws', 'ws7']) {
    test(`${ws}: ws never emits that socket's close; once its TCP socket is gone, ws-apm records the close and the gauge is back to 0`, async () => {
      const [bare, withApm] = await Promise.all([runReliabilityFixture('listener-throws.js', { WS_MODULE: ws, WITH_APM: '0' }), runReliabilityFixture('listener-throws.js', { WS_MODULE: ws, WITH_APM: '1' })]);
      const { recorded, opsOpen, active, ...observed } = withApm;
      assert.deepEqual(observed, bare, 'the app observes exactly the same with ws-apm');
      // What ws does, with or without ws-apm: no close event, the socket left in wss.clients.
      assert.deepEqual(bare, { uncaught: ['handler bug'], received: ['boom'], serverCloseEvents: 0, clientCode: 1006, serverReadyState: 2, clientsLeft: 1 });
      assert.deepEqual(recorded, [
        'WS CLOSE /boom code=1006 by=network broken=true in=0', // the client's
        'WS CLOSE /boom code=1006 by=server broken=true in=1', // the server's: made by ws-apm when its TCP socket closed
        'WS CONNECT /boom',
        'WS CONNECT 127.0.0.1:PORT/boom',
        'WS RECEIVE /boom failed',
      ]);
      assert.equal(opsOpen, 0);
      assert.equal(active, 0);
    });
  }
});

// ------------------------------------------------------------------ lifecycle faults

for (const [label, load] of WS_VERSIONS) {
  const ws = load();
  const WebSocket = socketClass(ws);
  const WSS = (ws.WebSocketServer ?? (ws as unknown as { Server: typeof ws.WebSocketServer }).Server);

  describe(`${label}: sockets that die at awkward moments are recorded as they ended, and leak nothing`, () => {
    let server: Server | undefined;
    afterEach(async () => {
      await server?.close();
      server = undefined;
      await uninstrumentAll();
    });

    /**
     * Run `scenario` without ws-apm, then with it: the app sees the same, the counts hold, and
     * ws-apm recorded `expected(what the app saw)` (see `recorded`).
     */
    async function compare<T>(name: string, scenario: () => Promise<T>, expected: (observed: T) => string[]): Promise<void> {
      await uninstrumentAll();
      const bare = await scenario();
      const adapter = await apm(ws);
      const observed = await scenario();
      assert.deepEqual(observed, bare, `${name}: same outcome with ws-apm`);
      assertConsistent(adapter, name);
      assert.deepEqual(recorded(adapter), expected(observed).sort(), `${name}: what ws-apm recorded`);
    }

    test('the peer dies in the middle of a frame (declared 1000 bytes, sent 10, then TCP reset)', async () => {
      await compare('mid-message', async () => {
        server = await startServer(ws);
        const accepted = nextConnection(server);
        const { response, socket } = await rawExchange(server.port, upgradeRequest('/mid'), { until: /\r\n\r\n/ });
        const s = await accepted;
        const messages: unknown[] = [];
        s.on('message', (d) => messages.push(d));
        const serverClose = closed(s);
        socket.write(clientFrame(1, Buffer.from('0123456789'), true, 1000));
        socket.destroy();
        const [code] = await serverClose;
        await server.close();
        server = undefined;
        return { status: response.slice(0, 12), code, messages };
      }, ({ code }) => [
        // The half frame is no message; the close is the network's.
        'WS CONNECT /mid status=101',
        `WS CLOSE /mid code=${code} by=network broken=true in=0 out=0`,
      ]);
    });

    test('terminate() inside a send callback, on the server and on the client', async () => {
      await compare('terminate-in-send-cb', async () => {
        server = await startServer(ws);
        const results: unknown[] = [];
        for (const side of ['server', 'client']) {
          const accepted = nextConnection(server);
          const client = await connect(ws, `${server.url}/term`);
          const s = await accepted;
          const victim = side === 'server' ? s : client;
          const both = Promise.all([closed(s), closed(client)]);
          await new Promise<void>((resolve) =>
            victim.send('last words', (err) => {
              results.push(err ? String(err) : 'sent');
              victim.terminate();
              resolve();
            }),
          );
          const [[sc], [cc]] = await both;
          results.push({ side, server: sc, client: cc });
        }
        await server.close();
        server = undefined;
        return results;
      }, () => [
        // Each round: the victim's close is its own (its one send counted), the peer's is the network's (one message in).
        'WS CONNECT 127.0.0.1:PORT/term status=101', 'WS CONNECT /term status=101',
        'WS CLOSE /term code=1006 by=server broken=true in=0 out=1', 'WS CLOSE /term code=1006 by=network broken=true in=1 out=0',
        'WS CONNECT 127.0.0.1:PORT/term status=101', 'WS CONNECT /term status=101',
        'WS CLOSE /term code=1006 by=client broken=true in=0 out=1', 'WS CLOSE /term code=1006 by=network broken=true in=1 out=0',
      ]);
    });

    test('server close() with open clients (its own http server)', async () => {
      await compare('server-close', async () => {
        const wss = new WSS({ host: '127.0.0.1', port: 0 });
        await once(wss, 'listening');
        const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}/shutdown`;
        const accepted: import('ws').WebSocket[] = [];
        wss.on('connection', (s) => accepted.push(s));
        const clients: import('ws').WebSocket[] = [];
        for (let i = 0; i < 3; i++) clients.push(await connect(ws, url));
        const clientCloses = Promise.all(clients.map((c) => closed(c)));
        const serverCloses = Promise.all(accepted.map((s) => closed(s)));
        // The internal http server's close callback waits for every TCP connection, upgraded ones too.
        const wssClosed = new Promise<void>((resolve) => wss.close(() => resolve()));
        // ws 8 leaves existing connections open on close(); ws 7 terminates them.
        for (const s of accepted) if (s.readyState === WebSocket.OPEN) s.close(1001, 'going away');
        const codes = (await clientCloses).map(([c]) => c);
        const serverCodes = (await serverCloses).map(([c]) => c);
        await wssClosed;
        return { codes, serverCodes };
      }, ({ codes, serverCodes }) => [
        ...codes.flatMap(() => ['WS CONNECT 127.0.0.1:PORT/shutdown status=101', 'WS CONNECT /shutdown status=101']),
        // The server began every close: a clean one (ws 8: 1001 both ways), or a dropped one (ws 7: 1006, which its clients see as the network's).
        ...serverCodes.map((c) => `WS CLOSE /shutdown code=${c} by=server broken=${c === 1006} in=0 out=0`),
        ...codes.map((c) => `WS CLOSE /shutdown code=${c} by=${c === 1006 ? 'network' : 'server'} broken=${c === 1006} in=0 out=0`),
      ]);
    });

    test('clients that never complete the handshake: half a request, a bad key, a disconnect during verifyClient', async () => {
      await compare('no-handshake', async () => {
        const verifications: Array<(ok: boolean) => void> = [];
        let verifyWaiter: (() => void) | undefined;
        server = await startServer(ws, {
          verifyClient: (_info: unknown, cb: (ok: boolean) => void) => {
            verifications.push(cb);
            verifyWaiter?.();
          },
        });
        const nextVerify = (): Promise<void> => new Promise<void>((r) => (verifyWaiter = r));
        const connections: import('node:net').Socket[] = [];
        server.http.on('connection', (s) => connections.push(s));
        // 1. half a request, then our side ends: Node answers 400 itself, ws never hears of it.
        const { response: half } = await rawExchange(
          server.port,
          'GET /half HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n',
          { end: true },
        );
        // 2. a bad Sec-WebSocket-Key: ws answers 400.
        const bad = await rawExchange(server.port, upgradeRequest('/badkey').replace(/Sec-WebSocket-Key: .*/, 'Sec-WebSocket-Key: nope'));
        // 3. the client leaves while verifyClient is pending; the app then says yes: ws completes the
        //    upgrade on a dead socket (the paused socket did not notice), which closes 1006 at once.
        let verified = nextVerify();
        const { socket: leaver } = await rawExchange(server.port, upgradeRequest('/leaver'), { immediate: true });
        await verified;
        leaver.destroy();
        const accepted = nextConnection(server);
        verifications[0](true);
        const [code] = await closed(await accepted);
        // 4. the same, and the app says no: ws writes 401 to the dead socket and destroys it.
        verified = nextVerify();
        const { socket: leaver2 } = await rawExchange(server.port, upgradeRequest('/leaver2'), { immediate: true });
        await verified;
        const serverSide = connections[connections.length - 1];
        const gone = once(serverSide, 'close');
        leaver2.destroy();
        verifications[1](false);
        await gone;
        await server.close();
        server = undefined;
        return { half: half.split('\r\n')[0], bad: bad.response.split('\r\n')[0], code };
      }, ({ code }) => [
        // Half a request never reaches ws (Node answers it): nothing. The rest are handshakes, two rejected.
        'WS CONNECT /badkey status=400 failed',
        'WS CONNECT /leaver status=101',
        `WS CLOSE /leaver code=${code} by=network broken=true in=0 out=0`,
        'WS CONNECT /leaver2 status=401 failed',
      ]);
    });
  });
}

// ------------------------------------------------------------------ half request never seen

test('half a request that is closed by the client: no handshake operation, nothing counted', async () => {
  const adapter = await apm(ws8);
  const server = await startServer(ws8);
  const serverSockets: Promise<unknown>[] = [];
  server.http.on('connection', (s) => serverSockets.push(new Promise((r) => s.on('close', r))));
  await rawExchange(server.port, 'GET /half HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n', { end: true });
  await Promise.all(serverSockets);
  assert.equal(adapter.ops.length, 0);
  assert.equal(adapter.counter(CONNECTIONS), 0);
  await server.close();
});

// ------------------------------------------------------------------ loaded twice / late

describe('ws-apm loaded twice, or after ws', () => {
  afterEach(uninstrumentAll);

  async function oneMessage(ws: WsModule): Promise<void> {
    const server = await startServer(ws);
    const accepted = nextConnection(server);
    const client = await connect(ws, `${server.url}/twice`);
    const s = await accepted;
    const got = once(s, 'message');
    client.send('hello');
    await got;
    client.close();
    await closed(s);
    await server.close();
  }

  test('instrument() twice: the second call warns once, returns the first handle, patches nothing more', async () => {
    await uninstrumentAll();
    const first = recordingAdapter();
    const second = recordingAdapter();
    const { stderr } = await captureStderr(async () => {
      const h1 = instrument({ adapter: first, ws: ws8, flushOnExit: false, logLevel: 'warn' });
      const emit = socketClass(ws8).prototype.emit;
      const h2 = instrument({ adapter: second, ws: ws8, flushOnExit: false, logLevel: 'warn' });
      assert.equal(h2, h1);
      assert.equal(socketClass(ws8).prototype.emit, emit, 'the prototype is not wrapped twice');
      await oneMessage(ws8);
    });
    assert.equal(stderr.split('\n').filter((l) => /already instrumenting/.test(l)).length, 1, stderr);
    assert.equal(first.ops.filter((o) => o.role === 'receive').length, 1, 'exactly one receive operation per message');
    assert.equal(second.ops.length, 0);
  });

  const dist = path.join(ROOT, 'dist', 'index.js');
  test('a second copy of ws-apm (another path in node_modules) warns once and leaves ws alone', { skip: !fs.existsSync(dist) && 'dist/ not built (npm test builds it)' }, async () => {
    await uninstrumentAll();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-apm-copy-'));
    try {
      const copy = path.join(tmp, 'node_modules', 'ws-apm');
      fs.mkdirSync(copy, { recursive: true });
      fs.cpSync(path.join(ROOT, 'dist'), path.join(copy, 'dist'), { recursive: true });
      fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(copy, 'package.json'));
      fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
      const first = recordingAdapter();
      const second = recordingAdapter();
      const { stderr } = await captureStderr(async () => {
        const h1 = instrument({ adapter: first, ws: ws8, flushOnExit: false, logLevel: 'warn' });
        const emit = socketClass(ws8).prototype.emit;
        const upgrade = http.Server.prototype.emit;
        const other = require(path.join(copy, 'dist', 'index.js')) as typeof import('../../src/index');
        assert.notEqual(other.instrument, instrument, 'really a second copy');
        const h2 = other.instrument({ adapter: second, ws: ws8, flushOnExit: false });
        assert.equal(h2, h1, 'the second copy returns the active instrumentation');
        // Below the global handshake, a second copy's patch layer sees the first copy's marks.
        const { PatchLayer } = require(path.join(copy, 'dist', 'patch', 'patch-layer.js'));
        const { Tracer } = require(path.join(copy, 'dist', 'tracer', 'tracer.js'));
        const { loadConfig } = require(path.join(copy, 'dist', 'config.js'));
        const layer = new PatchLayer(new Tracer(loadConfig({ logLevel: 'warn' }), second));
        assert.equal(layer.patchWs(ws8), true);
        assert.equal(socketClass(ws8).prototype.emit, emit, 'ws prototypes untouched by the copy');
        assert.equal(http.Server.prototype.emit, upgrade);
        await oneMessage(ws8);
      });
      const warnings = stderr.split('\n').filter((l) => /already instrument/.test(l));
      assert.equal(warnings.length, 2, `one warning per attempt (instrument, patch layer):\n${stderr}`);
      assert.equal(first.ops.filter((o) => o.role === 'receive').length, 1);
      assert.equal(second.ops.length, 0);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('-r ws-apm/register plus a programmatic instrument(): one warning, one operation per message', { skip: !fs.existsSync(dist) && 'dist/ not built' }, async () => {
    const proc = spawn(process.execPath, ['-r', 'ws-apm/register', 'twice.js'], {
      cwd: path.join(FIXTURES, 'reliability'),
      env: cleanEnv({ WS_APM_BACKEND: 'console' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stdout.on('data', (c: Buffer) => (out += c));
    proc.stderr.on('data', (c: Buffer) => (err += c));
    const [code] = await once(proc, 'exit');
    assert.equal(code, 0, err);
    assert.deepEqual(JSON.parse(out), { same: true, received: ['ping'] });
    assert.equal(err.split('\n').filter((l) => /already instrumenting/.test(l)).length, 1, err);
    assert.equal(err.split('\n').filter((l) => /WS RECEIVE/.test(l)).length, 1, `one WS RECEIVE line:\n${err}`);
  });

  test('loaded after ws was required: the cached copy is found and patched (no ws option)', async () => {
    await uninstrumentAll();
    assert.ok(require.resolve('ws') in require.cache, 'ws is already loaded');
    assert.equal(isWrapped(socketClass(ws8).prototype.emit), false);
    const adapter = recordingAdapter();
    instrument({ adapter, flushOnExit: false, logLevel: 'silent' });
    assert.equal(isWrapped(socketClass(ws8).prototype.emit), true);
    await oneMessage(ws8);
    assert.equal(adapter.ops.filter((o) => o.role === 'receive').length, 1);
    assertConsistent(adapter, 'late');
  });
});

// ------------------------------------------------------------------ hostile headers

describe('hostile trace-context headers and query parameters', () => {
  let server: Server;
  afterEach(async () => {
    await server?.close();
    await uninstrumentAll();
  });

  const long = (n: number): string => 'a'.repeat(n);
  const VARIANTS: Array<[string, Record<string, string | string[]>]> = [
    ['valid', { traceparent: VALID_TP }],
    ['version ff', { traceparent: VALID_TP.replace(/^00/, 'ff') }],
    ['version 01 with extra', { traceparent: `01${VALID_TP.slice(2)}-extra` }],
    ['version 00 with extra', { traceparent: `${VALID_TP}-extra` }],
    ['short trace id', { traceparent: '00-4bf92f3577b34da6-00f067aa0ba902b7-01' }],
    ['long span id', { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b700-01' }],
    ['zero trace id', { traceparent: `00-${'0'.repeat(32)}-00f067aa0ba902b7-01` }],
    ['zero span id', { traceparent: `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01` }],
    ['non-hex', { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01' }],
    ['upper case', { traceparent: VALID_TP.toUpperCase() }],
    ['empty', { traceparent: '' }],
    ['spaces', { traceparent: `  ${VALID_TP}  ` }],
    ['8 KiB traceparent', { traceparent: `${VALID_TP}${long(8192)}` }],
    ['repeated traceparent (array)', { traceparent: [VALID_TP, VALID_TP] }],
    ['repeated tracestate (array)', { traceparent: VALID_TP, tracestate: ['a=1', 'b=2'] }],
    ['8 KiB tracestate', { traceparent: VALID_TP, tracestate: long(8192) }],
    ['garbage tracestate', { traceparent: VALID_TP, tracestate: '=,,,==;;\t x' }],
    ['newrelic garbage', { newrelic: 'not-base64-!!!' }],
    ['newrelic 8 KiB', { newrelic: long(8192) }],
    ['newrelic repeated (array)', { newrelic: ['eyJ2IjpbMCwxXX0=', 'eyJ2IjpbMCwxXX0='] }],
    ['newrelic JSON bomb', { newrelic: Buffer.from(`{"v":[0,1],"d":${'['.repeat(2000)}${']'.repeat(2000)}}`).toString('base64') }],
    ['elastic-apm-traceparent garbage', { 'elastic-apm-traceparent': 'zz-zz' }],
    ['elastic-apm-traceparent zero', { 'elastic-apm-traceparent': `00-${'0'.repeat(32)}-${'0'.repeat(16)}-01` }],
    ['elastic-apm-traceparent 8 KiB', { 'elastic-apm-traceparent': long(8192) }],
    ['elastic-apm-traceparent repeated', { 'elastic-apm-traceparent': [VALID_TP, VALID_TP] }],
    ['everything at once', { traceparent: 'x', tracestate: 'y', newrelic: 'z', 'elastic-apm-traceparent': 'w' }],
  ];
  const QUERIES = [
    '?traceparent=%ZZ%E0%A4%A',
    `?traceparent=${long(10_000)}`,
    `?traceparent=${encodeURIComponent(`${VALID_TP}-extra`)}`,
    `?traceparent=${encodeURIComponent(VALID_TP)}&traceparent=garbage`,
    '?traceparent',
    '?traceparent=&&&==&',
    `?traceparent[]=${encodeURIComponent(VALID_TP)}`,
    '?traceparent=%00%00%00',
    `?traceparent=${encodeURIComponent('00-ÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿ-00f067aa0ba902b7-01')}`,
  ];

  test(`${VARIANTS.length} header variants and ${QUERIES.length} garbage query contexts: accepted (101), never an invalid context handed on`, async () => {
    const adapter = await apm(ws8, { propagationQueryParam: 'traceparent' }, { propagationHeaders: ['newrelic', 'elastic-apm-traceparent'] });
    server = await startServer(ws8);
    const cases: Array<[string, string, Record<string, string | string[]>]> = [
      ...VARIANTS.map(([name, headers], i) => [name, `/h${i}`, headers] as [string, string, Record<string, string | string[]>]),
      ...QUERIES.map((q, i) => [`query ${q.slice(0, 30)}`, `/q${i}${q}`, {}] as [string, string, Record<string, string | string[]>]),
    ];
    for (const [name, urlPath, headers] of cases) {
      const res = await rawUpgrade(server.port, urlPath, headers);
      assert.equal(res.status, 101, name);
      res.destroy();
    }
    await server.close();
    for (const [name, urlPath] of cases) {
      const route = urlPath.split('?')[0];
      const op = adapter.ops.find((o) => o.name === `WS CONNECT ${route}`);
      assert.ok(op, `${name}: handshake recorded`);
      const parent = op.parent as { type: string; carrier?: Record<string, unknown> };
      if (parent.type !== 'remote') {
        assert.equal(parent.type, 'root', name);
        continue;
      }
      const carrier = parent.carrier!;
      for (const [key, value] of Object.entries(carrier)) {
        assert.equal(typeof value, 'string', `${name}: ${key} is one string`);
        assert.ok((value as string).length <= 4096, `${name}: ${key} is bounded`);
      }
      if (carrier.traceparent !== undefined) assert.ok(isValidTraceparent(carrier.traceparent), `${name}: only a valid traceparent is continued`);
      if (carrier.tracestate !== undefined) assert.ok((carrier.tracestate as string).length <= 512, `${name}: tracestate bounded`);
    }
    const continued = (name: string): boolean => {
      const i = cases.findIndex(([n]) => n === name);
      const op = adapter.ops.find((o) => o.name === `WS CONNECT ${cases[i][1].split('?')[0]}`)!;
      return (op.parent as { carrier?: { traceparent?: string } }).carrier?.traceparent !== undefined;
    };
    assert.equal(continued('valid'), true);
    for (const name of ['version ff', 'version 00 with extra', 'zero trace id', 'zero span id', 'non-hex', '8 KiB traceparent', 'repeated traceparent (array)']) {
      assert.equal(continued(name), false, `${name} starts a fresh trace`);
    }
    assertConsistent(adapter, 'headers');
  });

  test('a 64 KiB header is refused by Node itself (431) before ws or ws-apm see it; nothing recorded, nothing thrown', async () => {
    const adapter = await apm(ws8, {}, { propagationHeaders: ['newrelic', 'elastic-apm-traceparent'] });
    server = await startServer(ws8);
    for (const header of ['traceparent', 'tracestate', 'newrelic', 'elastic-apm-traceparent']) {
      const { response } = await rawExchange(server.port, upgradeRequest(`/big-${header}`, [`${header}: ${'a'.repeat(64 * 1024)}`]));
      assert.match(response, /^HTTP\/1\.1 431/, header);
    }
    assert.equal(adapter.ops.length, 0);
    assertConsistent(adapter, '431');
  });
});

// ------------------------------------------------------------------ hostile messages

describe('hostile messages', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await uninstrumentAll();
  });

  async function pair(ws: WsModule, urlPath = '/m'): Promise<{ client: import('ws').WebSocket; socket: import('ws').WebSocket }> {
    server = await startServer(ws);
    const accepted = nextConnection(server);
    const client = await connect(ws, `${server.url}${urlPath}`);
    return { client, socket: await accepted };
  }

  for (const [label, load] of WS_VERSIONS) {
    const ws = load();
    test(`${label}: invalid UTF-8 text, fragmented, empty and control-interleaved frames behave exactly as without ws-apm`, async () => {
      const scenario = async (): Promise<unknown> => {
        const { client, socket } = await pair(ws);
        const received: string[] = [];
        const errors: string[] = [];
        socket.on('error', (e: Error & { code?: string }) => errors.push(`${e.code ?? ''} ${e.message}`));
        socket.on('message', function (d: Buffer | string, isBinary?: boolean) {
          // Exactly what ws passes: the argument count, isBinary (ws 8) and the data type.
          received.push(`${arguments.length}:${String(isBinary)}:${typeof d}:${Buffer.from(d as Buffer).toString('hex')}`);
        });
        const sent = (data: unknown, opts: Record<string, unknown>): Promise<void> =>
          new Promise((resolve, reject) => client.send(data as string, opts, (err) => (err ? reject(err) : resolve())));
        await sent('frag-1 ', { fin: false });
        client.ping('mid');
        await sent('frag-2', { fin: true });
        await sent('', { binary: false });
        await sent(Buffer.alloc(0), { binary: true });
        await sent(Buffer.from([0x00, 0xff]), { binary: true });
        const echo = once(client, 'pong');
        client.ping();
        await echo;
        // (events.once would reject on the 'error' event ws emits before 'close')
        const closeCode = (w: import('ws').WebSocket): Promise<[number]> => new Promise((r) => w.on('close', (c: number) => r([c])));
        const serverClosed = closeCode(socket);
        const clientClosed = closeCode(client);
        await sent(Buffer.from([0x48, 0xc3, 0x28, 0xff]), { binary: false }); // invalid UTF-8 text
        const [[sc], [cc]] = await Promise.all([serverClosed, clientClosed]);
        await server!.close();
        server = undefined;
        return { received, errors, sc, cc };
      };
      await uninstrumentAll();
      const bare = (await scenario()) as { sc: number; cc: number };
      assert.equal(bare.cc, 1007, 'ws closes invalid UTF-8 with 1007');
      const adapter = await apm(ws, { messageName: 'type' });
      assert.deepEqual(await scenario(), bare);
      assertConsistent(adapter, 'frames');
      assert.equal(adapter.counter('websocket.messages', { 'websocket.side': 'server', 'websocket.direction': 'in' }), 4);
    });
  }

  test('JSON that is huge, deeply nested, polluting, or has a name that is an object, a number or 10 KiB: delivered unchanged, named safely', async () => {
    const adapter = await apm(ws8, { messageName: 'type', messageNameMaxBytes: 16 * 1024 * 1024 });
    const { client, socket } = await pair(ws8);
    const inputs: Array<[string, string]> = [
      ['object name', '{"type":{"a":1}}'],
      ['number name', '{"type":42}'],
      ['null name', '{"type":null}'],
      ['array name', '{"type":["a"]}'],
      ['10 KiB name', `{"type":"${'x'.repeat(10 * 1024)}"}`],
      ['name with spaces/unicode', '{"type":"drop table; \\u202e\\u0000"}'],
      ['deep arrays', `${'['.repeat(100_000)}${']'.repeat(100_000)}`],
      ['deep objects', `${'{"type":"deep","a":'.repeat(20_000)}1${'}'.repeat(20_000)}`],
      ['huge (4 MiB)', JSON.stringify({ type: 'huge', pad: 'p'.repeat(4 * 1024 * 1024) })],
      ['__proto__', '{"__proto__":{"type":"polluted"},"constructor":{"prototype":{"type":"polluted"}}}'],
      ['truncated', '{"type":"a'],
      ['just a bracket', '['],
      ['ok', '{"type":"chat"}'],
    ];
    const got: string[] = [];
    const all = new Promise<void>((resolve) =>
      socket.on('message', (d) => {
        got.push(String(d));
        if (got.length === inputs.length) resolve();
      }),
    );
    for (const [, text] of inputs) client.send(text);
    await all;
    assert.deepEqual(got, inputs.map(([, t]) => t), 'every message reaches the listener unchanged');
    assert.equal(({} as Record<string, unknown>).type, undefined, 'no prototype pollution');
    const names = adapter.ops.filter((o) => o.role === 'receive').map((o) => o.messageName);
    assert.equal(names.length, inputs.length);
    assert.deepEqual(names.slice(0, 6), [undefined, undefined, undefined, undefined, 'other', 'other']);
    assert.equal(names[8], 'huge');
    assert.equal(names[9], undefined);
    assert.equal(names[12], 'chat');
    for (const n of names) assert.ok(n === undefined || (n.length <= 64 && /^[\w.:/-]+$/.test(n)), `bounded name ${n?.slice(0, 20)}`);
    client.close();
    await closed(socket);
    assertConsistent(adapter, 'json');
  });

  test('a flood of 5,000 distinct message names and 5,000 distinct URL paths: caps hold, heap stays flat', async (t) => {
    const adapter = await apm(ws8, { messageName: 'type' }, { keepOps: false });
    server = await startServer(ws8);
    let received = 0;
    let target = 0;
    let reached: (() => void) | undefined;
    server.wss.on('connection', (s) =>
      s.on('message', () => {
        if (++received === target) reached!();
      }),
    );
    const client = await connect(ws8, `${server.url}/flood`);
    const flood = async (from: number, count: number): Promise<void> => {
      target = received + count;
      const done = new Promise<void>((r) => (reached = r));
      for (let i = from; i < from + count; i++) client.send(`{"type":"name-${i}"}`);
      await done;
      const paths = Array.from({ length: count }, (_, i) => `/path-${from + i}?token=t${i}`);
      await pool(paths, 32, async (p) => {
        const res = await rawUpgrade(server!.port, p);
        assert.equal(res.status, 101);
        res.destroy();
      });
    };
    await flood(0, 300); // warm-up: fills both caps
    const before = await heapAfterGc();
    await flood(300, 5_000);
    const afterFlood = await heapAfterGc();
    const routes = adapter.cellValues(CONNECTIONS, 'websocket.route');
    assert.ok(routes.size <= 101, `routes ≤ max + other (${routes.size})`);
    assert.ok(routes.has('other'));
    const names = new Set([...adapter.histogramSeries()].map((a) => a['websocket.message.name']).filter((n) => n !== undefined));
    assert.ok(names.size <= 101, `message names ≤ max + other (${names.size})`);
    assert.ok(names.has('other'));
    const growth = afterFlood - before;
    t.diagnostic(`heap after GC: before ${(before / 1048576).toFixed(1)} MiB, after 5,000 names + 5,000 paths ${(afterFlood / 1048576).toFixed(1)} MiB (growth ${(growth / 1024).toFixed(0)} KiB)`);
    assert.ok(growth < 8 * 1024 * 1024, `bounded heap growth (${growth} bytes)`);
    client.close();
    await server.close();
    server = undefined;
    assert.equal(adapter.counter(ACTIVE), 0);
    assert.equal(adapter.open(), 0);
  });
});

// ------------------------------------------------------------------ secrets

describe('secrets in URLs never reach a recorded attribute or a log line', () => {
  afterEach(uninstrumentAll);
  const SECRETS = ['s3cr3t-user', 'hunter2-pass', 'TOKEN-ONE', 'TOKEN-TWO', 'APIKEY-3', 'JWT-FOUR', 'PW-FIVE', 'SIG-SIX'];

  async function traffic(ws: WsModule): Promise<void> {
    const server = await startServer(ws);
    const accepted = nextConnection(server);
    const client = await connect(ws, `ws://s3cr3t-user:hunter2-pass@127.0.0.1:${server.port}/x?token=TOKEN-ONE&room=1&Access_Token=TOKEN-TWO`);
    const s = await accepted;
    const got = once(s, 'message');
    client.send('hi');
    await got;
    client.close();
    await closed(s);
    // Server side, straight from the request line.
    const res = await rawUpgrade(server.port, '/y?apikey=APIKEY-3&jwt=JWT-FOUR&PASSWORD=PW-FIVE&signature=SIG-SIX');
    res.destroy();
    // Error paths: a refused connect (wss with credentials and a token), and a 403.
    const refusing = await refusingPort();
    const failing = new (socketClass(ws))(`wss://s3cr3t-user:hunter2-pass@127.0.0.1:${refusing.port}/z?token=TOKEN-ONE`);
    const [err] = await once(failing, 'error').catch((e) => [e]);
    await refusing.release();
    assert.match(String(err), /ECONNREFUSED/);
    await server.close();
    const denied = await startServer(ws, { verifyClient: () => false });
    const rejected = new (socketClass(ws))(`ws://s3cr3t-user:hunter2-pass@127.0.0.1:${denied.port}/d?key=APIKEY-3&token=TOKEN-TWO`);
    await once(rejected, 'error').catch(() => undefined);
    await denied.close();
  }

  for (const [label, load] of WS_VERSIONS) {
    const ws = load();
    test(`${label}: recording adapter (what every backend is handed) and debug logs`, async () => {
      const adapter = await apm(ws, { logLevel: 'debug' });
      const { stderr } = await captureStderr(() => traffic(ws));
      const dump = adapter.dump();
      assert.ok(adapter.ops.some((o) => o.role === 'client-connect' && o.outcome?.error !== undefined), 'the refused connect was recorded with its error');
      assert.match(dump, /REDACTED/);
      for (const secret of SECRETS) {
        assert.ok(!dump.includes(secret), `${secret} is not in any recorded name, attribute or error`);
        assert.ok(!stderr.includes(secret), `${secret} is not in ws-apm's log`);
      }
    });
  }

  test('console backend output (a real adapter writing every attribute) has no secret either', async () => {
    await uninstrumentAll();
    const { stderr } = await captureStderr(async () => {
      instrument({ backend: 'console', ws: ws8, flushOnExit: false, logLevel: 'debug' });
      await traffic(ws8);
    });
    assert.match(stderr, /WS CONNECT/);
    for (const secret of SECRETS) assert.ok(!stderr.includes(secret), `${secret} not printed`);
  });
});

// ------------------------------------------------------------------ body capture on ignored routes

test('body capture is on, yet never captures on WS_APM_IGNORE_ROUTES routes (and still counts them)', async () => {
  const adapter = await apm(ws8, { captureBody: 'all', ignoreRoutes: '/health,/internal/*' });
  const server = await startServer(ws8);
  for (const p of ['/health', '/internal/a/b', '/chat']) {
    const accepted = nextConnection(server);
    const client = await connect(ws8, `${server.url}${p}`);
    const s = await accepted;
    const got = once(client, 'message');
    s.on('message', (d) => s.send(`echo ${d}`));
    client.send(`BODY-${p}`);
    await got;
    client.close();
    await closed(s);
  }
  await server.close();
  const withBody = adapter.ops.filter((o) => o.body !== undefined || o.attributes['websocket.message.body'] !== undefined);
  assert.ok(withBody.length > 0, 'captured where allowed');
  for (const op of withBody) assert.match(op.name, /^WS RECEIVE \/chat/, `${op.name} captured a body`);
  assert.ok(!adapter.dump().includes('BODY-/health') && !adapter.dump().includes('BODY-/internal'));
  assert.equal(adapter.counter('websocket.messages', { 'websocket.route': '/health', 'websocket.side': 'server', 'websocket.direction': 'in' }), 1);
  assertConsistent(adapter, 'ignored');
});

// ------------------------------------------------------------------ a broken OTLP collector

// A bound, not a timing assertion: a regression here must fail, not stall CI.
describe('an OTLP collector that hangs, answers 503 or answers slowly costs the app nothing', { timeout: 180_000 }, () => {
  for (const mode of ['hang', '503', 'slow'] as const) {
    test(`collector ${mode === 'hang' ? 'never answering' : mode === '503' ? 'answering 503' : 'answering after 3 s'}: every message echoed, exit within the flush bound`, async (t) => {
      const held: import('node:net').Socket[] = [];
      let requests = 0;
      const collector = http.createServer((req, res) => {
        requests++;
        req.resume();
        if (mode === '503') res.writeHead(503).end('busy');
        else if (mode === 'slow') setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'), 3000).unref();
      });
      collector.on('connection', (s) => held.push(s));
      collector.listen(0, '127.0.0.1');
      await once(collector, 'listening');
      const endpoint = `http://127.0.0.1:${(collector.address() as import('node:net').AddressInfo).port}`;
      try {
        const messages = Array.from({ length: 200 }, (_, i) => `m${i}`);
        const server = run(['-r', 'ws-apm/register', 'server.js'], {
          WS_APM_BACKEND: 'otel',
          OTEL_SERVICE_NAME: `faulty-${mode}`,
          OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
          OTEL_BSP_SCHEDULE_DELAY: '50',
          OTEL_METRIC_EXPORT_INTERVAL: '100',
          WS_APM_FLUSH_TIMEOUT_MS: '1000',
          FIXTURE_ONCE: '1',
        });
        const [, port] = await server.line(/^PORT (\d+)/);
        const client = run(['client.js', `ws://127.0.0.1:${port}/x`], { MESSAGES: messages.join(',') });
        assert.equal((await client.exited()).code, 0);
        const leftAt = Date.now();
        assert.equal(client.stdout().split('\n').filter((l) => l.startsWith('GOT echo m')).length, messages.length, 'every message echoed');
        assert.match(client.stdout(), /CLOSED 1000/);
        const exit = await server.exited();
        const exitMs = Date.now() - leftAt;
        assert.deepEqual(exit, { code: 0, signal: null }, server.stderr());
        assert.ok(requests > 0, 'the exporter did reach the broken collector');
        t.diagnostic(`${requests} export request(s) to the broken collector; the app exited ${exitMs} ms after its last client left`);
        // The app ends by itself after its last client: flush and SDK shutdown are each bounded
        // by WS_APM_FLUSH_TIMEOUT_MS (1 s), plus process teardown.
        assert.ok(exitMs < 4000, `exit ${exitMs} ms after the last client left`);
      } finally {
        for (const s of held) s.destroy();
        await new Promise((r) => collector.close(r));
      }
    });
  }
});

test('SIGTERM with a hanging collector: the process still dies of SIGTERM, within the flush bound', async (t) => {
  const held: import('node:net').Socket[] = [];
  const collector = http.createServer((req) => req.resume());
  collector.on('connection', (s) => held.push(s));
  collector.listen(0, '127.0.0.1');
  await once(collector, 'listening');
  try {
    const server = run(['-r', 'ws-apm/register', 'server.js'], {
      WS_APM_BACKEND: 'otel',
      OTEL_SERVICE_NAME: 'sigterm-hang',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as import('node:net').AddressInfo).port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '50',
      WS_APM_FLUSH_TIMEOUT_MS: '1000',
    });
    const [, port] = await server.line(/^PORT (\d+)/);
    const client = run(['client.js', `ws://127.0.0.1:${port}/x`], { MESSAGES: 'a,b,c' });
    assert.equal((await client.exited()).code, 0);
    const sentAt = Date.now();
    server.proc.kill('SIGTERM');
    const exit = await server.exited();
    const ms = Date.now() - sentAt;
    t.diagnostic(`died of ${exit.signal} ${ms} ms after SIGTERM`);
    assert.deepEqual(exit, { code: null, signal: 'SIGTERM' });
    assert.ok(ms < 4000, `${ms} ms`);
  } finally {
    for (const s of held) s.destroy();
    await new Promise((r) => collector.close(r));
  }
});
