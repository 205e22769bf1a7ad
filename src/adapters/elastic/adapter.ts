/**
 * The Elastic APM adapter's operations over a started elastic-apm-node (4.x) agent: start
 * and end, making an operation current, trace-context propagation, flush. What each role
 * becomes (transaction or span, type, parent) is built in ops.ts; starting and
 * detecting the agent is index.ts.
 *
 * Transactions are created without becoming current (the agent's `startTransaction`
 * would leak into the next message of the same tick); `run()` makes an operation current
 * only while the listener runs, so the agent's own spans (http, redis, pg) nest under it.
 * Faults are the tracer's guard's to catch (src/tracer/guard.ts): methods here just throw.
 *
 * Message rules (src/tracer/messages.ts), as they come out of this agent:
 * - An unsampled message runs its listeners in the agent's root run context (`runUnsampled`): the
 *   agent records nothing nested (no http exit span, no transaction) and its http client sends no
 *   `traceparent`/`tracestate`/`elastic-apm-traceparent` header at all.
 * - A kept message starts at its real start time (`timestamp`, whole ms) and ends at its real end.
 * - A send after an async listener's `await` is a `messaging` transaction `WS SEND {route}`, child
 *   of the message's (ended) transaction by its traceparent, in the same trace.
 */
import type { Config } from '../../config';
import { log } from '../../logger';
import { bounded } from '../bounded';
import { packTraceparent, unpackTraceparent } from '../packed';
import type { Adapter, Carrier, MetricSource, OperationOutcome, OperationSpec } from '../../tracer/adapter';
import { isValidTraceparent, traceIdOfTraceparent } from '../../tracer/propagation';
import type { ApmRunContext, ApmSpan, ApmTransaction, ElasticAgent } from './agent';
import { forEachLabel, NOT_LABELS } from './labels';
import { ElasticMetrics } from './metrics';
import {
  beginOp, describeOp, ElasticOp, handoffTransaction, HEADER_ELASTIC_TRACEPARENT, remoteParent, transactionResult, wholeMs,
} from './ops';

/** Name and type of the agent's own ws (< 8) send span, dropped when it is still active. */
const AGENT_WS_SPAN_NAME = 'Send WebSocket Message';

const setHeader = (carrier: Record<string, string>, name: string, value: string): void => {
  if (typeof name === 'string' && typeof value === 'string') carrier[name] = value;
};

export class ElasticAdapter implements Adapter<ElasticOp, string> {
  readonly name = 'elastic';
  readonly propagationHeaders: readonly string[] = [HEADER_ELASTIC_TRACEPARENT];
  private readonly metrics: ElasticMetrics;

  constructor(
    private readonly agent: ElasticAgent,
    private readonly config: Config,
    /** True when ws-apm started the agent (the app had not). */
    readonly startedAgent: boolean,
    agentWsWasOn: boolean,
  ) {
    this.metrics = new ElasticMetrics(agent);
    if (agentWsWasOn) this.dropAgentWsSpans();
  }

  start(spec: OperationSpec<string>): ElasticOp | undefined {
    if (!this.agent.isStarted()) return undefined;
    const op = beginOp(this.agent, spec);
    if (op) describeOp(op, spec, this.config.captureBody);
    return op;
  }

  end(op: ElasticOp, outcome: OperationOutcome): void {
    const target = op.current;
    forEachLabel(outcome.attributes, NOT_LABELS, (key, value) => {
      target.setLabel(key, value, false);
    });
    const failed = outcome.error !== undefined || outcome.failed === true;
    if (outcome.error !== undefined) {
      // Linked to this operation; skipOutcome because the outcome is set right below.
      this.agent.captureError(outcome.error, { parent: target, skipOutcome: true });
    }
    const result = failed ? 'failure' : 'success';
    const endTime = wholeMs(outcome.endTime);
    if (op.span) {
      op.span.setOutcome(result);
      op.span.end(endTime);
    }
    if (op.ownsTrans) {
      op.trans.setOutcome(result);
      op.trans.end(transactionResult(op, outcome, result), endTime);
    }
  }

  run<A extends unknown[], R>(op: ElasticOp, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    // What runs "inside" a client connect is the opening of its socket, whose callbacks live on
    // for the connection's lifetime: not under the exit span (the agent drops every child of an
    // exit span, so the app's later http calls would vanish), but in the context the connect
    // was made in. The request itself runs under the exit span (runRequest).
    if (op.role === 'client-connect') return this.within(this.outerContextOf(op), fn, thisArg, args);
    return this.within(op.rc ?? (op.rc = this.runContextOf(op)), fn, thisArg, args);
  }

  /** The upgrade request under the exit span: the agent's http client instrumentation records no second span for it. */
  runRequest<A extends unknown[], R>(op: ElasticOp, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    return this.within(op.rc ?? (op.rc = this.runContextOf(op)), fn, thisArg, args);
  }

  private within<A extends unknown[], R>(rc: ApmRunContext | undefined, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    const ins = this.agent._instrumentation;
    if (rc === undefined || ins?.withRunContext === undefined) return fn.apply(thisArg, args);
    // The agent restores the previous run context in a finally block; fn's exception passes through.
    return ins.withRunContext(rc, fn as unknown as (...a: unknown[]) => R, thisArg, ...args);
  }

  /** The app's context a client connect was started in (none when it made its own transaction). */
  private outerContextOf(op: ElasticOp): ApmRunContext | undefined {
    return op.parentRc ?? this.agent._instrumentation?._runCtxMgr?.root();
  }

  /**
   * The agent has no "not sampled" context that costs less than a transaction: an unsampled
   * message runs with no transaction at all (the agent's root run context), so nested
   * instrumentation records nothing and starts no trace; downstream calls carry no context.
   */
  runUnsampled<A extends unknown[], R>(_carrier: Carrier | undefined, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    const ins = this.agent._instrumentation;
    const root = ins?._runCtxMgr?.root();
    if (root === undefined || ins?.withRunContext === undefined || this.unsampledHere()) return fn.apply(thisArg, args);
    return ins.withRunContext(root, fn as unknown as (...a: unknown[]) => R, thisArg, ...args);
  }

  /** Already outside any transaction (or no run context to switch to): a switch would cost a context frame per message (Node 24). */
  unsampledHere(): boolean {
    const ins = this.agent._instrumentation;
    const root = ins?._runCtxMgr?.root();
    return root === undefined || ins?.withRunContext === undefined || ins.currRunContext?.() === root;
  }

  active(): object | undefined {
    const rc = this.agent._instrumentation?.currRunContext?.();
    return rc?.currSpan() ?? rc?.currTransaction() ?? undefined;
  }

  keyOf(op: ElasticOp): object {
    return op.current;
  }

  live(key: object): boolean {
    const current = key as ApmTransaction | ApmSpan;
    return !current.ended && current.sampled !== false;
  }

  ref(op: ElasticOp): string {
    return op.current.traceparent;
  }

  /** A connection's handshake traceparent as 26 chars (48 B instead of 72 B); any other string boxed as it is. */
  pack(ref: string): unknown {
    return (typeof ref === 'string' ? packTraceparent(ref) : undefined) ?? { ref };
  }

  unpack(packed: unknown): string {
    return typeof packed === 'string' ? unpackTraceparent(packed) : (packed as { ref: string }).ref;
  }

  traceIdOf(ref: string): string | undefined {
    return traceIdOfTraceparent(ref);
  }

  inject(op: ElasticOp | undefined, carrier: Record<string, string>): void {
    // Before start() the agent hands out a placeholder with a malformed traceparent.
    if (!this.agent.isStarted()) return;
    const target = op ? op.current : this.agent.currentSpan ?? this.agent.currentTransaction;
    if (!target || !isValidTraceparent(target.traceparent)) return;
    // traceparent, tracestate, and elastic-apm-traceparent when the agent is configured to
    // send it (useElasticTraceparentHeader): the same headers the agent's http client sends.
    target.propagateTraceContextHeaders(carrier, setHeader);
  }

  /**
   * `fn` inside a `WS HANDOFF` transaction continuing the carried trace (as the New Relic adapter
   * does), ended when `fn` returns: its sends are spans of it. What `fn` does after an `await` is
   * not covered: waiting for a returned promise would mean handling its rejection for the app.
   */
  runWithRemote<R>(carrier: Carrier, fn: () => R): R {
    let trans: ApmTransaction | undefined;
    let rc: ApmRunContext | undefined;
    try {
      const ins = this.agent._instrumentation;
      const current = this.agent.isStarted() && ins?.withRunContext !== undefined ? ins.currRunContext?.() : undefined;
      if (current) {
        trans = handoffTransaction(this.agent, carrier);
        rc = trans && current.enterTrans(trans);
      }
    } catch (err) {
      log.fault('elastic runWithRemote', err);
    }
    if (rc === undefined) {
      if (trans !== undefined) this.endHandoff(trans, undefined);
      return fn();
    }
    let result: R;
    try {
      result = this.within(rc, fn, undefined, []);
    } catch (error) {
      this.endHandoff(trans!, error);
      throw error;
    }
    this.endHandoff(trans!, undefined);
    return result;
  }

  private endHandoff(trans: ApmTransaction, error: unknown): void {
    try {
      const result = error === undefined ? 'success' : 'failure';
      if (error !== undefined) this.agent.captureError(error, { parent: trans, skipOutcome: true });
      trans.setOutcome(result);
      trans.end(result);
    } catch (fault) {
      log.fault('elastic runWithRemote', fault);
    }
  }

  extract(carrier: Carrier): string | undefined {
    return remoteParent(carrier)?.traceparent;
  }

  bindMetrics(source: MetricSource): void {
    this.metrics.bind(source);
  }

  flush(timeoutMs: number): Promise<void> {
    this.metrics.scan(); // histogram series that got their first values since the last scan
    return bounded(
      timeoutMs,
      (done) => {
        // On beforeExit the agent ends its intake stream itself (and waits for it); a
        // flush written after that end would destroy the stream and lose the last request.
        if (!this.agent.isStarted() || clientEnded(this.agent)) return done();
        this.agent.flush((err) => {
          if (err && !clientEnded(this.agent)) log.fault('elastic flush', err);
          done();
        });
      },
      'elastic flush',
    );
  }

  /** The process is ending (a signal ws-apm delivers on): the last metricset, then the flush. */
  exit(timeoutMs: number): Promise<void> {
    this.metrics.final();
    return this.flush(timeoutMs);
  }

  async shutdown(timeoutMs: number): Promise<void> {
    // Stops our metric discovery and flushes. The agent itself is never destroyed, even
    // when ws-apm started it: shutdown runs on the way out (beforeExit, signals), where
    // agent.destroy() would abort the agent's own final intake request; the agent ends
    // its intake stream on beforeExit by itself.
    this.metrics.stop();
    await this.flush(timeoutMs);
  }

  /** The run context in which `op` is current. */
  private runContextOf(op: ElasticOp): ApmRunContext | undefined {
    if (op.parentRc && op.span) return op.parentRc.enterSpan(op.span);
    const current = this.agent._instrumentation?.currRunContext?.();
    if (!current) return undefined;
    // enterTrans drops every span of the calling context: only this operation is current.
    const rc = current.enterTrans(op.trans);
    return op.span ? rc.enterSpan(op.span) : rc;
  }

  /** When the app started the agent with its ws instrumentation on, drop that span. */
  dropAgentWsSpans(): void {
    try {
      this.agent.addSpanFilter?.((payload) =>
        payload.name === AGENT_WS_SPAN_NAME && payload.type === 'websocket' ? false : payload,
      );
    } catch (err) {
      log.fault('elastic span filter', err);
    }
  }
}

/** True once the agent's intake client was ended (process exit) or destroyed. */
function clientEnded(agent: ElasticAgent): boolean {
  const client = agent._apmClient;
  if (client === null || client === undefined) return false;
  const state = client._writableState;
  return client.writableEnded === true || client.destroyed === true || state?.ending === true || state?.ended === true;
}
