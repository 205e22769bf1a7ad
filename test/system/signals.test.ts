/**
 * Signals and ws-apm's exit flush (src/exit.ts): when ws-apm is the only SIGTERM/SIGINT
 * listener, the first signal delivers telemetry and then ends the process by that signal; a
 * second one while that delivery is pending ends it at once, with the default action, as
 * without ws-apm. Proved with a busy app whose collector accepts every request and never answers.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type Child, run } from '../helpers/child';
import { otlpEnv } from '../helpers/otlp-receiver';

/** A collector that reads each request and never answers it. */
const hanging = http.createServer((req) => req.resume());
const sockets = new Set<Socket>();
hanging.on('connection', (socket) => {
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
});
const children: Child[] = [];
let url = '';

before(async () => {
  hanging.listen(0, '127.0.0.1');
  await once(hanging, 'listening');
  url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}`;
});

after(async () => {
  for (const child of children) child.proc.kill('SIGKILL');
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => hanging.close(() => resolve()));
});

describe('a second signal while the exit flush is pending', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    // The flush could take 60 s (its timeout): the test's 20 s timeout fails any wait for it.
    test(`${signal} twice ends a busy app at once, by ${signal}`, { timeout: 20_000 }, async () => {
      const app = run(['-r', 'ws-apm/register', 'busy.js'], otlpEnv(url, `busy-${signal}`, {
        WS_APM_FLUSH_TIMEOUT_MS: '60000',
        // Nothing is exported before the signal: the request that arrives is the exit flush.
        OTEL_BSP_SCHEDULE_DELAY: '60000',
        OTEL_METRIC_EXPORT_INTERVAL: '60000',
      }));
      children.push(app);
      await app.line(/^BUSY$/);
      const flushing = once(hanging, 'request');
      app.proc.kill(signal);
      await flushing;
      assert.equal(app.proc.exitCode ?? app.proc.signalCode, null, 'the first signal waits for the flush');
      app.proc.kill(signal);
      assert.deepEqual(await app.exited(), { code: null, signal });
    });
  }
});
