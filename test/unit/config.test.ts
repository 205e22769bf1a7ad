/**
 * Settings and naming rules, as pure functions: every WS_APM_* variable parses, bad
 * values warn once naming the variable and fall back, and user input stays bounded.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_REDACT_QUERY_PARAMS, editDistance, ENV_VARS, loadConfig } from '../../src/config';
import { JsonFieldReader } from '../../src/tracer/json-field';
import { MessageNamer, OTHER, queryParam, RouteNamer, UrlRedactor } from '../../src/tracer/naming';
import { isValidTraceparent, sanitizeCarrier } from '../../src/tracer/propagation';

/** Capture what ws-apm writes to stderr while `fn` runs. */
function stderrOf(fn: () => void): string[] {
  const write = process.stderr.write;
  let out = '';
  process.stderr.write = ((chunk: string) => {
    out += chunk;
    return true;
  }) as typeof process.stderr.write;
  try {
    fn();
  } finally {
    process.stderr.write = write;
  }
  return out.split('\n').filter((l) => l.length > 0);
}

describe('configuration', () => {
  test('defaults', () => {
    const c = loadConfig({}, {});
    assert.equal(c.enabled, true);
    assert.equal(c.backend, 'auto');
    assert.deepEqual(c.messageName, []);
    assert.equal(c.maxMessageNames, 100);
    assert.equal(c.messageParent, 'link');
    assert.equal(c.protocol, 'auto');
    assert.equal(c.messageSampleRate, 1);
    assert.equal(c.traceOrphanSends, false);
    assert.equal(c.captureBody, 'off');
    assert.deepEqual(c.redactQueryParams, DEFAULT_REDACT_QUERY_PARAMS);
    assert.equal(c.propagationQueryParam, '');
    assert.ok(Object.isFrozen(c));
  });

  test('every variable is read from the environment', () => {
    const env = {
      WS_APM_ENABLED: 'false',
      WS_APM_BACKEND: 'Console',
      WS_APM_MESSAGE_NAME: 'meta.action',
      WS_APM_MAX_MESSAGE_NAMES: '7',
      WS_APM_MESSAGE_CONTEXT: 'meta.trace',
      WS_APM_MESSAGE_NAME_MAX_BYTES: '1024',
      WS_APM_MAX_ROUTES: '9',
      WS_APM_ROUTES: '/rooms/:id, /files/*',
      WS_APM_IGNORE_ROUTES: '/health',
      WS_APM_MESSAGE_PARENT: 'handshake',
      WS_APM_PROTOCOL: 'none',
      WS_APM_MESSAGE_SAMPLE_RATE: '0.25',
      WS_APM_TRACE_ORPHAN_SENDS: 'yes',
      WS_APM_TRACE_HEARTBEAT: '1',
      WS_APM_CAPTURE_BODY: 'all',
      WS_APM_CAPTURE_BODY_MAX_BYTES: '64',
      WS_APM_REDACT_QUERY_PARAMS: 'sig,ticket',
      WS_APM_PROPAGATION_QUERY_PARAM: 'tp',
      WS_APM_LOG_LEVEL: 'debug',
      WS_APM_FLUSH_TIMEOUT_MS: '500',
      WS_APM_MESSAGE_RATE_LIMIT: '0',
      WS_APM_KEEP_ERRORS: 'false',
      WS_APM_KEEP_SLOW_MS: '0',
      WS_APM_KEEP_RATE_LIMIT: '3',
      WS_APM_MAX_SEND_SPANS: '2',
    };
    // The list above is every variable ws-apm reads, and each moves its setting off the default.
    assert.deepEqual(Object.keys(env).sort(), [...ENV_VARS].sort());
    const c = loadConfig({}, env);
    const defaults = loadConfig({}, {}) as unknown as Record<string, unknown>;
    for (const [key, value] of Object.entries(c)) assert.notDeepEqual(value, defaults[key], `${key} is still its default`);
    assert.deepEqual(
      { ...c },
      {
        enabled: false, backend: 'console', messageName: ['meta', 'action'], maxMessageNames: 7, messageContext: ['meta', 'trace'],
        messageNameMaxBytes: 1024,
        maxRoutes: 9, routes: ['/rooms/:id', '/files/*'], ignoreRoutes: ['/health'], messageParent: 'handshake', protocol: 'none',
        messageSampleRate: 0.25, traceOrphanSends: true, traceHeartbeat: true, captureBody: 'all', captureBodyMaxBytes: 64,
        redactQueryParams: ['sig', 'ticket'], propagationQueryParam: 'tp', logLevel: 'debug', flushTimeoutMs: 500,
        messageRateLimit: 0, keepErrors: false, keepSlowMs: 0, keepRateLimit: 3, maxSendSpans: 2,
      },
    );
  });

  test('invalid values: one line naming the variable, the value and what is accepted; then the default', () => {
    const bad = {
      WS_APM_ENABLED: 'sure',
      WS_APM_MESSAGE_SAMPLE_RATE: '2',
      WS_APM_MAX_MESSAGE_NAMES: '1e3',
      WS_APM_MESSAGE_NAME: 'a..b',
      WS_APM_ROUTES: 'no-slash',
      WS_APM_CAPTURE_BODY: 'some',
      WS_APM_PROPAGATION_QUERY_PARAM: 'a b',
      WS_APM_FLUSH_TIMEOUT_MS: '-1',
      WS_APM_MESSAGE_RATE_LIMIT: 'lots',
      WS_APM_KEEP_ERRORS: 'maybe',
      WS_APM_KEEP_SLOW_MS: '1.5',
      WS_APM_MAX_SEND_SPANS: '-3',
      WS_APM_PROTOCOL: 'graphql',
    };
    let c!: ReturnType<typeof loadConfig>;
    const lines = stderrOf(() => (c = loadConfig({}, bad)));
    assert.equal(lines.length, Object.keys(bad).length);
    for (const name of Object.keys(bad)) {
      const line = lines.find((l) => l.includes(`invalid ${name}=`));
      assert.ok(line, `warning for ${name}`);
      assert.match(line, /^\[ws-apm\] warn: invalid WS_APM_\w+=".*": expected .+; using the default ".*"$/);
    }
    assert.equal(c.enabled, true);
    assert.equal(c.messageSampleRate, 1);
    assert.equal(c.maxMessageNames, 100);
    assert.deepEqual(c.routes, []);
    assert.equal(c.captureBody, 'off');
    assert.equal(c.flushTimeoutMs, 2000);
    assert.equal(c.messageRateLimit, 100);
    assert.equal(c.keepErrors, true);
    assert.equal(c.keepSlowMs, 250);
    assert.equal(c.maxSendSpans, 10);
    assert.equal(c.protocol, 'auto');
  });

  test('an unknown WS_APM_* variable: one warning naming the nearest valid setting, once per process, and the default kept', () => {
    const lines = stderrOf(() => {
      assert.equal(loadConfig({}, { WS_APM_BACKEN: 'console' }).backend, 'auto');
      loadConfig({}, { WS_APM_BACKEN: 'console' });
    });
    assert.deepEqual(lines, ['[ws-apm] warn: unknown variable WS_APM_BACKEN, ignored: did you mean WS_APM_BACKEND?']);
  });

  test('unknown variables: a swap, a missing part, the wrong case, and nothing close', () => {
    const lines = stderrOf(() => loadConfig({}, {
      WS_APM_LOG_LEVLE: 'debug', WS_APM_SAMPLE_RATE: '0.5', ws_apm_routes: '/a', WS_APM_COLOUR: 'blue', WS_APM_BACKEND: 'none',
    }));
    assert.deepEqual(lines, [
      '[ws-apm] warn: unknown variable WS_APM_LOG_LEVLE, ignored: did you mean WS_APM_LOG_LEVEL?',
      '[ws-apm] warn: unknown variable WS_APM_SAMPLE_RATE, ignored: did you mean WS_APM_MESSAGE_SAMPLE_RATE?',
      '[ws-apm] warn: unknown variable ws_apm_routes, ignored: did you mean WS_APM_ROUTES?',
      '[ws-apm] warn: unknown variable WS_APM_COLOUR, ignored: not a ws-apm setting (the README lists them)',
    ]);
  });

  test('unknown variables are not reported when WS_APM_LOG_LEVEL asks for errors only', () => {
    assert.deepEqual(stderrOf(() => loadConfig({}, { WS_APM_ENABELD: 'false', WS_APM_LOG_LEVEL: 'error' })), []);
  });

  test('edit distance: insertions, deletions, substitutions and neighbour swaps count one each', () => {
    assert.equal(editDistance('BACKEND', 'BACKEND'), 0);
    assert.equal(editDistance('BACKEN', 'BACKEND'), 1);
    assert.equal(editDistance('BAKCEND', 'BACKEND'), 1);
    assert.equal(editDistance('BACKENDS', 'BACKEND'), 1);
    assert.equal(editDistance('BACXEND', 'BACKEND'), 1);
    assert.equal(editDistance('', 'ROUTES'), 6);
    assert.equal(editDistance('ROUTES', 'ROTUSE'), 2);
  });

  test('programmatic options win over the environment and are validated the same way', () => {
    const lines = stderrOf(() => {
      // A JavaScript caller can pass anything: 'nope' for a boolean is reported, not trusted.
      const traceHeartbeat = 'nope' as unknown as boolean;
      const c = loadConfig({ messageSampleRate: 0.5, routes: ['/a/:id'], messageName: 'type', traceHeartbeat }, { WS_APM_MESSAGE_SAMPLE_RATE: '0.1' });
      assert.equal(c.messageSampleRate, 0.5);
      assert.deepEqual(c.routes, ['/a/:id']);
      assert.deepEqual(c.messageName, ['type']);
      assert.equal(c.traceHeartbeat, false);
    });
    assert.equal(lines.length, 1);
    assert.match(lines[0], /invalid option traceHeartbeat="nope"/);
  });
});

describe('naming', () => {
  test('routes: path without query, templates, a trailing wildcard, and a cap', () => {
    const r = new RouteNamer({ routes: ['/rooms/:id', '/files/*'], ignoreRoutes: ['/health'], maxRoutes: 2 });
    assert.equal(r.route('/rooms/42?x=1'), '/rooms/:id');
    assert.equal(r.route('/files/a/b/c'), '/files/*');
    assert.equal(r.route(undefined), '/');
    assert.equal(r.route('/one'), '/one');
    assert.equal(r.route('/two'), OTHER);
    assert.equal(r.route('/rooms/7'), '/rooms/:id', 'templates still match past the cap');
    assert.equal(r.isIgnored('/health', '/health?probe=1'), true);
  });

  test('message names: only short strings from text JSON under the byte limit, then capped', () => {
    const n = new MessageNamer({ messageName: ['meta', 'action'], maxMessageNames: 2 });
    const reader = new JsonFieldReader([['meta', 'action']]);
    const name = (v: unknown): string | undefined => {
      const text = typeof v === 'string' ? v : JSON.stringify(v);
      // The byte limit is the tracer's (WS_APM_MESSAGE_NAME_MAX_BYTES), applied before reading.
      if (Buffer.byteLength(text) > 200) return undefined;
      return reader.read(Buffer.from(text)) ? n.name(reader.string(0)) : undefined;
    };
    assert.equal(name({ meta: { action: 'join' } }), 'join');
    assert.equal(name({ meta: { action: 5 } }), undefined);
    assert.equal(name({ meta: { action: { deep: 1 } } }), undefined);
    assert.equal(name({ meta: 'x' }), undefined);
    assert.equal(name('{not json'), undefined);
    assert.equal(name({ meta: { action: 'x'.repeat(80) } }), OTHER);
    assert.equal(name({ meta: { action: 'a b' } }), OTHER);
    assert.equal(name({ meta: { action: 'leave' } }), 'leave');
    assert.equal(name({ meta: { action: 'third' } }), OTHER);
    assert.equal(name({ meta: { action: 'join' } }), 'join');
    assert.equal(name({ meta: { action: 'join' }, pad: 'x'.repeat(300) }), undefined, 'over the byte limit');
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    assert.equal(reader.read(deep), true);
    assert.equal(n.name(reader.string(0)), undefined);
  });

  test('redaction: secret query parameters and credentials never survive', () => {
    const r = new UrlRedactor(DEFAULT_REDACT_QUERY_PARAMS);
    assert.equal(r.redact('/chat?room=1&token=abc'), '/chat?room=1&token=REDACTED');
    assert.equal(r.redact('wss://user:pa%40ss@example.com:8443/x?JWT=1&a=2'), 'wss://REDACTED@example.com:8443/x?JWT=REDACTED&a=2');
    assert.equal(r.redact('/x?api%5Fkey=1'), '/x?api%5Fkey=REDACTED');
    assert.equal(r.redact('/x?password'), '/x?password');
    assert.equal(r.redact('/plain'), '/plain');
    assert.equal(queryParam('/x?tp=a%20b&y=1', 'tp'), 'a b');
    assert.equal(queryParam('/x?tp=%E0%A4%A', 'tp'), undefined);
  });

  test('trace context: only valid W3C traceparents pass, vendor headers are bounded', () => {
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    assert.equal(isValidTraceparent(tp), true);
    assert.equal(isValidTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future'), true);
    for (const bad of ['', 'x', tp.toUpperCase(), tp.replace('00-', 'ff-'), `${tp}-x`, tp.replace(/4bf9.*4736/, '0'.repeat(32)), 42, undefined]) {
      assert.equal(isValidTraceparent(bad), false, String(bad));
    }
    assert.deepEqual(sanitizeCarrier({ traceparent: tp, tracestate: 'a=b', other: 'x' }), { traceparent: tp, tracestate: 'a=b' });
    assert.equal(sanitizeCarrier({ traceparent: [tp, tp] }), undefined);
    assert.deepEqual(sanitizeCarrier({ traceparent: 'bad', newrelic: 'abc' }, ['newrelic']), { newrelic: 'abc' });
    assert.equal(sanitizeCarrier({ newrelic: 'x'.repeat(5000) }, ['newrelic']), undefined);
    assert.deepEqual(sanitizeCarrier({ traceparent: tp, tracestate: 's'.repeat(600) }), { traceparent: tp });
  });
});
