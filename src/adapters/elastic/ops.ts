/**
 * Elastic transactions and spans built from an operation spec: which role becomes what,
 * with which parent, links, labels and message context.
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
 */
import type { Config } from '../../config';
import { log } from '../../logger';
import { ATTR_HTTP_RESPONSE_STATUS_CODE, HEADER_TRACEPARENT, HEADER_TRACESTATE, OP_HANDOFF } from '../../semconv';
import type { Carrier, OperationOutcome, OperationSpec } from '../../tracer/adapter';
import { first, isValidTraceparent } from '../../tracer/propagation';
import type { ApmRunContext, ApmSpan, ApmTransaction, ElasticAgent, Link, TransactionOptions } from './agent';
import { forEachLabel, NOT_LABELS } from './labels';

/** The agent's own (pre-W3C) trace header, read on incoming handshakes. */
export const HEADER_ELASTIC_TRACEPARENT = 'elastic-apm-traceparent';

const MAX_LINKS = 32;

/** One started operation: its transaction, and the span when the operation is a span. */
export class ElasticOp {
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

/** The transaction and/or span for `spec`, or undefined when nothing can be recorded. */
export function beginOp(agent: ElasticAgent, spec: OperationSpec<string>): ElasticOp | undefined {
  const ins = agent._instrumentation;
  const rc = spec.parent.type === 'active' ? ins?.currRunContext?.() ?? null : null;
  const activeTrans = rc?.currTransaction() ?? null;
  switch (spec.role) {
    case 'connect':
    case 'close':
      return transaction(agent, spec, 'websocket', rc);
    case 'receive':
      return transaction(agent, spec, 'messaging', rc);
    case 'send':
      if (activeTrans && !activeTrans.ended && rc) return childSpan(spec, rc, activeTrans);
      return transaction(agent, spec, 'messaging', rc);
    case 'heartbeat':
      if (activeTrans && !activeTrans.ended && rc) return childSpan(spec, rc, activeTrans);
      return transaction(agent, spec, 'websocket', rc);
    case 'client-connect': {
      if (activeTrans && !activeTrans.ended && rc) return childSpan(spec, rc, activeTrans);
      // No transaction to hang an exit span on: start one, so the server's handshake
      // (which continues our traceparent) always has a parent in Kibana.
      const own = transaction(agent, spec, 'websocket', rc);
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

function transaction(agent: ElasticAgent, spec: OperationSpec<string>, type: string, rc: ApmRunContext | null): ElasticOp | undefined {
  const opts: TransactionOptions = {};
  const parent = spec.parent;
  if (parent.type === 'active') {
    const current = rc?.currSpan() ?? rc?.currTransaction();
    if (current && !current.ended) opts.childOf = current;
  } else if (parent.type === 'remote') {
    Object.assign(opts, continuing(parent.carrier));
  } else if (parent.type === 'ref') {
    if (isValidTraceparent(parent.ref)) opts.childOf = parent.ref;
  }
  const links = toLinks(spec.links);
  if (links) opts.links = links;
  if (spec.startTime !== undefined) opts.startTime = wholeMs(spec.startTime);
  return new ElasticOp(spec.role, newTransaction(agent, spec.name, type, opts), null, true, null);
}

function newTransaction(agent: ElasticAgent, name: string, type: string, opts: TransactionOptions): ApmTransaction {
  const ins = agent._instrumentation;
  // createTransaction does not touch the current run context; startTransaction would
  // make this transaction current for the rest of the tick (the fallback, logged once).
  if (typeof ins?.createTransaction === 'function') return ins.createTransaction(name, type, opts);
  log.fault('elastic createTransaction', new Error('agent internals changed: using startTransaction'));
  return agent.startTransaction(name, type, opts);
}

/** The options that continue the carrier's trace (its valid traceparent, and tracestate); undefined when it has none. */
function continuing(carrier: Carrier): TransactionOptions | undefined {
  const remote = remoteParent(carrier);
  if (remote === undefined) return undefined;
  return remote.tracestate === undefined ? { childOf: remote.traceparent } : { childOf: remote.traceparent, tracestate: remote.tracestate };
}

/**
 * The transaction `runWithRemote` runs its work in (`WS HANDOFF`, type `messaging`, a child of the
 * carried traceparent): the agent records a span only inside a transaction, so without it the sends
 * of a broker hand-off would have nothing to belong to. Undefined when the carrier holds no valid
 * traceparent.
 */
export function handoffTransaction(agent: ElasticAgent, carrier: Carrier): ApmTransaction | undefined {
  const opts = continuing(carrier);
  return opts === undefined ? undefined : newTransaction(agent, OP_HANDOFF, 'messaging', opts);
}

function childSpan(spec: OperationSpec<string>, rc: ApmRunContext, trans: ApmTransaction): ElasticOp | undefined {
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
export function describeOp(op: ElasticOp, spec: OperationSpec<string>, captureBody: Config['captureBody']): void {
  const target = op.current;
  const alsoTrans = op.ownsTrans && op.span !== null; // client connect with its own transaction
  forEachLabel(spec.attributes, NOT_LABELS, (key, value) => {
    target.setLabel(key, value, false);
    if (alsoTrans) op.trans.setLabel(key, value, false);
  });
  if (op.span === null && spec.role === 'receive' && typeof op.trans.setMessageContext === 'function') {
    op.trans.setMessageContext(
      spec.body !== undefined && captureBody !== 'off'
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


/**
 * Start times as whole milliseconds: the agent turns a fractional start into a fractional
 * microsecond `timestamp`, which APM Server's schema rejects (it must be an integer).
 */
export function wholeMs(ms: number | undefined): number | undefined {
  if (ms === undefined) return undefined;
  // Never later than the agent's own clock (Date.now), which ends what starts without an end
  // time: ws-apm's monotonic clock can run ahead of it, and the agent would then report a
  // negative duration.
  return Math.min(Number.isInteger(ms) ? ms : Math.floor(ms), Date.now());
}

export function transactionResult(op: ElasticOp, outcome: OperationOutcome, result: string): string {
  if (op.role === 'connect') {
    const status = outcome.attributes?.[ATTR_HTTP_RESPONSE_STATUS_CODE];
    if (typeof status === 'number' && status >= 100 && status < 600) return `HTTP ${Math.floor(status / 100)}xx`;
  }
  return result;
}

/** The W3C parent in `carrier`, else the agent's own header; validated. */
export function remoteParent(carrier: Carrier | undefined): { traceparent: string; tracestate?: string } | undefined {
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
