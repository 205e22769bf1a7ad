/**
 * The one guard around the adapter, and the one fault budget of a tracer. Every call the
 * tracer makes into a backend goes through here: a fault is logged once per key
 * (rate-limited by the logger), user code runs exactly once with its own `this`,
 * arguments, return value and exception whatever the adapter does. The budget is shared
 * with the boundary between the patch layer and the tracer (boundary.ts), the patch
 * layer's own hooks, histogram forwarding and flush: after MAX_FAULTS faults in all of
 * them the backend is switched off (replaced by the adapter that records nothing) and the
 * boundary lets every call through untouched. dd-trace's boundary (the try/catch in
 * `Plugin.addSub`) disables a plugin at its first error; ws-apm allows MAX_FAULTS, so
 * that one odd value does not end a process's telemetry, while code that keeps failing
 * soon stops costing the app anything.
 *
 * Running user code inside an adapter allocates nothing per call: the adapter is handed
 * one argument-less trampoline per guard (so backends need no `bind` or spread), which
 * picks up the function, `this` and arguments from fields set right before the
 * (synchronous) adapter call, and leaves what it saw in fields read right after. Nested
 * runs (a listener that runs another operation) are safe: the trampoline reads its fields
 * before user code runs, and the outer one writes its outcome last.
 */
import { log } from '../logger';
import type { Adapter, AnyFn, Carrier, MetricSource, OperationOutcome, OperationSpec } from './adapter';
import { NOOP_ADAPTER } from './noop';

/**
 * Faults after which the backend is switched off for the rest of the process.
 *
 * @internal exported for its unit test.
 */
export const MAX_FAULTS = 100;

/**
 * Faults counted across the tracer: the first of each key is logged (rate-limited), and
 * at MAX_FAULTS ws-apm switches itself off for the rest of the process.
 */
export class FaultBudget {
  private faults = 0;
  private readonly offListeners: (() => void)[] = [];
  /** False once the budget is spent: nothing of ws-apm runs between the app and ws any more. */
  on = true;

  /** Faults counted so far. */
  get count(): number {
    return this.faults;
  }

  fault(key: string, err: unknown): void {
    log.fault(key, err);
    if (++this.faults !== MAX_FAULTS) return;
    this.on = false;
    log.warn(`ws-apm failed ${MAX_FAULTS} times (last: ${key}): it stops recording telemetry for the rest of this process`);
    for (const listener of this.offListeners.splice(0)) listener();
  }

  /** `listener` runs once, when the budget is spent. */
  onOff(listener: () => void): void {
    if (this.on) this.offListeners.push(listener);
    else listener();
  }
}

const enum Via {
  Run,
  Request,
  Unsampled,
}

const NO_ARGS: unknown[] = [];
const NOT_RUN = 0;
const RETURNED = 1;
const THREW = 2;

export class GuardedAdapter {
  private adapter: Adapter;
  /** The function the trampoline runs next, its outcome, and how often it was entered. */
  private target: AnyFn | undefined;
  private targetThis: unknown;
  private targetArgs: unknown[] = NO_ARGS;
  private phase = NOT_RUN;
  private result: unknown;
  private thrown: unknown;
  private entries = 0;
  private readonly trampoline: AnyFn;
  readonly propagationHeaders: readonly string[];

  constructor(adapter: Adapter, readonly budget = new FaultBudget()) {
    this.adapter = adapter;
    budget.onOff(() => {
      this.adapter = NOOP_ADAPTER as unknown as Adapter;
    });
    this.propagationHeaders = adapter.propagationHeaders ?? [];
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const guard = this;
    this.trampoline = function trampoline(): unknown {
      const fn = guard.target;
      const thisArg = guard.targetThis;
      const args = guard.targetArgs;
      guard.target = undefined;
      guard.targetThis = undefined;
      guard.targetArgs = NO_ARGS;
      guard.entries++;
      if (fn === undefined) return undefined; // an adapter that calls back twice or late
      try {
        const result = fn.apply(thisArg, args);
        guard.result = result;
        guard.phase = RETURNED;
        return result;
      } catch (err) {
        guard.thrown = err;
        guard.phase = THREW;
        throw err;
      }
    };
  }

  get name(): string {
    return this.adapter.name;
  }

  /** Log a swallowed fault once per key; count it against the budget. */
  fault(key: string, err: unknown): void {
    this.budget.fault(`${this.adapter.name} ${key}`, err);
  }

  start(spec: OperationSpec): unknown {
    try {
      return this.adapter.start(spec);
    } catch (err) {
      this.fault('start', err);
      return undefined;
    }
  }

  end(op: unknown, outcome: OperationOutcome): void {
    if (op === undefined) return;
    try {
      this.adapter.end(op, outcome);
    } catch (err) {
      this.fault('end', err);
    }
  }

  ref(op: unknown): unknown {
    if (op === undefined) return undefined;
    try {
      return this.adapter.ref(op);
    } catch (err) {
      this.fault('ref', err);
      return undefined;
    }
  }

  /** The reference as the adapter keeps it for a connection's life (itself when the adapter does not pack). */
  pack(ref: unknown): unknown {
    if (this.adapter.pack === undefined) return ref;
    try {
      return this.adapter.pack(ref);
    } catch (err) {
      this.fault('pack', err);
      return undefined;
    }
  }

  /** A reference `pack` made, as the adapter takes it in parents and links. */
  unpack(packed: unknown): unknown {
    if (this.adapter.unpack === undefined) return packed;
    try {
      return this.adapter.unpack(packed);
    } catch (err) {
      this.fault('unpack', err);
      return undefined;
    }
  }

  traceIdOf(ref: unknown): string | undefined {
    if (ref === undefined || this.adapter.traceIdOf === undefined) return undefined;
    try {
      return this.adapter.traceIdOf(ref);
    } catch (err) {
      this.fault('traceIdOf', err);
      return undefined;
    }
  }

  active(): object | undefined {
    try {
      return this.adapter.active();
    } catch (err) {
      this.fault('active', err);
      return undefined;
    }
  }

  keyOf(op: unknown): object | undefined {
    try {
      return this.adapter.keyOf(op);
    } catch (err) {
      this.fault('keyOf', err);
      return undefined;
    }
  }

  live(key: object): boolean {
    try {
      return this.adapter.live(key);
    } catch (err) {
      this.fault('live', err);
      return false;
    }
  }

  inject(op: unknown, carrier: Record<string, string>): void {
    try {
      this.adapter.inject(op, carrier);
    } catch (err) {
      this.fault('inject', err);
    }
  }

  extract(carrier: Carrier): unknown {
    try {
      return this.adapter.extract(carrier);
    } catch (err) {
      this.fault('extract', err);
      return undefined;
    }
  }

  bindMetrics(source: MetricSource): void {
    try {
      this.adapter.bindMetrics(source);
    } catch (err) {
      this.fault('bindMetrics', err);
    }
  }

  /** Run user code `fn` with `op` active (`op` undefined: just run it). */
  run<R>(op: unknown, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    if (op === undefined) return fn.apply(thisArg, args);
    return this.call(Via.Run, op, fn, thisArg, args);
  }

  /** Run the upgrade request that is client-connect `op` (the backend's http client stands aside). */
  runRequest<R>(op: unknown, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    if (op === undefined) return fn.apply(thisArg, args);
    return this.call(Via.Request, op, fn, thisArg, args);
  }

  /** Run user code in a non-sampled trace context (`carrier`: the upstream one, if any). */
  runUnsampled<R>(carrier: Carrier | undefined, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    return this.call(Via.Unsampled, carrier, fn, thisArg, args);
  }

  /** Would `fn` run unsampled right here without a switch? (No when the adapter cannot tell, or its check fails.) */
  unsampledHere(carrier: Carrier | undefined): boolean {
    try {
      return this.adapter.unsampledHere?.(carrier) === true;
    } catch (err) {
      this.fault('unsampledHere', err);
      return false;
    }
  }

  /** Run `fn` with a remote context active (broker hand-off API). */
  runWithRemote<R>(carrier: Carrier, fn: () => R): R {
    let entered = false;
    try {
      return this.adapter.runWithRemote(carrier, () => {
        entered = true;
        return fn();
      });
    } catch (err) {
      if (entered) throw err;
      this.fault('runWithRemote', err);
      return fn();
    }
  }

  private call<R>(via: Via, op: unknown, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    const adapter = this.adapter;
    const entries = this.entries;
    this.target = fn;
    this.targetThis = thisArg;
    this.targetArgs = args;
    try {
      switch (via) {
        case Via.Run:
          adapter.run(op, this.trampoline, undefined, NO_ARGS);
          break;
        case Via.Request:
          if (adapter.runRequest !== undefined) adapter.runRequest(op, this.trampoline, undefined, NO_ARGS);
          else adapter.run(op, this.trampoline, undefined, NO_ARGS);
          break;
        default:
          adapter.runUnsampled(op as Carrier | undefined, this.trampoline, undefined, NO_ARGS);
      }
    } catch (err) {
      if (this.entries === entries) {
        this.clearTarget();
        this.fault(via === Via.Unsampled ? 'runUnsampled' : 'run', err);
        return fn.apply(thisArg, args);
      }
      if (this.phase === THREW) {
        const thrown = this.thrown;
        this.settle();
        if (err !== thrown) this.fault('run', err);
        throw thrown;
      }
      this.fault('run', err);
      return this.settle() as R;
    }
    if (this.entries === entries) {
      // The adapter returned without running user code: run it here, exactly once.
      this.clearTarget();
      this.fault('run', new Error('the adapter did not run the function it was given'));
      return fn.apply(thisArg, args);
    }
    if (this.phase === THREW) {
      // The adapter swallowed the app's exception: the app must still see it.
      const thrown = this.thrown;
      this.settle();
      throw thrown;
    }
    // What user code returned, whatever the adapter made of it.
    return this.settle() as R;
  }

  private clearTarget(): void {
    this.target = undefined;
    this.targetThis = undefined;
    this.targetArgs = NO_ARGS;
  }

  /** Read and clear the last outcome (nothing of the app's is retained). */
  private settle(): unknown {
    const result = this.result;
    this.result = undefined;
    this.thrown = undefined;
    this.phase = NOT_RUN;
    return result;
  }
}
