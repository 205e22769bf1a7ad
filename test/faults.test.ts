/**
 * ws-apm's own faults never reach the app: with an adapter that throws from every
 * method, ws behaves exactly as without instrumentation and each fault is logged once.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, test } from 'node:test';
import { getInstrumentation, instrument } from '../src/index';
import type { Adapter } from '../src/tracer/adapter';
import { closed, connect, nextConnection, startServer } from './helpers/ws';

const ws = require('ws') as typeof import('ws');

function failing(): Adapter {
  const boom = (): never => {
    throw new Error('backend exploded');
  };
  return {
    name: 'faulty',
    start: boom,
    end: boom,
    run: boom,
    ref: boom,
    hasActive: boom,
    inject: boom,
    extract: boom,
    runWithRemote: boom,
    bindMetrics: boom,
    flush: async () => boom(),
    shutdown: async () => boom(),
  };
}

after(async () => {
  await getInstrumentation()?.uninstrument();
});

test('an adapter that throws everywhere costs telemetry only: handshakes, messages, sends and closes work', async () => {
  let stderr = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => ((stderr += chunk), true)) as typeof process.stderr.write;
  try {
    instrument({ adapter: failing(), flushOnExit: false, ws, traceOrphanSends: true });
    const server = await startServer(ws);
    const accepted = nextConnection(server);
    const client = await connect(ws, `${server.url}/chat`);
    const socket = await accepted;
    const received: string[] = [];
    socket.on('message', (data) => {
      received.push(String(data));
      socket.send(`echo ${data}`);
    });
    const replies: string[] = [];
    const done = new Promise<void>((resolve) =>
      client.on('message', (data) => {
        replies.push(String(data));
        if (replies.length === 3) resolve();
      }),
    );
    client.send('a');
    client.send('b');
    client.send('c');
    await done;
    socket.ping();
    await once(socket, 'pong');
    client.close(1000, 'bye');
    const [code] = await closed(socket);
    assert.deepEqual(received, ['a', 'b', 'c']);
    assert.deepEqual(replies, ['echo a', 'echo b', 'echo c']);
    assert.equal(code, 1000);
    await server.close();
  } finally {
    process.stderr.write = write;
  }
  const lines = stderr.split('\n').filter((l) => l.includes('faulty start failed'));
  assert.equal(lines.length, 1, `one report for many start() failures:\n${stderr}`);
  assert.match(lines[0], /backend exploded/);
});
