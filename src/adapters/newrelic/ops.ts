/**
 * New Relic transactions and segments for an operation: starting one from a spec (which
 * transaction or segment, its DT parent, its custom attributes) and ending it with the outcome.
 */
import type { OperationOutcome, OperationSpec } from '../../tracer/adapter';
import {
  ATTR_WS_HANDSHAKE_TRACE_ID, ATTR_WS_MESSAGE_DURATION_MS, ATTR_WS_MESSAGE_START_TIME_MS,
} from '../../semconv';
import { type NrAgent, type NrApi, type NrContext, type NrTracer, withoutCodeLevelMetrics } from './agent';
import { asError, linkedTraceId, type NrOp, type NrRef, toCustom, urlOf } from './context';
import { closeEvent, recordCloseEvent } from './event';

/** Background-transaction group: `OtherTransaction/WebSocket/{name}`. */
export const NR_TRANSACTION_GROUP = 'WebSocket';

export function startTransaction(
  nr: NrApi, agent: NrAgent, tracer: NrTracer, clean: NrContext | undefined, spec: OperationSpec<NrRef>, web: boolean,
  headers: Record<string, string> | undefined,
): NrOp | undefined {
  if (!clean) return undefined;
  const handshakeTraceId = linkedTraceId(spec);
  let op: NrOp | undefined;
  const body = (): void => {
    const ctx = tracer.getContext();
    if (!ctx.transaction) return; // agent not connected yet: nothing is recorded
    // getTransaction() marks the transaction as ended by us (TransactionHandle#end), not on return.
    const handle = nr.getTransaction();
    if (web) nr.setTransactionName(spec.name); // WebTransaction/Custom/{name}
    if (headers) handle.acceptDistributedTraceHeaders(web ? 'HTTP' : 'Other', headers);
    const attributes = toCustom(spec.attributes);
    if (handshakeTraceId !== undefined) attributes[ATTR_WS_HANDSHAKE_TRACE_ID] = handshakeTraceId;
    // The public API cannot start a transaction in the past: a message recorded after the
    // fact (kept: failed or slow while not sampled) carries its real start and duration instead.
    const startTime = spec.role === 'receive' ? spec.startTime : undefined;
    if (startTime !== undefined) attributes[ATTR_WS_MESSAGE_START_TIME_MS] = Math.floor(startTime);
    nr.addCustomAttributes(attributes);
    op = { role: spec.role, ctx, handle, event: closeEvent(spec, handshakeTraceId), startTime, ended: false };
  };
  // Always from a clean agent context: inside another transaction (a client created in a request,
  // say) the agent would silently turn this transaction into a segment of that one.
  const begin = tracer.bindFunction(
    web
      ? () => nr.startWebTransaction(urlOf(spec), body)
      : () => nr.startBackgroundTransaction(spec.name, NR_TRANSACTION_GROUP, body),
    clean,
  );
  withoutCodeLevelMetrics(agent, begin);
  if (op === undefined && spec.role === 'close') {
    // The summary event does not need a transaction.
    op = { role: spec.role, ctx: undefined, event: closeEvent(spec, handshakeTraceId), ended: false };
  }
  return op;
}

export function startSegment(nr: NrApi, agent: NrAgent, tracer: NrTracer, spec: OperationSpec<NrRef>): NrOp | undefined {
  let op: NrOp | undefined;
  // The agent ends a segment when the promise its handler returns settles (a callback instead
  // would add a "Callback: ..." segment under ours).
  withoutCodeLevelMetrics(agent, () => nr.startSegment(spec.name, true, () => {
    const ctx = tracer.getContext();
    if (ctx.segment === undefined || ctx.segment === null) return undefined;
    nr.addCustomSpanAttributes(toCustom(spec.attributes));
    return new Promise<void>((done) => {
      op = { role: spec.role, ctx, done, ended: false };
    });
  }));
  return op;
}

/** End `op` with its outcome, in its own agent context (module-level: the hot path allocates no closure). */
export function endInContext(nr: NrApi, op: NrOp, outcome: OperationOutcome): void {
  const segment = op.done !== undefined;
  if (outcome.attributes) {
    const attributes = toCustom(outcome.attributes);
    if (segment) nr.addCustomSpanAttributes(attributes);
    else if (op.handle) nr.addCustomAttributes(attributes);
  }
  if (op.startTime !== undefined && op.handle) {
    const duration = (outcome.endTime ?? Date.now()) - op.startTime;
    nr.addCustomAttributes({ [ATTR_WS_MESSAGE_DURATION_MS]: Math.round(duration * 1000) / 1000 });
  }
  if (outcome.error !== undefined && op.ctx) {
    nr.noticeError(asError(outcome.error));
  }
  if (op.event) recordCloseEvent(nr, op.event, outcome);
  if (op.done) op.done();
  else if (op.handle) op.handle.end();
}
