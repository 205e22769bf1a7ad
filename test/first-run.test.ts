/**
 * What a user sees when something is off at start-up: a mistyped variable, a collector that is
 * down or never answers. Each is one clear line on stderr, and the app runs exactly as without
 * ws-apm. Child processes under `-r ws-apm/register`, everything on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { type Child, run } from './helpers/child';
import { OtlpReceiver, otlpEnv } from './helpers/otlp-receiver';

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

function ourLines(child: Child): string[] {
  return child.stderr().split('\n').filter((l) => l.startsWith('[ws-apm]'));
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
