/**
 * A collector that accepts connections and never answers, while an app traces every message
 * through the SDK ws-apm starts: the app keeps echoing and its memory stays bounded (the
 * SDK's span queue drops instead of growing).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { test } from 'node:test';
import { run } from '../helpers/child';
import { otlpEnv } from '../helpers/otlp-receiver';

test('a hanging collector under 20,000 traced messages: every message echoed, heap bounded', async (t) => {
  const held: Socket[] = [];
  let requests = 0;
  const collector = http.createServer((req) => {
    requests++;
    req.resume(); // never answered
  });
  collector.on('connection', (s) => held.push(s));
  collector.listen(0, '127.0.0.1');
  await once(collector, 'listening');
  try {
    const url = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
    const server = run(
      ['--expose-gc', '-r', 'ws-apm/register', 'server.js'],
      otlpEnv(url, 'outage', { FIXTURE_ONCE: '1', OTEL_BSP_SCHEDULE_DELAY: '100', WS_APM_FLUSH_TIMEOUT_MS: '1000' }),
    );
    const [, port] = await server.line(/^PORT (\d+)/);
    const client = run(['flood-client.js', `ws://127.0.0.1:${port}/flood`], { COUNT: '20000' });
    assert.equal((await client.exited()).code, 0);
    const out = client.stdout();
    assert.match(out, /ECHOED 20000/);
    const warm = Number(/MEM warm (\d+)/.exec(out)?.[1]);
    const end = Number(/MEM end (\d+)/.exec(out)?.[1]);
    const growth = end - warm;
    t.diagnostic(`heap after GC: ${(warm / 1048576).toFixed(1)} MiB after 2,000 messages, ${(end / 1048576).toFixed(1)} MiB after 20,000; ${requests} export requests hung`);
    assert.ok(requests > 0, 'the exporter reached the collector');
    // 36,000 spans were made after the warm-up; kept, they would be tens of MiB. The SDK's
    // queue (2,048 spans by default) and the hung requests bound what is held.
    assert.ok(growth < 12 * 1048576, `heap grew ${growth} bytes`);
    assert.deepEqual(await server.exited(), { code: 0, signal: null });
  } finally {
    for (const s of held) s.destroy();
    collector.close();
  }
});
