/**
 * What a user sees when something is off at start-up: a mistyped variable, a collector that is
 * down or never answers. Each is one clear line on stderr, and the app runs exactly as without
 * ws-apm. Child processes under `-r ws-apm/register`, everything on 127.0.0.1.
 */
import { isStartupLine } from '../helpers/stderr';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { type Child, run } from '../helpers/child';
import { OtlpReceiver, otlpEnv } from '../helpers/otlp-receiver';
import { refusingPort } from '../helpers/reliability-net';

const children: Child[] = [];

after(() => {
  for (const child of children) child.proc.kill('SIGKILL');
});

function start(env: Record<string, string>): Child {
  const child = run(['-r', 'ws-apm/register', 'server.js'], env);
  children.push(child);
  return child;
}

/** One echo through the app on `path`, then close: what the app does with or without ws-apm. */
async function echoOnce(server: Child, path: string): Promise<string> {
  const [, port] = await server.line(/^PORT (\d+)/);
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
  await once(ws, 'open');
  ws.send('ping');
  const [reply] = await once(ws, 'message');
  ws.close(1000, 'done');
  await once(ws, 'close');
  return String(reply);
}

/** ws-apm's lines on the child's stderr, less the start-up summary every process writes once. */
function ourLines(child: Child): string[] {
  return child.stderr().split('\n').filter((l) => l.startsWith('[ws-apm]') && !isStartupLine(l));
}

/** Resolve once the child has written `count` of ws-apm's lines to stderr. */
async function linesWritten(child: Child, count: number): Promise<string[]> {
  while (ourLines(child).length < count) {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) break;
    await once(child.proc.stderr!, 'data');
  }
  return ourLines(child);
}

/**
 * A local collector that holds every request unanswered until `answer()`, then answers each
 * one (new and held) with an empty OTLP success.
 */
async function startStuckCollector(): Promise<{ url: string; requests(): number; answer(): void; close(): Promise<void> }> {
  let answering = false;
  let requests = 0;
  const held = new Set<http.ServerResponse>();
  const sockets = new Set<Socket>();
  const ok = (res: http.ServerResponse): void => {
    if (!res.destroyed) res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  };
  const server = http.createServer((req, res) => {
    requests++;
    req.resume();
    req.on('end', () => {
      if (answering) ok(res);
      else held.add(res);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    answer: () => {
      answering = true;
      for (const res of held) ok(res);
      held.clear();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('a mistyped WS_APM_* variable', { timeout: 60_000 }, () => {
  let receiver: OtlpReceiver;
  before(async () => {
    receiver = await new OtlpReceiver().start();
  });
  after(async () => {
    await receiver.stop();
  });

  test('one warning line naming the variable it meant; the app and its telemetry run unchanged', async () => {
    const server = start(otlpEnv(receiver.url, 'typo', { FIXTURE_ONCE: '1', WS_APM_MESAGE_SAMPLE_RATE: '0' }));
    assert.equal(await echoOnce(server, '/typo'), 'echo ping');
    assert.deepEqual(await server.exited(), { code: 0, signal: null });
    assert.deepEqual(ourLines(server), [
      '[ws-apm] warn: unknown variable WS_APM_MESAGE_SAMPLE_RATE, ignored: did you mean WS_APM_MESSAGE_SAMPLE_RATE?',
    ]);
    assert.equal(receiver.spansOf('typo', 'WS RECEIVE /typo').length, 1, 'the default sample rate applies');
  });
});

describe('the OpenTelemetry collector of the SDK ws-apm starts cannot be reached', { timeout: 60_000 }, () => {
  // Short intervals, so that many exports fail while the test runs (the flush timeout bounds each one).
  const FAST = { OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_METRIC_EXPORT_INTERVAL: '300', WS_APM_FLUSH_TIMEOUT_MS: '500' };

  test('a port that refuses: exactly one warning naming it, and the app runs unchanged', async () => {
    const refusing = await refusingPort();
    after(() => refusing.release());
    const url = `http://127.0.0.1:${refusing.port}`;
    const server = start(otlpEnv(url, 'refused', { ...FAST, FIXTURE_ONCE: '1' }));
    const [, port] = await server.line(/^PORT (\d+)/);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/refused`);
    await once(ws, 'open');
    ws.send('m0');
    assert.equal(String((await once(ws, 'message'))[0]), 'echo m0');
    await linesWritten(server, 1);
    // More spans and metrics, more failed exports (and the last ones at exit): no more lines.
    for (const m of ['m1', 'm2']) {
      ws.send(m);
      assert.equal(String((await once(ws, 'message'))[0]), `echo ${m}`);
    }
    ws.close(1000, 'done');
    await once(ws, 'close');
    assert.deepEqual(await server.exited(), { code: 0, signal: null });
    assert.deepEqual(ourLines(server), [
      `[ws-apm] warn: the OpenTelemetry collector at ${url} refused the connection: telemetry is dropped until it answers (reported again when it does)`,
    ]);
  });

  test('a collector that never answers: one warning; once it answers, one line saying so; nothing more', async (t) => {
    const collector = await startStuckCollector();
    t.after(() => collector.close());
    const server = start(otlpEnv(collector.url, 'stuck', FAST));
    const [, port] = await server.line(/^PORT (\d+)/);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/stuck`);
    await once(ws, 'open');
    ws.send('while down');
    assert.equal(String((await once(ws, 'message'))[0]), 'echo while down');
    assert.deepEqual(await linesWritten(server, 1), [
      `[ws-apm] warn: the OpenTelemetry collector at ${collector.url} did not answer in time: telemetry is dropped until it answers (reported again when it does)`,
    ]);
    collector.answer();
    assert.deepEqual((await linesWritten(server, 2)).slice(1), [
      `[ws-apm] info: the OpenTelemetry collector at ${collector.url} answers again: telemetry is delivered`,
    ]);
    // More exports, all answered: still those two lines.
    const answeredBefore = collector.requests();
    ws.send('after');
    assert.equal(String((await once(ws, 'message'))[0]), 'echo after');
    ws.close(1000, 'done');
    await once(ws, 'close');
    server.proc.kill('SIGTERM');
    assert.deepEqual(await server.exited(), { code: null, signal: 'SIGTERM' });
    assert.ok(collector.requests() > answeredBefore, 'exports went on after the recovery');
    assert.equal(ourLines(server).length, 2, ourLines(server).join('\n'));
  });
});
