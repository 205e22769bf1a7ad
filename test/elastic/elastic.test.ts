/**
 * Elastic APM adapter against the real elastic-apm-node agent: each scenario runs in
 * child processes (the agent is a process singleton) reporting to a local intake server,
 * and every event they send is validated against APM Server's intake-v2 schemas.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { elasticBackend } from '../../src/adapters/elastic';
import { forEachLabel, NOT_LABELS } from '../../src/adapters/elastic/labels';
import { Fixture } from '../helpers/elastic-fixture';
import { agentEnv, downUrl, type Intake, startIntake } from '../helpers/elastic-intake';

const ROOT = path.resolve(__dirname, '..', '..');
const PRELOAD = ['-r', './test/fixtures/elastic/_preload.js'];
const INCOMING_TRACE = '0af7651916cd43dd8448eb211c80319c';
const INCOMING_SPAN = 'b7ad6b7169203331';

/** Every fixture started by a test, killed at the end if still running. */
const running = new Set<Fixture>();
function fixture(file: string, env: NodeJS.ProcessEnv, nodeArgs: string[] = PRELOAD): Fixture {
  const f = new Fixture(file, env, nodeArgs);
  running.add(f);
  return f;
}

after(async () => {
  await Promise.all([...running].map((f) => f.kill()));
});

function assertValid(intake: Intake): void {
  assert.deepEqual(intake.invalid, [], 'every intake event matches the APM Server schema');
}

function noDottedKeys(labels: Record<string, unknown> | undefined): void {
  for (const key of Object.keys(labels ?? {})) assert.doesNotMatch(key, /[.*"]/, `label key ${key}`);
}

/** The sample value of `name` in the newest metricset whose tags match. */
function gauge(intake: Intake, name: string, tags: Record<string, string>): number | undefined {
  const sets = intake.of('metricset').filter((m) => m.samples?.[name] && Object.entries(tags).every(([k, v]) => m.tags?.[k] === v));
  return sets.length > 0 ? (sets[sets.length - 1]!.samples[name].value as number) : undefined;
}

async function openClient(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return ws;
}

/** Sends each message and waits for its reply, in order. */
async function exchange(ws: WebSocket, messages: string[]): Promise<string[]> {
  const replies: string[] = [];
  for (const message of messages) {
    const reply = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
    ws.send(message);
    replies.push(await reply);
  }
  return replies;
}

async function closeClient(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  ws.close(1000, 'done');
  await closed;
}

describe('labels and detection (in process, no agent)', () => {
  test('attributes become Elastic labels: no dots in keys, bounded strings, primitives only, no body', () => {
    // What the adapter does with a span's or transaction's attributes.
    const labels: Record<string, string | number | boolean> = {};
    forEachLabel({
      'websocket.close.code': 1000,
      'url.path': '/chat',
      'user_agent.original': 'u'.repeat(5000),
      'websocket.message.body': 'secret',
      'websocket.connection.broken': false,
      'enduser.id': undefined,
      'server.port': Number.NaN,
    }, NOT_LABELS, (key, value) => {
      labels[key] = value;
    });
    assert.deepEqual(Object.keys(labels).sort(), ['url_path', 'user_agent_original', 'websocket_close_code', 'websocket_connection_broken']);
    assert.equal(labels.websocket_close_code, 1000);
    assert.equal(labels.websocket_connection_broken, false);
    assert.equal((labels.user_agent_original as string).length, 1024);
  });

  test('auto-detection: ELASTIC_APM_SERVER_URL selects elastic, nothing else does', () => {
    assert.equal(elasticBackend.detect({ ELASTIC_APM_SERVER_URL: 'http://apm:8200' }), 'ELASTIC_APM_SERVER_URL is set');
    assert.equal(elasticBackend.detect({ ELASTIC_APM_SERVER_URL: '  ' }), undefined);
    assert.equal(elasticBackend.detect({}), undefined);
  });
});

describe('adapter driven directly against the real agent', () => {
  let intake: Intake;
  let ready: Record<string, any>;
  let proc: Fixture;

  before(async () => {
    intake = await startIntake();
    proc = fixture('adapter-unit.js', agentEnv(intake.url, { INCOMING_TRACEPARENT: `00-${INCOMING_TRACE}-${INCOMING_SPAN}-01` }), []);
    ready = await proc.next('ready');
    await intake.waitFor('the client connect span', () => intake.spans().find((s) => s.subtype === 'websocket' && s.action === 'connect'));
  });

  after(async () => {
    proc.send('zero'); // harmless when the metrics test already did
    proc.send('exit');
    await proc.exit();
    await intake.close();
  });

  test('the adapter starts the agent when the app has not', () => {
    assert.equal(ready.startedByAdapter, true);
  });

  test('WS CONNECT is a websocket transaction continuing the caller trace, with labels', () => {
    const [connect] = intake.transactions('WS CONNECT /chat');
    assert.ok(connect, intake.summary());
    assert.equal(connect.type, 'websocket');
    assert.equal(connect.trace_id, INCOMING_TRACE);
    assert.equal(connect.parent_id, INCOMING_SPAN);
    assert.equal(connect.outcome, 'success');
    assert.equal(connect.result, 'HTTP 1xx');
    const tags = connect.context.tags;
    noDottedKeys(tags);
    assert.equal(tags.websocket_route, '/chat');
    assert.equal(tags.http_response_status_code, 101);
    assert.equal(tags.user_agent_original.length, 1024);
    assert.equal('websocket_skip' in tags, false);
    assert.equal(ready.handshakeRef, `00-${INCOMING_TRACE}-${connect.id}-01`);
    assert.equal(ready.handshakeTraceId, INCOMING_TRACE);
  });

  test('WS RECEIVE is a messaging transaction in a new trace, linked to the handshake, with message context', () => {
    const [connect] = intake.transactions('WS CONNECT /chat');
    const receive = intake.transactions('WS RECEIVE /chat').find((t) => t.outcome === 'success');
    assert.ok(receive && connect, intake.summary());
    assert.equal(receive.type, 'messaging');
    assert.notEqual(receive.trace_id, connect.trace_id);
    assert.equal(receive.parent_id, undefined);
    assert.deepEqual(receive.links, [{ trace_id: connect.trace_id, span_id: connect.id }]);
    assert.deepEqual(receive.context.message, { queue: { name: '/chat' }, body: 'hello' });
    assert.equal(receive.context.tags.messaging_message_body_size, 5);
    assert.equal(receive.result, 'success');
  });

  test('run() makes the transaction current only while the listener runs, keeping this, args and return value', () => {
    assert.equal(ready.currentInside, 'WS RECEIVE /chat');
    assert.equal(ready.activeInside, true);
    assert.equal(ready.thisKept, true);
    assert.equal(ready.argKept, true);
    assert.equal(ready.returned, 42);
    assert.equal(ready.activeAfter, false);
    assert.equal(ready.currentAfter, null);
    assert.equal(ready.injectActive, ready.receiveRef);
  });

  test('a send inside the listener is a span of the message transaction; the agent http span nests there too', () => {
    const receive = intake.transactions('WS RECEIVE /chat').find((t) => t.outcome === 'success');
    const send = intake.spans('WS SEND /chat').find((s) => s.transaction_id === receive?.id);
    assert.ok(receive && send, intake.summary());
    assert.equal(send.transaction_id, receive.id);
    assert.equal(send.parent_id, receive.id);
    assert.equal(send.type, 'messaging');
    assert.equal(send.subtype, 'websocket');
    assert.equal(send.action, 'send');
    assert.equal(send.outcome, 'success');
    const httpSpan = intake.spans().find((s) => s.subtype === 'http' && s.transaction_id === receive.id);
    assert.ok(httpSpan, `agent http span under WS RECEIVE; got ${intake.summary()}`);
    assert.equal(httpSpan.parent_id, receive.id);
  });

  test('a throwing listener: failure outcome, the error captured and linked, the same exception rethrown', async () => {
    assert.equal(ready.sameException, true);
    const failing = intake.transactions('WS RECEIVE /chat').find((t) => t.outcome === 'failure');
    assert.ok(failing, intake.summary());
    assert.equal(failing.result, 'failure');
    assert.equal(ready.failingRef, `00-${failing.trace_id}-${failing.id}-01`);
    const error = await intake.waitFor('the captured error', () => intake.of('error')[0]);
    assert.equal(error.exception.message, 'listener exploded');
    assert.equal(error.transaction_id, failing.id);
    assert.equal(error.parent_id, failing.id);
    assert.equal(error.trace_id, failing.trace_id);
  });

  test('a client connect with no transaction starts one, with an exit span whose traceparent is propagated', () => {
    const span = intake.spans().find((s) => s.subtype === 'websocket' && s.action === 'connect');
    assert.ok(span, intake.summary());
    const trans = intake.transactions().find((t) => t.id === span.transaction_id);
    assert.ok(trans, 'the client connect transaction');
    assert.equal(trans.type, 'websocket');
    assert.equal(trans.name, span.name);
    assert.equal(span.type, 'external');
    assert.equal(span.parent_id, trans.id);
    assert.deepEqual(span.context.service.target, { type: 'websocket', name: span.name.slice('WS CONNECT '.length, span.name.indexOf('/')) });
    const expected = `00-${span.trace_id}-${span.id}-01`;
    assert.equal(ready.clientRef, expected);
    assert.equal(ready.clientInjected.traceparent, expected);
    assert.match(ready.clientInjected.tracestate, /^es=/);
    assert.equal(ready.upgradeTraceparent, expected, 'the peer sees our exit span as its parent');
  });

  test('runWithRemote: a WS HANDOFF transaction continuing the carried trace, its sends spans of it; a throw is its failure', async () => {
    assert.equal(ready.handoff, 'delivered');
    assert.equal(ready.handoffActive, true);
    assert.equal(ready.handoffCurrent, 'WS HANDOFF');
    assert.equal(ready.handoffActiveAfter, false);
    assert.equal(ready.handoffSameException, true);
    assert.equal(ready.handoffInvalid, false, 'no valid traceparent: fn runs as it is, in no transaction');
    const handoffs = intake.transactions('WS HANDOFF');
    assert.equal(handoffs.length, 2, intake.summary());
    const ok = handoffs.find((t) => t.parent_id === 'c7ad6b7169203332')!;
    const failed = handoffs.find((t) => t.parent_id === 'c7ad6b7169203333')!;
    assert.ok(ok && failed, intake.summary());
    assert.equal(ok.trace_id, '1bf7651916cd43dd8448eb211c80319d');
    assert.equal(ok.type, 'messaging');
    assert.deepEqual([ok.outcome, ok.result], ['success', 'success']);
    const send = intake.spans('WS SEND /chat').find((s) => s.transaction_id === ok.id);
    assert.ok(send, intake.summary());
    assert.equal(send.parent_id, ok.id);
    assert.equal(send.trace_id, ok.trace_id);
    assert.deepEqual([failed.outcome, failed.result], ['failure', 'failure']);
    const error = await intake.waitFor('the hand-off error', () => intake.of('error').find((e) => e.exception.message === 'delivery exploded'));
    assert.equal(error.transaction_id, failed.id);
  });

  test('inject with nothing active writes nothing', () => {
    assert.deepEqual(ready.injectNone, {});
    assert.equal(ready.activeNone, false);
  });

  test('metrics: the active-connections gauge follows the cell, histogram cells as count/sum, late cells picked up', async () => {
    await intake.waitFor('gauge 3', () => gauge(intake, 'websocket.server.active_connections', { websocket_route: '/chat' }) === 3);
    proc.send('zero');
    await proc.next('zeroed');
    await intake.waitFor('gauge 0', () => gauge(intake, 'websocket.server.active_connections', { websocket_route: '/chat' }) === 0);
    const size = intake.of('metricset').find((m) => m.samples['websocket.message.size.count']);
    assert.ok(size, intake.summary());
    assert.equal(size.samples['websocket.message.size.count'].value, 2);
    assert.equal(size.samples['websocket.message.size.sum'].value, 12);
    assert.deepEqual({ route: size.tags.websocket_route, direction: size.tags.websocket_direction }, { route: '/chat', direction: 'in' });
    await intake.waitFor('late cell', () => gauge(intake, 'websocket.messages', { websocket_route: '/later' }) === 11);
    await intake.waitFor('late histogram', () => gauge(intake, 'websocket.message.process.duration.count', { websocket_route: '/later' }) === 2);
    assert.equal(gauge(intake, 'websocket.message.process.duration.sum', { websocket_route: '/later' }), 0.75);
    for (const m of intake.of('metricset')) noDottedKeys(m.tags);
  });

  test('every event matches the intake schema', () => {
    assertValid(intake);
  });
});

test('an agent that is not started: nothing recorded, no placeholder traceparent propagated', async () => {
  const intake = await startIntake();
  try {
    const proc = fixture('not-started.js', agentEnv(intake.url), []);
    const result = await proc.next('result');
    assert.match(result.placeholder, /^00-0+-0+-00$/, 'the agent hands out a malformed placeholder');
    assert.deepEqual(result.carrier, {});
    assert.equal(result.started, false);
    assert.equal(result.active, false);
    assert.equal(result.ran, 42);
    await proc.next('flushed');
    assert.equal(await proc.exit(), 0);
  } finally {
    await intake.close();
  }
});

describe('a ws server and a ws client, each in its own process', () => {
  let intake: Intake;
  let server: Fixture;
  let port: number;

  before(async () => {
    intake = await startIntake();
    server = fixture('server.js', agentEnv(intake.url, { WS_APM_CAPTURE_BODY: 'all' }));
    ({ port } = await server.next('listening'));
  });

  after(async () => {
    server.send('exit');
    await server.exit();
    await intake.close();
  });

  for (const inTransaction of [false, true]) {
    test(`client connect ${inTransaction ? 'inside a transaction (exit span)' : 'outside any transaction (own transaction)'} is the parent of the server's WS CONNECT`, async () => {
      const before = intake.transactions('WS CONNECT /chat').length;
      const client = fixture('client.js', agentEnv(intake.url, { WS_URL: `ws://127.0.0.1:${port}/chat`, IN_TRANSACTION: inTransaction ? '1' : '0' }));
      const connection = await server.next('connection');
      await client.next('done');
      assert.equal(await client.exit(), 0);
      const span = await intake.waitFor('client connect span', () =>
        intake.spans().find((s) => s.action === 'connect' && s.subtype === 'websocket' && connection.traceparent?.includes(s.id)),
      );
      assert.equal(connection.traceparent, `00-${span.trace_id}-${span.id}-01`);
      const serverConnect = await intake.waitFor('server WS CONNECT', () =>
        intake.transactions('WS CONNECT /chat').slice(before).find((t) => t.parent_id === span.id),
      );
      assert.equal(serverConnect.trace_id, span.trace_id);
      const clientTrans = await intake.waitFor('client transaction', () => intake.transactions().find((t) => t.id === span.transaction_id));
      if (inTransaction) {
        assert.equal(clientTrans.name, 'client job');
        assert.equal(clientTrans.type, 'job');
      } else {
        assert.equal(clientTrans.name, span.name);
        assert.equal(clientTrans.type, 'websocket');
      }
      assert.equal(span.context.service.target.type, 'websocket');
      assert.equal(span.context.service.target.name, `127.0.0.1:${port}`);
      // The agent's own HTTP span for the upgrade request never ends, so it is never the parent.
      assert.equal(intake.spans().some((s) => s.subtype === 'http' && s.id === serverConnect.parent_id), false);
    });
  }

  test('messages: one messaging transaction each, linked to the handshake, agent http span nested, sends as spans', async () => {
    const ws = await openClient(`ws://127.0.0.1:${port}/chat`);
    const replies = await exchange(ws, ['http', 'hi']);
    assert.deepEqual(replies, ['http:200', 'hi']);
    await closeClient(ws);
    const receiveHttp = await intake.waitFor('WS RECEIVE of "http"', () =>
      intake.transactions('WS RECEIVE /chat').find((t) => t.context?.message?.body === 'http'),
    );
    const receiveHi = await intake.waitFor('WS RECEIVE of "hi"', () =>
      intake.transactions('WS RECEIVE /chat').find((t) => t.context?.message?.body === 'hi'),
    );
    const handshake = intake.transactions('WS CONNECT /chat').find((t) => t.id === receiveHi.links?.[0]?.span_id);
    assert.ok(handshake, 'the link points at this connection\'s WS CONNECT');
    for (const receive of [receiveHttp, receiveHi]) {
      assert.equal(receive.type, 'messaging');
      assert.equal(receive.outcome, 'success');
      assert.deepEqual(receive.links, [{ trace_id: handshake.trace_id, span_id: handshake.id }]);
      assert.equal(receive.context.message.queue.name, '/chat');
      noDottedKeys(receive.context.tags);
    }
    const httpSpan = await intake.waitFor('agent http span', () =>
      intake.spans().find((s) => s.subtype === 'http' && s.transaction_id === receiveHttp.id),
    );
    assert.equal(httpSpan.parent_id, receiveHttp.id);
    const downstream = await server.next('downstream');
    assert.equal(downstream.traceparent, `00-${receiveHttp.trace_id}-${httpSpan.id}-01`);
    const send = await intake.waitFor('WS SEND of "hi"', () => intake.spans('WS SEND /chat').find((s) => s.transaction_id === receiveHi.id));
    assert.equal(send.parent_id, receiveHi.id);
    const close = await intake.waitFor('WS CLOSE', () =>
      intake.transactions('WS CLOSE /chat').find((t) => t.links?.[0]?.span_id === handshake.id),
    );
    assert.equal(close.type, 'websocket');
    assert.equal(close.context.tags.websocket_close_code, 1000);
    assert.equal(close.context.tags.websocket_messages_in, 2);
  });

  test('a throwing listener: failure outcome, captured error linked to it, and the app still gets its exception', async () => {
    const ws = await openClient(`ws://127.0.0.1:${port}/chat`);
    ws.send('throw');
    const appException = await server.next('app-exception');
    assert.equal(appException.message, 'listener exploded');
    // The exception left ws's receiver mid-frame (as it would without ws-apm): drop the socket.
    ws.terminate();
    const failing = await intake.waitFor('failed WS RECEIVE', () =>
      intake.transactions('WS RECEIVE /chat').find((t) => t.context?.message?.body === 'throw'),
    );
    assert.equal(failing.outcome, 'failure');
    assert.equal(failing.result, 'failure');
    const error = await intake.waitFor('captured error', () => intake.of('error').find((e) => e.transaction_id === failing.id));
    assert.equal(error.exception.message, 'listener exploded');
    assert.equal(error.parent_id, failing.id);
  });

  test('the active-connections gauge counts open connections per route, and drops when they close', async () => {
    // A route of its own, so connections of the other tests do not count.
    const tags = { websocket_route: '/gauge' };
    const clients = await Promise.all([1, 2, 3].map(() => openClient(`ws://127.0.0.1:${port}/gauge`)));
    await intake.waitFor('3 open', () => gauge(intake, 'websocket.server.active_connections', tags) === 3);
    await Promise.all(clients.map((ws) => closeClient(ws)));
    await intake.waitFor('0 after close', () => gauge(intake, 'websocket.server.active_connections', tags) === 0);
    const accepted = gauge(intake, 'websocket.server.connections', { ...tags, websocket_connection_outcome: 'accepted' });
    assert.ok(accepted !== undefined && accepted >= 3, `accepted connections counter: ${accepted}`);
  });

  test('every event of both processes matches the intake schema', () => {
    assertValid(intake);
  });
});

describe('a broken APM Server costs the app nothing', () => {
  const MESSAGES = 300;
  for (const mode of ['down', 'error', 'slow'] as const) {
    test(`intake ${mode === 'down' ? 'unreachable' : mode === 'error' ? 'answering 500' : 'never answering'}: every message is still echoed`, async () => {
      const intake = mode === 'down' ? undefined : await startIntake(mode);
      try {
        const url = intake ? intake.url : await downUrl();
        const server = fixture('server.js', agentEnv(url, { ELASTIC_APM_SERVER_TIMEOUT: '2s' }));
        const { port } = await server.next('listening');
        const ws = await openClient(`ws://127.0.0.1:${port}/chat`);
        const messages = Array.from({ length: MESSAGES }, (_, i) => `m${i}`);
        // Pipelined, then in lock-step: both complete, in order, whatever the intake does.
        const replies: string[] = [];
        const all = new Promise<void>((resolve) => {
          ws.on('message', (data) => {
            replies.push(String(data));
            if (replies.length === MESSAGES) resolve();
          });
        });
        for (const m of messages) ws.send(m);
        await all;
        assert.deepEqual(replies, messages);
        ws.removeAllListeners('message');
        assert.deepEqual(await exchange(ws, ['a', 'b', 'c']), ['a', 'b', 'c']);
        if (intake) await intake.waitFor('the agent tried to report', () => intake.requests > 0);
        await closeClient(ws);
        server.send('exit');
        const echoed = await server.next('echoed');
        assert.equal(echoed.echoed, MESSAGES + 3);
        assert.equal(await server.exit(), 0);
        assert.doesNotMatch(server.stderr, /\[ws-apm\] error/, 'no ws-apm fault surfaced');
      } finally {
        await intake?.close();
      }
    });
  }
});

test('SIGTERM: what the agent still holds is flushed before the process ends as it would have', async () => {
  const intake = await startIntake();
  try {
    // Long request and metrics intervals: only a flush on the way out delivers these events.
    const server = fixture('server.js', agentEnv(intake.url, { ELASTIC_APM_API_REQUEST_TIME: '60s', ELASTIC_APM_METRICS_INTERVAL: '0s' }));
    const { port } = await server.next('listening');
    const ws = await openClient(`ws://127.0.0.1:${port}/sigterm`);
    assert.deepEqual(await exchange(ws, ['last words']), ['last words']);
    await closeClient(ws);
    await server.next('closed');
    server.signal('SIGTERM');
    await server.exit();
    assert.equal(server.exitSignal, 'SIGTERM', 'the default SIGTERM exit is kept');
    const receive = await intake.waitFor('WS RECEIVE', () => intake.transactions('WS RECEIVE /sigterm')[0]);
    assert.equal(receive.context.tags.messaging_message_body_size, 10);
    await intake.waitFor('WS CLOSE', () => intake.transactions('WS CLOSE /sigterm')[0]);
    assertValid(intake);
  } finally {
    await intake.close();
  }
});

describe('an app that lives shorter than the agent\'s metrics interval (30 s)', () => {
  /** The websocket.* samples of every metricset the intake received, one entry per (name, tags). */
  function websocketSamples(intake: Intake): string[] {
    return intake
      .of('metricset')
      .flatMap((m) => Object.keys(m.samples ?? {}).filter((name) => name.startsWith('websocket.')).map((name) => `${name} ${JSON.stringify(m.tags)}`));
  }

  for (const ending of ['by itself', 'by SIGTERM'] as const) {
    test(`ending ${ending}: its websocket metrics reach the intake once, as valid metricsets`, async () => {
      const intake = await startIntake();
      try {
        const server = fixture('server.js', agentEnv(intake.url, { WS_APM_BACKEND: 'elastic', ELASTIC_APM_METRICS_INTERVAL: '30s' }), [
          '-r',
          './dist/register.js',
        ]);
        const { port } = await server.next('listening');
        const ws = await openClient(`ws://127.0.0.1:${port}/brief`);
        assert.deepEqual(await exchange(ws, ['one', 'two']), ['one', 'two']);
        await closeClient(ws);
        await server.next('closed');
        if (ending === 'by itself') {
          server.send('exit');
          assert.equal(await server.exit(), 0);
        } else {
          server.signal('SIGTERM');
          await server.exit();
          assert.equal(server.exitSignal, 'SIGTERM');
        }
        await intake.waitFor('websocket metricsets', () => gauge(intake, 'websocket.server.connections', { websocket_route: '/brief' }));
        assert.equal(gauge(intake, 'websocket.server.connections', { websocket_route: '/brief', websocket_connection_outcome: 'accepted' }), 1);
        assert.equal(gauge(intake, 'websocket.server.active_connections', { websocket_route: '/brief' }), 0);
        assert.equal(gauge(intake, 'websocket.messages', { websocket_route: '/brief', websocket_direction: 'in', websocket_message_type: 'text' }), 2);
        assert.equal(gauge(intake, 'websocket.message.size.count', { websocket_direction: 'in' }), 2);
        assert.equal(gauge(intake, 'websocket.connection.duration.count', { websocket_route: '/brief' }), 1);
        const samples = websocketSamples(intake);
        assert.deepEqual(samples, [...new Set(samples)], 'each series sent once');
        assertValid(intake);
      } finally {
        await intake.close();
      }
    });
  }

  test('metrics switched off in the agent (ELASTIC_APM_METRICS_INTERVAL=0s): none sent at exit either', async () => {
    const intake = await startIntake();
    try {
      const server = fixture('server.js', agentEnv(intake.url, { WS_APM_BACKEND: 'elastic', ELASTIC_APM_METRICS_INTERVAL: '0s' }), [
        '-r',
        './dist/register.js',
      ]);
      const { port } = await server.next('listening');
      const ws = await openClient(`ws://127.0.0.1:${port}/off`);
      assert.deepEqual(await exchange(ws, ['x']), ['x']);
      await closeClient(ws);
      server.send('exit');
      assert.equal(await server.exit(), 0);
      await intake.waitFor('WS CLOSE', () => intake.transactions('WS CLOSE /off')[0]);
      assert.deepEqual(websocketSamples(intake), []);
    } finally {
      await intake.close();
    }
  });
});

describe('an app that starts the agent itself, with its ws instrumentation on', () => {
  let shim: string;

  before(() => {
    // A node_modules/ws that is ws 7, so the agent's own ws (< 8) instrumentation applies.
    shim = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-apm-elastic-'));
    const dir = path.join(shim, 'node_modules', 'ws');
    fs.mkdirSync(dir, { recursive: true });
    const ws7 = path.dirname(require.resolve('ws7/package.json', { paths: [ROOT] }));
    const version = (JSON.parse(fs.readFileSync(path.join(ws7, 'package.json'), 'utf8')) as { version: string }).version;
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'ws', version, main: 'index.js' }));
    fs.writeFileSync(path.join(dir, 'index.js'), `module.exports = require(${JSON.stringify(ws7)});\n`);
  });

  after(() => {
    fs.rmSync(shim, { recursive: true, force: true });
  });

  for (const order of ['agent, ws-apm, then ws', 'agent, ws, then ws-apm'] as const) {
    test(`ws 7 (${order}): each send is reported once, as our WS SEND span`, async () => {
      const intake = await startIntake();
      try {
        const nodeArgs =
          order === 'agent, ws-apm, then ws'
            ? ['-r', 'elastic-apm-node/start', ...PRELOAD]
            : ['-r', 'elastic-apm-node/start', '-r', './test/fixtures/elastic/_require-ws.js', ...PRELOAD];
        const server = fixture('server.js', agentEnv(intake.url, { WS_FROM: shim }), nodeArgs);
        const { port, wsVersion } = await server.next('listening');
        assert.match(wsVersion, /^7\./);
        const ws = await openClient(`ws://127.0.0.1:${port}/chat`);
        assert.deepEqual(await exchange(ws, ['one', 'two']), ['one', 'two']);
        await closeClient(ws);
        await intake.waitFor('two WS SEND spans', () => intake.spans('WS SEND /chat').length >= 2 || undefined);
        await intake.waitFor('WS CLOSE', () => intake.transactions('WS CLOSE /chat')[0]);
        server.send('exit');
        assert.equal(await server.exit(), 0);
        assert.equal(intake.spans('WS SEND /chat').length, 2);
        assert.deepEqual(intake.spans().filter((s) => s.type === 'websocket').map((s) => s.name), [], 'no agent ws spans');
        const receives = intake.transactions('WS RECEIVE /chat');
        assert.equal(receives.length, 2);
        for (const send of intake.spans('WS SEND /chat')) {
          assert.ok(receives.some((r) => r.id === send.parent_id), 'each send is a child of its message');
        }
        assertValid(intake);
      } finally {
        await intake.close();
      }
    });
  }
});

describe('the register entry', () => {
  test('WS_APM_BACKEND=elastic with -r register: ws-apm starts the agent from ELASTIC_APM_* and reports', async () => {
    const intake = await startIntake();
    try {
      const server = fixture('server.js', agentEnv(intake.url, { WS_APM_BACKEND: 'elastic' }), ['-r', './dist/register.js']);
      const { port } = await server.next('listening');
      const ws = await openClient(`ws://127.0.0.1:${port}/chat`);
      assert.deepEqual(await exchange(ws, ['x']), ['x']);
      await closeClient(ws);
      server.send('exit');
      assert.equal(await server.exit(), 0);
      // Delivered by the agent's own flush on the way out.
      await intake.waitFor('WS CLOSE', () => intake.transactions('WS CLOSE /chat')[0]);
      assert.ok(intake.transactions('WS RECEIVE /chat')[0]);
      assertValid(intake);
    } finally {
      await intake.close();
    }
  });

  test('ELASTIC_APM_SERVER_URL alone (auto) selects elastic', async () => {
    const intake = await startIntake();
    try {
      const server = fixture('server.js', agentEnv(intake.url), ['-r', './dist/register.js']);
      const { port } = await server.next('listening');
      const ws = await openClient(`ws://127.0.0.1:${port}/chat`);
      assert.deepEqual(await exchange(ws, ['y']), ['y']);
      await closeClient(ws);
      await intake.waitFor('WS RECEIVE', () => intake.transactions('WS RECEIVE /chat')[0]);
      server.send('exit');
      assert.equal(await server.exit(), 0);
    } finally {
      await intake.close();
    }
  });
});
