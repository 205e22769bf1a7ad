/**
 * Idempotent, reversible method wrapping on top of shimmer. Each wrapped function is
 * marked with a global symbol so a second copy of ws-apm in the same process sees
 * the first one's patch and leaves it alone; unwrapping restores exactly what was
 * there (an inherited method becomes inherited again).
 */
import shimmer from 'shimmer';
import { log } from '../logger';
import type { AnyFn } from '../tracer/adapter';

const MARK = Symbol.for('ws-apm.wrapped');

interface Patch {
  readonly target: object;
  readonly name: string;
  readonly wasOwn: boolean;
  /** Set by assignment (an ESM namespace from the import hook), undone the same way. */
  readonly original?: AnyFn;
  /** The function installed as `target[name]`. */
  readonly installed: AnyFn;
  /** Patches kept on top (see `keepOnTop`): how to wrap again, whether this one is still in use, and how many times it was wrapped again. */
  readonly onTop?: OnTop;
}

interface OnTop {
  readonly wrapper: (original: AnyFn) => AnyFn;
  live: boolean;
  readonly rewraps: number;
  /** Wrapped over too often: left where it is (it still does its part there). */
  gaveUp?: boolean;
}

/** Wrapping again is bounded: a tool that also insists on being outermost must not grow the chain forever. */
const MAX_REWRAPS = 8;

export interface WrapOptions {
  /**
   * Keep this wrapper the outermost one (`keepOnTop()`): for functions that other
   * instrumentations wrap too, where ws-apm must act before they do.
   */
  readonly onTop?: boolean;
  /** @internal how many times this function was wrapped again already. */
  readonly rewraps?: number;
}

export function isWrapped(fn: unknown): boolean {
  return typeof fn === 'function' && (fn as unknown as Record<symbol, unknown>)[MARK] === true;
}

/** The patches applied by one instrumentation handle, undone in reverse order. */
export class Patches {
  private readonly applied: Patch[] = [];

  /**
   * Replace `target[name]` with `wrapper(original)`. Returns false (and changes nothing)
   * when the property is missing, not a function, not writable, or already ours.
   */
  wrap<T extends object>(target: T, name: string, wrapper: (original: AnyFn) => AnyFn, options: WrapOptions = {}): boolean {
    const current = (target as Record<string, unknown>)[name];
    if (typeof current !== 'function') return false;
    if (isWrapped(current)) return false;
    const own = Object.getOwnPropertyDescriptor(target, name);
    if (own && (own.writable === false || own.configurable === false) && !own.set) {
      log.warn(`cannot instrument ${name}: the property is not writable`);
      return false;
    }
    if (typeof (target as { propertyIsEnumerable?: unknown }).propertyIsEnumerable !== 'function') {
      // An ESM namespace from import-in-the-middle (null prototype): its setters are the
      // only way to rebind an export, so assign rather than define.
      const wrapped = wrapper(current as AnyFn);
      Object.defineProperty(wrapped, MARK, { value: true });
      (target as Record<string, unknown>)[name] = wrapped;
      this.applied.push({ target, name, wasOwn: true, installed: wrapped, original: current as AnyFn });
      return true;
    }
    const onTop: OnTop | undefined = options.onTop ? { wrapper, live: true, rewraps: options.rewraps ?? 0 } : undefined;
    let installed: AnyFn | undefined;
    shimmer.wrap(target as Record<string, AnyFn>, name, (original: AnyFn) => {
      const inner = wrapper(original);
      // Kept on top: a copy left below another instrumentation's wrapper after `keepOnTop()`
      // wrapped again (or after unwrapAll) only passes calls through.
      const wrapped =
        onTop === undefined
          ? inner
          : function (this: unknown): unknown {
              return (onTop.live ? inner : original).apply(this, arguments as unknown as unknown[]);
            };
      Object.defineProperty(wrapped, MARK, { value: true });
      installed = wrapped;
      return wrapped;
    });
    if (installed === undefined) return false;
    this.applied.push({ target, name, wasOwn: own !== undefined, installed, onTop });
    return true;
  }

  /** Does this handle's wrapper of `target[name]` stand (wrapped here, not undone)? */
  applies(target: object, name: string): boolean {
    return this.applied.some((p) => p.target === target && p.name === name);
  }

  /** Is ws-apm's wrapper of `target[name]` (a kept-on-top patch) the outermost one? */
  isOnTop(target: object, name: string): boolean {
    const current = (target as Record<string, unknown>)[name];
    return this.applied.some((p) => p.onTop?.live === true && p.target === target && p.name === name && p.installed === current);
  }

  /**
   * Wrap again every kept-on-top function that another instrumentation wrapped (or replaced)
   * since ws-apm did. OpenTelemetry's instrumentations even unwrap any shimmer wrapper before
   * wrapping (so instrumentation-http, enabled after ws-apm, removed ws-apm's http.request and
   * with it every client connect); agents wrap on top. Either way their wrapper would see ws's
   * upgrade request before ws-apm and record it a second time, with the URL in clear.
   */
  keepOnTop(): void {
    for (const patch of [...this.applied]) {
      const onTop = patch.onTop;
      if (onTop === undefined || !onTop.live) continue;
      const current = (patch.target as Record<string, unknown>)[patch.name];
      if (current === patch.installed || typeof current !== 'function' || isWrapped(current)) continue;
      if (onTop.gaveUp) continue;
      if (onTop.rewraps >= MAX_REWRAPS) {
        onTop.gaveUp = true;
        log.warn(`${patch.name} keeps being wrapped over by another instrumentation: ws-apm stops wrapping it again`);
        continue;
      }
      onTop.live = false;
      if (!this.wrap(patch.target, patch.name, onTop.wrapper, { onTop: true, rewraps: onTop.rewraps + 1 })) onTop.live = true;
      else log.debug(`${patch.name} was wrapped after ws-apm: wrapped again on top`);
    }
  }

  get size(): number {
    return this.applied.length;
  }

  unwrapAll(): void {
    for (let i = this.applied.length - 1; i >= 0; i--) {
      const { target, name, wasOwn, installed, onTop, original } = this.applied[i];
      const record = target as Record<string, unknown>;
      if (onTop !== undefined) {
        // Unwrap only what is still on top; a copy below someone else's wrapper passes calls through.
        const wasLive = onTop.live;
        onTop.live = false;
        if (!wasLive || record[name] !== installed) continue;
      }
      if (original !== undefined) record[name] = original;
      else if (wasOwn) shimmer.unwrap(record as Record<string, AnyFn>, name);
      else delete record[name];
    }
    this.applied.length = 0;
  }
}
