/**
 * The production example (examples/chat) end to end: real server and client processes started
 * with `-r ws-apm/register`, exporting OTLP/HTTP JSON to a local receiver. Covers the cross-instance
 * trace through the broker (in-process broker, then Redis), JWT rejection, heartbeat termination,
 * reconnection after a server restart, and the periodic refresh. Plus static checks of
 * docker-compose.yml, the collector config and the dashboards (there is no Docker engine in CI).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import YAML from 'yaml';
import * as semconv from '../src/semconv';
import { metricName, NR_CONNECTION_EVENT, NR_TRANSACTION_GROUP } from '../src/adapters/newrelic';
import { run, type Child } from './helpers/child';
import { CLIENT, CONSUMER, OtlpReceiver, otlpEnv, PRODUCER, type ReceivedSpan, SERVER } from './helpers/otlp-receiver';
import { redisServerMissing, startRedis, type RedisServer } from './helpers/example-redis';
import { requireOrSkip } from './helpers/requirements';
import { writeSelfSignedCert } from './helpers/example-tls';

const ROOT = path.resolve(__dirname, '..');
const SERVER_JS = path.join(ROOT, 'examples', 'chat', 'server.js');
const CLIENT_JS = path.join(ROOT, 'examples', 'chat', 'client.js');
const SECRET = 'example-test-secret-0123456789abcdef';
const ROUTE = '/rooms/:room';


let receiver: OtlpReceiver;
const children: Child[] = [];

function otelEnv(service: string, extra: Record<string, string> = {}): Record<string, string> {
  return otlpEnv(receiver.url, service, {
    OTEL_METRIC_EXPORT_INTERVAL: '300',
    OTEL_METRIC_EXPORT_TIMEOUT: '250',
    OTEL_BSP_SCHEDULE_DELAY: '100',
    WS_APM_ROUTES: ROUTE,
    WS_APM_MESSAGE_NAME: 'type',
    WS_APM_MESSAGE_PARENT: 'handshake',
    WS_APM_MESSAGE_CONTEXT: 'trace',
    ...extra,
  });
}

function start(args: string[], env: Record<string, string>): Child {
  const child = run(['-r', 'ws-apm/register', ...args], env, 'example');
  children.push(child);
  return child;
}

function startServer(service: string, env: Record<string, string>): Child {
  return start([SERVER_JS], otelEnv(service, { JWT_SECRET: SECRET, HOST: '127.0.0.1', HEARTBEAT_MS: '300', ...env }));
}

function startClient(service: string, env: Record<string, string>): Child {
  return start([CLIENT_JS], otelEnv(service, { BACKOFF_BASE_MS: '100', BACKOFF_MAX_MS: '800', ...env }));
}

async function stop(child: Child): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGTERM');
  return child.exited();
}

/** Resolve when `check` returns a value (re-checked on every OTLP batch), else fail after `ms`. */
function eventually<T>(what: string, check: () => T | undefined | false, ms = 15000): Promise<T> {
  return receiver.waitFor(what, check, ms);
}

function byId(spans: ReceivedSpan[], id: string): ReceivedSpan | undefined {
  return spans.find((s) => s.spanId === id);
}

/** The delivery of `sender`'s chat to `recipient` as one trace: client → A → broker → B. */
function crossInstanceChain(clientService: string, serverA: string, serverB: string, recipient: string) {
  const all = receiver.spans;
  for (const send of receiver.spansOf(serverB, `WS SEND ${ROUTE}`)) {
    if (send.attributes['enduser.id'] !== recipient) continue;
    const receive = byId(all, send.parentSpanId);
    if (!receive || receive.service !== serverA || receive.name !== `WS RECEIVE ${ROUTE} chat`) continue;
    const serverConnect = byId(all, receive.parentSpanId);
    if (!serverConnect || serverConnect.service !== serverA) continue;
    const clientConnect = byId(all, serverConnect.parentSpanId);
    if (!clientConnect || clientConnect.service !== clientService) continue;
    return { clientConnect, serverConnect, receive, send };
  }
  return undefined;
}

function points(service: string, metric: string, match: Record<string, unknown> = {}) {
  return receiver.points.filter(
    (p) => p.service === service && p.name === metric && Object.entries(match).every(([k, v]) => p.attributes[k] === v),
  );
}

async function token(port: number, user: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/token?user=${user}`);
  assert.equal(res.status, 200);
  return ((await res.json()) as { token: string }).token;
}

/** Open a WebSocket and resolve with the HTTP status of a refused handshake (or 101). */
function handshakeStatus(url: string, options: WebSocket.ClientOptions = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.once('unexpected-response', (req, res) => {
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    ws.once('open', () => {
      resolve(101);
      ws.close();
    });
    ws.once('error', (err) => {
      if (!/aborted|socket hang up/.test(err.message)) reject(err);
    });
  });
}

before(async () => {
  receiver = await new OtlpReceiver().start();
});

after(async () => {
  await Promise.all(children.map(stop));
  await receiver.stop();
});

describe('examples/chat with the in-process broker (two instances in one process)', { timeout: 90_000 }, () => {
  let server: Child;
  let alice: Child;
  let bob: Child;
  let port1 = 0;
  let port2 = 0;

  before(async () => {
    server = startServer('chat-mem', { PORTS: '0,0', INSTANCE: 'mem' });
    port1 = Number((await server.line(/^LISTENING mem-1 (\d+) ws$/))[1]);
    port2 = Number((await server.line(/^LISTENING mem-2 (\d+) ws$/))[1]);
    await server.line(/^READY memory$/);
    alice = startClient('chat-client-alice', {
      CHAT_USER: 'alice', SERVER_URLS: `ws://127.0.0.1:${port1}`, SEND_EVERY_MS: '200', REFRESH_MS: '1500',
    });
    bob = startClient('chat-client-bob', {
      CHAT_USER: 'bob', SERVER_URLS: `ws://127.0.0.1:${port2}`, SEND_EVERY_MS: '0',
    });
  });

  after(async () => {
    await Promise.all([alice, bob, server].filter(Boolean).map(stop));
  });

  test('a chat message is one trace: client → instance 1 → broker → instance 2 → client', async () => {
    await bob.line(/^GOT bob from=alice origin=mem-1 via=mem-2 /);
    const chain = await eventually('the cross-instance chain', () =>
      crossInstanceChain('chat-client-alice', 'chat-mem', 'chat-mem', 'bob'));
    const { clientConnect, serverConnect, receive, send } = chain;
    assert.equal(clientConnect.kind, CLIENT);
    assert.equal(serverConnect.kind, SERVER);
    assert.equal(receive.kind, CONSUMER);
    assert.equal(send.kind, PRODUCER);
    for (const s of [serverConnect, receive, send]) assert.equal(s.traceId, clientConnect.traceId);
    assert.equal(serverConnect.attributes['http.response.status_code'], 101);
    assert.equal(receive.attributes['enduser.id'], 'alice');
    assert.equal(receive.attributes['websocket.message.name'], 'chat');
    // The token went in a header: nothing secret in any recorded attribute.
    assert.doesNotMatch(JSON.stringify(receiver.spans), /eyJ[A-Za-z0-9_-]{10,}/);
    // The last hop: bob's client continues the context the message carries (WS_APM_MESSAGE_CONTEXT).
    const bobReceive = await eventually('bob\'s client-side receive in the same trace', () =>
      receiver.spansOf('chat-client-bob', `WS RECEIVE ${ROUTE} chat`).find((s) => s.traceId === clientConnect.traceId));
    assert.equal(bobReceive.kind, CONSUMER);
    assert.equal(bobReceive.parentSpanId, receive.spanId);
  });

  test('a bad or missing JWT is refused with 401 before the upgrade and recorded as a rejected handshake', async () => {
    const url = `ws://127.0.0.1:${port1}/rooms/lobby`;
    assert.equal(await handshakeStatus(url), 401);
    assert.equal(await handshakeStatus(`${url}?token=not.a.jwt`), 401);
    assert.equal(await handshakeStatus(url, { headers: { authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl' } }), 401);
    // A valid token in the browser's way (subprotocol) is accepted and answered with 'chat'.
    const valid = await token(port1, 'browser');
    const browser = new WebSocket(url, ['chat', `access_token.${valid}`]);
    await once(browser, 'open');
    assert.equal(browser.protocol, 'chat');
    browser.close();
    await once(browser, 'close');

    const rejected = await eventually('three rejected WS CONNECT spans', () => {
      const spans = receiver.spansOf('chat-mem', `WS CONNECT ${ROUTE}`).filter((s) => s.attributes['http.response.status_code'] === 401);
      return spans.length >= 3 && spans;
    });
    for (const s of rejected) assert.equal(s.kind, SERVER);
    assert.ok(rejected.every((s) => !String(s.attributes['url.query'] ?? '').includes('not.a.jwt')), 'token redacted from url.query');
    await eventually('websocket.server.connections{outcome=rejected} >= 3', () =>
      (receiver.lastPoint('chat-mem', 'websocket.server.connections', { 'websocket.connection.outcome': 'rejected', 'websocket.route': ROUTE }) ?? 0) >= 3);
  });

  test('a client that stops answering pings is terminated by the heartbeat and counted as broken', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port2}/rooms/lobby`, {
      headers: { authorization: `Bearer ${await token(port2, 'mallory')}` },
      autoPong: false,
    });
    const [code] = (await once(ws, 'close')) as [number];
    assert.equal(code, 1006, 'terminated without a close handshake');
    await server.line(/^TERMINATED mem-2 mallory$/);
    await eventually('websocket.connections.broken{side=server} >= 1', () =>
      (receiver.lastPoint('chat-mem', 'websocket.connections.broken', { 'websocket.side': 'server', 'websocket.route': ROUTE }) ?? 0) >= 1);
    const close = await eventually('mallory\'s WS CLOSE', () =>
      receiver.spansOf('chat-mem', `WS CLOSE ${ROUTE}`).find((s) => s.attributes['enduser.id'] === 'mallory'));
    assert.equal(close.attributes['websocket.connection.broken'], true);
    // Healthy clients answered the same pings: round trips were measured.
    assert.ok(points('chat-mem', 'websocket.heartbeat.rtt', { 'websocket.side': 'server' }).some((p) => p.value > 0), 'heartbeat RTT recorded');
  });

  test('the client refreshes its connection every REFRESH_MS (new token, make-before-break)', async () => {
    await alice.line(/^REFRESHED alice instance=mem-1$/);
    await alice.line(/^OPEN alice instance=mem-1 connection=2$/);
    const refreshClose = await eventually('the refreshed connection\'s WS CLOSE (1000 refresh)', () =>
      receiver.spansOf('chat-mem', `WS CLOSE ${ROUTE}`).find((s) =>
        s.attributes['enduser.id'] === 'alice' && s.attributes['websocket.close.code'] === 1000 && s.attributes['websocket.close.reason'] === 'refresh'));
    assert.equal(refreshClose.attributes['websocket.close.initiator'], 'client');
    assert.doesNotMatch(alice.stdout(), /^CLOSED alice/m, 'a refresh is not a disconnection');
  });

  test('SIGTERM closes clients with 1012; they reconnect with backoff once the server is back', async () => {
    const before = (alice.stdout().match(/^OPEN alice/gm) ?? []).length;
    server.proc.kill('SIGTERM');
    await alice.line(/^CLOSED alice 1012$/);
    await bob.line(/^CLOSED bob 1012$/);
    assert.deepEqual(await server.exited(), { code: 0, signal: null }, server.stderr());
    await alice.line(/^RECONNECT alice attempt=1 in=\d+ms \(closed 1012\)$/);
    const restartClose = await eventually('WS CLOSE 1012 by the server', () =>
      receiver.spansOf('chat-mem', `WS CLOSE ${ROUTE}`).find((s) =>
        s.attributes['websocket.close.code'] === 1012 && s.attributes['websocket.close.initiator'] === 'server'));
    assert.ok(restartClose);

    server = startServer('chat-mem', { PORTS: `${port1},${port2}`, INSTANCE: 'mem' });
    await server.line(/^READY memory$/);
    await bob.line(/^OPEN bob instance=mem-2 connection=2$/);
    await eventually('alice reconnected', () => (alice.stdout().match(/^OPEN alice/gm) ?? []).length > before);
    // And the room works again across instances.
    const seen = (bob.stdout().match(/^GOT bob /gm) ?? []).length;
    await eventually('a new message delivered after the restart', () => (bob.stdout().match(/^GOT bob /gm) ?? []).length > seen, 10000);
    assert.match(alice.stdout(), /^RECONNECT alice attempt=\d+ in=\d+ms/m);
  });
});

describe('examples/chat with Redis (two server processes)', { timeout: 60_000 }, () => {
  let redis: RedisServer | undefined;

  after(async () => {
    await redis?.stop();
  });

  test('client → instance A → Redis → instance B → client is one trace', async (t) => {
    if (requireOrSkip(t, redisServerMissing())) return;
    redis = await startRedis();
    const a = startServer('chat-a', { PORTS: '0', INSTANCE: 'a', REDIS_URL: redis.url });
    const b = startServer('chat-b', { PORTS: '0', INSTANCE: 'b', REDIS_URL: redis.url });
    const portA = (await a.line(/^LISTENING a (\d+) ws$/))[1];
    const portB = (await b.line(/^LISTENING b (\d+) ws$/))[1];
    await a.line(/^READY redis$/);
    await b.line(/^READY redis$/);
    const carol = startClient('redis-client-carol', { CHAT_USER: 'carol', SERVER_URLS: `ws://127.0.0.1:${portA}`, SEND_EVERY_MS: '200' });
    const dave = startClient('redis-client-dave', { CHAT_USER: 'dave', SERVER_URLS: `ws://127.0.0.1:${portB}`, SEND_EVERY_MS: '0' });
    try {
      await dave.line(/^GOT dave from=carol origin=a via=b /);
      const { clientConnect, serverConnect, receive, send } = await eventually('the chain through Redis', () =>
        crossInstanceChain('redis-client-carol', 'chat-a', 'chat-b', 'dave'));
      for (const s of [serverConnect, receive, send]) assert.equal(s.traceId, clientConnect.traceId);
      assert.equal(send.kind, PRODUCER);
      assert.equal(receive.attributes['enduser.id'], 'carol');
    } finally {
      await Promise.all([carol, dave].map(stop));
      assert.deepEqual(await stop(a), { code: 0, signal: null }, a.stderr());
      assert.deepEqual(await stop(b), { code: 0, signal: null }, b.stderr());
    }
  });
});

describe('examples/chat over WSS', { timeout: 60_000 }, () => {
  test('TLS_CERT/TLS_KEY serve wss:// (and the token over https); the client trusts the CA and joins the trace', async () => {
    const tls = await writeSelfSignedCert();
    const server = startServer('chat-tls', { PORTS: '0', INSTANCE: 'tls', TLS_CERT: tls.cert, TLS_KEY: tls.key });
    try {
      const port = (await server.line(/^LISTENING tls (\d+) wss$/))[1];
      const client = startClient('chat-client-tls', {
        CHAT_USER: 'erin', SERVER_URLS: `wss://127.0.0.1:${port}`, SEND_EVERY_MS: '0', NODE_EXTRA_CA_CERTS: tls.cert,
      });
      await client.line(/^OPEN erin instance=tls connection=1$/);
      assert.deepEqual(await stop(client), { code: 0, signal: null });
      const serverConnect = await eventually('the WSS handshake', () =>
        receiver.spansOf('chat-tls', `WS CONNECT ${ROUTE}`).find((s) => s.attributes['http.response.status_code'] === 101));
      const clientConnect = receiver.spansOf('chat-client-tls').find((s) => s.spanId === serverConnect.parentSpanId);
      assert.ok(clientConnect, 'the client handshake is the parent of the server handshake');
      assert.match(String(clientConnect.attributes['url.full']), /^wss:\/\/127\.0\.0\.1:\d+\/rooms\/lobby$/);
    } finally {
      assert.deepEqual(await stop(server), { code: 0, signal: null }, server.stderr());
      tls.remove();
    }
  });
});

// ---- static checks: there is no Docker engine (nor Kibana / New Relic) in CI ----------------

function readmeVariables(): Set<string> {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Configuration'));
  return new Set([...section.matchAll(/^\| `(WS_APM_[A-Z_]+)` \|/gm)].map((m) => m[1]));
}

/** Every `env.NAME` / `env.NAME ||` the example's processes read. */
function exampleVariables(): Set<string> {
  const names = new Set<string>();
  for (const file of ['server.js', 'client.js', 'broker.js', 'auth.js']) {
    const source = readFileSync(path.join(ROOT, 'examples', 'chat', file), 'utf8');
    for (const m of source.matchAll(/\benv\.([A-Z][A-Z0-9_]*)/g)) names.add(m[1]);
  }
  return names;
}

const ATTRIBUTES = Object.entries(semconv).filter(([k]) => k.startsWith('ATTR_')).map(([, v]) => String(v));
const METRICS = Object.keys(semconv.METRIC_INFO);

describe('docker-compose.yml, collector config and dashboards', () => {
  const compose = YAML.parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'));
  const services: Record<string, any> = compose.services;
  const names = new Set(Object.keys(services));

  test('the stack has every piece, images pinned, files it mounts or builds exist', () => {
    for (const s of ['elasticsearch', 'kibana', 'apm-server', 'otel-collector', 'jaeger', 'redis', 'chat-a', 'chat-b', 'chat-nr', 'clients']) {
      assert.ok(names.has(s), `service ${s}`);
    }
    const hostPorts = new Set<string>();
    for (const [name, svc] of Object.entries(services)) {
      assert.ok(typeof svc.image === 'string', `${name}: image`);
      const tag = /^(?:[^/]+\/)*[^/:]+:([^:/]+)$/.exec(svc.image)?.[1];
      assert.ok(tag && tag !== 'latest', `${name}: image ${svc.image} pinned to a version`);
      if (svc.build) {
        assert.ok(existsSync(path.join(ROOT, svc.build.context, svc.build.dockerfile)), `${name}: Dockerfile exists`);
      }
      for (const p of svc.ports ?? []) {
        const m = /^(?:127\.0\.0\.1:)?(\d+):(\d+)$/.exec(String(p));
        assert.ok(m, `${name}: port ${p}`);
        assert.ok(!hostPorts.has(m[1]), `${name}: host port ${m[1]} used once`);
        hostPorts.add(m[1]);
      }
      for (const v of svc.volumes ?? []) {
        const [source] = String(v).split(':');
        if (source.startsWith('.')) assert.ok(existsSync(path.join(ROOT, source)), `${name}: ${source} exists`);
        else assert.ok(source in (compose.volumes ?? {}), `${name}: named volume ${source} declared`);
      }
      for (const [dep, cond] of Object.entries<any>(svc.depends_on ?? {})) {
        assert.ok(names.has(dep), `${name}: depends on existing ${dep}`);
        if (cond.condition === 'service_healthy') assert.ok(services[dep].healthcheck, `${name}: ${dep} has a healthcheck`);
      }
      // The collector image has no shell or HTTP client to probe itself with.
      if (name !== 'otel-collector') assert.ok(Array.isArray(svc.healthcheck?.test), `${name}: healthcheck`);
    }
    // Images built here must be built by some service.
    const built = new Set(Object.values(services).filter((s: any) => s.build).map((s: any) => s.image));
    for (const [name, svc] of Object.entries(services)) {
      if (String(svc.image).startsWith('ws-apm-chat:')) assert.ok(built.has(svc.image), `${name}: ${svc.image} is built in this file`);
    }
  });

  test('environment: documented ws-apm variables, variables the example reads, hosts that are services', () => {
    const documented = readmeVariables();
    assert.ok(documented.size >= 15, 'README configuration table found');
    const example = exampleVariables();
    for (const [name, svc] of Object.entries(services)) {
      const env: Record<string, unknown> = svc.environment ?? {};
      assert.ok(!Array.isArray(env), `${name}: environment as a map`);
      const isExample = String(svc.image).startsWith('ws-apm-chat:');
      for (const [key, value] of Object.entries(env)) {
        if (key.startsWith('WS_APM_')) assert.ok(documented.has(key), `${name}: ${key} is in README's configuration table`);
        else if (isExample && !/^(OTEL_|ELASTIC_APM_|NEW_RELIC_)/.test(key)) assert.ok(example.has(key), `${name}: ${key} is read by examples/chat`);
        for (const m of String(value).matchAll(/\b(?:https?|wss?|redis):\/\/([a-z][a-z0-9-]*)[:/]/g)) {
          assert.ok(names.has(m[1]) || m[1] === 'localhost', `${name}: ${key} points at service ${m[1]}`);
        }
      }
      if (isExample) {
        assert.ok(['otel', 'elastic', 'newrelic'].includes(String(env.WS_APM_BACKEND)), `${name}: backend`);
        assert.ok(env.JWT_SECRET || svc.command, `${name}: JWT_SECRET`);
      }
    }
    assert.match(String(services['chat-nr'].environment.NEW_RELIC_LICENSE_KEY), /^\$\{NEW_RELIC_LICENSE_KEY/);
    assert.deepEqual(services['chat-nr'].profiles, ['newrelic']);
  });

  test('the collector config is complete and points at services of the stack', () => {
    const collector = services['otel-collector'];
    const mount = collector.volumes.find((v: string) => v.startsWith('./examples/otel-collector.yaml:'));
    assert.ok(mount, 'collector config mounted');
    assert.ok(collector.command.includes(`--config=${mount.split(':')[1]}`), 'collector started with the mounted config');
    const config = YAML.parse(readFileSync(path.join(ROOT, 'examples', 'otel-collector.yaml'), 'utf8'));
    for (const [pipeline, p] of Object.entries<any>(config.service.pipelines)) {
      for (const kind of ['receivers', 'processors', 'exporters'] as const) {
        for (const c of p[kind] ?? []) assert.ok(c in (config[kind] ?? {}), `${pipeline}: ${kind} ${c} defined`);
      }
    }
    for (const [name, e] of Object.entries<any>(config.exporters)) {
      if (!e?.endpoint) continue;
      const host = /^(?:https?:\/\/)?([a-z][a-z0-9-]*):\d+/.exec(e.endpoint)?.[1];
      assert.ok(host && names.has(host), `exporter ${name}: ${e.endpoint} is a service`);
    }
    for (const ext of config.service.extensions ?? []) assert.ok(ext in config.extensions, `extension ${ext}`);
  });

  test('the Kibana dashboard parses and uses only fields ws-apm produces', () => {
    const lines = readFileSync(path.join(ROOT, 'examples', 'dashboards', 'kibana-websocket.ndjson'), 'utf8').trim().split('\n');
    const objects = lines.map((l) => JSON.parse(l));
    const ids = new Set(objects.map((o) => `${o.type}:${o.id}`));
    const label = (a: string) => a.replace(/[.*"]/g, '_');
    const allowed = new Set<string>([
      '@timestamp', 'service.name', 'service.node.name', 'transaction.name', 'transaction.type', 'transaction.duration.us', 'transaction.result',
      ...METRICS,
      ...METRICS.filter((m) => semconv.METRIC_INFO[m].buckets).flatMap((m) => [`${m}.sum`, `${m}.count`]),
      ...ATTRIBUTES.flatMap((a) => [`labels.${label(a)}`, `numeric_labels.${label(a)}`]),
    ]);
    const fields = new Set<string>();
    const collect = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(collect);
      else if (node && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
          if (k === 'field' && typeof v === 'string') fields.add(v);
          else collect(v);
        }
      }
    };
    const dashboards = objects.filter((o) => o.type === 'dashboard');
    assert.equal(dashboards.length, 1);
    for (const o of objects) {
      for (const r of o.references) assert.ok(ids.has(`${r.type}:${r.id}`), `${o.id}: reference ${r.type}:${r.id} in the file`);
      if (o.type !== 'visualization') continue;
      collect(JSON.parse(o.attributes.visState).aggs);
      const search = JSON.parse(o.attributes.kibanaSavedObjectMeta.searchSourceJSON);
      for (const m of String(search.query.query).matchAll(/([A-Za-z_@][\w.@]*)\s*:/g)) fields.add(m[1]);
    }
    const panels = JSON.parse(dashboards[0].attributes.panelsJSON);
    assert.equal(panels.length, objects.filter((o) => o.type === 'visualization').length);
    for (const f of fields) assert.ok(allowed.has(f), `Kibana field ${f} is produced by ws-apm / Elastic APM`);
    for (const m of [semconv.METRIC_ACTIVE_CONNECTIONS, semconv.METRIC_CONNECTIONS, semconv.METRIC_MESSAGES, semconv.METRIC_CONNECTIONS_BROKEN]) {
      assert.ok(fields.has(m), `a panel shows ${m}`);
    }
  });

  test('the New Relic dashboard parses and uses only names ws-apm records', () => {
    const dashboard = JSON.parse(readFileSync(path.join(ROOT, 'examples', 'dashboards', 'newrelic-websocket.json'), 'utf8'));
    const bases = new Set(METRICS.map((m) => `Custom/${metricName(m, {}).replace(/\/all$/, '')}`));
    const queries: string[] = dashboard.pages.flatMap((p: any) => p.widgets.flatMap((w: any) => w.rawConfiguration.nrqlQueries.map((q: any) => q.query)));
    assert.ok(queries.length >= 7);
    const closeAttrs = new Set(['code', 'reason', 'initiator', 'durationMs', 'messagesIn', 'messagesOut', 'bytesIn', 'bytesOut', 'side', 'broken', 'route']);
    const seen = new Set<string>();
    for (const q of queries) {
      const from = /\bFROM (\w+)/.exec(q)?.[1];
      assert.ok(from && ['Metric', 'Transaction', NR_CONNECTION_EVENT].includes(from), `${q}: event type`);
      for (const m of q.matchAll(/'(Custom\/WebSocket\/[^%']*)/g)) {
        const base = [...bases].find((b) => m[1] === b || m[1].startsWith(`${b}/`));
        assert.ok(base, `${m[1]} is a metric ws-apm records`);
        seen.add(base);
      }
      for (const m of q.matchAll(/'(OtherTransaction\/[^%']*)/g)) assert.ok(m[1].startsWith(`OtherTransaction/${NR_TRANSACTION_GROUP}/WS `), m[1]);
      if (from === NR_CONNECTION_EVENT) {
        const attrs = [...q.replace(/'[^']*'/g, '').matchAll(/\b([a-z][A-Za-z]*)\b/g)].map((m) => m[1]).filter((w) => !/^(count|percentile|average|sum|and|or|as)$/i.test(w));
        for (const a of attrs) assert.ok(closeAttrs.has(a), `${NR_CONNECTION_EVENT}.${a} is recorded`);
      }
    }
    for (const m of ['ActiveConnections', 'Connections', 'Messages', 'HeartbeatRtt', 'BrokenConnections']) {
      assert.ok(seen.has(`Custom/WebSocket/${m}`), `a widget shows Custom/WebSocket/${m}`);
    }
  });
});
