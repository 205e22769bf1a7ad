/**
 * The global context manager, called directly: every context switch and read of the OTel
 * adapter goes through here, the message path among them. `context.with()` and
 * `context.active()` of @opentelemetry/api look the manager up on every call (the global
 * registry, its version checked against this copy of the API) and pass `with`'s arguments
 * through one more rest/spread; an echoed message makes two or three such calls. Here the
 * manager the API chose is kept, and used for as long as the registry still holds it: one
 * property read per call. Registered, replaced or disabled later, it is looked up again.
 *
 * Where Node keeps AsyncLocalStorage values in async context frames (Node 24's default),
 * `AsyncLocalStorage#run` builds two frames per call — one to enter, one more to restore the
 * value before — each a copy of a Map subclass, about 130 ns apiece: the largest single cost of
 * an untraced message there. For OpenTelemetry's own AsyncLocalStorageContextManager (the SDK's
 * default), the tracer's switches (`enterFrame`) build only the entering frame, inside an
 * AsyncResource made on the spot: it holds the frame that was current, and Node puts that very
 * frame back when the call returns.
 */
import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
import { context, type Context, type ContextManager } from '@opentelemetry/api';

/** Where @opentelemetry/api 1.x keeps its globals (`global-utils`: `opentelemetry.js.api.<major>`). */
const REGISTRY = Symbol.for('opentelemetry.js.api.1');

type ContextApi = { _getContextManager?: () => ContextManager };

/**
 * Does this Node keep AsyncLocalStorage values in async context frames? Its async_hooks-based
 * implementation (Node 20, 22, and 24 with --no-async-context-frame) has `_propagate`, the init
 * hook that copies values onto each new resource; there `run` is cheap and a resource is not.
 */
const FRAMES = typeof (AsyncLocalStorage.prototype as { _propagate?: unknown })._propagate !== 'function';

let manager: ContextManager | undefined;
/** The kept manager's AsyncLocalStorage, when the manager is OpenTelemetry's own AsyncLocalStorageContextManager on a Node with frames. */
let storage: AsyncLocalStorage<Context> | undefined;

/** The API's own calls, as a manager (only `with` and `active` are used): for an API without `_getContextManager`. */
const apiManager = {
  with: (ctx: Context, fn: (...args: unknown[]) => unknown, thisArg?: unknown, ...args: unknown[]) => context.with(ctx, fn, thisArg, ...args),
  active: () => context.active(),
} as unknown as ContextManager;

/** The manager `context.with()` would use now. */
function current(): ContextManager {
  const registered = (globalThis as { [REGISTRY]?: { context?: ContextManager } })[REGISTRY]?.context;
  if (registered !== undefined && registered === manager) return registered;
  storage = undefined;
  const lookup = (context as unknown as ContextApi)._getContextManager;
  // Another shape of the API: no shortcut, its own calls.
  if (typeof lookup !== 'function') {
    manager = undefined;
    return apiManager;
  }
  const chosen = lookup.call(context);
  // Kept only when it is the registered one (not the API's no-op, nor a version it refused).
  manager = chosen === registered ? chosen : undefined;
  if (manager !== undefined) storage = frameStorage(manager);
  return chosen;
}

/**
 * The AsyncLocalStorage behind `m` when `m.with(ctx, fn)` is exactly `storage.run(ctx, fn)`:
 * OpenTelemetry's AsyncLocalStorageContextManager itself (not a subclass, `with` not replaced),
 * on a Node with frames. Otherwise undefined: the manager's own `with` is called.
 */
function frameStorage(m: ContextManager): AsyncLocalStorage<Context> | undefined {
  if (!FRAMES) return undefined;
  const proto = Object.getPrototypeOf(m) as { constructor?: { name?: unknown } } | null;
  if (proto?.constructor?.name !== 'AsyncLocalStorageContextManager' || !Object.prototype.hasOwnProperty.call(proto, 'with')) return undefined;
  if (Object.prototype.hasOwnProperty.call(m, 'with')) return undefined;
  const als = (m as { _asyncLocalStorage?: unknown })._asyncLocalStorage;
  return als instanceof AsyncLocalStorage ? (als as AsyncLocalStorage<Context>) : undefined;
}

function applyTo<A extends unknown[], R>(fn: (...args: A) => R, thisArg: unknown, args: A): R {
  return fn.apply(thisArg, args);
}

/**
 * `context.with(ctx, fn, thisArg, ...args)`, without the bound function a manager makes of
 * `fn` for a `thisArg` (AsyncLocalStorageContextManager: `fn.bind(thisArg)`, one per call, on
 * every message): the manager is given a plain function and no `thisArg`.
 */
export function withContext<A extends unknown[], R>(ctx: Context, fn: (...args: A) => R, thisArg: unknown, args: A): R {
  // The tracer's own calls (its guard's trampoline: no `this`, no arguments) go in as they are:
  // no arguments for the manager and its AsyncLocalStorage to gather into arrays and spread again.
  if (thisArg === undefined && args.length === 0) {
    const m = current();
    return storage !== undefined ? enterFrame(storage, ctx, fn as () => R) : m.with(ctx, fn as () => R);
  }
  return current().with(ctx, applyTo<A, R>, undefined, fn, thisArg, args);
}

/** What `entered` runs next (set just before, taken at once: a nested switch sets its own). */
let nextStorage: AsyncLocalStorage<Context> | undefined;
let nextContext: Context | undefined;
let nextFn: (() => unknown) | undefined;

function entered(): unknown {
  const fn = nextFn!;
  nextStorage!.enterWith(nextContext!);
  nextStorage = undefined;
  nextContext = undefined;
  nextFn = undefined;
  return fn();
}

/**
 * `storage.run(ctx, fn)` with one frame built instead of two: the resource holds the frame that
 * is current now, `entered` builds the one with `ctx` in it, and when `fn` returns or throws,
 * Node makes the resource's frame current again. The resource is destroyed at once (an
 * async_hooks destroy hook sees it end, as a tick's resource does after its callback).
 */
function enterFrame<R>(als: AsyncLocalStorage<Context>, ctx: Context, fn: () => R): R {
  const resource = new AsyncResource('ws-apm', { requireManualDestroy: true });
  nextStorage = als;
  nextContext = ctx;
  nextFn = fn;
  try {
    return resource.runInAsyncScope(entered) as R;
  } finally {
    resource.emitDestroy();
  }
}

/** `context.active()`. */
export function activeContext(): Context {
  return current().active();
}

/**
 * How `withContext` switches for the tracer now: through the manager's `with`, or by frame.
 * @internal exported for its unit test.
 */
export function switchKind(): 'manager' | 'frame' {
  current();
  return storage !== undefined ? 'frame' : 'manager';
}
