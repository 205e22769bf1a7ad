/**
 * The OTel adapter's direct line to the global context manager (src/adapters/otel/context-manager.ts):
 * it must always be the manager `context.with()` would use — registered after ws-apm's first
 * call, replaced, or disabled — with the real API and the real AsyncLocalStorage manager.
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { context, createContextKey, ROOT_CONTEXT } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { activeContext, withContext } from '../../src/adapters/otel/context-manager';

const KEY = createContextKey('ws-apm test');
const ctxOf = (value: string) => ROOT_CONTEXT.setValue(KEY, value);

afterEach(() => context.disable());

/** What a function run by withContext sees: its `this`, arguments, and the active context through both APIs. */
function seen(ctx = ctxOf('inner')) {
  const self = { name: 'self' };
  const result = withContext(
    ctx,
    function (this: unknown, a: number, b: string) {
      return { self: this, args: [a, b], ours: activeContext().getValue(KEY), api: context.active().getValue(KEY) };
    },
    self,
    [1, 'two'] as [number, string],
  );
  return { self, result };
}

test('with no manager registered: the API no-op (the function runs, the active context is the root)', () => {
  const { self, result } = seen();
  assert.equal(result.self, self);
  assert.deepEqual(result.args, [1, 'two']);
  assert.equal(result.ours, undefined);
  assert.equal(result.api, undefined);
  assert.equal(activeContext(), ROOT_CONTEXT);
});

test('a manager registered after the first call is used from then on', () => {
  seen(); // looked up while none was registered
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const { self, result } = seen();
  assert.equal(result.self, self);
  assert.deepEqual(result.args, [1, 'two']);
  assert.equal(result.ours, 'inner');
  assert.equal(result.api, 'inner');
  assert.equal(activeContext().getValue(KEY), undefined, 'restored after the call');
});

test('the active context is the API\'s inside a context the app made active', () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  context.with(ctxOf('app'), () => {
    assert.equal(activeContext().getValue(KEY), 'app');
    assert.equal(seen().result.api, 'inner');
    assert.equal(activeContext().getValue(KEY), 'app');
  });
});

test('a manager replaced (disabled, another registered) is never used again', () => {
  const first = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(first);
  assert.equal(seen().result.ours, 'inner');
  context.disable(); // disables `first` too: a stale line to it would lose every context
  const second = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(second);
  const { result } = seen();
  assert.equal(result.ours, 'inner');
  assert.equal(result.api, 'inner');
  context.disable();
  assert.equal(seen().result.ours, undefined, 'none registered: the no-op again');
});

test('the function\'s result and exception pass through unchanged', () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const boom = new Error('boom');
  assert.throws(
    () => withContext(ctxOf('x'), () => {
      throw boom;
    }, undefined, []),
    (err) => err === boom,
  );
  assert.equal(activeContext().getValue(KEY), undefined, 'restored after the exception');
  const value = {};
  assert.equal(withContext(ctxOf('x'), () => value, undefined, []), value);
});
