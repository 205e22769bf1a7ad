/**
 * The global context manager, called directly: every context switch and read of the OTel
 * adapter goes through here, the message path among them. `context.with()` and
 * `context.active()` of @opentelemetry/api look the manager up on every call (the global
 * registry, its version checked against this copy of the API) and pass `with`'s arguments
 * through one more rest/spread; an echoed message makes two or three such calls. Here the
 * manager the API chose is kept, and used for as long as the registry still holds it: one
 * property read per call. Registered, replaced or disabled later, it is looked up again.
 */
import { context, type Context, type ContextManager } from '@opentelemetry/api';

/** Where @opentelemetry/api 1.x keeps its globals (`global-utils`: `opentelemetry.js.api.<major>`). */
const REGISTRY = Symbol.for('opentelemetry.js.api.1');

type ContextApi = { _getContextManager?: () => ContextManager };

let manager: ContextManager | undefined;

/** The API's own calls, as a manager (only `with` and `active` are used): for an API without `_getContextManager`. */
const apiManager = {
  with: (ctx: Context, fn: (...args: unknown[]) => unknown, thisArg?: unknown, ...args: unknown[]) => context.with(ctx, fn, thisArg, ...args),
  active: () => context.active(),
} as unknown as ContextManager;

/** The manager `context.with()` would use now. */
function current(): ContextManager {
  const registered = (globalThis as { [REGISTRY]?: { context?: ContextManager } })[REGISTRY]?.context;
  if (registered !== undefined && registered === manager) return registered;
  const lookup = (context as unknown as ContextApi)._getContextManager;
  // Another shape of the API: no shortcut, its own calls.
  if (typeof lookup !== 'function') {
    manager = undefined;
    return apiManager;
  }
  const chosen = lookup.call(context);
  // Kept only when it is the registered one (not the API's no-op, nor a version it refused).
  manager = chosen === registered ? chosen : undefined;
  return chosen;
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
  return current().with(ctx, applyTo<A, R>, undefined, fn, thisArg, args);
}

/** `context.active()`. */
export function activeContext(): Context {
  return current().active();
}
