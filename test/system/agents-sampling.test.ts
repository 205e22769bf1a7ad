/**
 * The message rules (parents, links, sampling) on the two real agents, each app in a child process
 * started as a user starts it (`-r ws-apm/register` with elastic-apm-node, `-r newrelic -r
 * ws-apm/register`): the Elastic agent reports to a local intake that validates every event
 * against APM Server's intake schemas, New Relic to the local fake collector. The OpenTelemetry
 * versions of these tests are in test/otel/sampling.test.ts and test/otel/core.test.ts.
 *
 * 1. a send after an `await` in a message listener is a child of that message's WS RECEIVE; a
 *    timer started in the connection callback sends without any;
 * 2. an unsampled message records nothing, not even the agent's own http exit span, and the
 *    downstream request carries no trace context at all (the adapters run unsampled listeners
 *    outside any transaction, so the agents propagate nothing); a sampled one nests its http span;
 * 3. failed and slow unsampled messages are kept, with the message's real start time (Elastic:
 *    the transaction's own timestamp; New Relic, whose API cannot start a transaction in the past:
 *    `websocket.message.start_time_ms` / `websocket.message.duration_ms` custom attributes);
 * 4. a broadcast records WS_APM_MAX_SEND_SPANS sends and counts the rest on the message;
 * 5. WS_APM_MESSAGE_RATE_LIMIT holds under a flood (token bucket); the metrics count every message.
 *
 * Each app ends by itself (a message on an ignored /control route), so the agents deliver
 * everything on the way out and "nothing recorded" is checked on the complete data.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import WebSocket from 'ws';
import { defaultBurst } from '../../src/tracer/sampler';
import { Fixture } from '../helpers/elastic-fixture';
import { agentEnv, type Intake, type IntakeEvent, startIntake } from '../helpers/elastic-intake';
import { agentHome, FakeCollector, type NrEvent } from '../helpers/newrelic-collector';
import { newrelicPath, startFixture } from '../helpers/newrelic-fixture';

const TIMEOUT = 90_000;
/** The app, relative to the directories the two fixture helpers start files from. */
const APP = '../agents-sampling/app.js';
const BASE_ENV = { WS_APM_IGNORE_ROUTES: '/control', WS_APM_LOG_LEVEL: 'warn' };
const ROOM = 50;
const FLOOD = 300;
const RATE_LIMIT = 10;
/** Trace-context headers any of the agents could send. */
const TRACE_HEADERS = ['traceparent', 'tracestate', 'newrelic', 'elastic-apm-traceparent'];

type Report = Record<string, any>;

/** One app process, whichever agent it runs. */
interface App {
  readonly port: number;
  /** The first report named `event` (waits for it). */
  next(event: string): Promise<Report>;
  /** Ask the app to end by itself; resolves when it has exited (with code 0). */
  stop(): Promise<void>;
  kill(): Promise<void>;
}

/** A ws client that keeps every message it receives, listening from before `open`. */
class Client {
  readonly received: string[] = [];
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.received.push(String(data));
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async open(url: string): Promise<Client> {
    const client = new Client(new WebSocket(url));
    await once(client.ws, 'open');
    return client;
  }

  /** Resolves once `n` messages in total have arrived. */
  async count(n: number): Promise<string[]> {
    while (this.received.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.received.slice(0, n);
  }

  /** Send `text` and wait for the next message. */
  async ask(text: string): Promise<string> {
    const n = this.received.length + 1;
    this.ws.send(text);
    return (await this.count(n))[n - 1];
  }
}

/** The downstream service, in this process (no agent): what each request's headers were. */
async function startDownstream(): Promise<{ url: string; requests: http.IncomingHttpHeaders[]; close(): Promise<void> }> {
  const requests: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.headers);
    res.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`,
    requests,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function traceHeaders(headers: http.IncomingHttpHeaders): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of TRACE_HEADERS) if (headers[name] !== undefined) out[name] = headers[name];
  return out;
}

/** What a plain `http.get` sends (Node 20 and 22): a downstream request with no trace context at all. */
function assertNoTraceContext(requests: http.IncomingHttpHeaders[], n: number): void {
  assert.equal(requests.length, n);
  for (const headers of requests) assert.deepEqual(Object.keys(headers).sort(), ['connection', 'host']);
}

async function stopApp(port: number): Promise<void> {
  const control = await Client.open(`ws://127.0.0.1:${port}/control`);
  control.ws.send('exit');
}

const url = (app: App, route: string): string => `ws://127.0.0.1:${app.port}${route}`;

// --- the client side of each scenario, the same for both agents -------------------------------

/** 1: an async listener sends after an await; a timer started in the connection callback sends. */
async function sendAfterAwait(app: App): Promise<void> {
  const chat = await Client.open(url(app, '/chat'));
  assert.equal(await chat.ask('await'), 'after-await');
  const timer = await Client.open(url(app, '/timer'));
  assert.deepEqual(await timer.count(1), ['tick']);
}

/** 2: `n` messages whose listener calls the downstream service and replies when it answered. */
async function httpMessages(app: App, n: number): Promise<void> {
  const chat = await Client.open(url(app, '/chat'));
  for (let i = 0; i < n; i++) assert.equal(await chat.ask('http'), 'http:200');
}

interface Kept {
  /** Date.now() in this process right before each message was sent, and the listener's own start. */
  readonly slow: { sentMs: number; startedMs: number; blockedMs: number };
  readonly thrown: { sentMs: number; startedMs: number; blockedMs: number };
}

/** 3: a fast message (not kept), a slow one, and one whose listener throws (on its own socket). */
async function keptMessages(app: App): Promise<Kept> {
  const chat = await Client.open(url(app, '/chat'));
  assert.equal(await chat.ask('fast'), 'fast');
  const slowSent = Date.now();
  assert.equal(await chat.ask('slow'), 'slow-done');
  const slow = await app.next('listener');
  const thrower = await Client.open(url(app, '/chat'));
  const thrownSent = Date.now();
  thrower.ws.send('throw');
  assert.equal((await app.next('app-exception')).message, 'listener exploded', 'the app still gets its exception');
  // The exception left ws's receiver mid-frame (as it would without ws-apm): drop that socket.
  thrower.ws.terminate();
  const thrown = await app.next('listener');
  await app.next('thrower-http-done');
  return {
    slow: { sentMs: slowSent, startedMs: slow.startedMs, blockedMs: slow.blockedMs },
    thrown: { sentMs: thrownSent, startedMs: thrown.startedMs, blockedMs: thrown.blockedMs },
  };
}

/** 4: one message to /room, sent by its listener to all ROOM sockets. */
async function broadcast(app: App): Promise<void> {
  const clients = await Promise.all(Array.from({ length: ROOM }, () => Client.open(url(app, '/room'))));
  clients[0].ws.send('hello room');
  await Promise.all(clients.map((c) => c.count(1)));
}

/** 5: FLOOD messages at once; returns how many may be traced (the rate limit's burst, then its rate). */
async function flood(app: App): Promise<number> {
  const client = await Client.open(url(app, '/flood'));
  for (let i = 0; i < FLOOD; i++) client.ws.send(`m${i}`);
  const { count, seconds } = await app.next('flooded');
  assert.equal(count, FLOOD);
  // +1: a message's decision comes before its listener, which the app timed.
  return defaultBurst(RATE_LIMIT) + Math.ceil(RATE_LIMIT * (seconds as number)) + 1;
}

/** Start-time checks shared by both agents: the kept operation starts when the message arrived. */
function assertStartedOnArrival(startMs: number, durationMs: number, seen: Kept['slow'], what: string): void {
  // 1 ms of slack for whole-millisecond rounding of the start.
  assert.ok(startMs >= seen.sentMs - 1, `${what}: starts after the message was sent (${startMs} >= ${seen.sentMs})`);
  assert.ok(startMs <= seen.startedMs + 1, `${what}: starts before its listener ran (${startMs} <= ${seen.startedMs})`);
  assert.ok(durationMs >= seen.blockedMs - 1, `${what}: lasts as long as its listener (${durationMs} >= ${seen.blockedMs} ms)`);
}

// --- Elastic APM ---------------------------------------------------------------------------------

describe('Elastic APM agent (elastic-apm-node)', { timeout: TIMEOUT }, () => {
  const running = new Set<Fixture>();
  after(async () => {
    await Promise.all([...running].map((f) => f.kill()));
  });

  async function elasticApp(intake: Intake, env: Record<string, string>): Promise<App> {
    const fixture = new Fixture(APP, agentEnv(intake.url, { ...BASE_ENV, WS_APM_BACKEND: 'elastic', ...env }), ['-r', './dist/register.js']);
    running.add(fixture);
    const { port } = await fixture.next('listening');
    return {
      port,
      next: (event) => fixture.next(event),
      stop: async () => {
        await stopApp(port);
        assert.equal(await fixture.exit(), 0, fixture.stderr);
        assert.doesNotMatch(fixture.stderr, /\[ws-apm\] (error|warn)/, 'no ws-apm fault');
      },
      kill: () => fixture.kill(),
    };
  }

  /** Run `scenario` against an app reporting to a fresh intake; every event must be schema-valid. */
  async function withElastic(
    env: Record<string, string>, scenario: (app: App, intake: Intake) => Promise<void>,
  ): Promise<void> {
    const intake = await startIntake();
    try {
      const app = await elasticApp(intake, env);
      await scenario(app, intake);
      assert.deepEqual(intake.invalid, [], 'every intake event matches the APM Server schema');
    } finally {
      await intake.close();
    }
  }

  const named = (intake: Intake, name: string): IntakeEvent[] => [...intake.transactions(name), ...intake.spans(name)];

  test('1. a send after an await is a child of its WS RECEIVE; a timer send from the connection callback makes none', async () => {
    await withElastic({}, async (app, intake) => {
      await sendAfterAwait(app);
      await app.stop();
      await intake.waitFor('WS CLOSE /timer', () => intake.transactions('WS CLOSE /timer')[0]);
      const receives = intake.transactions('WS RECEIVE /chat');
      assert.equal(receives.length, 1, intake.summary());
      const [receive] = receives;
      const sends = named(intake, 'WS SEND /chat');
      assert.equal(sends.length, 1, intake.summary());
      const [send] = sends;
      assert.equal(send.trace_id, receive.trace_id, 'in the message trace');
      assert.equal(send.parent_id, receive.id, 'a child of WS RECEIVE');
      // The listener had returned: the send is a messaging transaction continuing WS RECEIVE.
      assert.equal(send.type, 'messaging');
      assert.deepEqual(named(intake, 'WS SEND /timer'), [], 'the timer send makes nothing');
      assert.equal(intake.transactions('WS CONNECT /timer').length, 1);
    });
  });

  test('2a. unsampled (rate 0): no transaction or span at all, not even the http exit span; downstream gets no trace context', async () => {
    const downstream = await startDownstream();
    try {
      await withElastic({ WS_APM_MESSAGE_SAMPLE_RATE: '0', DOWNSTREAM: downstream.url }, async (app, intake) => {
        await httpMessages(app, 5);
        await app.stop();
        await intake.waitFor('WS CLOSE /chat', () => intake.transactions('WS CLOSE /chat')[0]);
        assert.deepEqual(
          intake.transactions().map((t) => t.name).sort(), ['WS CLOSE /chat', 'WS CONNECT /chat'],
          'only the connection: no WS RECEIVE, no orphan transaction',
        );
        assert.deepEqual(intake.spans(), [], 'no orphan http exit span, no WS SEND');
        assert.deepEqual(intake.of('error'), []);
        assertNoTraceContext(downstream.requests, 5);
      });
    } finally {
      await downstream.close();
    }
  });

  test('2b. sampled (rate 1): the agent\'s http span nests under WS RECEIVE and its traceparent goes downstream', async () => {
    const downstream = await startDownstream();
    try {
      await withElastic({ WS_APM_MESSAGE_SAMPLE_RATE: '1', DOWNSTREAM: downstream.url }, async (app, intake) => {
        await httpMessages(app, 2);
        await app.stop();
        await intake.waitFor('WS CLOSE /chat', () => intake.transactions('WS CLOSE /chat')[0]);
        const receives = intake.transactions('WS RECEIVE /chat');
        assert.equal(receives.length, 2, intake.summary());
        const expected: string[] = [];
        for (const receive of receives) {
          const spans = intake.spans().filter((s) => s.subtype === 'http' && s.transaction_id === receive.id);
          assert.equal(spans.length, 1, `one http span under ${receive.id}: ${intake.summary()}`);
          assert.equal(spans[0].parent_id, receive.id);
          expected.push(`00-${receive.trace_id}-${spans[0].id}-01`);
        }
        assert.deepEqual(downstream.requests.map((h) => h.traceparent).sort(), expected.sort());
        for (const headers of downstream.requests) assert.match(String(headers.tracestate), /^es=s:1/);
        const ids = new Set(intake.transactions().map((t) => t.id));
        for (const span of intake.spans()) assert.ok(ids.has(span.transaction_id), `span ${span.name} has its transaction`);
      });
    } finally {
      await downstream.close();
    }
  });

  test('3. kept at rate 0: a throwing listener (error, failure, arrival start time) and a slow one (kept=slow)', async () => {
    const downstream = await startDownstream();
    try {
      await withElastic({ WS_APM_MESSAGE_SAMPLE_RATE: '0', WS_APM_KEEP_SLOW_MS: '30', DOWNSTREAM: downstream.url }, async (app, intake) => {
        const seen = await keptMessages(app);
        await app.stop();
        // The thrower's socket never emits 'close' (ws's receiver was left mid-frame, as without ws-apm).
        await intake.waitFor('WS CLOSE /chat', () => intake.transactions('WS CLOSE /chat')[0]);
        const receives = intake.transactions('WS RECEIVE /chat');
        assert.equal(receives.length, 2, `the slow and the failed message, not the fast one: ${intake.summary()}`);
        const failed = receives.find((t) => t.context.tags.websocket_message_kept === 'error');
        const slow = receives.find((t) => t.context.tags.websocket_message_kept === 'slow');
        assert.ok(failed && slow, intake.summary());

        assert.equal(failed.outcome, 'failure');
        assert.equal(failed.result, 'failure');
        const errors = intake.of('error');
        assert.equal(errors.length, 1);
        assert.equal(errors[0].exception.message, 'listener exploded');
        assert.equal(errors[0].transaction_id, failed.id);
        assert.equal(errors[0].parent_id, failed.id);
        assert.equal(errors[0].trace_id, failed.trace_id);
        assertStartedOnArrival(failed.timestamp / 1000, failed.duration, seen.thrown, 'failed');

        assert.equal(slow.outcome, 'success');
        assertStartedOnArrival(slow.timestamp / 1000, slow.duration, seen.slow, 'slow');

        const connects = intake.transactions('WS CONNECT /chat');
        for (const kept of [failed, slow]) {
          assert.ok(connects.some((c) => kept.links?.[0]?.span_id === c.id), 'linked to its handshake');
        }
        assert.deepEqual(intake.spans(), [], 'no children: the thrower\'s http call ran unsampled');
        assertNoTraceContext(downstream.requests, 1);
      });
    } finally {
      await downstream.close();
    }
  });

  test(`4. a broadcast to ${ROOM} sockets with WS_APM_MAX_SEND_SPANS=5: 5 send spans, the rest counted on WS RECEIVE`, async () => {
    await withElastic({ WS_APM_MAX_SEND_SPANS: '5' }, async (app, intake) => {
      await broadcast(app);
      await app.stop();
      await intake.waitFor(`${ROOM} WS CLOSE`, () => intake.transactions('WS CLOSE /room').length === ROOM);
      const receives = intake.transactions('WS RECEIVE /room');
      assert.equal(receives.length, 1, intake.summary());
      const [receive] = receives;
      assert.equal(receive.context.tags.websocket_messages_out, ROOM);
      assert.equal(receive.context.tags.websocket_sends_unrecorded, ROOM - 5);
      assert.equal(receive.context.tags.websocket_bytes_out, ROOM * 'hello room'.length);
      const sends = named(intake, 'WS SEND /room');
      assert.equal(sends.length, 5);
      for (const send of sends) {
        assert.equal(send.transaction_id, receive.id);
        assert.equal(send.parent_id, receive.id);
      }
    });
  });

  test(`5. WS_APM_MESSAGE_RATE_LIMIT=${RATE_LIMIT} under a flood of ${FLOOD}: a burst, then ${RATE_LIMIT}/s; metrics count all`, async () => {
    await withElastic({ WS_APM_MESSAGE_RATE_LIMIT: String(RATE_LIMIT), FLOOD: String(FLOOD) }, async (app, intake) => {
      const most = await flood(app);
      // The counter is a cumulative gauge read on the agent's metrics interval (1 s here).
      await intake.waitFor(`websocket.messages in = ${FLOOD}`, () => {
        const sets = intake.of('metricset').filter((m) =>
          m.samples?.['websocket.messages'] && m.tags?.websocket_route === '/flood' && m.tags?.websocket_direction === 'in');
        return sets.length > 0 && sets[sets.length - 1].samples['websocket.messages'].value === FLOOD;
      });
      await app.stop();
      await intake.waitFor('WS CLOSE /flood', () => intake.transactions('WS CLOSE /flood')[0]);
      const traced = intake.transactions('WS RECEIVE /flood').length;
      assert.ok(traced >= defaultBurst(RATE_LIMIT), `the burst passes: ${traced}`);
      assert.ok(traced <= most, `${traced} traced, at most ${most} (limit ${RATE_LIMIT}/s)`);
    });
  });
});

// --- New Relic -----------------------------------------------------------------------------------

const nrName = (e: NrEvent): unknown => e.intrinsics.name;
const nrTxs = (c: FakeCollector, name: string): NrEvent[] => c.transactions.filter((t) => nrName(t) === name);
const nrSpansOf = (c: FakeCollector, tx: NrEvent): NrEvent[] => c.spans.filter((s) => s.intrinsics.transactionId === tx.intrinsics.guid);
const RECEIVE = (route: string): string => `OtherTransaction/WebSocket/WS RECEIVE ${route}`;

/** Major version of the agent the fixtures preload. */
function nrMajor(): number {
  const pkg = path.join(path.dirname(newrelicPath()), 'package.json');
  return Number((JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version.split('.')[0]);
}

function nrRootSpan(c: FakeCollector, tx: NrEvent): NrEvent {
  const span = nrSpansOf(c, tx).find((s) => s.intrinsics['nr.entryPoint'] === true);
  assert.ok(span, `no entry span for ${String(nrName(tx))}`);
  return span;
}

describe('New Relic agent (newrelic)', { timeout: TIMEOUT }, () => {
  /** Run `scenario` against an app whose agent reports to a fresh fake collector. */
  async function withNewRelic(
    env: Record<string, string>, scenario: (app: App, c: FakeCollector) => Promise<void>,
  ): Promise<void> {
    const c = await FakeCollector.start();
    const home = agentHome(c.port, c.certPem, 'ws-apm-sampling');
    const fixture = startFixture(APP, { ...home.env, ...BASE_ENV, ...env }, { execArgv: ['-r', 'ws-apm/register'] });
    try {
      const { port } = await fixture.report((r) => r.event === 'listening', 'listening');
      const consumed = new Set<Report>();
      const app: App = {
        port: port as number,
        next: async (event) => {
          const found = await fixture.report((r) => r.event === event && !consumed.has(r), event);
          consumed.add(found);
          return found;
        },
        stop: async () => {
          await stopApp(port as number);
          const result = await fixture.done;
          assert.equal(result.code, 0, result.stderr);
          // Not warnings: the `-r` preloads also run in tsx's loader thread, where the agent is its
          // no-op stub (worker threads), and ws-apm says so there.
          assert.doesNotMatch(result.stderr, /\[ws-apm\] error/, 'no ws-apm fault');
          // ws-apm shuts the agent down on beforeExit with collectPendingData: everything was sent.
          await c.waitFor(() => c.calls.includes('shutdown'), 'the agent to shut down');
        },
        kill: async () => fixture.kill(),
      };
      await scenario(app, c);
      assert.deepEqual(c.problems, []);
    } finally {
      fixture.kill();
      home.cleanup();
      await c.close();
    }
  }

  test('1. a send after an await is a child of its WS RECEIVE; a timer send from the connection callback makes none', async () => {
    await withNewRelic({}, async (app, c) => {
      await sendAfterAwait(app);
      await app.stop();
      const receives = nrTxs(c, RECEIVE('/chat'));
      assert.equal(receives.length, 1);
      const [receive] = receives;
      const root = nrRootSpan(c, receive);
      // The listener had returned: the send is a transaction of its own in the message trace,
      // whose parent span is WS RECEIVE's.
      const sendTxs = nrTxs(c, 'OtherTransaction/WebSocket/WS SEND /chat');
      const segments = c.spans.filter((s) => nrName(s) === 'WS SEND /chat' && s.intrinsics['nr.entryPoint'] !== true);
      assert.equal(sendTxs.length, 1, `one WS SEND transaction; segments: ${segments.length}`);
      assert.equal(segments.length, 0);
      const [send] = sendTxs;
      assert.equal(send.intrinsics.traceId, receive.intrinsics.traceId, 'in the message trace');
      assert.equal(send.intrinsics.parentSpanId, root.intrinsics.guid, 'a child of WS RECEIVE');
      assert.equal(nrRootSpan(c, send).intrinsics.parentId, root.intrinsics.guid);
      assert.equal(c.spans.filter((s) => String(nrName(s)).includes('WS SEND /timer')).length, 0, 'the timer send makes nothing');
      assert.equal(c.transactions.filter((t) => String(nrName(t)).includes('WS SEND /timer')).length, 0);
    });
  });

  test('2a. unsampled (rate 0): no transaction or segment at all, not even External; downstream gets no trace context', async () => {
    const downstream = await startDownstream();
    try {
      await withNewRelic({ WS_APM_MESSAGE_SAMPLE_RATE: '0', DOWNSTREAM: downstream.url }, async (app, c) => {
        await httpMessages(app, 5);
        await app.stop();
        assert.deepEqual(
          c.transactions.map((t) => nrName(t)).sort(),
          ['OtherTransaction/WebSocket/WS CLOSE /chat', 'WebTransaction/Custom/WS CONNECT /chat'],
          'only the connection: no WS RECEIVE, no orphan transaction',
        );
        const guids = new Set(c.transactions.map((t) => t.intrinsics.guid));
        assert.deepEqual(c.spans.filter((s) => !guids.has(s.intrinsics.transactionId)), [], 'no orphan span');
        assert.deepEqual(c.spans.filter((s) => /^External\//.test(String(nrName(s)))), [], 'no External segment');
        assert.deepEqual(c.errors, []);
        assertNoTraceContext(downstream.requests, 5);
      });
    } finally {
      await downstream.close();
    }
  });

  test('2b. sampled (rate 1): the agent\'s External segment nests under WS RECEIVE and its trace goes downstream', async () => {
    const downstream = await startDownstream();
    try {
      await withNewRelic({ WS_APM_MESSAGE_SAMPLE_RATE: '1', DOWNSTREAM: downstream.url }, async (app, c) => {
        await httpMessages(app, 2);
        await app.stop();
        const receives = nrTxs(c, RECEIVE('/chat'));
        assert.equal(receives.length, 2);
        const expected: string[] = [];
        for (const receive of receives) {
          const root = nrRootSpan(c, receive);
          // The transaction ends when the listeners return, the request is still in flight then: the
          // agent names such a segment `Truncated/External/...`. It is nested all the same.
          const externals = nrSpansOf(c, receive).filter((s) => /^(Truncated\/)?External\/127\.0\.0\.1:\d+\/api$/.test(String(nrName(s))));
          assert.equal(externals.length, 1);
          assert.equal(externals[0].intrinsics.parentId, root.intrinsics.guid);
          expected.push(`00-${receive.intrinsics.traceId}-${externals[0].intrinsics.guid}-01`);
        }
        assert.deepEqual(downstream.requests.map((h) => h.traceparent).sort(), expected.sort());
        // W3C trace context, plus the proprietary `newrelic` header on 13.x (14.x leaves it out by
        // default: distributed_tracing.exclude_newrelic_header).
        const expectedHeaders = nrMajor() >= 14 ? ['traceparent', 'tracestate'] : ['newrelic', 'traceparent', 'tracestate'];
        for (const headers of downstream.requests) assert.deepEqual(Object.keys(traceHeaders(headers)).sort(), expectedHeaders);
      });
    } finally {
      await downstream.close();
    }
  });

  test('3. kept at rate 0: a throwing listener (error noticed, arrival start time as attributes) and a slow one (kept=slow)', async () => {
    const downstream = await startDownstream();
    try {
      await withNewRelic({ WS_APM_MESSAGE_SAMPLE_RATE: '0', WS_APM_KEEP_SLOW_MS: '30', DOWNSTREAM: downstream.url }, async (app, c) => {
        const seen = await keptMessages(app);
        await app.stop();
        const receives = nrTxs(c, RECEIVE('/chat'));
        assert.equal(receives.length, 2, 'the slow and the failed message, not the fast one');
        const failed = receives.find((t) => t.user['websocket.message.kept'] === 'error');
        const slow = receives.find((t) => t.user['websocket.message.kept'] === 'slow');
        assert.ok(failed && slow);

        assert.equal(failed.intrinsics.error, true);
        const errors = c.errors.filter((e) => e.intrinsics.transactionName === RECEIVE('/chat'));
        assert.equal(errors.length, 1);
        assert.equal(errors[0].intrinsics['error.message'], 'listener exploded');
        assert.equal(errors[0].intrinsics['nr.transactionGuid'], failed.intrinsics.guid);
        // The agent also reports the uncaught exception itself, outside any transaction (as without ws-apm).
        assert.deepEqual(c.errors.filter((e) => e !== errors[0]).map((e) => e.intrinsics.transactionName), ['Unknown']);
        assert.equal(slow.intrinsics.error, false);

        for (const [tx, saw, what] of [[failed, seen.thrown, 'failed'], [slow, seen.slow, 'slow']] as const) {
          const start = tx.user['websocket.message.start_time_ms'] as number;
          const duration = tx.user['websocket.message.duration_ms'] as number;
          assert.equal(typeof start, 'number', `${what}: start time attribute`);
          assert.equal(typeof duration, 'number', `${what}: duration attribute`);
          assertStartedOnArrival(start, duration, saw, what);
          // The transaction itself is recorded when the listener has returned (the agent's API
          // cannot start one in the past): its own timestamp is after the real start.
          assert.ok((tx.intrinsics.timestamp as number) >= start);
        }
        const guids = new Set(c.transactions.map((t) => t.intrinsics.guid));
        assert.deepEqual(c.spans.filter((s) => !guids.has(s.intrinsics.transactionId)), [], 'no orphan span');
        assert.deepEqual(c.spans.filter((s) => /^External\//.test(String(nrName(s)))), [], 'no children: the http call ran unsampled');
        for (const tx of [failed, slow]) {
          assert.deepEqual(nrSpansOf(c, tx).map((s) => nrName(s)), [RECEIVE('/chat')], 'only its own entry span');
        }
        assertNoTraceContext(downstream.requests, 1);
      });
    } finally {
      await downstream.close();
    }
  });

  test(`4. a broadcast to ${ROOM} sockets with WS_APM_MAX_SEND_SPANS=5: 5 send segments, the rest counted on WS RECEIVE`, async () => {
    await withNewRelic({ WS_APM_MAX_SEND_SPANS: '5' }, async (app, c) => {
      await broadcast(app);
      await app.stop();
      const receives = nrTxs(c, RECEIVE('/room'));
      assert.equal(receives.length, 1);
      const [receive] = receives;
      assert.equal(receive.user['websocket.messages.out'], ROOM);
      assert.equal(receive.user['websocket.sends.unrecorded'], ROOM - 5);
      assert.equal(receive.user['websocket.bytes.out'], ROOM * 'hello room'.length);
      const root = nrRootSpan(c, receive);
      const sends = c.spans.filter((s) => nrName(s) === 'WS SEND /room');
      assert.equal(sends.length, 5);
      for (const send of sends) {
        assert.equal(send.intrinsics.transactionId, receive.intrinsics.guid);
        assert.equal(send.intrinsics.parentId, root.intrinsics.guid);
      }
      assert.equal(nrTxs(c, 'OtherTransaction/WebSocket/WS SEND /room').length, 0);
      assert.equal(c.metric('Custom/WebSocket/Messages/out/room')?.callCount, ROOM);
    });
  });

  test(`5. WS_APM_MESSAGE_RATE_LIMIT=${RATE_LIMIT} under a flood of ${FLOOD}: a burst, then ${RATE_LIMIT}/s; metrics count all`, async () => {
    await withNewRelic({ WS_APM_MESSAGE_RATE_LIMIT: String(RATE_LIMIT), FLOOD: String(FLOOD) }, async (app, c) => {
      const most = await flood(app);
      await app.stop();
      const traced = nrTxs(c, RECEIVE('/flood')).length;
      assert.ok(traced >= defaultBurst(RATE_LIMIT), `the burst passes: ${traced}`);
      assert.ok(traced <= most, `${traced} traced, at most ${most} (limit ${RATE_LIMIT}/s)`);
      assert.equal(c.metric('Custom/WebSocket/Messages/in/flood')?.callCount, FLOOD);
    });
  });
});
