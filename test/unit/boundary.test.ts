/**
 * The one boundary between the app and ws-apm: a fault in any part of the tracer (not only
 * in an adapter) — its bookkeeping before or after the app's call, naming, a metric cell, a
 * histogram forward — costs telemetry only. The message still reaches its listeners; send,
 * emit, close and ping return what they return and throw what they throw without ws-apm;
 * and once the shared fault budget is spent ws-apm switches itself off for good.
 * Also: a ws copy outside the tested majors is left alone.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { getInstrumentation, instrument } from '../../src/index';
import { MAX_FAULTS } from '../../src/tracer/guard';
import type { Tracer } from '../../src/tracer/tracer';
import { recordingAdapter, type RecordingAdapter } from '../helpers/reliability-adapter';
import { captureStderr } from '../helpers/stderr';
import { closed, connect, nextConnection, type Server, startServer } from '../helpers/ws';

const ws = require('ws') as typeof import('ws');

afterEach(async () => {
  await getInstrumentation()?.uninstrument();
});

interface Setup {
  readonly tracer: Tracer;
  readonly adapter: RecordingAdapter;
  readonly server: Server;
  readonly socket: import('ws').WebSocket;
  readonly client: import('ws').WebSocket;
}

/** Instrument with every message traced and names on, and open one connection. */
async function setup(name: string): Promise<Setup> {
  const adapter = recordingAdapter();
  // A name per case: the logger reports each key once a minute, across tests too.
  (adapter as { name: string }).name = name;
  const handle = instrument({ adapter, flushOnExit: false, ws, traceHeartbeat: true, messageName: 'type', messageRateLimit: 0 });
  const server = await startServer(ws);
  const accepted = nextConnection(server);
  const client = await connect(ws, `${server.url}/chat`);
  const socket = await accepted;
  return { tracer: handle.tracer!, adapter, server, socket, client };
}

const boom = (part: string) => (): never => {
  throw new Error(`${part} exploded`);
};

/** What the app sees, asserted: the same as without ws-apm. */
async function appSeesNoDifference(s: Setup): Promise<void> {
  const { socket, client } = s;
  // A message from the peer reaches the listener, with ws's arguments.
  const got = once(socket, 'message');
  client.send(JSON.stringify({ type: 'chat', text: 'hi' }));
  const [data, isBinary] = await got;
  assert.equal(String(data), '{"type":"chat","text":"hi"}');
  assert.equal(isBinary, false);

  // emit: its return value, and a listener's exception, the very same object.
  const thrown = new Error('the app threw');
  const throwing = (d: unknown): void => {
    if (String(d) === 'throw') throw thrown;
  };
  socket.on('message', throwing);
  assert.equal(socket.emit('message', Buffer.from('{"type":"x"}'), false), true);
  assert.throws(() => socket.emit('message', Buffer.from('throw'), false), (err) => err === thrown);
  socket.off('message', throwing);

  // send: returns undefined, its callback runs once without an error, the peer gets it.
  const echoed = once(client, 'message');
  let callbacks = 0;
  assert.equal(socket.send('echo', (err) => { assert.equal(err ?? undefined, undefined); callbacks++; }), undefined);
  assert.equal(String((await echoed)[0]), 'echo');
  assert.equal(socket.send('no callback'), undefined);
  await once(client, 'message');
  assert.equal(callbacks, 1);

  // ping: returns undefined, and the pong comes back.
  const pong = once(socket, 'pong');
  assert.equal(socket.ping(), undefined);
  await pong;

  // send and ping before the socket is open throw ws's own error, unchanged.
  const early = new ws.WebSocket(s.server.url);
  assert.throws(() => early.send('x'), /WebSocket is not open: readyState 0 \(CONNECTING\)/);
  assert.throws(() => early.ping(), /WebSocket is not open: readyState 0 \(CONNECTING\)/);
  early.on('error', () => undefined);
  early.terminate();

  // close: returns undefined; the close event reaches the app's listener.
  const closeSeen = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
  assert.equal(client.close(1000, 'bye'), undefined);
  assert.equal(await closeSeen, 1000);
  await closed(client);
  await s.server.close();
}

/** Replace `obj[method]` with one that throws; returns how often it was called. */
function breakMethod(obj: object, method: string, part: string): { calls: number } {
  const counter = { calls: 0 };
  const fail = boom(part);
  (obj as Record<string, unknown>)[method] = (): never => {
    counter.calls++;
    return fail();
  };
  return counter;
}

describe('a part of the tracer throws: the app sees no difference', () => {
  const parts: Record<string, (t: Tracer) => { calls: number }> = {
    // Start steps: before the app's call.
    'counting and sampling a message (messages.receiveStart)': (t) => breakMethod(t.messages, 'receiveStart', 'receiveStart'),
    'naming a message (names.nameAt)': (t) => breakMethod(t.core.names, 'nameAt', 'nameAt'),
    'a send (messages.sendStart)': (t) => breakMethod(t.messages, 'sendStart', 'sendStart'),
    'the close summary (closes.closeStart)': (t) => breakMethod(t.closes, 'closeStart', 'closeStart'),
    'close() bookkeeping (closes.closing)': (t) => breakMethod(t.closes, 'closing', 'closing'),
    'ping bookkeeping (heartbeats.ping)': (t) => breakMethod(t.heartbeats, 'ping', 'ping'),
    'pong bookkeeping (heartbeats.pong)': (t) => breakMethod(t.heartbeats, 'pong', 'pong'),
    // End steps: after the app's call returned or threw.
    'ending a message (messages.receiveEnded)': (t) => breakMethod(t.messages, 'receiveEnded', 'receiveEnded'),
    'the process-duration cell (metric cell)': (t) => breakMethod(t.core.routeInfo('/chat', 'server').metrics, 'process', 'process'),
    'the message-size histogram cell (metric cell)': (t) => breakMethod(t.core.metrics.sizeIn, 'record', 'sizeIn'),
    'a histogram forward (HistogramCell.forward)': (t) => {
      const counter = { calls: 0 };
      t.core.metrics.forwardHistograms(() => ({
        record(): void {
          counter.calls++;
          throw new Error('forward exploded');
        },
      }));
      return counter;
    },
    'the forward callback itself (forwardFor)': (t) => {
      const counter = { calls: 0 };
      // Called for every cell there is and every cell made later (a new message name).
      t.core.metrics.forwardHistograms(() => {
        counter.calls++;
        throw new Error('forwardFor exploded');
      });
      return counter;
    },
  };

  for (const [part, breakIt] of Object.entries(parts)) {
    test(part, async () => {
      const stderr = captureStderr();
      try {
        const s = await setup(`part-${part.replace(/\W+/g, '-')}`);
        const broken = breakIt(s.tracer);
        await appSeesNoDifference(s);
        assert.ok(broken.calls > 0, 'the broken part was reached');
        // Counted against the budget (the log line itself is once a minute per kind of fault).
        assert.ok(s.tracer.core.adapter.budget.count >= broken.calls, `${s.tracer.core.adapter.budget.count} faults counted`);
        assert.equal(s.tracer.boundary.on, true, 'a few faults do not switch ws-apm off');
      } finally {
        stderr.restore();
      }
    });
  }
});

test('the shared fault budget: past it ws-apm switches itself off for good, and the app still works', async () => {
  const stderr = captureStderr();
  try {
    const s = await setup('budget');
    // Faults from two places count against one budget.
    const pings = breakMethod(s.tracer.heartbeats, 'ping', 'budget ping');
    const sends = breakMethod(s.tracer.messages, 'sendStart', 'budget send');
    // (A few pings only: ws itself drops a connection flooded with pings.)
    const half = 10;
    for (let i = 0; i < half; i++) s.socket.ping();
    assert.equal(s.tracer.boundary.on, true);
    for (let i = 0; i < MAX_FAULTS; i++) s.socket.send('x');
    assert.equal(pings.calls, half);
    assert.equal(sends.calls, MAX_FAULTS - half, 'no tracer call once the budget is spent');
    assert.equal(s.tracer.boundary.on, false);
    assert.equal(stderr.text().split('\n').filter((l) => l.includes('stops recording telemetry')).length, 1, stderr.text());

    // Off for good: the wrappers call straight through, nothing more is recorded.
    const recorded = s.adapter.ops.length;
    for (let i = 0; i < half; i++) s.socket.ping();
    assert.equal(pings.calls, half);
    await new Promise<void>((resolve) => {
      s.client.on('message', (data) => {
        if (String(data) === 'last') resolve();
      });
      s.socket.send('last');
    });
    const got = once(s.socket, 'message');
    s.client.send('after');
    assert.equal(String((await got)[0]), 'after');
    assert.equal(s.adapter.ops.length, recorded, 'nothing recorded once off');
    s.client.close();
    await closed(s.socket);
    await s.server.close();
    assert.equal(s.adapter.ops.length, recorded);
  } finally {
    stderr.restore();
  }
});

describe('an untraced message where the adapter is already unsampled (an agent outside any transaction)', () => {
  /** Every message unsampled; `here` answers the adapter's unsampledHere(); runUnsampled() calls counted. */
  async function unsampledSetup(name: string, here: boolean): Promise<Setup & { switches: () => number }> {
    const adapter = recordingAdapter();
    (adapter as { name: string }).name = name;
    let switches = 0;
    const runUnsampled = adapter.runUnsampled.bind(adapter);
    adapter.unsampledHere = () => here;
    adapter.runUnsampled = (carrier, fn, thisArg, args) => {
      switches++;
      return runUnsampled(carrier, fn, thisArg, args);
    };
    const handle = instrument({ adapter, flushOnExit: false, ws, messageSampleRate: 0 });
    const server = await startServer(ws);
    const accepted = nextConnection(server);
    const client = await connect(ws, `${server.url}/chat`);
    const socket = await accepted;
    return { tracer: handle.tracer!, adapter, server, socket, client, switches: () => switches };
  }

  test('runs its listeners directly: no switch, the same arguments, this, return value and exception', async () => {
    const s = await unsampledSetup('unsampled-here', true);
    try {
      const got = once(s.socket, 'message');
      s.client.send('hello');
      const [data, isBinary] = await got;
      assert.equal(String(data), 'hello');
      assert.equal(isBinary, false);
      const selves: unknown[] = [];
      s.socket.once('message', function (this: unknown) {
        selves.push(this);
      });
      assert.equal(s.socket.emit('message', Buffer.from('x'), false), true);
      assert.deepEqual(selves, [s.socket]);
      const mine = new Error('the app threw');
      s.socket.once('message', () => {
        throw mine;
      });
      assert.throws(() => s.socket.emit('message', Buffer.from('y'), false), (err) => err === mine);
      assert.equal(s.switches(), 0, 'runUnsampled never called');
      assert.equal(s.adapter.counter('websocket.messages', { 'websocket.direction': 'in' }), 3, 'every message counted');
    } finally {
      s.client.terminate();
      await s.server.close();
    }
  });

  test('where it is not, each untraced message switches', async () => {
    const s = await unsampledSetup('unsampled-not-here', false);
    try {
      const got = once(s.socket, 'message');
      s.client.send('hello');
      await got;
      s.socket.once('message', () => undefined);
      s.socket.emit('message', Buffer.from('x'), false);
      assert.equal(s.switches(), 2);
    } finally {
      s.client.terminate();
      await s.server.close();
    }
  });
});

describe('ws versions ws-apm is tested with (7, 8): another is left alone', () => {
  /** A fake copy of ws in a temp node_modules, whose package.json says `version`. */
  function fakeWs(version: string): { dir: string; load: () => { prototype: Record<string, unknown> } } {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-apm-range-'));
    const dir = path.join(root, 'node_modules', 'ws');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'ws', version, main: 'index.js' }));
    fs.writeFileSync(
      path.join(dir, 'index.js'),
      `class WebSocket { emit() { return true; } send() {} ping() {} close() {} terminate() {} }
class WebSocketServer { handleUpgrade() {} }
WebSocket.WebSocket = WebSocket;
WebSocket.WebSocketServer = WebSocketServer;
WebSocket.Server = WebSocketServer;
module.exports = WebSocket;
`,
    );
    return { dir: root, load: () => createRequire(path.join(root, 'app.js'))('ws') as { prototype: Record<string, unknown> } };
  }

  test('a ws 9 copy is not patched, with one warning; a ws 8 copy next to it is', async () => {
    const stderr = captureStderr();
    const nine = fakeWs('9.0.0');
    const eight = fakeWs('8.99.0');
    try {
      instrument({ adapter: recordingAdapter(), flushOnExit: false });
      const ws9 = nine.load();
      const ws8 = eight.load();
      for (const method of ['emit', 'send', 'ping', 'close', 'terminate']) {
        assert.ok(String(ws9.prototype[method]).startsWith(`${method}() {`), `ws 9's ${method} untouched`);
      }
      assert.ok(!String(ws8.prototype.send).startsWith('send() {'), "ws 8's send is patched");
      const warnings = stderr.text().split('\n').filter((l) => l.includes('ws 9.0.0') && l.includes('left alone'));
      assert.equal(warnings.length, 1, stderr.text());
    } finally {
      stderr.restore();
      fs.rmSync(nine.dir, { recursive: true, force: true });
      fs.rmSync(eight.dir, { recursive: true, force: true });
    }
  });
});
