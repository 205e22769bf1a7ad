/**
 * The core behaviour on ws 7 and ws 8, in process, with the real OpenTelemetry SDK
 * exporting to memory: every ws event, every listener API, errors, propagation,
 * naming, sampling, privacy and metrics.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { after, afterEach, before, describe, test } from 'node:test';
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { getInstrumentation, inject, instrument, type InstrumentOptions, runWithContext, setUser } from '../../src/index';
import { collectMetrics, metricValue, registerMemorySdk, resetSpans, spans, spansNamed, waitForSpans } from '../helpers/otel-memory';
import { closed, connect, nextConnection, rawUpgrade, socketClass, startServer, WS_VERSIONS, type Server, type WsModule } from '../helpers/ws';

registerMemorySdk();

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;

async function use(ws: WsModule, options: InstrumentOptions = {}): Promise<void> {
  await getInstrumentation()?.uninstrument();
  instrument({ backend: 'otel', startSdk: false, flushOnExit: false, logLevel: 'silent', ws, ...options });
}

function attr(span: { attributes: Record<string, unknown> }, key: string): unknown {
  return span.attributes[key];
}

after(async () => {
  await getInstrumentation()?.uninstrument();
});

for (const [label, load] of WS_VERSIONS) {
  const ws = load();

  describe(`${label}`, () => {
    let server: Server;
    const clients: import('ws').WebSocket[] = [];

    before(async () => {
      await use(ws);
    });

    afterEach(async () => {
      for (const c of clients.splice(0)) c.terminate();
      await server?.close();
      await use(ws);
      resetSpans();
    });

    async function pair(options: Record<string, unknown> = {}, path = '/chat', clientOptions?: Record<string, unknown>) {
      server = await startServer(ws, options);
      const accepted = nextConnection(server);
      const client = await connect(ws, `${server.url}${path}`, clientOptions);
      clients.push(client);
      return { client, socket: await accepted };
    }

    test('an accepted handshake is a SERVER span that continues the traceparent of the upgrade request', async () => {
      server = await startServer(ws);
      const upgraded = await rawUpgrade(server.port, '/chat?room=1', { traceparent: TRACEPARENT, tracestate: 'vendor=x' });
      assert.equal(upgraded.status, 101);
      const [span] = await waitForSpans('WS CONNECT /chat');
      upgraded.destroy();
      assert.equal(span.kind, SpanKind.SERVER);
      assert.equal(span.spanContext().traceId, TRACE_ID);
      assert.equal(span.parentSpanContext?.spanId, PARENT_ID);
      assert.equal(span.spanContext().traceState?.get('vendor'), 'x');
      assert.equal(attr(span, 'http.response.status_code'), 101);
      assert.equal(attr(span, 'url.path'), '/chat');
      assert.equal(attr(span, 'url.query'), 'room=1');
      assert.equal(attr(span, 'url.scheme'), 'ws');
      assert.equal(attr(span, 'network.peer.address'), '127.0.0.1');
      assert.equal(attr(span, 'messaging.system'), 'websocket');
      assert.equal(span.status.code, SpanStatusCode.UNSET);
    });

    test('verifyClient returning false is a rejected handshake with status 401 and a rejection count', async () => {
      server = await startServer(ws, { verifyClient: () => false });
      const res = await rawUpgrade(server.port, '/secure');
      assert.equal(res.status, 401);
      const [span] = await waitForSpans('WS CONNECT /secure');
      assert.equal(span.status.code, SpanStatusCode.ERROR);
      assert.equal(attr(span, 'http.response.status_code'), 401);
      assert.equal(attr(span, 'websocket.connection.outcome'), 'rejected');
      assert.equal(await metricValue('websocket.server.connections', { 'websocket.route': '/secure', 'websocket.connection.outcome': 'rejected' }), 1);
      assert.equal(await metricValue('websocket.server.active_connections', { 'websocket.route': '/secure' }), 0);
    });

    test('an upgrade listener that writes 401 itself (noServer) is a rejected handshake, and its work nests under it', async () => {
      server = await startServer(ws, { noServer: true });
      const WSS = server.wss;
      let activeInListener: string | undefined;
      server.http.on('upgrade', (req, socket, head) => {
        activeInListener = trace.getActiveSpan()?.spanContext().spanId;
        if (req.headers.authorization !== 'Bearer good') {
          socket.write('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
          socket.destroy();
          return;
        }
        WSS.handleUpgrade(req, socket, head, (client) => WSS.emit('connection', client, req));
      });
      const res = await rawUpgrade(server.port, '/auth');
      assert.equal(res.status, 401);
      const [span] = await waitForSpans('WS CONNECT /auth');
      assert.equal(span.status.code, SpanStatusCode.ERROR);
      assert.equal(attr(span, 'http.response.status_code'), 401);
      assert.equal(activeInListener, span.spanContext().spanId);

      resetSpans();
      const accepted = nextConnection(server);
      const client = await connect(ws, `${server.url}/auth`, { headers: { authorization: 'Bearer good' } });
      clients.push(client);
      await accepted;
      const [ok] = await waitForSpans('WS CONNECT /auth');
      assert.equal(attr(ok, 'http.response.status_code'), 101);
    });

    test('a client connect is a CLIENT span injected into the upgrade, so the server handshake is its child', async () => {
      await pair();
      const [clientSpan] = await waitForSpans(/^WS CONNECT 127\.0\.0\.1:\d+\/chat$/);
      const [serverSpan] = await waitForSpans('WS CONNECT /chat');
      assert.equal(clientSpan.kind, SpanKind.CLIENT);
      assert.equal(serverSpan.parentSpanContext?.spanId, clientSpan.spanContext().spanId);
      assert.equal(serverSpan.spanContext().traceId, clientSpan.spanContext().traceId);
      assert.equal(attr(clientSpan, 'http.response.status_code'), 101);
    });

    test('a client connect inside an active span is its child', async () => {
      server = await startServer(ws);
      const parent = trace.getTracer('test').startSpan('parent');
      const client = context.with(trace.setSpan(context.active(), parent), () => new (socketClass(ws))(`${server.url}/x`));
      clients.push(client);
      await once(client, 'open');
      parent.end();
      const [clientSpan] = await waitForSpans(/^WS CONNECT 127/);
      assert.equal(clientSpan.parentSpanContext?.spanId, parent.spanContext().spanId);
    });

    test('a failed client connect (server answers 403) ends the CLIENT span with an error', async () => {
      server = await startServer(ws, { verifyClient: (_: unknown, cb: (ok: boolean, code: number) => void) => cb(false, 403) });
      const client = new (socketClass(ws))(`${server.url}/deny`);
      client.on('error', () => undefined);
      await new Promise((resolve) => client.on('close', resolve));
      const [span] = await waitForSpans(/^WS CONNECT 127.*\/deny$/);
      assert.equal(span.status.code, SpanStatusCode.ERROR);
      assert.equal(attr(span, 'http.response.status_code'), 403);
    });

    for (const api of ['on', 'once', 'addEventListener', 'onmessage'] as const) {
      test(`a message delivered through ${api} is a CONSUMER span, a new trace linked to the handshake`, async () => {
        const { client, socket } = await pair();
        const got = new Promise<void>((resolve) => {
          const listener = (): void => resolve();
          if (api === 'on') socket.on('message', listener);
          else if (api === 'once') socket.once('message', listener);
          else if (api === 'addEventListener') socket.addEventListener('message', listener);
          else socket.onmessage = listener;
        });
        client.send('hello');
        await got;
        const [receive] = await waitForSpans('WS RECEIVE /chat');
        const [handshake] = spansNamed('WS CONNECT /chat');
        assert.equal(receive.kind, SpanKind.CONSUMER);
        assert.equal(receive.parentSpanContext, undefined);
        assert.notEqual(receive.spanContext().traceId, handshake.spanContext().traceId);
        assert.equal(receive.links.length, 1);
        assert.equal(receive.links[0].context.spanId, handshake.spanContext().spanId);
        assert.equal(attr(receive, 'messaging.message.body.size'), 5);
        assert.equal(attr(receive, 'websocket.message.type'), 'text');
        assert.equal(attr(receive, 'messaging.operation.type'), 'receive');
      });
    }

    test('listeners get exactly the arguments ws gives them (isBinary on ws 8, no extra argument on ws 7)', async () => {
      const { client, socket } = await pair();
      const seen: unknown[][] = [];
      const both = new Promise<void>((resolve) =>
        socket.on('message', function (this: unknown, ...args: unknown[]) {
          seen.push(args);
          if (seen.length === 2) resolve();
        }),
      );
      client.send('text');
      client.send(Buffer.from([1, 2]));
      await both;
      if (label === 'ws 8') {
        assert.deepEqual(seen.map((a) => [a.length, a[1]]), [[2, false], [2, true]]);
      } else {
        assert.deepEqual(seen.map((a) => [a.length, typeof a[0]]), [[1, 'string'], [1, 'object']]);
      }
    });

    test('listener bookkeeping (listeners, rawListeners, listenerCount, off, removeListener) is untouched', async () => {
      const { client, socket } = await pair();
      const a = (): void => undefined;
      const b = (): void => undefined;
      socket.on('message', a);
      socket.once('message', b);
      assert.equal(socket.listenerCount('message'), 2);
      assert.equal(socket.listeners('message')[0], a);
      assert.equal(socket.listeners('message')[1], b);
      assert.equal(socket.rawListeners('message')[0], a);
      socket.off('message', a);
      socket.removeListener('message', b);
      assert.equal(socket.listenerCount('message'), 0);
      // With no listener left, a message is counted but makes no span.
      const seen = new Promise((resolve) => client.once('pong', resolve));
      client.send('nobody listens');
      client.ping();
      await seen;
      assert.equal(spansNamed('WS RECEIVE /chat').length, 0);
      assert.equal(await metricValue('websocket.messages', { 'websocket.route': '/chat', 'websocket.side': 'server', 'websocket.direction': 'in' }), 1);
    });

    test('a throwing listener: the very same error reaches the caller, and the span ends with it', async () => {
      const { socket } = await pair();
      const boom = new TypeError('handler failed');
      socket.on('message', () => {
        throw boom;
      });
      let caught: unknown;
      try {
        socket.emit('message', Buffer.from('x'), false);
      } catch (err) {
        caught = err;
      }
      assert.equal(caught, boom);
      const [span] = await waitForSpans('WS RECEIVE /chat');
      assert.equal(span.status.code, SpanStatusCode.ERROR);
      assert.equal(span.status.message, 'handler failed');
      assert.equal(attr(span, 'error.type'), 'TypeError');
      assert.equal(span.events[0]?.name, 'exception');
    });

    test('a send inside a handler is a PRODUCER child of the receive; a send outside any span makes none', async () => {
      const { client, socket } = await pair();
      socket.on('message', (data) => socket.send(`echo ${data}`));
      client.send('ping');
      await once(client, 'message');
      const [send] = await waitForSpans('WS SEND /chat');
      const [receive] = spansNamed('WS RECEIVE /chat');
      assert.equal(send.kind, SpanKind.PRODUCER);
      assert.equal(send.parentSpanContext?.spanId, receive.spanContext().spanId);
      assert.equal(attr(send, 'messaging.message.body.size'), 9);

      resetSpans();
      socket.send('broadcast');
      await once(client, 'message');
      assert.equal(spansNamed('WS SEND /chat').length, 0);
      assert.equal(await metricValue('websocket.messages', { 'websocket.route': '/chat', 'websocket.side': 'server', 'websocket.direction': 'out' }), 2);
    });

    test('an async listener\'s send after an await is still a child of its WS RECEIVE', async () => {
      const { client, socket } = await pair();
      socket.on('message', async (data) => {
        await new Promise((resolve) => setImmediate(resolve));
        socket.send(`later ${data}`);
      });
      client.send('x');
      await once(client, 'message');
      const [send] = await waitForSpans('WS SEND /chat');
      const [receive] = spansNamed('WS RECEIVE /chat');
      assert.equal(send.parentSpanContext?.spanId, receive.spanContext().spanId);
    });

    test('WS_APM_TRACE_ORPHAN_SENDS traces a send with nothing active', async () => {
      await use(ws, { traceOrphanSends: true });
      const { client, socket } = await pair();
      socket.send(Buffer.alloc(3), { binary: true });
      await once(client, 'message');
      const [send] = await waitForSpans('WS SEND /chat');
      assert.equal(send.parentSpanContext, undefined);
      assert.equal(attr(send, 'websocket.message.type'), 'binary');
    });

    test('send on a closed socket gives its callback the same error as without ws-apm', async () => {
      const { client, socket } = await pair();
      socket.close();
      await closed(client);
      await closed(socket);
      const errors: unknown[] = [];
      await new Promise<void>((resolve) =>
        runWithSpan(() =>
          socket.send('late', (err?: Error) => {
            errors.push(err);
            resolve();
          }),
        ),
      );
      assert.ok(errors[0] instanceof Error);
      assert.match((errors[0] as Error).message, /not open|CLOSED/i);
      // ws 7 and 8 call back for a closed socket the same way with or without us.
      await use(ws, { enabled: false });
      const bare: unknown[] = [];
      await new Promise<void>((resolve) => socket.send('late', (err?: Error) => (bare.push(err), resolve())));
      assert.equal((bare[0] as Error).message, (errors[0] as Error).message);
    });

    test('ping/pong records the heartbeat round trip; WS_APM_TRACE_HEARTBEAT adds a span', async () => {
      await use(ws, { traceHeartbeat: true });
      const route = `/hb-${label.replace(' ', '')}`;
      const { socket } = await pair({}, route);
      // The round trip as the app sees it, around ws-apm's own measurement.
      const before = performance.now();
      socket.ping();
      await once(socket, 'pong');
      const outer = performance.now() - before;
      const points = (await collectMetrics()).get('websocket.heartbeat.rtt') ?? [];
      const serverPoints = points.filter((p) => p.attributes['websocket.route'] === route && p.attributes['websocket.side'] === 'server');
      assert.equal(serverPoints.reduce((n, p) => n + (p.count ?? 0), 0), 1);
      const [ping] = await waitForSpans(/^WS PING \/hb/);
      const rtt = attr(ping, 'websocket.heartbeat.rtt_ms') as number;
      assert.ok(rtt > 0 && rtt <= outer, `rtt_ms ${rtt} within the app's own round trip (${outer} ms)`);
      // The histogram holds the same round trip, in seconds.
      assert.ok(Math.abs((serverPoints[0].sum ?? NaN) - rtt / 1000) < 1e-9, `histogram sum ${serverPoints[0].sum} s = ${rtt} ms`);
      assert.equal(ping.name, `WS PING ${route}`);
      assert.equal(attr(ping, 'websocket.side'), 'server');
      assert.equal(ping.links[0].context.spanId, spansNamed(`WS CONNECT ${route}`)[0].spanContext().spanId, 'linked to its handshake');
    });

    test('a close is a WS CLOSE summary with code, reason, initiator and counts; the gauge goes back to 0', async () => {
      const { client, socket } = await pair();
      assert.equal(await metricValue('websocket.server.active_connections', { 'websocket.route': '/chat' }), 1);
      socket.on('message', () => undefined);
      client.send('one');
      client.send('two!');
      await once(socket, 'message');
      client.close(4001, 'bye now');
      await closed(socket);
      const summaries = await waitForSpans('WS CLOSE /chat', 2);
      const serverSide = summaries.find((s) => attr(s, 'websocket.side') === 'server')!;
      assert.equal(attr(serverSide, 'websocket.close.code'), 4001);
      assert.equal(attr(serverSide, 'websocket.close.reason'), 'bye now');
      assert.equal(attr(serverSide, 'websocket.close.initiator'), 'client');
      assert.equal(attr(serverSide, 'websocket.connection.broken'), false);
      assert.equal(attr(serverSide, 'websocket.messages.in'), 2);
      assert.equal(attr(serverSide, 'websocket.bytes.in'), 7);
      assert.equal(serverSide.links[0].context.spanId, spansNamed('WS CONNECT /chat')[0].spanContext().spanId);
      assert.equal(await metricValue('websocket.server.active_connections', { 'websocket.route': '/chat' }), 0);
      const durations = (await collectMetrics()).get('websocket.connection.duration') ?? [];
      assert.ok(durations.some((p) => p.attributes['websocket.close.code_class'] === '4xxx'));
    });

    test('terminate() counts a broken connection and names the server as initiator', async () => {
      const { client, socket } = await pair();
      socket.terminate();
      await closed(client);
      await closed(socket);
      const summaries = await waitForSpans('WS CLOSE /chat', 2);
      const serverSide = summaries.find((s) => attr(s, 'websocket.side') === 'server')!;
      const clientSide = summaries.find((s) => attr(s, 'websocket.side') === 'client')!;
      assert.equal(attr(serverSide, 'websocket.close.initiator'), 'server');
      assert.equal(attr(serverSide, 'websocket.connection.broken'), true);
      assert.equal(attr(clientSide, 'websocket.close.code'), 1006);
      assert.equal(attr(clientSide, 'websocket.close.initiator'), 'network');
      assert.equal(await metricValue('websocket.connections.broken', { 'websocket.route': '/chat', 'websocket.side': 'server' }), 1);
    });

    test('message names come from a JSON field, capped at WS_APM_MAX_MESSAGE_NAMES then "other"', async () => {
      await use(ws, { messageName: 'type', maxMessageNames: 2 });
      const { client, socket } = await pair();
      let n = 0;
      const all = new Promise<void>((resolve) => socket.on('message', () => ++n === 6 && resolve()));
      for (const m of [{ type: 'join' }, { type: 'chat' }, { type: 'leave' }, { type: 12 }, '["x"]', 'not json']) {
        client.send(typeof m === 'string' ? m : JSON.stringify(m));
      }
      await all;
      const names = spansNamed(/^WS RECEIVE/).map((s) => s.name).sort();
      assert.deepEqual(names, ['WS RECEIVE /chat', 'WS RECEIVE /chat', 'WS RECEIVE /chat', 'WS RECEIVE /chat chat', 'WS RECEIVE /chat join', 'WS RECEIVE /chat other']);
      const latency = (await collectMetrics()).get('websocket.message.process.duration') ?? [];
      assert.ok(latency.some((p) => p.attributes['websocket.message.name'] === 'join'));
    });

    test('WS_APM_MESSAGE_CONTEXT: a trace context carried inside a message becomes its parent', async () => {
      await use(ws, { messageContext: 'trace', messageName: 'type' });
      const { client, socket } = await pair();
      let n = 0;
      const both = new Promise<void>((resolve) => socket.on('message', () => ++n === 2 && resolve()));
      client.send(JSON.stringify({ type: 'chat', trace: { traceparent: TRACEPARENT } }));
      client.send(JSON.stringify({ type: 'chat', trace: { traceparent: 'garbage' } }));
      await both;
      const receives = await waitForSpans('WS RECEIVE /chat chat', 2);
      const carried = receives.filter((r) => r.parentSpanContext?.spanId === PARENT_ID);
      assert.equal(carried.length, 1);
      assert.equal(carried[0].spanContext().traceId, TRACE_ID);
      assert.equal(carried[0].links.length, 1, 'still linked to its handshake');
      assert.equal(receives.filter((r) => r.parentSpanContext === undefined).length, 1, 'garbage context: a fresh trace');
    });

    test('WS_APM_MESSAGE_CONTEXT with WS_APM_MESSAGE_PARENT=handshake: the carried context is the parent, the handshake a link', async () => {
      await use(ws, { messageContext: 'trace', messageParent: 'handshake' });
      const { client, socket } = await pair();
      const done = new Promise<void>((resolve) => socket.on('message', () => resolve()));
      client.send(JSON.stringify({ trace: { traceparent: TRACEPARENT } }));
      await done;
      const [receive] = await waitForSpans('WS RECEIVE /chat');
      const [handshake] = spansNamed('WS CONNECT /chat');
      assert.equal(receive.parentSpanContext?.spanId, PARENT_ID);
      assert.equal(receive.links[0]?.context.spanId, handshake.spanContext().spanId);
    });

    test('an array message name path ("0") names ["event", payload] messages', async () => {
      await use(ws, { messageName: '0' });
      const { client, socket } = await pair();
      socket.on('message', () => undefined);
      client.send(JSON.stringify(['typing', { user: 1 }]));
      const [span] = await waitForSpans(/^WS RECEIVE/);
      assert.equal(span.name, 'WS RECEIVE /chat typing');
    });

    test('route templates keep ids out of names; ignored routes make no spans but still count', async () => {
      await use(ws, { routes: '/rooms/:id', ignoreRoutes: '/health' });
      server = await startServer(ws);
      const a = nextConnection(server);
      clients.push(await connect(ws, `${server.url}/rooms/42?x=1`));
      await a;
      await waitForSpans('WS CONNECT /rooms/:id');
      const b = nextConnection(server);
      clients.push(await connect(ws, `${server.url}/health`));
      await b;
      assert.equal(spansNamed(/\/health/).length, 0);
      assert.equal(await metricValue('websocket.server.active_connections', { 'websocket.route': '/health' }), 1);
    });

    test('route cardinality is capped: past WS_APM_MAX_ROUTES distinct paths, new ones are "other"', async () => {
      await use(ws, { maxRoutes: 2 });
      server = await startServer(ws);
      for (const path of ['/a', '/b', '/c', '/d']) {
        const res = await rawUpgrade(server.port, path);
        res.destroy();
      }
      const names = (await waitForSpans(/^WS CONNECT/, 4)).map((s) => s.name).sort();
      assert.deepEqual(names, ['WS CONNECT /a', 'WS CONNECT /b', 'WS CONNECT other', 'WS CONNECT other']);
    });

    test('WS_APM_MESSAGE_SAMPLE_RATE=0 makes no message spans but still counts every message', async () => {
      await use(ws, { messageSampleRate: 0 });
      const { client, socket } = await pair();
      let n = 0;
      const all = new Promise<void>((resolve) => socket.on('message', () => ++n === 3 && resolve()));
      client.send('1');
      client.send('2');
      client.send('3');
      await all;
      assert.equal(spansNamed(/^WS RECEIVE/).length, 0);
      assert.equal(await metricValue('websocket.messages', { 'websocket.side': 'server', 'websocket.direction': 'in' }), 3);
    });

    test('WS_APM_MESSAGE_PARENT=handshake makes messages children of the handshake', async () => {
      await use(ws, { messageParent: 'handshake' });
      const { client, socket } = await pair();
      socket.on('message', () => undefined);
      client.send('x');
      const [receive] = await waitForSpans('WS RECEIVE /chat');
      const [handshake] = spansNamed('WS CONNECT /chat');
      assert.equal(receive.parentSpanContext?.spanId, handshake.spanContext().spanId);
      assert.equal(receive.links.length, 0);
    });

    test('malformed and oversized traceparent headers start a fresh trace, never an error', async () => {
      server = await startServer(ws);
      const bad = [
        'garbage',
        `01-${TRACE_ID}-${PARENT_ID}`,
        `00-${'0'.repeat(32)}-${PARENT_ID}-01`,
        `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
        `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`,
        `ff-${TRACE_ID}-${PARENT_ID}-01`,
        `00-${TRACE_ID}-${PARENT_ID}-01-extra`,
        `00-${TRACE_ID}-${PARENT_ID}-01`.padEnd(12 * 1024, 'x'),
        [TRACEPARENT, TRACEPARENT],
      ];
      for (const value of bad) {
        const res = await rawUpgrade(server.port, '/chat', { traceparent: value });
        assert.equal(res.status, 101);
        res.destroy();
      }
      const connects = await waitForSpans('WS CONNECT /chat', bad.length);
      for (const span of connects) {
        assert.equal(span.parentSpanContext, undefined);
        assert.notEqual(span.spanContext().traceId, TRACE_ID);
      }
      // Past Node's 16 KiB header limit the http parser answers 431 before any upgrade event.
      const huge = await rawUpgrade(server.port, '/chat', { traceparent: TRACEPARENT.padEnd(64 * 1024, 'x') });
      assert.equal(huge.status, 431);
    });

    test('WS_APM_PROPAGATION_QUERY_PARAM continues a trace from the URL, and garbage there is ignored', async () => {
      await use(ws, { propagationQueryParam: 'tp' });
      server = await startServer(ws);
      const good = await rawUpgrade(server.port, `/chat?tp=${TRACEPARENT}`);
      good.destroy();
      const garbage = await rawUpgrade(server.port, '/chat?tp=%E0%A4%A');
      garbage.destroy();
      const connects = await waitForSpans('WS CONNECT /chat', 2);
      assert.equal(connects.filter((s) => s.parentSpanContext?.spanId === PARENT_ID).length, 1);
    });

    test('secrets in URLs are redacted: token query parameters and credentials', async () => {
      server = await startServer(ws);
      const accepted = nextConnection(server);
      const url = `ws://user:pass@127.0.0.1:${server.port}/chat?room=1&token=abc&access_token=def`;
      clients.push(await connect(ws, url));
      await accepted;
      const [serverSpan] = await waitForSpans('WS CONNECT /chat');
      const [clientSpan] = await waitForSpans(/^WS CONNECT 127/);
      assert.equal(attr(serverSpan, 'url.query'), 'room=1&token=REDACTED&access_token=REDACTED');
      const full = attr(clientSpan, 'url.full') as string;
      assert.doesNotMatch(full, /abc|def|pass/);
      assert.match(full, /token=REDACTED/);
      for (const span of spans()) assert.doesNotMatch(JSON.stringify(span.attributes), /abc|def|user:pass/);
    });

    test('binary and 10 MiB frames are sized correctly; no body is captured unless asked', async () => {
      const { client, socket } = await pair({ maxPayload: 20 * 1024 * 1024 });
      const got = new Promise<void>((resolve) => {
        let n = 0;
        socket.on('message', () => ++n === 2 && resolve());
      });
      client.send(Buffer.alloc(10 * 1024 * 1024, 1));
      client.send(new Uint8Array([1, 2, 3]));
      await got;
      const receives = await waitForSpans('WS RECEIVE /chat', 2);
      assert.deepEqual(receives.map((s) => attr(s, 'messaging.message.body.size')).sort(), [10 * 1024 * 1024, 3].sort());
      assert.ok(receives.every((s) => attr(s, 'websocket.message.type') === 'binary'));
      assert.ok(receives.every((s) => attr(s, 'websocket.message.body') === undefined));
    });

    test('WS_APM_CAPTURE_BODY=all captures text truncated at the byte limit and binary as a size', async () => {
      await use(ws, { captureBody: 'all', captureBodyMaxBytes: 8 });
      const { client, socket } = await pair();
      const got = new Promise<void>((resolve) => {
        let n = 0;
        socket.on('message', () => ++n === 2 && resolve());
      });
      client.send('0123456789abcdef');
      client.send(Buffer.from([1, 2, 3, 4]));
      await got;
      const bodies = (await waitForSpans('WS RECEIVE /chat', 2)).map((s) => attr(s, 'websocket.message.body')).sort();
      assert.deepEqual(bodies, ['01234567', '[binary 4 bytes]']);
    });

    test('setUser records enduser.id on the socket\'s later operations', async () => {
      const { client, socket } = await pair();
      setUser(socket, 'alice');
      socket.on('message', () => undefined);
      client.send('hi');
      const [span] = await waitForSpans('WS RECEIVE /chat');
      assert.equal(attr(span, 'enduser.id'), 'alice');
    });

    test('uninstrument() restores ws: the prototypes hold the original methods again', async () => {
      const proto = socketClass(ws).prototype as unknown as Record<string, unknown>;
      const serverProto = (ws.WebSocketServer ?? (ws as any).Server).prototype as unknown as Record<string, unknown>;
      assert.notEqual(proto.emit, EventEmitter.prototype.emit);
      await getInstrumentation()?.uninstrument();
      assert.equal(proto.emit, EventEmitter.prototype.emit);
      assert.equal((require('node:http').request as { __wrapped?: boolean }).__wrapped, undefined);
      assert.equal((proto.send as { __wrapped?: boolean }).__wrapped, undefined);
      assert.equal((serverProto.handleUpgrade as { __wrapped?: boolean }).__wrapped, undefined);
      const { client, socket } = await pair();
      socket.on('message', () => undefined);
      client.send('x');
      await once(socket, 'message');
      assert.equal(spans().length, 0);
    });
  });
}

function runWithSpan<T>(fn: () => T): T {
  const span = trace.getTracer('test').startSpan('outer');
  try {
    return context.with(trace.setSpan(context.active(), span), fn);
  } finally {
    span.end();
  }
}

describe('broker hand-off API', () => {
  test('inject() inside a span and runWithContext() elsewhere continue the same trace', async () => {
    await use(WS_VERSIONS[0][1]());
    const carrier: Record<string, string> = {};
    const outer = trace.getTracer('test').startSpan('publisher');
    context.with(trace.setSpan(context.active(), outer), () => inject(carrier));
    outer.end();
    assert.match(carrier.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const seen = runWithContext(carrier, () => trace.getActiveSpan()?.spanContext());
    assert.equal(seen?.traceId, outer.spanContext().traceId);
    assert.equal(seen?.spanId, outer.spanContext().spanId);
    // A garbage carrier runs the function plainly.
    assert.equal(runWithContext({ traceparent: 'nope' }, () => 42), 42);
  });

  test('a send inside runWithContext() is a WS SEND child of the carried context (broker fan-out)', async () => {
    const ws = WS_VERSIONS[0][1]();
    await use(ws);
    const server = await startServer(ws);
    try {
      const accepted = nextConnection(server);
      const client = await connect(ws, `${server.url}/room`);
      const socket = await accepted;
      resetSpans();
      runWithContext({ traceparent: TRACEPARENT }, () => socket.send('fan-out'));
      await once(client, 'message');
      const [send] = await waitForSpans('WS SEND /room');
      assert.equal(send.spanContext().traceId, TRACE_ID);
      assert.equal(send.parentSpanContext?.spanId, PARENT_ID);
      client.terminate();
    } finally {
      await server.close();
    }
  });

  test('sends from a timer started in the connection callback make no spans (no trace grows for hours)', async () => {
    const ws = WS_VERSIONS[0][1]();
    await use(ws);
    const server = await startServer(ws);
    try {
      server.wss.on('connection', (socket) => {
        setImmediate(() => socket.send('tick'));
      });
      const client = new (socketClass(ws))(`${server.url}/ticker`);
      await once(client, 'message');
      assert.equal(spansNamed('WS SEND /ticker').length, 0);
      assert.equal(spansNamed('WS CONNECT /ticker').length, 1);
      client.terminate();
    } finally {
      await server.close();
    }
  });
});
