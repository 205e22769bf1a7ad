/**
 * Elastic APM adapter: ws-apm operations as elastic-apm-node (4.x) transactions and spans.
 *
 * | role           | Elastic                                                                |
 * |----------------|------------------------------------------------------------------------|
 * | connect        | transaction, type `websocket`                                          |
 * | receive        | transaction, type `messaging`, message context (queue = route, body)   |
 * | close          | transaction, type `websocket`                                          |
 * | send           | span `messaging/websocket/send` under the active transaction (exit span |
 * |                | on client sockets, service target `websocket`); with no active          |
 * |                | transaction (orphan sends, opt-in): transaction, type `messaging`       |
 * | client-connect | exit span `external/websocket/connect` under the active transaction;    |
 * |                | with none: transaction type `websocket` + that exit span as its child   |
 * | heartbeat      | span `websocket/ping` under the active transaction, else transaction   |
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
import type { Config } from '../config';
import { log } from '../logger';
import { bounded } from './bounded';
import {
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_WS_MESSAGE_BODY,
  HEADER_TRACEPARENT,
  HEADER_TRACESTATE,
} from '../semconv';
import type {
  Adapter,
  Attributes,
  Carrier,
  MetricSource,
  OperationOutcome,
  OperationSpec,
} from '../tracer/adapter';
import { first, isValidTraceparent, traceIdOfTraceparent } from '../tracer/propagation';
import { noopAdapter } from '../tracer/noop';
import {
  loadedAgent,
  resolveAgent,
  type ApmRunContext,
  type ApmSpan,
  type ApmTransaction,
  type ElasticAgent,
  type Link,
  type TransactionOptions,
} from './elastic-agent';
import { forEachLabel } from './elastic-labels';
import { ElasticMetrics } from './elastic-metrics';

/** The agent's own (pre-W3C) trace header, read on incoming handshakes. */
export const HEADER_ELASTIC_TRACEPARENT = 'elastic-apm-traceparent';

/** Name and type of the agent's own ws (< 8) send span, dropped when it is still active. */
const AGENT_WS_SPAN_NAME = 'Send WebSocket Message';
const MAX_LINKS = 32;
/** Attributes that are not labels (the body goes to the message context, if anywhere). */
const NOT_LABELS: ReadonlySet<string> = new Set([ATTR_WS_MESSAGE_BODY]);

/** One started operation: its transaction, and the span when the operation is a span. */
class ElasticOp {
  /** The run context `run()` enters, computed on first use. */
  rc: ApmRunContext | undefined;

  constructor(
    readonly role: OperationSpec['role'],
    readonly trans: ApmTransaction,
    readonly span: ApmSpan | null,
    /** True when this operation started `trans` (and so ends it). */
    readonly ownsTrans: boolean,
    /** For a span under the active transaction: the run context it was started in. */
    readonly parentRc: ApmRunContext | null,
  ) {}

  get current(): ApmTransaction | ApmSpan {
    return this.span ?? this.trans;
  }
}

const setHeader = (carrier: Record<string, string>, name: string, value: string): void => {
  if (typeof name === 'string' && typeof value === 'string') carrier[name] = value;
};

/**
 * True when Elastic APM should be the backend under `auto`: the agent is already started
 * in this process, or `ELASTIC_APM_SERVER_URL` is set. Never loads the agent.
 */
export function elasticDetected(env: NodeJS.ProcessEnv): boolean {
  try {
    if (loadedAgent()?.isStarted()) return true;
  } catch {
    // A broken agent copy: fall back to the environment.
  }
  const url = env.ELASTIC_APM_SERVER_URL;
  return typeof url === 'string' && url.trim() !== '';
}

/**
 * The Elastic adapter over the app's agent singleton. Starts the agent from its
 * standard `ELASTIC_APM_*` variables when the app has not started it, with the agent's
 * own `ws` instrumentation off (ws-apm reports ws; both would double-count sends).
 * When elastic-apm-node is not installed, logs a warning and returns an inert adapter.
 */
export function createElasticAdapter(config: Config): Adapter {
  const agent = resolveAgent();
  if (!agent) {
    log.warn('backend elastic: elastic-apm-node is not installed (npm i elastic-apm-node); ws traffic is not reported');
    return noopAdapter('elastic');
  }
  let startedByUs = false;
  let agentWsWasOn = false;
  try {
    if (!agent.isStarted()) {
      agent.start({ disableInstrumentations: withWs(agent._conf?.disableInstrumentations ?? envList('ELASTIC_APM_DISABLE_INSTRUMENTATIONS')) });
      startedByUs = true;
    }
    agentWsWasOn = disableAgentWs(agent);
  } catch (err) {
    log.fault('elastic agent start', err);
  }
  return new ElasticAdapter(agent, config, startedByUs, agentWsWasOn);
}

function envList(name: string): string[] {
  const raw = process.env[name];
  return raw ? raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0) : [];
}

function withWs(list: readonly string[]): string[] {
  return list.includes('ws') ? [...list] : [...list, 'ws'];
}

/**
 * Make the agent skip its `ws` instrumentation for any ws module loaded from now on
 * (the agent decides when a module is first required). Returns true when it was on,
 * i.e. a ws < 8 already loaded may carry the agent's `send` wrapper.
 */
function disableAgentWs(agent: ElasticAgent): boolean {
  const conf = agent._conf;
  const ins = agent._instrumentation;
  if (!conf) return false;
  const wasOn = conf.instrument !== false && !(conf.disableInstrumentations ?? []).includes('ws') &&
    !(ins?._disableInstrumentationsSet?.has('ws') ?? false);
  if (Array.isArray(conf.disableInstrumentations)) {
    if (!conf.disableInstrumentations.includes('ws')) conf.disableInstrumentations.push('ws');
  } else {
    conf.disableInstrumentations = ['ws'];
  }
  ins?._disableInstrumentationsSet?.add('ws');
  return wasOn;
}

class ElasticAdapter implements Adapter<ElasticOp, string> {
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
    const op = this.begin(spec);
    if (op) this.describe(op, spec);
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
    const ins = this.agent._instrumentation;
    const rc = op.rc ?? (op.rc = this.runContextOf(op));
    if (rc === undefined || ins?.withRunContext === undefined) return fn.apply(thisArg, args);
    // The agent restores the previous run context in a finally block; fn's exception passes through.
    return ins.withRunContext(rc, fn as unknown as (...a: unknown[]) => R, thisArg, ...args);
  }

  /**
   * The agent has no "not sampled" context that costs less than a transaction: an unsampled
   * message runs with no transaction at all (the agent's root run context), so nested
   * instrumentation records nothing and starts no trace; downstream calls carry no context.
   */
  runUnsampled<A extends unknown[], R>(_carrier: Carrier | undefined, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    const ins = this.agent._instrumentation;
    const root = ins?._runCtxMgr?.root();
    if (root === undefined || ins?.withRunContext === undefined) return fn.apply(thisArg, args);
    return ins.withRunContext(root, fn as unknown as (...a: unknown[]) => R, thisArg, ...args);
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

  runWithRemote<R>(_carrier: Carrier, fn: () => R): R {
    // The agent has no "remote parent only" context: the remote context is passed to
    // start() as `parent: {type: 'remote'}` instead.
    return fn();
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

  async shutdown(timeoutMs: number): Promise<void> {
    // Stops our metric discovery and flushes. The agent itself is never destroyed, even
    // when ws-apm started it: shutdown runs on the way out (beforeExit, signals), where
    // agent.destroy() would abort the agent's own final intake request; the agent ends
    // its intake stream on beforeExit by itself.
    this.metrics.stop();
    await this.flush(timeoutMs);
  }

  /** The transaction and/or span for `spec`, or undefined when nothing can be recorded. */
  private begin(spec: OperationSpec<string>): ElasticOp | undefined {
    const ins = this.agent._instrumentation;
    const rc = spec.parent.type === 'active' ? ins?.currRunContext?.() ?? null : null;
    const activeTrans = rc?.currTransaction() ?? null;
    switch (spec.role) {
      case 'connect':
      case 'close':
        return this.transaction(spec, 'websocket', rc);
      case 'receive':
        return this.transaction(spec, 'messaging', rc);
      case 'send':
        if (activeTrans && !activeTrans.ended && rc) return this.childSpan(spec, rc, activeTrans);
        return this.transaction(spec, 'messaging', rc);
      case 'heartbeat':
        if (activeTrans && !activeTrans.ended && rc) return this.childSpan(spec, rc, activeTrans);
        return this.transaction(spec, 'websocket', rc);
      case 'client-connect': {
        if (activeTrans && !activeTrans.ended && rc) return this.childSpan(spec, rc, activeTrans);
        // No transaction to hang an exit span on: start one, so the server's handshake
        // (which continues our traceparent) always has a parent in Kibana.
        const own = this.transaction(spec, 'websocket', rc);
        if (!own) return undefined;
        const span = own.trans.createSpan(spec.name, 'external', 'websocket', 'connect', {
          childOf: own.trans,
          exitSpan: true,
          startTime: wholeMs(spec.startTime),
        });
        return new ElasticOp(spec.role, own.trans, span, true, null);
      }
      default:
        return undefined;
    }
  }

  private transaction(spec: OperationSpec<string>, type: string, rc: ApmRunContext | null): ElasticOp | undefined {
    const opts: TransactionOptions = {};
    const parent = spec.parent;
    if (parent.type === 'active') {
      const current = rc?.currSpan() ?? rc?.currTransaction();
      if (current && !current.ended) opts.childOf = current;
    } else if (parent.type === 'remote') {
      const remote = remoteParent(parent.carrier);
      if (remote) {
        opts.childOf = remote.traceparent;
        if (remote.tracestate !== undefined) opts.tracestate = remote.tracestate;
      }
    } else if (parent.type === 'ref') {
      if (isValidTraceparent(parent.ref)) opts.childOf = parent.ref;
    }
    const links = toLinks(spec.links);
    if (links) opts.links = links;
    if (spec.startTime !== undefined) opts.startTime = wholeMs(spec.startTime);
    const ins = this.agent._instrumentation;
    // createTransaction does not touch the current run context; startTransaction would
    // make this transaction current for the rest of the tick (the fallback, logged once).
    let trans: ApmTransaction;
    if (typeof ins?.createTransaction === 'function') {
      trans = ins.createTransaction(spec.name, type, opts);
    } else {
      log.fault('elastic createTransaction', new Error('agent internals changed: using startTransaction'));
      trans = this.agent.startTransaction(spec.name, type, opts);
    }
    return new ElasticOp(spec.role, trans, null, true, null);
  }

  private childSpan(spec: OperationSpec<string>, rc: ApmRunContext, trans: ApmTransaction): ElasticOp | undefined {
    // A child of an exit span (the agent's http span, our connect span) of another type
    // would be dropped by the agent: hang it on the transaction instead.
    const currentSpan = rc.currSpan();
    const childOf = currentSpan && !currentSpan._exitSpan && !currentSpan.ended ? currentSpan : trans;
    const links = toLinks(spec.links);
    const base = { childOf, startTime: wholeMs(spec.startTime), ...(links ? { links } : {}) };
    let span: ApmSpan | null;
    switch (spec.role) {
      case 'client-connect':
        span = trans.createSpan(spec.name, 'external', 'websocket', 'connect', { ...base, exitSpan: true });
        break;
      case 'heartbeat':
        span = trans.createSpan(spec.name, 'websocket', 'ping', 'ping', base);
        break;
      default: {
        // Sends of a client socket leave the service: an exit span, for the service map.
        const exit = spec.side === 'client';
        span = trans.createSpan(spec.name, 'messaging', 'websocket', 'send', { ...base, exitSpan: exit });
      }
    }
    // Unsampled transaction or transactionMaxSpans reached: not recorded.
    if (!span) return undefined;
    return new ElasticOp(spec.role, trans, span, false, rc);
  }

  /** Labels, message context, service target: what start() knows beyond the ids. */
  private describe(op: ElasticOp, spec: OperationSpec<string>): void {
    const target = op.current;
    const alsoTrans = op.ownsTrans && op.span !== null; // client connect with its own transaction
    forEachLabel(spec.attributes, NOT_LABELS, (key, value) => {
      target.setLabel(key, value, false);
      if (alsoTrans) op.trans.setLabel(key, value, false);
    });
    if (op.span === null && spec.role === 'receive' && typeof op.trans.setMessageContext === 'function') {
      op.trans.setMessageContext(
        spec.body !== undefined && this.config.captureBody !== 'off'
          ? { queue: { name: spec.route }, body: spec.body }
          : { queue: { name: spec.route } },
      );
    }
    const span = op.span;
    if (span && span._exitSpan) {
      const address = spec.serverAddress;
      const port = spec.serverPort;
      const host = address !== undefined ? (port !== undefined ? `${address}:${port}` : address) : spec.route;
      span.setServiceTarget?.('websocket', host);
      if (spec.role === 'send' && typeof span.setMessageContext === 'function') {
        span.setMessageContext({ queue: { name: spec.route } });
      }
    }
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
  private dropAgentWsSpans(): void {
    try {
      this.agent.addSpanFilter?.((payload) =>
        payload.name === AGENT_WS_SPAN_NAME && payload.type === 'websocket' ? false : payload,
      );
    } catch (err) {
      log.fault('elastic span filter', err);
    }
  }
}

/**
 * Start times as whole milliseconds: the agent turns a fractional start into a fractional
 * microsecond `timestamp`, which APM Server's schema rejects (it must be an integer).
 */
function wholeMs(ms: number | undefined): number | undefined {
  return ms === undefined || Number.isInteger(ms) ? ms : Math.floor(ms);
}

/** True once the agent's intake client was ended (process exit) or destroyed. */
function clientEnded(agent: ElasticAgent): boolean {
  const client = agent._apmClient;
  if (client === null || client === undefined) return false;
  const state = client._writableState;
  return client.writableEnded === true || client.destroyed === true || state?.ending === true || state?.ended === true;
}

function transactionResult(op: ElasticOp, outcome: OperationOutcome, result: string): string {
  if (op.role === 'connect') {
    const status = outcome.attributes?.[ATTR_HTTP_RESPONSE_STATUS_CODE];
    if (typeof status === 'number' && status >= 100 && status < 600) return `HTTP ${Math.floor(status / 100)}xx`;
  }
  return result;
}

/** The W3C parent in `carrier`, else the agent's own header; validated. */
function remoteParent(carrier: Carrier | undefined): { traceparent: string; tracestate?: string } | undefined {
  if (!carrier) return undefined;
  const w3c = first(carrier[HEADER_TRACEPARENT]);
  if (isValidTraceparent(w3c)) {
    const tracestate = first(carrier[HEADER_TRACESTATE]);
    return typeof tracestate === 'string' ? { traceparent: w3c, tracestate } : { traceparent: w3c };
  }
  const elastic = first(carrier[HEADER_ELASTIC_TRACEPARENT]);
  return isValidTraceparent(elastic) ? { traceparent: elastic } : undefined;
}

function toLinks(refs: readonly string[] | undefined): Link[] | undefined {
  if (!refs || refs.length === 0) return undefined;
  const links: Link[] = [];
  for (const ref of refs) {
    if (links.length >= MAX_LINKS) break;
    if (isValidTraceparent(ref)) links.push({ context: ref });
  }
  return links.length > 0 ? links : undefined;
}

/** Exposed for tests: how an attribute set becomes Elastic labels. */
export function labelsOf(attributes: Attributes): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  forEachLabel(attributes, NOT_LABELS, (k, v) => {
    out[k] = v;
  });
  return out;
}
