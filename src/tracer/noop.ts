/**
 * The adapter that records nothing: what ws-apm runs with when a backend is missing,
 * disabled, or switched off by the guard after repeated faults. User code still runs
 * exactly once, with its own `this`, arguments and exceptions.
 */
import type { Adapter } from './adapter';

const KEY = Object.freeze({});

export const NOOP_ADAPTER: Adapter<never, never> = Object.freeze({
  name: 'none',
  start: () => undefined,
  end: () => undefined,
  run: <A extends unknown[], R>(_op: never, fn: (...args: A) => R, thisArg: unknown, args: A): R => fn.apply(thisArg, args),
  runUnsampled: <A extends unknown[], R>(_c: unknown, fn: (...args: A) => R, thisArg: unknown, args: A): R =>
    fn.apply(thisArg, args),
  ref: () => undefined as never,
  active: () => undefined,
  keyOf: () => KEY,
  live: () => false,
  inject: () => undefined,
  extract: () => undefined,
  runWithRemote: <R>(_carrier: unknown, fn: () => R): R => fn(),
  bindMetrics: () => undefined,
  flush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
});

/** A named adapter that records nothing (a backend that is configured but cannot run). */
export function noopAdapter(name: string): Adapter {
  return { ...NOOP_ADAPTER, name } as Adapter;
}
