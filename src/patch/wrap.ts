/**
 * Idempotent, reversible method wrapping on top of shimmer. Each wrapped function is
 * marked with a global symbol so a second copy of ws-apm in the same process sees
 * the first one's patch and leaves it alone; unwrapping restores exactly what was
 * there (an inherited method becomes inherited again).
 */
import shimmer from 'shimmer';
import { log } from '../logger';

const MARK = Symbol.for('ws-apm.wrapped');

type AnyFn = (...args: any[]) => any;

interface Patch {
  readonly target: object;
  readonly name: string;
  readonly wasOwn: boolean;
  /** Set by assignment (an ESM namespace from the import hook), undone the same way. */
  readonly original?: AnyFn;
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
  wrap<T extends object>(target: T, name: string, wrapper: (original: AnyFn) => AnyFn): boolean {
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
      this.applied.push({ target, name, wasOwn: true, original: current as AnyFn });
      return true;
    }
    shimmer.wrap(target as Record<string, AnyFn>, name, (original: AnyFn) => {
      const wrapped = wrapper(original);
      Object.defineProperty(wrapped, MARK, { value: true });
      return wrapped;
    });
    this.applied.push({ target, name, wasOwn: own !== undefined });
    return true;
  }

  get size(): number {
    return this.applied.length;
  }

  unwrapAll(): void {
    for (let i = this.applied.length - 1; i >= 0; i--) {
      const { target, name, wasOwn, original } = this.applied[i];
      const record = target as Record<string, unknown>;
      if (original !== undefined) record[name] = original;
      else if (wasOwn) shimmer.unwrap(record as Record<string, AnyFn>, name);
      else delete record[name];
    }
    this.applied.length = 0;
  }
}
