/**
 * The example's browser page (examples/chat/page.html) in a real headless Chromium, driven by
 * playwright-core against the system browser (no browser download): a user logs in, joins a
 * room, talks with a Node client on the other instance, and the server telemetry shows the
 * browser's handshake and messages continuing the trace context the page carried (URL query
 * parameter for the handshake, `trace` field for each message). Plus the page's failure paths: a
 * server killed with SIGKILL, a rejected token, a user name the token endpoint refuses.
 *
 * Needs Chromium (CHROMIUM_PATH, else /usr/bin/chromium; Debian: apt-get install chromium) and,
 * for the Redis variant, redis-server: skipped when missing, except under CI=true.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { run, type Child } from '../helpers/child';
import { missingCommand, missingExecutable, suiteSkip } from '../helpers/requirements';
import { CONSUMER, OtlpReceiver, otlpEnv, PRODUCER, type ReceivedSpan, SERVER } from '../helpers/otlp-receiver';
import { startRedis, type RedisServer } from '../helpers/example-redis';

const ROOT = path.resolve(__dirname, '..', '..');
const SERVER_JS = path.join(ROOT, 'examples', 'chat', 'server.js');
const CLIENT_JS = path.join(ROOT, 'examples', 'chat', 'client.js');
const SECRET = 'browser-test-secret-0123456789abcdef';
const ROUTE = '/rooms/:room';
const TRACE_UI = 'http://127.0.0.1:16686/trace/{traceId}';
const JWT = /eyJ[A-Za-z0-9_-]{10,}/;

// A missing tool skips the suite outside CI and fails it under CI=true (helpers/requirements.ts).
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const noBrowser = suiteSkip(missingExecutable(CHROMIUM, 'apt-get install chromium, or set CHROMIUM_PATH'));
const noRedis = noBrowser || suiteSkip(missingCommand('redis-server', ['--version'], 'apt-get install redis-server'));

// Without the background-networking flags Chromium calls out to Google services, which a closed
// machine refuses (and a test must not do anyway): every request here goes to 127.0.0.1.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// ---- processes and telemetry -------------------------------------------------------------------

let receiver: OtlpReceiver;
let browser: Browser;
const children: Child[] = [];
const tempDirs: string[] = [];

function serverEnv(service: string, extra: Record<string, string>): Record<string, string> {
  return otlpEnv(receiver.url, service, {
    OTEL_METRIC_EXPORT_INTERVAL: '1000',
    OTEL_METRIC_EXPORT_TIMEOUT: '500',
    OTEL_BSP_SCHEDULE_DELAY: '100',
    WS_APM_ROUTES: ROUTE,
    WS_APM_MESSAGE_NAME: 'type',
    WS_APM_MESSAGE_PARENT: 'handshake',
    WS_APM_MESSAGE_CONTEXT: 'trace',
    WS_APM_PROPAGATION_QUERY_PARAM: 'traceparent',
    JWT_SECRET: SECRET,
    HOST: '127.0.0.1',
    HEARTBEAT_MS: '1000',
    ...extra,
  });
}

function start(script: string, env: Record<string, string>): Child {
  const child = run(['-r', 'ws-apm/register', script], env, 'example');
  children.push(child);
  return child;
}

function startServer(service: string, env: Record<string, string>): Child {
  return start(SERVER_JS, serverEnv(service, env));
}

/** A Node client (examples/chat/client.js) saying something every `every` ms. */
function startClient(service: string, user: string, port: string, every = '400'): Child {
  return start(CLIENT_JS, serverEnv(service, {
    CHAT_USER: user, SERVER_URLS: `ws://127.0.0.1:${port}`, SEND_EVERY_MS: every, BACKOFF_BASE_MS: '100', BACKOFF_MAX_MS: '800',
  }));
}

async function stop(child: Child | undefined): Promise<void> {
  if (!child) return;
  if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGTERM');
  await child.exited();
}

/** Resolve when `check` returns a value (re-checked on every OTLP batch), else fail after `ms`. */
function eventually<T>(what: string, check: () => T | undefined | false, ms = 15000): Promise<T> {
  return receiver.waitFor(what, check, ms);
}

const byId = (id: string): ReceivedSpan | undefined => receiver.spans.find((s) => s.spanId === id);

function parseTraceparent(tp: string): { traceId: string; spanId: string } {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(tp);
  assert.ok(m, `a sampled W3C traceparent: ${tp}`);
  return { traceId: m[1], spanId: m[2] };
}

// ---- the page, as a user sees it ---------------------------------------------------------------

interface Session {
  page: Page;
  context: BrowserContext;
  /** URLs of the WebSockets the page opened (each with its handshake traceparent). */
  sockets: string[];
  /** JSON frames the page sent. */
  sent: any[];
  /** Tokens the page obtained from /token. */
  tokens: string[];
  /** Uncaught exceptions in the page (a broken page shows up here). */
  errors: string[];
  close(): Promise<void>;
}

async function openPage(url: string, setup?: (context: BrowserContext) => Promise<void>): Promise<Session> {
  const context = await browser.newContext({ viewport: { width: 820, height: 560 } });
  await setup?.(context);
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  const s: Session = { page, context, sockets: [], sent: [], tokens: [], errors: [], close: () => context.close() };
  page.on('pageerror', (err) => s.errors.push(err.message));
  page.on('websocket', (ws) => {
    s.sockets.push(ws.url());
    ws.on('framesent', (f) => s.sent.push(JSON.parse(String(f.payload))));
  });
  page.on('response', (res) => {
    if (new URL(res.url()).pathname === '/token' && res.ok()) {
      res.json().then((b: { token: string }) => s.tokens.push(b.token), () => undefined);
    }
  });
  await page.goto(url);
  return s;
}

async function status(page: Page, text: RegExp): Promise<void> {
  await page.locator('#status', { hasText: text }).waitFor();
}

async function joinAs(page: Page, user: string, room = 'lobby'): Promise<void> {
  await page.fill('#login input[name=user]', user);
  await page.fill('#login input[name=room]', room);
  await page.click('#join');
  await status(page, new RegExp(`^Connected to room ${room} as ${user}\\.$`));
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#say input[name=text]', text);
  await page.press('#say input[name=text]', 'Enter');
}

/** The log entry of my own message `text` once the server delivered it back. */
function delivered(page: Page, text: string) {
  return page.locator('#log li.mine.delivered', { hasText: text });
}

/** Connection attempts the page made so far (it counts them in <body data-attempts>). */
const attempts = async (page: Page): Promise<number> => Number(await page.getAttribute('body', 'data-attempts'));

// ---- tests -------------------------------------------------------------------------------------

before(async () => {
  receiver = await new OtlpReceiver().start();
  if (noBrowser) return;
  // Playwright gives Chromium a fresh empty profile (--user-data-dir) under os.tmpdir(): pointed at a
  // directory of ours, removed afterwards whatever happens (a failed launch leaves its dirs behind).
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'ws-apm-chromium-'));
  tempDirs.push(tmp);
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60000 });
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
});

after(async () => {
  await browser?.close();
  await Promise.all(children.map(stop));
  await receiver.stop();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('the chat page in Chromium, two instances in one server process', { skip: noBrowser, timeout: 120_000 }, () => {
  let server: Child;
  let bob: Child;
  let port1 = '';
  let port2 = '';
  let session: Session;

  before(async () => {
    server = startServer('chat-browser', { PORTS: '0,0', INSTANCE: 'br', CHAT_TRACE_URL: TRACE_UI });
    port1 = (await server.line(/^LISTENING br-1 (\d+) ws$/))[1];
    port2 = (await server.line(/^LISTENING br-2 (\d+) ws$/))[1];
    await server.line(/^READY memory$/);
    bob = startClient('chat-node-bob', 'bob', port2);
    await bob.line(/^OPEN bob instance=br-2 connection=1$/);
  });

  after(async () => {
    await session?.close();
    await Promise.all([bob, server].map(stop));
  });

  test('log in, join, talk with a Node client on the other instance; every hop continues the page\'s trace', async () => {
    const given = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    session = await openPage(`http://127.0.0.1:${port1}/?traceparent=${given}`);
    const { page } = session;
    await joinAs(page, 'carla');
    await page.locator('#instance', { hasText: 'br-1' }).waitFor();

    // Text is shown as text: markup in a message is not markup on the page.
    const text = '<b>hi</b> & "welcome" <img src=x onerror=alert(1)>';
    await say(page, text);
    const mine = delivered(page, text);
    await mine.waitFor();
    assert.equal(await page.locator('#log b, #log img').count(), 0, 'no element made from message text');
    await bob.line(/^GOT bob from=carla origin=br-1 via=br-2 text="<b>hi<\/b> & \\"welcome\\" <img src=x onerror=alert\(1\)>"$/);
    const fromBob = page.locator('#log li.delivered:not(.mine)', { hasText: /^bob \(via br-2\): bob says #\d+/ }).first();
    await fromBob.waitFor();

    // What the page showed and sent.
    assert.equal(session.sockets.length, 1);
    const handshakeTp = new URL(session.sockets[0]).searchParams.get('traceparent');
    assert.equal(handshakeTp, given, 'the traceparent the page was opened with goes on the WebSocket URL');
    assert.equal(await page.textContent('#connection-trace'), given.slice(3, 35));
    const chat = session.sent.find((m) => m.type === 'chat' && m.text === text);
    assert.ok(chat, 'the page sent the message');
    const messageTp = parseTraceparent(chat.trace.traceparent);
    assert.notEqual(messageTp.traceId, given.slice(3, 35), 'each message starts its own trace');
    assert.equal(await mine.getAttribute('data-trace-id'), messageTp.traceId, 'my message shows the trace it travelled under');
    const bobTraceId = await fromBob.getAttribute('data-trace-id');
    assert.match(bobTraceId ?? '', /^[0-9a-f]{32}$/);
    // With CHAT_TRACE_URL, trace ids link to the trace UI.
    assert.equal(await mine.locator('a.trace').getAttribute('href'), TRACE_UI.replace('{traceId}', messageTp.traceId));
    assert.equal(await fromBob.locator('a.trace').getAttribute('href'), TRACE_UI.replace('{traceId}', bobTraceId!));
    assert.equal(await page.locator('#connection-trace a.trace').getAttribute('href'), TRACE_UI.replace('{traceId}', given.slice(3, 35)));

    const shot = await screenshot(page, 'browser-chat.png');
    assert.ok(statSync(shot).size > 10_000, `a real screenshot at ${shot}`);

    // The browser's handshake: a child of the traceparent in the page's URL, with its user agent.
    const connect = await eventually('the browser\'s WS CONNECT', () =>
      receiver.spansOf('chat-browser', `WS CONNECT ${ROUTE}`).find((s) => s.traceId === given.slice(3, 35)));
    assert.equal(connect.kind, SERVER);
    assert.equal(connect.parentSpanId, given.slice(36, 52));
    assert.equal(connect.attributes['http.response.status_code'], 101);
    assert.match(String(connect.attributes['user_agent.original']), /HeadlessChrome\/\d+/);
    assert.equal(connect.attributes['url.query'], `traceparent=${given}`);

    // Its message: a named WS RECEIVE continuing the page's trace, then the hop to bob on the other
    // instance (the server's WS SEND) and bob's own WS RECEIVE: browser → server → second client.
    const receive = await eventually('the browser message\'s WS RECEIVE', () =>
      receiver.spansOf('chat-browser', `WS RECEIVE ${ROUTE} chat`).find((s) => s.traceId === messageTp.traceId));
    assert.equal(receive.kind, CONSUMER);
    assert.equal(receive.parentSpanId, messageTp.spanId, 'the message\'s carried context is its parent');
    assert.equal(receive.attributes['enduser.id'], 'carla');
    assert.equal(receive.attributes['websocket.message.name'], 'chat');
    const toBob = await eventually('the server\'s WS SEND to bob', () =>
      receiver.spansOf('chat-browser', `WS SEND ${ROUTE}`).find((s) => s.traceId === messageTp.traceId && s.attributes['enduser.id'] === 'bob'));
    assert.equal(toBob.kind, PRODUCER);
    assert.equal(toBob.parentSpanId, receive.spanId);
    const bobReceive = await eventually('bob\'s WS RECEIVE of the browser\'s message', () =>
      receiver.spansOf('chat-node-bob', `WS RECEIVE ${ROUTE} chat`).find((s) => s.traceId === messageTp.traceId));
    assert.equal(bobReceive.parentSpanId, receive.spanId);

    // The other way: bob's message is shown under the trace it travelled in (bob's connection's:
    // WS_APM_MESSAGE_PARENT=handshake), where the server's WS RECEIVE of it sent it to the browser.
    await eventually('the server\'s WS SEND of bob\'s message to the browser', () =>
      receiver.spansOf('chat-browser', `WS SEND ${ROUTE}`).find((s) => {
        if (s.traceId !== bobTraceId || s.attributes['enduser.id'] !== 'carla') return false;
        const parent = byId(s.parentSpanId);
        return parent?.name === `WS RECEIVE ${ROUTE} chat` && parent.attributes['enduser.id'] === 'bob';
      }));

    // The token travelled in Sec-WebSocket-Protocol: in no recorded attribute.
    assert.ok(session.tokens.length >= 1);
    const recorded = JSON.stringify(receiver.spans);
    for (const token of session.tokens) assert.ok(!recorded.includes(token), 'token not recorded');
    assert.doesNotMatch(recorded, JWT);
    assert.doesNotMatch(recorded, /access_token\./);
    assert.deepEqual(session.errors, []);
  });

  test('server killed with SIGKILL: the page keeps retrying through failed fetches, queues what is typed, delivers it once the server is back', async () => {
    const { page } = session;
    const before = await attempts(page);
    server.proc.kill('SIGKILL');
    assert.equal((await server.exited()).signal, 'SIGKILL');
    // The token endpoint is unreachable now: the page says so and keeps trying.
    await status(page, /^Server unreachable \(Failed to fetch\), reconnecting in \d+\.\d s\.$/);
    await say(page, 'typed while the server was down');
    const queued = page.locator('#log li.mine.pending', { hasText: 'typed while the server was down' });
    await queued.locator('.state', { hasText: 'pending, waiting for the connection' }).waitFor();

    server = startServer('chat-browser', { PORTS: `${port1},${port2}`, INSTANCE: 'br', CHAT_TRACE_URL: TRACE_UI });
    await server.line(/^READY memory$/);
    await status(page, /^Connected to room lobby as carla\.$/);
    const sent = delivered(page, 'typed while the server was down');
    await sent.waitFor();
    assert.equal(await page.locator('#log li.pending').count(), 0);
    // (Bob may still be reconnecting: a chat room has no history, so he need not have seen it.)
    const traceId = await sent.getAttribute('data-trace-id');
    await eventually('the restarted server\'s WS RECEIVE of the queued message', () =>
      receiver.spansOf('chat-browser', `WS RECEIVE ${ROUTE} chat`).find((s) => s.traceId === traceId && s.attributes['enduser.id'] === 'carla'));
    assert.ok((await attempts(page)) >= before + 2, 'several attempts while the server was down');
    assert.deepEqual(session.errors, [], 'no uncaught error in the page');
  });
});

describe('the chat page in Chromium: refusals', { skip: noBrowser, timeout: 90_000 }, () => {
  test('a rejected token: the page says why, stops retrying, keeps the typed message and sends it after logging in again', async () => {
    // Every token this server issues has already expired.
    let server = startServer('chat-expired', { PORTS: '0', INSTANCE: 'exp', TOKEN_TTL_S: '-60' });
    const port = (await server.line(/^LISTENING exp (\d+) ws$/))[1];
    await server.line(/^READY memory$/);
    // A page clock the test can run forward: ten minutes pass in an instant.
    const s = await openPage(`http://127.0.0.1:${port}/?user=dana&room=lobby`, (context) => context.clock.install());
    try {
      const { page } = s;
      await status(page, /^Token rejected \(token expired\) — check user \/ log in again\.$/);
      assert.equal(await page.textContent('#join'), 'Log in again');
      await server.line(/^REJECTED exp ERR_JWT_EXPIRED$/);
      await say(page, 'written while rejected');
      const pending = page.locator('#log li.mine.pending', { hasText: 'written while rejected' });
      await pending.waitFor();
      await pending.locator('.state', { hasText: 'pending, waiting for the connection' }).waitFor();
      assert.equal(await page.inputValue('#say input[name=text]'), '', 'moved from the box to the log, as pending');

      assert.equal(await attempts(page), 1);
      await page.clock.runFor(10 * 60_000);
      assert.equal(await attempts(page), 1, 'no retry in ten minutes: retrying cannot fix a rejected token');
      assert.equal(s.sockets.length, 1);
      assert.equal((server.stdout().match(/^REJECTED /gm) ?? []).length, 1);
      const refused = await eventually('the refused handshake (401)', () =>
        receiver.spansOf('chat-expired', `WS CONNECT ${ROUTE}`).find((sp) => sp.attributes['http.response.status_code'] === 401));
      assert.match(String(refused.attributes['user_agent.original']), /HeadlessChrome/);

      // The operator fixes the token lifetime; the user logs in again and the message goes out.
      await stop(server);
      server = startServer('chat-expired', { PORTS: port, INSTANCE: 'exp' });
      await server.line(/^READY memory$/);
      await page.click('#join');
      await status(page, /^Connected to room lobby as dana\.$/);
      await delivered(page, 'written while rejected').waitFor();
      assert.deepEqual(s.errors, []);
    } finally {
      await s.close();
      await stop(server);
    }
  });

  test('?user=John Doe: the token endpoint\'s 400 is shown, no connection with a bogus token; a valid name then joins with a trace the page started', async () => {
    const server = startServer('chat-login', { PORTS: '0', INSTANCE: 'login' });
    const port = (await server.line(/^LISTENING login (\d+) ws$/))[1];
    await server.line(/^READY memory$/);
    const s = await openPage(`http://127.0.0.1:${port}/?user=John%20Doe&room=lobby&traceparent=00-not-a-trace`);
    try {
      const { page } = s;
      await status(page, /^Cannot log in as "John Doe": user name must be 1-64 letters, digits, _ or -\.$/);
      assert.equal(await page.inputValue('#login input[name=user]'), 'John Doe');
      assert.deepEqual(s.sockets, [], 'no WebSocket opened');
      assert.equal(await attempts(page), 1);

      await joinAs(page, 'John_Doe');
      assert.equal(s.sockets.length, 1);
      // The URL's traceparent was invalid: the page started a trace of its own instead.
      const started = parseTraceparent(new URL(s.sockets[0]).searchParams.get('traceparent') ?? '');
      assert.equal(await page.textContent('#connection-trace'), started.traceId);
      assert.equal(await page.locator('a').count(), 0, 'no CHAT_TRACE_URL: no links');
      const connect = await eventually('John_Doe\'s WS CONNECT', () =>
        receiver.spansOf('chat-login', `WS CONNECT ${ROUTE}`).find((sp) => sp.traceId === started.traceId));
      assert.equal(connect.parentSpanId, started.spanId);
      assert.equal(connect.attributes['http.response.status_code'], 101);
      assert.deepEqual(s.errors, []);
    } finally {
      await s.close();
      await stop(server);
    }
  });
});

describe('the chat page in Chromium, two server processes through Redis', { skip: noRedis, timeout: 90_000 }, () => {
  let redis: RedisServer | undefined;

  before(async () => {
    redis = await startRedis();
  });

  after(async () => {
    await redis?.stop();
  });

  test('browser → chat-a → Redis → chat-b → Node client is one trace', async () => {
    const a = startServer('chat-a', { PORTS: '0', INSTANCE: 'chat-a', REDIS_URL: redis!.url });
    const b = startServer('chat-b', { PORTS: '0', INSTANCE: 'chat-b', REDIS_URL: redis!.url });
    let erin: Child | undefined;
    let s: Session | undefined;
    try {
      const portA = (await a.line(/^LISTENING chat-a (\d+) ws$/))[1];
      const portB = (await b.line(/^LISTENING chat-b (\d+) ws$/))[1];
      await a.line(/^READY redis$/);
      await b.line(/^READY redis$/);
      erin = startClient('redis-node-erin', 'erin', portB, '0');
      await erin.line(/^OPEN erin instance=chat-b connection=1$/);
      s = await openPage(`http://127.0.0.1:${portA}/?user=fay&room=lobby`);
      await status(s.page, /^Connected to room lobby as fay\.$/);
      await say(s.page, 'across processes');
      await delivered(s.page, 'across processes').waitFor();
      await erin.line(/^GOT erin from=fay origin=chat-a via=chat-b text="across processes"$/);

      const { traceId, spanId } = parseTraceparent(s.sent.find((m) => m.text === 'across processes').trace.traceparent);
      assert.equal(await delivered(s.page, 'across processes').getAttribute('data-trace-id'), traceId);
      const receive = await eventually('chat-a\'s WS RECEIVE', () =>
        receiver.spansOf('chat-a', `WS RECEIVE ${ROUTE} chat`).find((sp) => sp.traceId === traceId));
      assert.equal(receive.parentSpanId, spanId);
      const send = await eventually('chat-b\'s WS SEND to erin', () =>
        receiver.spansOf('chat-b', `WS SEND ${ROUTE}`).find((sp) => sp.traceId === traceId && sp.attributes['enduser.id'] === 'erin'));
      assert.equal(send.parentSpanId, receive.spanId);
      const last = await eventually('erin\'s WS RECEIVE', () =>
        receiver.spansOf('redis-node-erin', `WS RECEIVE ${ROUTE} chat`).find((sp) => sp.traceId === traceId));
      assert.equal(last.parentSpanId, receive.spanId);
      assert.ok(byId(receive.parentSpanId) === undefined, 'the page records no span: its context is the remote parent');
      assert.deepEqual(s.errors, []);
    } finally {
      await s?.close();
      await Promise.all([erin, a, b].map(stop));
    }
  });
});

/** Save a screenshot to $BROWSER_SCREENSHOT_DIR (kept) or a temporary directory (removed). */
async function screenshot(page: Page, name: string): Promise<string> {
  const keep = process.env.BROWSER_SCREENSHOT_DIR;
  const dir = keep ? path.resolve(keep) : mkdtempSync(path.join(os.tmpdir(), 'ws-apm-screenshot-'));
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  await page.screenshot({ path: file });
  if (!keep) tempDirs.push(dir);
  return file;
}
