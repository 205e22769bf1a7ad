/**
 * New Relic adapter: ws traffic through the real `newrelic` agent (13.x on Node 20, 14.x on Node 22).
 * This file: the adapter's operations (start/end, run, ref, inject, active); detecting and
 * loading the agent: index.ts. Transactions and segments for a spec: ops.ts; agent context and DT
 * headers: context.ts; the `WebSocketConnection` event: event.ts; metrics: metrics.ts.
 *
 * | role           | New Relic                                                                   |
 * |----------------|-----------------------------------------------------------------------------|
 * | connect        | web transaction `WebTransaction/Custom/WS CONNECT {route}`, continuing the  |
 * |                | caller's distributed trace (traceparent/tracestate/newrelic headers)        |
 * | receive        | background transaction `OtherTransaction/WebSocket/WS RECEIVE {route}`,     |
 * |                | one per message, always started from a clean agent context                  |
 * | send           | segment `WS SEND {route}` in the active transaction (else its own           |
 * |                | background transaction, when the tracer asks for one)                       |
 * | client-connect | segment `WS CONNECT {host}{route}` in the active transaction, else its own  |
 * |                | background transaction so the server's handshake has a DT parent; the       |
 * |                | agent's http instrumentation adds its `External/{host}/...` segment inside  |
 * | close          | custom event `WebSocketConnection` + background transaction `WS CLOSE`     |
 * | heartbeat      | background transaction `WS PING {route}` (opt-in in the tracer)             |
 *
 * Why background and not message-consumer transactions for messages: the agent creates message
 * transactions (`OtherTransaction/Message/...`) only through its internal message shim, bound to a
 * registered broker instrumentation, and names them after a broker destination type (Queue/Topic/
 * Exchange) that a WebSocket route is not. Background transactions come from the public API on
 * 13.x and 14.x alike, are grouped under our own `WebSocket` category in the APM "Non-web"
 * transactions list, get `transactionType = 'Other'` in NRQL like message transactions do, and
 * carry distributed tracing, errors and nested segments identically.
 *
 * Message rules (src/tracer/messages.ts), as they come out of this agent:
 * - An unsampled message runs its listeners outside any transaction (`runUnsampled`): the agent
 *   records nothing nested (no External segment, no transaction) and its http client sends no
 *   `traceparent`/`tracestate`/`newrelic` header at all (there is no "sampled=0" context to send).
 * - A kept message (failed or slow while not sampled) is recorded after its listeners returned, and
 *   the agent's API cannot start a transaction in the past: the transaction's own `timestamp` and
 *   `duration` are those of the recording (≈ 0 ms); its real start and duration are the custom
 *   attributes `websocket.message.start_time_ms` (epoch ms) and `websocket.message.duration_ms`.
 * - A send after an async listener's `await` is a background transaction `WS SEND {route}` whose
 *   parent span is the message's (same trace): the message transaction has ended by then, so it
 *   cannot take a segment; `ref()` reads the ended transaction's trace context for it.
 * - Async work still running when the listeners return (an http request) stays in the message
 *   transaction, as a segment the agent names `Truncated/...`.
 */
import type { Adapter, Carrier, MetricSource, OperationOutcome, OperationSpec } from '../../tracer/adapter';
import { log } from '../../logger';
import { traceIdOfTraceparent } from '../../tracer/propagation';
import { packTraceparent, TRACEPARENT_BYTES, TracestatePrefixes, unpackTraceparent } from '../packed';
import { bounded } from '../bounded';
import { HEADER_TRACEPARENT, HEADER_TRACESTATE, OP_HANDOFF } from '../../semconv';
import {
  type NrAgent, type NrApi, type NrContext, type NrTracer, type NrTransaction,
} from './agent';
import {
  asError, cleanContext, EMPTY_REF, insertFrom, insertHeaders, NR_HEADER, type NrOp, type NrRef,
  parentHeaders, pickHeaders,
} from './context';
import { NewRelicMetrics } from './metrics';
import { endInContext, NR_TRANSACTION_GROUP, startSegment, startTransaction } from './ops';

export class NewRelicAdapter implements Adapter<NrOp, NrRef> {
  readonly name = 'newrelic';
  readonly propagationHeaders: readonly string[] = [NR_HEADER];

  private readonly clean: NrContext | undefined;
  private readonly agent: NrAgent;
  private readonly metrics: NewRelicMetrics;
  private shutdownPromise: Promise<void> | undefined;

  constructor(
    private readonly nr: NrApi,
    private readonly tracer: NrTracer,
  ) {
    this.clean = cleanContext(tracer);
    this.agent = nr.agent!;
    this.metrics = new NewRelicMetrics(nr);
  }

  start(spec: OperationSpec<NrRef>): NrOp | undefined {
    const { nr, tracer } = this;
    const active = tracer.getTransaction();
    if ((spec.role === 'send' || spec.role === 'client-connect') && active && spec.parent.type === 'active') {
      return startSegment(nr, this.agent, tracer, spec);
    }
    return startTransaction(nr, this.agent, tracer, this.clean, spec, spec.role === 'connect', parentHeaders(spec.parent, active));
  }

  end(op: NrOp, outcome: OperationOutcome): void {
    if (op.ended) return;
    op.ended = true;
    if (op.ctx) this.within(op.ctx, endInContext, undefined, [this.nr, op, outcome]);
    else endInContext(this.nr, op, outcome);
  }

  run<A extends unknown[], R>(op: NrOp, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    if (op.ctx === undefined) return fn.apply(thisArg, args);
    return this.within(op.ctx, fn, thisArg, args);
  }

  /** The upgrade request is this operation: its segment is opaque while the request is made, so the agent adds no External segment. */
  runRequest<A extends unknown[], R>(op: NrOp, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    const segment = op.ctx?.segment;
    if (segment === undefined || segment === null) return this.run(op, fn, thisArg, args);
    const was = segment.opaque;
    segment.opaque = true;
    try {
      return this.run(op, fn, thisArg, args);
    } finally {
      segment.opaque = was;
    }
  }

  /** Outside any transaction: the agent records nothing nested and starts no trace downstream. */
  runUnsampled<A extends unknown[], R>(_carrier: Carrier | undefined, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    const clean = this.clean;
    if (clean === undefined || this.unsampledHere()) return fn.apply(thisArg, args);
    return this.within(clean, fn, thisArg, args);
  }

  /** Already outside any transaction (or no clean context to switch to): a switch would cost a context frame per message (Node 24). */
  unsampledHere(): boolean {
    if (this.clean === undefined) return true;
    const current = this.current();
    if (current === null) return false; // cannot tell: switch
    return current === undefined || (!current.transaction && !current.segment);
  }

  active(): object | undefined {
    const current = this.current();
    return (current === null ? this.tracer.getContext() : current)?.transaction ?? undefined;
  }

  /**
   * The agent's context here, read from its store (undefined: none), or null when the store cannot
   * be read: `getContext()` makes a new Context per call outside any (every untraced message's send).
   */
  private current(): NrContext | undefined | null {
    const als = this.tracer._contextManager?._asyncLocalStorage;
    return als === undefined ? null : als.getStore();
  }

  keyOf(op: NrOp): object {
    return op.ctx?.transaction ?? op;
  }

  live(key: object): boolean {
    return (key as NrTransaction).isActive();
  }

  /** Run `fn` in agent context `ctx`: without a wrapper where the agent allows it. */
  private within<A extends unknown[], R>(ctx: NrContext, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    const manager = this.tracer._contextManager;
    if (manager !== undefined) return manager.runInContext(ctx, fn, thisArg, args);
    return (this.tracer.bindFunction(fn as (...a: never[]) => unknown, ctx) as unknown as (...a: unknown[]) => R).apply(
      thisArg, args as unknown as unknown[],
    );
  }

  /**
   * From the operation's own transaction, in its own context (so its segment is the parent span),
   * whether or not the agent still calls it active: the tracer also asks for the reference of an
   * operation that has ended, to parent the sends an async listener makes after its `await`, and
   * by then `inject()` (which follows the agent's *active* transaction) would write nothing.
   */
  ref(op: NrOp): NrRef {
    const headers: Record<string, string> = {};
    const ctx = op.ctx;
    if (ctx?.transaction) this.within(ctx, insertFrom, undefined, [ctx.transaction, headers]);
    if (!headers[HEADER_TRACEPARENT]) return EMPTY_REF;
    return Object.freeze({ traceparent: headers[HEADER_TRACEPARENT], tracestate: headers[HEADER_TRACESTATE] });
  }

  /**
   * A connection's handshake reference as one flat string: the traceparent as 26 bytes, then the
   * tracestate with its per-app prefix kept once (`TracestatePrefixes`). Kept as it is unless the
   * packed form gives back exactly the same strings.
   */
  pack(ref: NrRef): unknown {
    const { traceparent, tracestate } = ref;
    if (ref === EMPTY_REF || traceparent === undefined) return ref;
    const packed = packTraceparent(traceparent, this.tracestates.pack(traceparent, tracestate ?? ''));
    if (packed === undefined) return ref;
    const back = this.unpack(packed);
    return back.traceparent === traceparent && back.tracestate === (tracestate || undefined) ? packed : ref;
  }

  unpack(packed: unknown): NrRef {
    if (typeof packed !== 'string') return packed as NrRef;
    const traceparent = unpackTraceparent(packed);
    const tracestate = this.tracestates.unpack(traceparent, packed.slice(TRACEPARENT_BYTES));
    return Object.freeze({ traceparent, tracestate: tracestate === '' ? undefined : tracestate });
  }

  private readonly tracestates = new TracestatePrefixes();

  traceIdOf(ref: NrRef): string | undefined {
    return traceIdOfTraceparent(ref.traceparent);
  }


  inject(op: NrOp | undefined, carrier: Record<string, string>): void {
    const tracer = this.tracer;
    if (op?.ctx) this.within(op.ctx, insertHeaders, undefined, [tracer, carrier]);
    else if (op === undefined) insertHeaders(tracer, carrier);
  }

  runWithRemote<R>(carrier: Carrier, fn: () => R): R {
    const { nr, tracer, clean } = this;
    if (!clean) return fn();
    const headers = pickHeaders(carrier);
    let entered = false;
    const body = (): R => {
      entered = true;
      let tx: NrTransaction | null = null;
      try {
        tx = tracer.getTransaction();
        if (tx && headers) tx.acceptDistributedTraceHeaders('Other', headers);
      } catch (error) {
        log.fault('newrelic.runWithRemote', error);
      }
      // The agent ends the transaction when fn returns, or when its promise settles.
      try {
        return fn();
      } catch (error) {
        try {
          nr.noticeError(asError(error));
          tx?.end();
        } catch (fault) {
          log.fault('newrelic.runWithRemote', fault);
        }
        throw error;
      }
    };
    try {
      return tracer.bindFunction(
        () => nr.startBackgroundTransaction(OP_HANDOFF, NR_TRANSACTION_GROUP, body), clean,
      )();
    } catch (error) {
      if (entered) throw error; // the app's exception, already recorded
      log.fault('newrelic.runWithRemote', error);
      return fn();
    }
  }

  extract(carrier: Carrier): unknown {
    return pickHeaders(carrier);
  }

  bindMetrics(source: MetricSource): void {
    this.metrics.bind(source);
  }

  flush(timeoutMs: number): Promise<void> {
    const agent = this.nr.agent;
    if (!agent || typeof agent.forceHarvestAll !== 'function' || agent.canCollectData?.() === false) {
      return Promise.resolve();
    }
    return bounded(timeoutMs, (done) => agent.forceHarvestAll!(() => done()), 'newrelic.flush');
  }

  /** Stop using the agent without stopping it: it may be the app's (uninstrument). */
  shutdown(timeoutMs: number): Promise<void> {
    return this.flush(timeoutMs);
  }

  /** The process is ending: shut the agent down with its pending data, within the bound. */
  exit(timeoutMs: number): Promise<void> {
    const nr = this.nr;
    if (!nr.agent) return Promise.resolve();
    if (!this.shutdownPromise) {
      this.shutdownPromise = bounded(
        timeoutMs,
        (done) => nr.shutdown({ collectPendingData: true, timeout: timeoutMs }, () => done()),
        'newrelic.shutdown',
      );
    }
    return this.shutdownPromise;
  }
}
