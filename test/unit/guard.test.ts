/**
 * The one guard around the adapter (src/tracer/guard.ts): whatever an adapter's run does —
 * throw before or after user code, swallow the app's exception, never call back, call back
 * twice — user code runs exactly once, with its own `this`, arguments, return value and
 * exception; each fault is logged once; a backend that keeps failing is switched off.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Adapter } from '../../src/tracer/adapter';
import { GuardedAdapter, MAX_FAULTS } from '../../src/tracer/guard';
import { NOOP_ADAPTER } from '../../src/tracer/noop';
import { captureStderr } from '../helpers/stderr';

type Run = Adapter['run'];

function adapterWithRun(run: Run): Adapter {
  return { ...NOOP_ADAPTER, name: 'test', run, start: () => ({ op: true }) } as unknown as Adapter;
}

const OP = { op: true };

function userCode() {
  const calls: unknown[][] = [];
  const self = { me: true };
  const fn = function (this: unknown, ...args: unknown[]): string {
    calls.push([this, ...args]);
    return 'result';
  };
  return { calls, self, fn };
}

const cases: Array<[string, Run]> = [
  ['throws before running user code', () => {
    throw new Error('adapter broke before');
  }],
  ['throws after user code returned', (_op, fn, thisArg, args) => {
    fn.apply(thisArg, args);
    throw new Error('adapter broke after');
  }],
  ['returns without running user code', () => undefined as never],
  ['runs user code and returns something else', (_op, fn, thisArg, args) => {
    fn.apply(thisArg, args);
    return 'not yours' as never;
  }],
  ['calls user code twice', (_op, fn, thisArg, args) => {
    fn.apply(thisArg, args);
    return fn.apply(thisArg, args);
  }],
];

for (const [name, run] of cases) {
  test(`an adapter whose run ${name}: user code runs once, with its this, arguments and return value`, () => {
    const stderr = captureStderr();
    try {
      const guard = new GuardedAdapter(adapterWithRun(run));
      const { calls, self, fn } = userCode();
      const result = guard.run(OP, fn, self, ['message', 'data']);
      assert.equal(result, 'result');
      assert.equal(calls.length, 1);
      assert.deepEqual(calls[0], [self, 'message', 'data']);
    } finally {
      stderr.restore();
    }
  });
}

test('the app exception passes through unchanged, also when the adapter swallows it or throws its own', () => {
  const stderr = captureStderr();
  try {
    const appError = new Error('listener failed');
    const fn = (): never => {
      throw appError;
    };
    const swallowing = new GuardedAdapter(adapterWithRun((_op, f, t, a) => {
      try {
        return f.apply(t, a);
      } catch {
        return undefined as never;
      }
    }));
    assert.throws(() => swallowing.run(OP, fn, undefined, []), (err) => err === appError);
    const replacing = new GuardedAdapter(adapterWithRun((_op, f, t, a) => {
      try {
        return f.apply(t, a);
      } catch {
        throw new Error('adapter replaced the error');
      }
    }));
    assert.throws(() => replacing.run(OP, fn, undefined, []), (err) => err === appError);
    const passing = new GuardedAdapter(adapterWithRun((_op, f, t, a) => f.apply(t, a)));
    assert.throws(() => passing.run(OP, fn, undefined, []), (err) => err === appError);
    assert.doesNotMatch(stderr.text(), /listener failed/, 'the app exception is not logged as a fault');
  } finally {
    stderr.restore();
  }
});

test('nested runs (a listener that runs another operation) keep each outcome apart', () => {
  const guard = new GuardedAdapter(adapterWithRun((_op, f, t, a) => f.apply(t, a)));
  const inner = (): string => 'inner';
  const outer = (): string => `${guard.run(OP, inner, undefined, [])}+outer`;
  assert.equal(guard.run(OP, outer, undefined, []), 'inner+outer');
  const boom = new Error('inner failed');
  const outerCatches = (): string => {
    try {
      guard.run(OP, () => {
        throw boom;
      }, undefined, []);
    } catch (err) {
      assert.equal(err, boom);
    }
    return 'outer survived';
  };
  assert.equal(guard.run(OP, outerCatches, undefined, []), 'outer survived');
});

test('each failing method is logged once, however often it fails', () => {
  const stderr = captureStderr();
  try {
    const failing = { ...NOOP_ADAPTER, name: 'flaky', start: () => {
      throw new Error('start broke');
    } } as unknown as Adapter;
    const guard = new GuardedAdapter(failing);
    for (let i = 0; i < 20; i++) assert.equal(guard.start({} as never), undefined);
    assert.equal(stderr.text().split('\n').filter((l) => l.includes('flaky start failed')).length, 1, stderr.text());
  } finally {
    stderr.restore();
  }
});

test(`after ${MAX_FAULTS} faults the backend is switched off, with one warning, and no longer called`, () => {
  const stderr = captureStderr();
  try {
    let calls = 0;
    const failing = { ...NOOP_ADAPTER, name: 'broken', start: () => {
      calls++;
      throw new Error('start broke');
    } } as unknown as Adapter;
    const guard = new GuardedAdapter(failing);
    for (let i = 0; i < MAX_FAULTS + 50; i++) guard.start({} as never);
    assert.equal(calls, MAX_FAULTS);
    assert.equal(stderr.text().split('\n').filter((l) => l.includes('stops recording telemetry')).length, 1, stderr.text());
    const { calls: userCalls, fn } = userCode();
    assert.equal(guard.run(OP, fn, undefined, []), 'result');
    assert.equal(userCalls.length, 1);
  } finally {
    stderr.restore();
  }
});
