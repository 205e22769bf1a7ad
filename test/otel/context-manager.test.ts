/**
 * The OTel adapter's direct line to the global context manager (src/adapters/otel/context-manager.ts):
 * it must always be the manager `context.with()` would use — registered after ws-apm's first
 * call, replaced, or disabled — with the real API and the real AsyncLocalStorage manager; and
 * the tracer's switches, by frame on Node 24, must behave exactly as the manager's `with`.
 */
import assert from 'node:assert/strict';
import { AsyncLocalStorage, createHook } from 'node:async_hooks';
import { afterEach, test } from 'node:test';
import { type Context, context, createContextKey, ROOT_CONTEXT } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { activeContext, switchKind, withContext } from '../../src/adapters/otel/context-manager';

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

// The tracer's own switches (no `this`, no arguments: its guard's trampoline). On a Node that keeps
// AsyncLocalStorage values in frames (Node 24), OpenTelemetry's manager is switched by frame;
// everywhere else, and for any other manager, through the manager's `with`.
const FRAMES = typeof (AsyncLocalStorage.prototype as { _propagate?: unknown })._propagate !== 'function';
const tracerCall = <R>(ctx: ReturnType<typeof ctxOf>, fn: () => R): R => withContext(ctx, fn, undefined, []);

test(`the tracer's switches with OpenTelemetry's AsyncLocalStorageContextManager go ${FRAMES ? 'by frame' : 'through its with'} on Node ${process.version}`, () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  assert.equal(switchKind(), FRAMES ? 'frame' : 'manager');
});

test("the tracer's switches: the context inside, restored after a return or a throw, nested switches, the app's context around", () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  context.with(ctxOf('app'), () => {
    const inside = tracerCall(ctxOf('outer'), () => {
      const nested = tracerCall(ctxOf('inner'), () => [activeContext().getValue(KEY), context.active().getValue(KEY)]);
      return [nested, context.active().getValue(KEY)];
    });
    assert.deepEqual(inside, [['inner', 'inner'], 'outer']);
    assert.equal(context.active().getValue(KEY), 'app');
    const boom = new Error('boom');
    assert.throws(() => tracerCall(ctxOf('x'), () => {
      throw boom;
    }), (err) => err === boom);
    assert.equal(context.active().getValue(KEY), 'app', 'restored after the exception');
  });
  assert.equal(context.active().getValue(KEY), undefined);
});

test("the tracer's switches: async work started inside keeps the context; another AsyncLocalStorage's value passes through", async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const other = new AsyncLocalStorage<string>();
  const later = await other.run('the app\'s', () =>
    tracerCall(ctxOf('switched'), () => {
      assert.equal(other.getStore(), 'the app\'s');
      return Promise.all([
        Promise.resolve().then(() => context.active().getValue(KEY)),
        new Promise((resolve) => setImmediate(() => resolve(context.active().getValue(KEY)))),
        new Promise((resolve) => setTimeout(() => resolve(other.getStore()), 1)),
      ]);
    }),
  );
  assert.deepEqual(later, ['switched', 'switched', 'the app\'s']);
});

test('an async_hooks destroy hook sees every resource a switch made end (nothing kept for a tool that tracks resources)', async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const made = new Set<number>();
  let ended = 0;
  const hook = createHook({
    init(id, type) {
      if (type === 'ws-apm') made.add(id);
    },
    destroy(id) {
      if (made.has(id)) ended++;
    },
  }).enable();
  try {
    for (let i = 0; i < 100; i++) tracerCall(ctxOf(`m${i}`), () => i);
    // Node reports destroys in a batch of its own, after the current macrotask.
    for (let turns = 0; ended < made.size && turns < 50; turns++) await new Promise((resolve) => setImmediate(resolve));
  } finally {
    hook.disable();
  }
  assert.equal(made.size, FRAMES ? 100 : 0);
  assert.equal(ended, made.size);
});

test("a manager that is not OpenTelemetry's own (a subclass with its own with) is always called through its with", () => {
  let calls = 0;
  class Counting extends AsyncLocalStorageContextManager {
    override with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
      calls++;
      return super.with(ctx, fn, thisArg, ...args);
    }
  }
  context.setGlobalContextManager(new Counting().enable());
  assert.equal(switchKind(), 'manager');
  assert.equal(tracerCall(ctxOf('sub'), () => context.active().getValue(KEY)), 'sub');
  assert.equal(calls, 1);
});
