/**
 * ws-apm's own faults never reach the app. One case per adapter method: a working
 * (recording) adapter with just that method throwing — the app sees exactly what it sees
 * without ws-apm, each fault is logged once, and the telemetry that does not depend on the
 * broken method still flows. Plus the adapter that throws from everywhere at once.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { afterEach, describe, test } from 'node:test';
import { extract, getInstrumentation, instrument, inject, runWithContext } from '../../src/index';
import type { Adapter } from '../../src/tracer/adapter';
import { recordingAdapter, type RecordingAdapter } from '../helpers/reliability-adapter';
import { captureStderr } from '../helpers/stderr';
import { closed, nextConnection, startServer } from '../helpers/ws';

const ws = require('ws') as typeof import('ws');
const MESSAGES = 'websocket.messages';

/** What the app can observe of one session: messages, replies, listener arguments, close code, hand-off. */
interface Seen {
  received: string[];
  argCounts: number[];
  replies: string[];
  pongs: number;
  closeCode: number;
  handoff: string;
  carrierKeys: number;
  extracted: boolean;
}

/** A message carrying an upstream "not sampled" decision: its listeners run unsampled. */
const UNSAMPLED_MESSAGE = JSON.stringify({ text: 'c', trace: { traceparent: `00-${'c'.repeat(32)}-${'d'.repeat(16)}-00` } });

async function session(): Promise<Seen> {
  const server = await startServer(ws);
  // A send in the connection callback: under the handshake, another kind of active operation.
  server.wss.on('connection', (s) => s.send('welcome'));
  const accepted = nextConnection(server);
  const client = new ws.WebSocket(`${server.url}/chat?token=x`);
  const welcome = once(client, 'message');
  await once(client, 'open');
  const socket = await accepted;
  assert.equal(String((await welcome)[0]), 'welcome');
  const seen: Seen = {
    received: [], argCounts: [], replies: [], pongs: 0, closeCode: 0, handoff: '', carrierKeys: 0, extracted: false,
  };
  socket.on('message', function (this: unknown, data, ...rest) {
    assert.equal(this, socket);
    seen.argCounts.push(1 + rest.length);
    seen.received.push(String(data));
    socket.send(`echo ${data}`, (err) => assert.equal(err ?? undefined, undefined));
  });
  const done = new Promise<void>((resolve) =>
    client.on('message', (data) => {
      seen.replies.push(String(data));
      if (seen.replies.length === 3) resolve();
    }),
  );
  client.send('a');
  client.send('b');
  client.send(UNSAMPLED_MESSAGE);
  await done;
  socket.ping();
  await once(socket, 'pong');
  seen.pongs++;
  seen.handoff = runWithContext({ traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` }, () => 'ran');
  seen.carrierKeys = Object.keys(inject({ kept: 'yes' })).includes('kept') ? 1 : 0;
  extract({ traceparent: `00-${'e'.repeat(32)}-${'f'.repeat(16)}-01` });
  seen.extracted = true;
  client.close(1000, 'bye');
  const [code] = await closed(socket);
  seen.closeCode = code;
  await server.close();
  return seen;
}

const EXPECTED: Seen = {
  received: ['a', 'b', UNSAMPLED_MESSAGE],
  argCounts: [2, 2, 2],
  replies: ['echo a', 'echo b', `echo ${UNSAMPLED_MESSAGE}`],
  pongs: 1,
  closeCode: 1000,
  handoff: 'ran',
  carrierKeys: 1,
  extracted: true,
};

function boom(method: string): () => never {
  return () => {
    throw new Error(`${method} exploded`);
  };
}

/** A recording adapter whose `method` throws. */
function breaking(method: string): RecordingAdapter {
  const adapter = recordingAdapter();
  // A name per case: the logger reports each key once a minute, across tests too.
  (adapter as { name: string }).name = `broken-${method}`;
  (adapter as unknown as Record<string, unknown>)[method] = boom(method);
  return adapter;
}

async function withAdapter(adapter: Adapter): Promise<{ seen: Seen; stderr: string }> {
  const stderr = captureStderr();
  try {
    instrument({ adapter, flushOnExit: false, ws, traceHeartbeat: true, messageContext: 'trace' });
    const seen = await session();
    return { seen, stderr: stderr.text() };
  } finally {
    stderr.restore();
  }
}

afterEach(async () => {
  await getInstrumentation()?.uninstrument();
});

/** What must still be recorded when only `method` fails. */
const STILL_FLOWS: Record<string, (a: RecordingAdapter) => void> = {
  // 3 messages in on the server, the welcome and 3 echoes in on the client.
  start: (a) => assert.equal(a.counter(MESSAGES, { 'websocket.direction': 'in' }), 7, 'counters count every message'),
  end: (a) => assert.ok(a.ops.some((o) => o.name === 'WS RECEIVE /chat'), 'operations still start'),
  // Listeners ran outside their operation: their sends have no parent, everything else is recorded.
  run: (a) => assertEveryKind(a, ['WS SEND /chat']),
  runUnsampled: (a) => assertEveryKind(a),
  // Cannot tell: the message switches as it would without the check.
  unsampledHere: (a) => assertEveryKind(a),
  ref: (a) => assert.ok(a.ops.some((o) => o.name === 'WS RECEIVE /chat'), 'messages traced without a handshake reference'),
  traceIdOf: (a) => assertEveryKind(a),
  active: (a) => assert.ok(a.ops.some((o) => o.name === 'WS RECEIVE /chat')),
  keyOf: (a) => assertEveryKind(a),
  live: (a) => assert.ok(a.ops.some((o) => o.name === 'WS RECEIVE /chat')),
  inject: (a) => assertEveryKind(a),
  extract: (a) => assertEveryKind(a),
  runWithRemote: (a) => assertEveryKind(a),
  bindMetrics: (a) => assertEveryKind(a),
};

function assertEveryKind(a: RecordingAdapter, except: string[] = []): void {
  const names = new Set(a.ops.map((o) => o.name));
  const kinds = ['WS CONNECT /chat', 'WS CONNECT 127.0.0.1:PORT/chat', 'WS RECEIVE /chat', 'WS SEND /chat', 'WS CLOSE /chat', 'WS PING /chat'];
  for (const name of kinds.filter((k) => !except.includes(k))) {
    const pattern = new RegExp(`^${name.replace('PORT', '\\d+').replace(/[/.]/g, '\\$&')}$`);
    assert.ok([...names].some((n) => pattern.test(n)), `${name} recorded (got ${[...names].join(', ')})`);
  }
  assert.equal(a.open(), 0, 'every started operation ended');
}

describe('one adapter method throws: the app is unaffected, the fault is logged once, the rest flows', () => {
  test('baseline: a working adapter records every kind of operation', async () => {
    const adapter = recordingAdapter();
    const { seen } = await withAdapter(adapter);
    assert.deepEqual(seen, EXPECTED);
    assertEveryKind(adapter);
  });

  for (const method of Object.keys(STILL_FLOWS)) {
    test(`${method} throws`, async () => {
      const adapter = breaking(method);
      const { seen, stderr } = await withAdapter(adapter);
      assert.deepEqual(seen, EXPECTED);
      const reports = stderr.split('\n').filter((l) => l.includes('exploded'));
      assert.ok(reports.length >= 1, `the fault is reported:\n${stderr}`);
      assert.equal(reports.length, new Set(reports.map((l) => l.replace(/\(.*$/, ''))).size, `each fault once:\n${stderr}`);
      STILL_FLOWS[method](adapter);
    });
  }
});

test('an adapter that throws everywhere costs telemetry only: handshakes, messages, sends and closes work', async () => {
  const adapter = recordingAdapter();
  (adapter as { name: string }).name = 'everything';
  for (const method of ['start', 'end', 'run', 'runUnsampled', 'unsampledHere', 'ref', 'active', 'keyOf', 'live', 'inject', 'extract', 'runWithRemote', 'bindMetrics']) {
    (adapter as unknown as Record<string, unknown>)[method] = boom('everything');
  }
  const { seen, stderr } = await withAdapter(adapter);
  assert.deepEqual(seen, EXPECTED);
  const lines = stderr.split('\n').filter((l) => l.includes('everything start failed'));
  assert.equal(lines.length, 1, `one report for many start() failures:\n${stderr}`);
});
