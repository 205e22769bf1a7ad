/**
 * What ws-apm says about a backend it cannot reach (src/adapters/reachability.ts): one warning at
 * the first failure, one line when it answers again, nothing in between, and results taken in the
 * order their exports started.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { Reachability, reason, unreachable } from '../../src/adapters/reachability';
import { setLogLevel } from '../../src/logger';
import { type CapturedStderr, captureStderr } from '../helpers/stderr';

const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
const timeout = new Error('Request Timeout');

let stderr: CapturedStderr;
beforeEach(() => {
  setLogLevel('warn');
  stderr = captureStderr();
});
afterEach(() => stderr.restore());

function lines(): string[] {
  return stderr.text().split('\n').filter((l) => l.length > 0);
}

describe('reachability', () => {
  test('many failures: one warning; then one line when it answers; a new outage is a new warning', () => {
    const r = new Reachability('the collector');
    for (let i = 0; i < 5; i++) r.failed('http://c:1', r.begin(), refused);
    r.succeeded('http://c:1', r.begin());
    r.succeeded('http://c:1', r.begin());
    r.failed('http://c:1', r.begin(), timeout);
    assert.deepEqual(lines(), [
      '[ws-apm] warn: the collector at http://c:1 refused the connection: telemetry is dropped until it answers (reported again when it does)',
      '[ws-apm] info: the collector at http://c:1 answers again: telemetry is delivered',
      '[ws-apm] warn: the collector at http://c:1 did not answer in time: telemetry is dropped until it answers (reported again when it does)',
    ]);
  });

  test('a request that hung since before the recovery and fails after it says nothing about now', () => {
    const r = new Reachability('the collector');
    r.failed('http://c:2', r.begin(), timeout);
    const hung = r.begin();
    r.succeeded('http://c:2', r.begin());
    r.failed('http://c:2', hung, timeout);
    assert.equal(lines().length, 2, lines().join('\n'));
  });

  test('the recovery line is shown at the default level (warn), like the warning it closes; silent shows neither', () => {
    setLogLevel('silent');
    const r = new Reachability('the collector');
    r.failed('http://c:3', r.begin(), refused);
    r.succeeded('http://c:3', r.begin());
    assert.deepEqual(lines(), []);
  });

  test('each address on its own', () => {
    const r = new Reachability('the collector');
    r.failed('http://a:1', r.begin(), refused);
    r.failed('http://b:1', r.begin(), refused);
    r.succeeded('http://a:1', r.begin());
    assert.equal(lines().length, 3);
    assert.match(lines()[2], /http:\/\/a:1 answers again/);
  });
});

describe('what an export error means', () => {
  test('refused, timed out, reset and unknown hosts are unreachable; an error answer is not', () => {
    assert.equal(unreachable(refused), true);
    assert.equal(unreachable(timeout), true);
    assert.equal(unreachable(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })), true);
    assert.equal(unreachable(Object.assign(new Error('getaddrinfo ENOTFOUND x'), { code: 'ENOTFOUND' })), true);
    assert.equal(unreachable(new Error('14 UNAVAILABLE: No connection established')), true);
    assert.equal(unreachable(Object.assign(new Error('Unauthorized'), { code: 401 })), false);
    assert.equal(unreachable(undefined), false);
  });

  test('in words', () => {
    assert.equal(reason(refused), 'refused the connection');
    assert.equal(reason(timeout), 'did not answer in time');
    assert.equal(reason(Object.assign(new Error('Unauthorized'), { code: 401 })), 'answered HTTP 401');
    assert.equal(reason('rejected the license key'), 'rejected the license key');
    assert.equal(reason(new Error('odd')), 'failed (odd)');
  });
});
