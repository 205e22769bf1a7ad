/**
 * Sampling that means what it says, in process with the real OpenTelemetry SDK:
 * an unsampled message runs in a non-sampled context (nothing nested records, "-00"
 * downstream), an upstream decision carried in the message is honoured, the rate limit holds
 * under a flood, failed and slow unsampled messages are recorded anyway with their real start
 * time (capped), and a broadcast records a bounded number of send spans with the rest counted.
 * Plus the same rules in an app with its own SDK and @opentelemetry/instrumentation-http,
 * read from the raw OTLP export: no orphan root spans.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, afterEach, describe, test } from 'node:test';
import { context, propagation, SpanStatusCode, trace, TraceFlags } from '@opentelemetry/api';
import { getInstrumentation, instrument, type InstrumentOptions } from '../../src/index';
import { defaultBurst } from '../../src/tracer/sampler';
import { run } from '../helpers/child';
import { metricValue, registerMemorySdk, resetSpans, spansNamed, waitForSpans } from '../helpers/otel-memory';
import { OtlpReceiver, otlpEnv } from '../helpers/otlp-receiver';
import { captureStderr } from '../helpers/stderr';
import { connect, nextConnection, startServer, type Server } from '../helpers/ws';

registerMemorySdk();
const ws = require('ws') as typeof import('ws');

async function use(options: InstrumentOptions = {}): Promise<void> {
  await getInstrumentation()?.uninstrument();
  instrument({ backend: 'otel', startSdk: false, flushOnExit: false, logLevel: 'silent', ws, ...options });
}

let server: Server | undefined;
const clients: import('ws').WebSocket[] = [];

async function pair(): Promise<{ client: import('ws').WebSocket; socket: import('ws').WebSocket }> {
  server = await startServer(ws);
  const accepted = nextConnection(server);
  const client = await connect(ws, `${server.url}/chat`);
  clients.push(client);
  return { client, socket: await accepted };
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.terminate();
  await server?.close();
  server = undefined;
  await getInstrumentation()?.uninstrument();
  resetSpans();
});

after(async () => {
  await getInstrumentation()?.uninstrument();
});

/** Wait until `n` messages arrived on `socket` (listener added first). */
function received(socket: import('ws').WebSocket, n: number): Promise<void> {
  let count = 0;
  return new Promise((resolve) => socket.on('message', () => ++count === n && resolve()));
}

describe('an unsampled message', () => {
  test('runs its listeners in a non-sampled context: nested spans record nothing, downstream gets sampled=0', async () => {
    await use({ messageSampleRate: 0 });
    const { client, socket } = await pair();
    const seen: { traceparent: string; nestedRecording: boolean; flags: number }[] = [];
    socket.on('message', () => {
      const carrier: Record<string, string> = {};
      propagation.inject(context.active(), carrier);
      const nested = trace.getTracer('app').startSpan('db query');
      seen.push({
        traceparent: carrier.traceparent,
        nestedRecording: nested.isRecording(),
        flags: trace.getSpan(context.active())?.spanContext().traceFlags ?? -1,
      });
      nested.end();
      socket.send('reply');
    });
    client.send('a');
    client.send('b');
    await received(client, 2);
    assert.equal(seen.length, 2);
    for (const s of seen) {
      assert.match(s.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
      assert.equal(s.nestedRecording, false);
      assert.equal(s.flags, TraceFlags.NONE);
    }
    assert.notEqual(seen[0].traceparent.slice(3, 35), seen[1].traceparent.slice(3, 35), 'a fresh trace id per message');
    assert.equal(spansNamed(/^WS (RECEIVE|SEND)/).length, 0);
    assert.equal(spansNamed('db query').length, 0);
    assert.equal(await metricValue('websocket.messages', { 'websocket.side': 'server', 'websocket.direction': 'in' }), 2);
  });

  test('an upstream decision in the message is honoured: sampled=1 is traced at rate 0, sampled=0 is not at rate 1', async () => {
    await use({ messageContext: 'trace', messageSampleRate: 0 });
    const { client, socket } = await pair();
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const inside: string[] = [];
    socket.on('message', () => {
      const carrier: Record<string, string> = {};
      propagation.inject(context.active(), carrier);
      inside.push(carrier.traceparent);
    });
    client.send(JSON.stringify({ trace: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } }));
    const [span] = await waitForSpans('WS RECEIVE /chat');
    assert.equal(span.spanContext().traceId, traceId);
    for (const c of clients.splice(0)) c.terminate();
    await server?.close();
    await use({ messageContext: 'trace', messageSampleRate: 1 });
    const second = await pair();
    second.socket.on('message', () => {
      const carrier: Record<string, string> = {};
      propagation.inject(context.active(), carrier);
      inside.push(carrier.traceparent);
    });
    const done = received(second.socket, 1);
    second.client.send(JSON.stringify({ trace: { traceparent: `00-${traceId}-00f067aa0ba902b7-00` } }));
    await done;
    assert.equal(spansNamed('WS RECEIVE /chat').length, 1, 'the sampled=0 message made no span');
    assert.equal(inside[1], `00-${traceId}-00f067aa0ba902b7-00`, 'its listeners run in the upstream (unsampled) context');
  });
});

test('WS_APM_MESSAGE_RATE_LIMIT holds under a flood (a burst, then the rate); counters count every message', async () => {
  const limit = 20;
  const total = 400;
  await use({ messageRateLimit: limit });
  const { client, socket } = await pair();
  let first = 0;
  let last = 0;
  socket.on('message', () => {
    last = performance.now();
    if (first === 0) first = last;
  });
  const done = received(socket, total);
  for (let i = 0; i < total; i++) client.send(`m${i}`);
  await done;
  const seconds = (last - first) / 1000;
  const traced = spansNamed('WS RECEIVE /chat').length;
  // The token bucket: at most its burst at once, then `limit` per second (+1: decisions precede listeners).
  const most = defaultBurst(limit) + Math.ceil(limit * seconds) + 1;
  assert.ok(traced <= most, `${traced} traced in ${seconds} s, limit ${limit}/s`);
  assert.ok(traced >= defaultBurst(limit), `the burst passes: ${traced}`);
  assert.equal(await metricValue('websocket.messages', { 'websocket.side': 'server', 'websocket.direction': 'in' }), total);
});

describe('failed and slow messages are kept when not sampled', () => {
  test('a throwing listener: WS RECEIVE with the error, its real start time, the handshake link, no children', async () => {
    await use({ messageSampleRate: 0 });
    const { socket } = await pair();
    const boom = new TypeError('handler failed');
    socket.on('message', () => {
      trace.getTracer('app').startSpan('nested').end();
      throw boom;
    });
    // The clock ws-apm stamps a kept message with (performance.timeOrigin + now): Date.now() drifts from it by
    // milliseconds over a long test run, so the window is read on the same clock.
    const clock = (): number => performance.timeOrigin + performance.now();
    const before = clock();
    assert.throws(() => socket.emit('message', Buffer.from('x'), false), (err) => err === boom);
    const after = clock();
    const [span] = await waitForSpans('WS RECEIVE /chat');
    const [handshake] = spansNamed('WS CONNECT /chat');
    assert.equal(span.status.code, SpanStatusCode.ERROR);
    assert.equal(span.attributes['websocket.message.kept'], 'error');
    assert.equal(span.attributes['error.type'], 'TypeError');
    // (± 1 µs: the span's [s, ns] time and back to float milliseconds.)
    assert.ok(startMs(span) >= before - 0.001 && startMs(span) <= after + 0.001, `start time is when the message arrived: ${startMs(span)} in [${before}, ${after}]`);
    assert.equal(span.links[0]?.context.spanId, handshake.spanContext().spanId);
    assert.equal(spansNamed('nested').length, 0, 'what ran inside was unsampled');
  });

  test('a slow listener (>= WS_APM_KEEP_SLOW_MS) is kept with its real duration; a fast one is not', async () => {
    await use({ messageSampleRate: 0, keepSlowMs: 50 });
    const { client, socket } = await pair();
    let n = 0;
    socket.on('message', () => {
      if (n++ === 1) {
        const until = performance.now() + 80;
        while (performance.now() < until); // a handler that blocks the loop
      }
    });
    const done = received(socket, 2);
    client.send('fast');
    client.send('slow');
    await done;
    const [span] = await waitForSpans('WS RECEIVE /chat');
    assert.equal(spansNamed('WS RECEIVE /chat').length, 1);
    assert.equal(span.attributes['websocket.message.kept'], 'slow');
    assert.notEqual(span.status.code, SpanStatusCode.ERROR);
    assert.ok(durationMs(span) >= 79, `duration ${durationMs(span)} ms`);
  });

  test('kept messages have their own cap per second (WS_APM_KEEP_RATE_LIMIT)', async () => {
    await use({ messageSampleRate: 0, keepRateLimit: 5 });
    const { socket } = await pair();
    socket.on('message', () => {
      throw new Error('always');
    });
    const start = performance.now();
    for (let i = 0; i < 50; i++) assert.throws(() => socket.emit('message', Buffer.from('x'), false));
    const seconds = (performance.now() - start) / 1000;
    await waitForSpans('WS RECEIVE /chat', 5);
    const kept = spansNamed('WS RECEIVE /chat').length;
    // A burst of failures is kept up to a second's budget (the bucket's size), then 5 per second.
    assert.ok(kept >= 5 && kept <= 5 + Math.ceil(5 * seconds), `${kept} kept in ${seconds} s`);
  });

  test('WS_APM_KEEP_ERRORS=false keeps none', async () => {
    await use({ messageSampleRate: 0, keepErrors: false, keepSlowMs: 0 });
    const { client, socket } = await pair();
    socket.on('message', () => {
      throw new Error('not kept');
    });
    const stderr = captureStderr();
    try {
      socket.emit('message', Buffer.from('x'), false);
    } catch {
      // the app's own exception
    } finally {
      stderr.restore();
    }
    client.close();
    await waitForSpans('WS CLOSE /chat');
    assert.equal(spansNamed('WS RECEIVE /chat').length, 0);
  });
});

test('a broadcast to 1,000 sockets records WS_APM_MAX_SEND_SPANS send spans and counts the rest on the message', async () => {
  await use({ maxSendSpans: 10 });
  server = await startServer(ws);
  const sockets: import('ws').WebSocket[] = [];
  server.wss.on('connection', (s) => sockets.push(s));
  const peers: Promise<unknown>[] = [];
  for (let i = 0; i < 1000; i++) {
    const c = new ws.WebSocket(`${server.url}/room`);
    clients.push(c);
    peers.push(once(c, 'open'));
  }
  await Promise.all(peers);
  while (sockets.length < 1000) await once(server.wss, 'connection');
  const arrived = Promise.all(clients.map((c) => once(c, 'message')));
  sockets[0].on('message', (data) => {
    for (const s of sockets) s.send(data);
  });
  clients[0].send('hello room');
  await arrived;
  const [receive] = await waitForSpans('WS RECEIVE /room');
  const sends = spansNamed('WS SEND /room').filter((s) => s.parentSpanContext?.spanId === receive.spanContext().spanId);
  assert.equal(sends.length, 10);
  assert.equal(receive.attributes['websocket.messages.out'], 1000);
  assert.equal(receive.attributes['websocket.sends.unrecorded'], 990);
  assert.equal(receive.attributes['websocket.bytes.out'], 10_000);
  assert.equal(await metricValue('websocket.messages', { 'websocket.side': 'server', 'websocket.direction': 'out' }), 1000);
});

test('at 1 % in an app with its own SDK and instrumentation-http: no orphan root spans, downstream sees sampled=0', async () => {
  const receiver = await new OtlpReceiver().start();
  const traceparents: string[] = [];
  const downstream = http.createServer((req, res) => {
    traceparents.push(String(req.headers.traceparent ?? ''));
    res.end('ok');
  });
  downstream.listen(0, '127.0.0.1');
  await once(downstream, 'listening');
  try {
    const app = run(
      ['-r', '../otel/tracing.js', '-r', 'ws-apm/register', 'app.js'],
      otlpEnv(receiver.url, 'sampled-app', {
        WS_APM_MESSAGE_SAMPLE_RATE: '0.01',
        DOWNSTREAM: `http://127.0.0.1:${(downstream.address() as AddressInfo).port}/api`,
        OTEL_METRIC_EXPORT_INTERVAL: '60000',
      }),
      'sampling',
    );
    const [, port] = await app.line(/^PORT (\d+)$/);
    const client = await connect(ws, `ws://127.0.0.1:${port}/chat`);
    const total = 400;
    const replies = received(client, total);
    for (let i = 0; i < total; i++) client.send(`m${i}`);
    await replies;
    client.close();
    await app.exited();
    assert.equal(traceparents.length, total);
    const receives = receiver.spansOf('sampled-app', 'WS RECEIVE /chat');
    const gets = receiver.spans.filter((s) => s.service === 'sampled-app' && s.kind === 3);
    const receiveIds = new Set(receives.map((s) => s.spanId));
    assert.ok(receives.length < total / 4, `about 1 % traced: ${receives.length}`);
    assert.equal(gets.length, receives.length, 'one http client span per traced message, none for the others');
    for (const g of gets) assert.ok(receiveIds.has(g.parentSpanId), 'every http span is a child of a WS RECEIVE');
    const sampled = traceparents.filter((t) => t.endsWith('-01'));
    const unsampled = traceparents.filter((t) => t.endsWith('-00'));
    assert.equal(sampled.length, receives.length, 'downstream sampled=1 exactly for traced messages');
    assert.equal(unsampled.length, total - receives.length, `downstream sampled=0 for the rest`);
  } finally {
    downstream.close();
    await receiver.stop();
  }
});

function startMs(span: { startTime: [number, number] }): number {
  return span.startTime[0] * 1000 + span.startTime[1] / 1e6;
}

function durationMs(span: { duration: [number, number] }): number {
  return span.duration[0] * 1000 + span.duration[1] / 1e6;
}
