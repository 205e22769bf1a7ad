/**
 * Client connects and secrets against the real instrumentations: ws's upgrade request *is* the
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
import { after, afterEach, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import shimmer from 'shimmer';
import { getInstrumentation, instrument } from '../../src/index';
import { Patches } from '../../src/patch/wrap';
import { run } from '../helpers/child';
import { Fixture } from '../helpers/elastic-fixture';
import { agentEnv, type IntakeEvent, startIntake } from '../helpers/elastic-intake';
import { agentHome, FakeCollector } from '../helpers/newrelic-collector';
import { runFixture, startFixture } from '../helpers/newrelic-fixture';
import { recordingAdapter } from '../helpers/reliability-adapter';
import { refusingPort } from '../helpers/reliability-net';
import { captureStderr } from '../helpers/stderr';
import { socketClass, startServer, WS_VERSIONS } from '../helpers/ws';
import { CLIENT, OtlpReceiver, otlpEnv, SERVER, type ReceivedSpan } from '../helpers/otlp-receiver';

type AnyFn = (...args: any[]) => any;

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

  // Both orders: an SDK started after ws-apm (in the app's own code, or a later -r) enables
  // instrumentation-http after ws-apm wrapped http.request, and OpenTelemetry's instrumentations
  // unwrap any shimmer wrapper they find before wrapping. The SDK on its own copy of the API
  // registers its own proxy provider, which a tracer taken before from ws-apm's copy never sees.
  const AUTO = '@opentelemetry/auto-instrumentations-node/register';
  const ORDERS: Record<string, (dir: string) => string[]> = {
    'SDK, then ws-apm': (dir) => ['-r', `${dir}/otel-tracing.js`, '-r', 'ws-apm/register'],
    'ws-apm, then SDK': (dir) => ['-r', 'ws-apm/register', '-r', `${dir}/otel-tracing.js`],
    'ws-apm, then SDK on its own copy of the API': (dir) => ['-r', 'ws-apm/register', '-r', `${dir}/otel-tracing-own-api.js`],
    // A common setup: everything auto-instrumentations-node registers (0.81), then ws-apm.
    'auto-instrumentations-node, then ws-apm': () => ['--require', AUTO, '-r', 'ws-apm/register'],
    'ws-apm, then auto-instrumentations-node': () => ['-r', 'ws-apm/register', '--require', AUTO],
  };

  for (const [order, preload] of Object.entries(ORDERS)) {
    test(`${order}: one client span per connect (ours, redacted), the server handshake its child, no secret in any OTLP request; http from the socket's listeners and a reconnect still traced`, async (t) => {
      const tag = order.replace(/\W+/g, '-');
      const serverName = `secrets-otel-server-${tag}`;
      const clientName = `secrets-otel-client-${tag}`;
      const env = (service: string, extra: Record<string, string> = {}): Record<string, string> =>
        otlpEnv(receiver.url, service, {
          OTEL_METRICS_EXPORTER: 'otlp', OTEL_METRIC_EXPORT_INTERVAL: '60000', OTEL_NODE_RESOURCE_DETECTORS: 'env,host,os,process', ...extra,
        });
      const server = run([...preload('../secrets'), 'server.js'], env(serverName, { FIXTURE_ONCE: '1' }));
      const port = Number((await server.line(/^PORT (\d+)/))[1]);
      const refusing = await refusingPort();
      t.after(() => refusing.release());
      const refusedPort = refusing.port;
      const client = run(
        [...preload('.'), 'otel-client.js'],
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


describe('Elastic: the real agent with its http instrumentation, and ws-apm from the command line', () => {
  const running = new Set<Fixture>();
  let target: Target;

  before(async () => {
    target = await startTarget();
  });

  after(async () => {
    await Promise.all([...running].map((f) => f.kill()));
    await target.close();
  });

  function fixture(file: string, env: NodeJS.ProcessEnv, nodeArgs: string[]): Fixture {
    const f = new Fixture(file, env, nodeArgs);
    running.add(f);
    return f;
  }

  for (const [order, inTransaction] of [
    ['ws-apm starts the agent', false], ['ws-apm starts the agent', true], ['the agent first', false], ['the agent first', true],
  ] as const) {
    test(`${order}, client ${inTransaction ? 'inside an app transaction' : 'outside any transaction'}: one exit span per connect and no http span for it, the server handshake its child, client sends are exit spans, no secret in any intake event`, async (t) => {
      const preload = order === 'the agent first' ? ['-r', 'elastic-apm-node/start', '-r', './dist/register.js'] : ['-r', './dist/register.js'];
      const serverIntake = await startIntake();
      const clientIntake = await startIntake();
      try {
        const server = fixture('server.js', agentEnv(serverIntake.url, { WS_APM_BACKEND: 'elastic', ELASTIC_APM_SERVICE_NAME: 'secrets-server' }), preload);
        const { port } = await server.next('listening');
        const refusing = await refusingPort();
        t.after(() => refusing.release());
        const refusedPort = refusing.port;
        const client = fixture('../secrets/elastic-client.js', agentEnv(clientIntake.url, {
          WS_APM_BACKEND: 'elastic',
          ELASTIC_APM_SERVICE_NAME: 'secrets-client',
          WS_URL: `ws://127.0.0.1:${port}/chat?${QUERY}`,
          WS_REFUSED_URL: `ws://127.0.0.1:${refusedPort}/down?${QUERY}`,
          HTTP_TARGET: target.url,
          IN_TRANSACTION: inTransaction ? '1' : '0',
        }), preload);
        assert.deepEqual((await client.next('refused')).code, 'ECONNREFUSED');
        const connection = await server.next('connection');
        assert.deepEqual((await client.next('done')).replies, ['hello', 'bye']);
        assert.equal(await client.exit(), 0, client.stderr);
        await server.next('closed');
        server.send('exit');
        assert.equal(await server.exit(), 0, server.stderr);

        // Client side: one exit span per connect (the refused one and the real one), no http span for either.
        const connects = await clientIntake.waitFor('both client connects', () => {
          const found = clientIntake.spans().filter((s) => s.subtype === 'websocket' && s.action === 'connect');
          return found.length === 2 ? found : undefined;
        });
        const byPort = (p: number): IntakeEvent[] => connects.filter((s) => s.context?.service?.target?.name === `127.0.0.1:${p}`);
        assert.equal(byPort(refusedPort).length, 1, clientIntake.summary());
        assert.equal(byPort(port).length, 1, clientIntake.summary());
        const [connect] = byPort(port);
        assert.equal(connect.name, `WS CONNECT 127.0.0.1:${port}/chat`);
        assert.equal(connect.type, 'external');
        assert.equal(byPort(refusedPort)[0].outcome, 'failure');
        const upgradeHttp = clientIntake.spans().filter((s) => s.subtype === 'http' && /\/(chat|down)\b/.test(String(s.context?.http?.url ?? '')));
        assert.deepEqual(upgradeHttp.map((s) => s.name), [], 'no http span for an upgrade request');
        assert.equal(connection.traceparent, `00-${connect.trace_id}-${connect.id}-01`, 'the upgrade request carries our exit span');
        const serverConnect = await serverIntake.waitFor('server WS CONNECT', () => serverIntake.transactions('WS CONNECT /chat')[0]);
        assert.equal(serverConnect.parent_id, connect.id);
        assert.equal(serverConnect.trace_id, connect.trace_id);

        if (inTransaction) {
          const [job] = await clientIntake.waitFor('the app transaction', () => clientIntake.transactions('client job'));
          for (const span of connects) assert.equal(span.transaction_id, job.id, 'each connect is an exit span of the app transaction');
          // Every span the agent started in it was reported: no http span for an upgrade request
          // hidden in there, started and never ended (as when the agent's http wrapper sat above ws-apm's).
          const reported = clientIntake.spans().filter((s) => s.transaction_id === job.id);
          assert.equal(job.span_count.started, reported.length, JSON.stringify(reported.map((s) => s.name)));
        }
        // The socket's listeners never run under the connect's exit span (where the agent drops
        // every span): the agent leaves a span or transaction when it ends, and ws-apm ends the
        // connect inside the socket's own callback, before ws emits `open` or `error`. So they run
        // in the app's transaction, or (outside one, as without ws-apm) in none: only the
        // message listener has a transaction of its own then.
        for (const label of inTransaction ? ['from-error', 'from-open', 'from-message', 'from-pong'] : ['from-message']) {
          const span = await clientIntake.waitFor(`http span ${label}`, () => clientIntake.spans().find((s) => s.subtype === 'http' && String(s.context?.http?.url).endsWith(`/${label}`)));
          assert.equal(spanIdOf(target.seen.get(`/${label}`)), span.id, `${label} propagated its own span`);
        }

        // Part 5: the client's send from its message listener is an exit span to the server; the server's are not.
        const receives = await clientIntake.waitFor('client WS RECEIVE', () => {
          const found = clientIntake.transactions('WS RECEIVE /chat');
          return found.length === 2 ? found : undefined;
        });
        const fromListener = await clientIntake.waitFor('the send from the message listener', () =>
          clientIntake.spans('WS SEND /chat').find((s) => receives.some((r) => r.id === s.transaction_id)));
        assert.equal(fromListener.parent_id, fromListener.transaction_id);
        // Inside the app transaction, the send from `open` is a span too; outside, that send has no operation to join.
        assert.equal(clientIntake.spans('WS SEND /chat').length, inTransaction ? 2 : 1, clientIntake.summary());
        for (const send of clientIntake.spans('WS SEND /chat')) {
          assert.deepEqual(send.context?.service?.target, { type: 'websocket', name: `127.0.0.1:${port}` }, 'a client send is an exit span');
          assert.equal(send.type, 'messaging');
        }
        const serverSends = await serverIntake.waitFor('two server WS SEND', () => {
          const sends = serverIntake.spans('WS SEND /chat');
          return sends.length === 2 ? sends : undefined;
        });
        for (const send of serverSends) assert.equal(send.context?.service?.target, undefined, 'a server send is not an exit span');

        for (const intake of [clientIntake, serverIntake]) {
          assert.deepEqual(intake.invalid, []);
          const all = JSON.stringify(intake.events);
          assert.ok(!all.includes(SECRET), `an intake event carries the secret: ${all.slice(all.indexOf(SECRET) - 400, all.indexOf(SECRET) + 50)}`);
          assert.ok(intake.of('metadata').length > 0 && intake.of('metricset').length > 0);
        }
      } finally {
        await serverIntake.close();
        await clientIntake.close();
      }
    });
  }
});

describe('New Relic: the real agent with its http instrumentation, and ws-apm from the command line', { timeout: 120_000 }, () => {
  let target: Target;

  before(async () => {
    target = await startTarget();
  });

  after(async () => {
    await target.close();
  });

  for (const inTransaction of [false, true]) {
    test(`client ${inTransaction ? 'inside an app transaction' : 'outside any transaction'}: one client segment per connect (ours), no External segment for the upgrade, the server handshake its child, no secret in any collector payload`, async (t) => {
      const c = await FakeCollector.start();
      const serverHome = agentHome(c.port, c.certPem, 'secrets-nr-server');
      const clientHome = agentHome(c.port, c.certPem, 'secrets-nr-client');
      // Transaction traces for every transaction: the secret must not hide in one either.
      const traces = { NEW_RELIC_TRACER_THRESHOLD: '0' };
      const server = startFixture('app.js', { ...serverHome.env, ...traces }, { execArgv: ['-r', 'ws-apm/register'] });
      try {
        const { port } = (await server.report((r) => 'port' in r, 'its port')) as { port: number };
        await c.waitFor(() => c.calls.includes('agent_settings'), 'the server agent to connect');
        const refusing = await refusingPort();
        t.after(() => refusing.release());
        const refusedPort = refusing.port;
        const client = await runFixture('../secrets/newrelic-client.js', {
          ...clientHome.env,
          ...traces,
          WS_URL: `ws://127.0.0.1:${port}/chat?${QUERY}`,
          WS_REFUSED_URL: `ws://127.0.0.1:${refusedPort}/down?${QUERY}`,
          HTTP_TARGET: target.url,
          IN_TRANSACTION: inTransaction ? '1' : '0',
        }, { execArgv: ['-r', 'ws-apm/register'] });
        assert.equal(client.code, 0, client.stderr);
        assert.deepEqual(client.reports, [{ code: 1000, replies: ['hello', 'bye'] }]);
        await server.report((r) => 'closed' in r, 'the close');
        server.kill('SIGTERM');
        await server.done;
        await c.waitFor(() => c.calls.filter((m) => m === 'shutdown').length >= 2, 'both agents to shut down');
        assert.deepEqual(c.problems, []);

        const clientSpans = c.spans.filter((s) => s.app === 'secrets-nr-client');
        const names = clientSpans.map((s) => String(s.intrinsics.name));
        const summary = JSON.stringify(names);
        // One client span per connect, ours; no External segment for either upgrade request.
        for (const p of [port, refusedPort]) {
          assert.equal(names.filter((n) => new RegExp(`WS CONNECT 127\\.0\\.0\\.1:${p}/(chat|down)$`).test(n)).length, 1, summary);
          assert.deepEqual(names.filter((n) => n.startsWith(`External/127.0.0.1:${p}/`)), [], summary);
        }
        const connect = clientSpans.find((s) => new RegExp(`WS CONNECT 127\\.0\\.0\\.1:${port}/chat$`).test(String(s.intrinsics.name)))!;
        const serverConnect = c.transactions.find((t) => t.app === 'secrets-nr-server' && t.intrinsics.name === 'WebTransaction/Custom/WS CONNECT /chat');
        assert.ok(serverConnect, 'the server handshake');
        assert.equal(serverConnect.intrinsics.traceId, connect.intrinsics.traceId);
        assert.equal(serverConnect.intrinsics.parentSpanId, connect.intrinsics.guid, 'the server handshake is the child of ws-apm\'s client segment');

        // The socket's listeners keep a context the agent records in (inside the app transaction;
        // outside one, as without ws-apm, only the message listener has a transaction).
        for (const label of inTransaction ? ['from-error', 'from-open', 'from-message', 'from-pong'] : ['from-message']) {
          // `Truncated/` when the call outlived its transaction (the message one, ended when its listener returned).
          assert.ok(names.some((n) => n.replace(/^Truncated\//, '') === `External/${new URL(target.url).host}/${label}`), `${label} recorded: ${summary}`);
        }

        assert.ok(['span_event_data', 'analytic_event_data', 'metric_data', 'custom_event_data', 'error_event_data', 'transaction_sample_data']
          .every((m) => c.bodies.some((b) => b.method === m)), `every kind of payload was sent: ${c.calls.join(',')}`);
        const traceTrees = c.bodies.filter((b) => b.method === 'transaction_sample_data').map((b) => decodedTraces(b.text)).join('\n');
        assert.match(traceTrees, /WS (CONNECT|RECEIVE|CLOSE)/, 'transaction traces decoded');
        for (const body of c.bodies) {
          const text = body.method === 'transaction_sample_data' ? `${body.text}\n${decodedTraces(body.text)}` : body.text;
          assert.ok(!text.includes(SECRET), `${body.method} carries the secret: ${text.slice(text.indexOf(SECRET) - 300, text.indexOf(SECRET) + 50)}`);
        }
      } finally {
        server.kill();
        serverHome.cleanup();
        clientHome.cleanup();
        await c.close();
      }
    });
  }
});

/** The trace trees of a `transaction_sample_data` payload: base64 of deflated JSON inside the JSON. */
function decodedTraces(text: string): string {
  const out: string[] = [];
  const body = JSON.parse(text) as [unknown, unknown[][]];
  for (const trace of body[1] ?? []) {
    for (const field of trace) {
      if (typeof field !== 'string' || !/^[A-Za-z0-9+/=]{16,}$/.test(field)) continue;
      try {
        out.push(zlib.inflateSync(Buffer.from(field, 'base64')).toString('utf8'));
      } catch {
        // not an encoded tree
      }
    }
  }
  return out.join('\n');
}

describe('ws-apm\'s http wrappers stay the outermost ones', () => {
  /** A module-like object, a recording wrapper factory, and what each call went through. */
  function setup(): { mod: { request: (...a: unknown[]) => string }; calls: string[]; layer: (label: string) => (original: AnyFn) => AnyFn } {
    const calls: string[] = [];
    const mod = { request: (..._a: unknown[]): string => { calls.push('original'); return 'req'; } };
    const layer = (label: string) => (original: AnyFn): AnyFn => function (this: unknown, ...a: unknown[]) {
      calls.push(label);
      return original.apply(this, a);
    };
    return { mod, calls, layer };
  }

  test('an instrumentation that unwraps shimmer wrappers before wrapping (OpenTelemetry\'s): wrapped again on top', () => {
    const { mod, calls, layer } = setup();
    const patches = new Patches();
    patches.wrap(mod, 'request', layer('ws-apm'), { onTop: true });
    // What InstrumentationBase._wrap does: unwrap whatever shimmer wrapper is there, then wrap.
    shimmer.unwrap(mod as unknown as Record<string, AnyFn>, 'request');
    shimmer.wrap(mod as unknown as Record<string, AnyFn>, 'request', layer('otel'));
    assert.equal(patches.isOnTop(mod, 'request'), false);
    patches.keepOnTop();
    assert.equal(patches.isOnTop(mod, 'request'), true);
    assert.equal(mod.request(1), 'req');
    assert.deepEqual(calls, ['ws-apm', 'otel', 'original']);
    patches.unwrapAll();
    calls.length = 0;
    mod.request();
    assert.deepEqual(calls, ['otel', 'original'], 'uninstrumented: the other instrumentation keeps its wrapper');
  });

  test('an instrumentation that wraps on top (the agents\'): wrapped again on top, the copy below passes calls through', () => {
    const { mod, calls, layer } = setup();
    const patches = new Patches();
    patches.wrap(mod, 'request', layer('ws-apm'), { onTop: true });
    shimmer.wrap(mod as unknown as Record<string, AnyFn>, 'request', layer('agent'));
    patches.keepOnTop();
    patches.keepOnTop(); // idempotent
    mod.request();
    assert.deepEqual(calls, ['ws-apm', 'agent', 'original'], 'ws-apm acts once, first');
    patches.unwrapAll();
    calls.length = 0;
    mod.request();
    assert.deepEqual(calls, ['agent', 'original']);
  });

  test('a tool that also insists on being outermost: ws-apm stops wrapping again after a few rounds, and still acts once', () => {
    const { mod, calls, layer } = setup();
    const patches = new Patches();
    patches.wrap(mod, 'request', layer('ws-apm'), { onTop: true });
    const stderr = captureStderr();
    try {
      for (let i = 0; i < 50; i++) {
        shimmer.wrap(mod as unknown as Record<string, AnyFn>, 'request', layer(`other${i}`));
        patches.keepOnTop();
      }
    } finally {
      stderr.restore();
    }
    let depth = 0;
    for (let fn: AnyFn | undefined = mod.request; fn !== undefined; fn = (fn as { __original?: AnyFn }).__original) depth++;
    assert.ok(depth <= 50 + 9 + 1, `the other tool's 50 wrappers, at most 9 of ws-apm's, the original: ${depth}`);
    mod.request();
    assert.equal(calls.filter((c) => c === 'ws-apm').length, 1, 'ws-apm acts once');
    assert.match(stderr.text(), /keeps being wrapped over/);
    patches.unwrapAll();
  });
});

describe('an adapter whose inject throws during a client connect', () => {
  afterEach(async () => {
    await getInstrumentation()?.uninstrument();
  });

  for (const [label, load] of WS_VERSIONS) {
    test(`${label}: the client WS CONNECT still ends, and the client socket is tracked (sends, receives, close summary)`, async () => {
      const ws = load();
      const adapter = recordingAdapter();
      // A name per case: the logger reports each fault key once a minute, across tests too.
      (adapter as { name: string }).name = `inject-throws-${label.replace(' ', '')}`;
      adapter.inject = () => {
        throw new Error('inject exploded');
      };
      const stderr = captureStderr();
      let upgradeHeaders: http.IncomingHttpHeaders | undefined;
      try {
        instrument({ adapter, ws, flushOnExit: false });
        const server = await startServer(ws);
        server.wss.on('connection', (socket, req: http.IncomingMessage) => {
          upgradeHeaders = req.headers;
          socket.on('message', (data) => socket.send(`echo ${data}`));
          socket.send('welcome');
        });
        const client = new (socketClass(ws))(`${server.url}/chat?${QUERY}`);
        const replies: string[] = [];
        await new Promise<void>((resolve, reject) => {
          client.on('error', reject);
          client.on('message', (data) => {
            replies.push(String(data));
            // A send from the client's message listener: inside its WS RECEIVE, so a WS SEND span.
            if (replies.length === 1) client.send('a');
            else client.close(1000, 'bye');
          });
          client.on('close', () => resolve());
        });
        await server.close();
        assert.deepEqual(replies, ['welcome', 'echo a']);
      } finally {
        stderr.restore();
      }
      assert.equal(stderr.text().split('\n').filter((l) => l.includes('inject exploded')).length, 1, stderr.text());
      assert.equal(upgradeHeaders?.traceparent, undefined, 'nothing injected');

      const connect = adapter.ops.find((o) => o.role === 'client-connect');
      assert.ok(connect, adapter.dump());
      assert.match(connect.name, /^WS CONNECT 127\.0\.0\.1:\d+\/chat$/);
      assert.equal(connect.outcome?.attributes?.['http.response.status_code'], 101, 'the client WS CONNECT ended at the upgrade');
      assert.equal(adapter.open(), 0, 'every operation ended');

      // The client socket is tracked: its receives and its send are operations, its counters are the client's.
      // Sizes tell the sides apart: the client receives "welcome" (7) and "echo a" (6), sends "a" (1).
      const clientReceives = adapter.ops.filter((o) => o.role === 'receive' && o.attributes['messaging.message.body.size'] !== 1);
      assert.deepEqual(clientReceives.map((o) => o.attributes['messaging.message.body.size']), [7, 6], adapter.dump());
      const send = adapter.ops.find((o) => o.role === 'send' && o.attributes['messaging.message.body.size'] === 1);
      assert.ok(send, 'the client WS SEND from its message listener');
      assert.equal(adapter.counter('websocket.messages', { 'websocket.side': 'client', 'websocket.direction': 'in' }), 2);
      assert.equal(adapter.counter('websocket.messages', { 'websocket.side': 'client', 'websocket.direction': 'out' }), 1);
      const close = adapter.ops.find((o) => o.role === 'close' && o.attributes['websocket.side'] === 'client');
      assert.ok(close, `the client close summary: ${adapter.dump()}`);
      assert.deepEqual(
        [close.attributes['websocket.close.code'], close.attributes['websocket.close.initiator'], close.attributes['websocket.messages.in'], close.attributes['websocket.messages.out']],
        [1000, 'client', 2, 1],
      );
      assert.ok(!adapter.dump().includes(SECRET));
    });
  }
});
