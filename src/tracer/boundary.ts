/**
 * The one door between the patch layer and the tracer. Every call the patch layer makes into
 * the tracer comes through here, in dd-trace's shape: a guarded "start" step that returns a
 * small record of what is being traced (or undefined), then the app's call, made here exactly
 * once and never inside the tracer's own try (`run`), then a guarded "end" step with the
 * outcome. A fault of ws-apm's (the tracer's bookkeeping, naming, metric cells, the adapter)
 * is caught at the step where it happens, logged once per key and counted against the
 * tracer's one fault budget (guard.ts); it never replaces the app's return value or
 * exception and never loses a message. Once the budget is spent `on` is false for good and
 * the patch wrappers call straight through.
 *
 * Hot-path rules: no closure per call, no allocation for an untraced message (records are
 * pooled by their owner), no spreading of arguments.
 */
import type { AnyFn, Carrier } from './adapter';
import type { ConnectResult, ConnectTarget, PendingConnect } from './client';
import type { ServerHandshake, UpgradeRequest } from './handshake';
import type { FaultBudget, GuardedAdapter } from './guard';
import type { Tracer } from './tracer';

/** How the app's call of a traced step runs. */
export const RunMode = {
  /** Plainly: the operation (if any) is ended afterwards but not made active. */
  Plain: 0,
  /** Inside the operation, made active. */
  Active: 1,
  /** In a non-sampled trace context (the upstream `carried` one, if any). */
  Unsampled: 2,
} as const;
export type RunMode = (typeof RunMode)[keyof typeof RunMode];

/** What a start step hands back: how to run the app's call, and how to end with its outcome. */
export interface Traced {
  readonly mode: RunMode;
  readonly op: unknown;
  readonly carried: Carrier | undefined;
  /** The app's call returned (`threw` false) or threw `error`. Called once, through the boundary. */
  ended(threw: boolean, error: unknown): void;
}

export class Boundary {
  private readonly budget: FaultBudget;
  private readonly adapter: GuardedAdapter;

  /** False once ws-apm spent its fault budget: every wrapper then calls straight through. */
  on = true;

  constructor(private readonly tracer: Tracer) {
    this.adapter = tracer.core.adapter;
    this.budget = this.adapter.budget;
    // A plain field, read on every call: one load on the hot path.
    this.budget.onOff(() => {
      this.on = false;
    });
  }

  /** Count a fault caught anywhere between the app and the backend (the patch layer's hooks included). */
  fault(key: string, err: unknown): void {
    this.budget.fault(key, err);
  }

  /**
   * The one "run inside an operation, end it with the outcome" helper: the app's call runs
   * exactly once, its result is returned and its exception re-thrown unchanged, and
   * `traced.ended` runs guarded after it.
   */
  run<R>(traced: Traced, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    let result: R;
    try {
      result = this.call<R>(traced, fn, thisArg, args);
    } catch (err) {
      this.end(traced, true, err);
      throw err;
    }
    this.end(traced, false, undefined);
    return result;
  }

  /** End `traced` with an outcome the patch layer saw itself (a send's write callback). */
  end(traced: Traced, threw: boolean, error: unknown): void {
    try {
      traced.ended(threw, error);
    } catch (err) {
      this.budget.fault('ws-apm end', err);
    }
  }

  /** Run the app's call inside `op` (active) without ending it: the operation ends elsewhere. */
  within<R>(op: unknown, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    return op === undefined || !this.on ? fn.apply(thisArg, args) : this.adapter.run<R>(op, fn, thisArg, args);
  }

  /** Run a client's upgrade request inside its connect (the backend's http client stands aside). */
  withinRequest<R>(op: unknown, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    return op === undefined || !this.on ? fn.apply(thisArg, args) : this.adapter.runRequest<R>(op, fn, thisArg, args);
  }

  /** Run the app's call as `traced` says, without ending it (a protocol ends its event later). */
  runWithin<R>(traced: Traced, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    return this.call<R>(traced, fn, thisArg, args);
  }

  private call<R>(traced: Traced, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    switch (traced.mode) {
      case RunMode.Active:
        return this.adapter.run<R>(traced.op, fn, thisArg, args);
      case RunMode.Unsampled:
        // Already outside any trace (an agent with no transaction here): nothing to switch.
        if (this.adapter.unsampledHere(traced.carried)) return fn.apply(thisArg, args) as R;
        return this.adapter.runUnsampled<R>(traced.carried, fn, thisArg, args);
      default:
        return fn.apply(thisArg, args) as R;
    }
  }

  // Start steps and one-shot reports, each guarded. Undefined: nothing to trace, call plainly.

  /** A message arrived on `ws` (counted here); a record when its listeners run under the tracer. */
  receiveStart(ws: object, data: unknown, size: number, binary: boolean, listening: boolean): Traced | undefined {
    try {
      return this.tracer.messages.receiveStart(ws, data, size, binary, listening);
    } catch (err) {
      this.budget.fault('ws-apm receive', err);
      return undefined;
    }
  }

  /** A send on `ws` (counted here); a record when it is traced. */
  sendStart(ws: object, size: number, binary: boolean, open: boolean, data?: unknown): Traced | undefined {
    try {
      return this.tracer.messages.sendStart(ws, size, binary, open, data);
    } catch (err) {
      this.budget.fault('ws-apm send', err);
      return undefined;
    }
  }

  /** `ws`'s `close` event: the connection's summary, under which its close listeners run. */
  closeStart(ws: object, code: unknown, reason: unknown): Traced | undefined {
    try {
      return this.tracer.closes.closeStart(ws, code, reason);
    } catch (err) {
      this.budget.fault('ws-apm close', err);
      return undefined;
    }
  }

  /** A message listener of `ws` threw (ws will not emit its `close`). */
  listenerThrew(ws: object): void {
    try {
      this.tracer.closes.listenerThrew(ws);
    } catch (err) {
      this.budget.fault('ws-apm close', err);
    }
  }

  closing(ws: object, byPeer: boolean): void {
    try {
      this.tracer.closes.closing(ws, byPeer);
    } catch (err) {
      this.budget.fault('ws-apm close', err);
    }
  }

  terminating(ws: object): void {
    try {
      this.tracer.closes.terminating(ws);
    } catch (err) {
      this.budget.fault('ws-apm close', err);
    }
  }

  ping(ws: object): void {
    try {
      this.tracer.heartbeats.ping(ws);
    } catch (err) {
      this.budget.fault('ws-apm heartbeat', err);
    }
  }

  pong(ws: object): void {
    try {
      this.tracer.heartbeats.pong(ws);
    } catch (err) {
      this.budget.fault('ws-apm heartbeat', err);
    }
  }

  /** ws wrote a data frame on a socket a protocol claimed (`payload`: the frame's data as ws writes it, if any). */
  frameWritten(ws: object, size: number, binary: boolean, payload: unknown): void {
    try {
      this.tracer.frames.written(ws, size, binary, payload);
    } catch (err) {
      this.budget.fault('ws-apm frames', err);
    }
  }

  /** An upgrade request reached the server: its handshake, or undefined (run plainly). */
  handshakeStart(req: UpgradeRequest): ServerHandshake | undefined {
    try {
      return this.tracer.handshakes.begin(req);
    } catch (err) {
      this.budget.fault('ws-apm handshake', err);
      return undefined;
    }
  }

  /** ws completed the upgrade of `hs` with `ws`: the connection callback runs under the returned record. */
  accepted(hs: ServerHandshake, ws: object): Traced | undefined {
    try {
      return this.tracer.handshakes.accept(hs, ws);
    } catch (err) {
      this.budget.fault('ws-apm handshake', err);
      return undefined;
    }
  }

  acceptedUntracked(hs: ServerHandshake): void {
    try {
      this.tracer.handshakes.acceptedUntracked(hs);
    } catch (err) {
      this.budget.fault('ws-apm handshake', err);
    }
  }

  rejected(hs: ServerHandshake, status: number | undefined): void {
    try {
      this.tracer.handshakes.rejected(hs, status);
    } catch (err) {
      this.budget.fault('ws-apm handshake', err);
    }
  }

  /** A client is about to send its upgrade request: its connect, or undefined (sent plainly). */
  connectStart(target: ConnectTarget): PendingConnect | undefined {
    try {
      return this.tracer.clients.begin(target);
    } catch (err) {
      this.budget.fault('ws-apm client connect', err);
      return undefined;
    }
  }

  /** The trace-context headers the upgrade request of `pending` carries (none after a fault). */
  connectHeaders(pending: PendingConnect): Record<string, string> {
    try {
      return this.tracer.clients.headers(pending);
    } catch (err) {
      this.budget.fault('ws-apm client connect', err);
      return {};
    }
  }

  /** A client connect's upgrade request settled. */
  connectSettled(pending: PendingConnect, outcome: ConnectResult): void {
    try {
      this.tracer.clients.settled(pending, outcome);
    } catch (err) {
      this.budget.fault('ws-apm client connect', err);
    }
  }

  /** A client socket opened from `pending`: tracked from now on (and claimed, if a protocol knows its URL). */
  connectOpened(ws: object, pending: PendingConnect, url: unknown): void {
    try {
      this.tracer.clients.opened(ws, pending);
      this.tracer.frames.opened(ws, url);
    } catch (err) {
      this.budget.fault('ws-apm client connect', err);
    }
  }
}
