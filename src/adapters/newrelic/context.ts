/**
 * New Relic agent context and distributed-trace headers: what one operation keeps (`NrOp`,
 * `NrRef`), the clean agent context transactions start from, the DT headers of a parent, of a
 * carrier and of a reference, and the small conversions the adapter makes for the agent API.
 */
import type { Attributes, Carrier, OperationSpec, OperationRole, Parent } from '../../tracer/adapter';
import { log } from '../../logger';
import { traceIdOfTraceparent } from '../../tracer/propagation';
import { HEADER_TRACEPARENT, HEADER_TRACESTATE } from '../../semconv';
import type { NrAttributeValue, NrContext, NrTracer, NrTransaction, NrTransactionHandle } from './agent';

/** The New Relic proprietary DT header, accepted and emitted next to W3C trace context. */
export const NR_HEADER = 'newrelic';

/** The minimal reference kept per handshake: W3C trace context only (no `newrelic` header). */
export interface NrRef {
  readonly traceparent?: string;
  readonly tracestate?: string;
}

/** One started operation. */
export interface NrOp {
  readonly role: OperationRole;
  /** Agent context with this operation's transaction/segment current; undefined = nothing recorded. */
  readonly ctx: NrContext | undefined;
  /** Our own transaction, ended in `end`. */
  readonly handle?: NrTransactionHandle;
  /** Ends our segment. */
  readonly done?: () => void;
  /** Connection summary data (close only). */
  readonly event?: { readonly route: string; readonly attributes: Attributes; readonly handshakeTraceId?: string };
  /** A message recorded after the fact (kept): its real start, epoch ms (the transaction starts now). */
  readonly startTime?: number;
  ended: boolean;
}

/** The reference of an operation that has no trace context. */
export const EMPTY_REF: NrRef = Object.freeze({});

/** Write `tx`'s DT headers into `carrier` (run in the operation's own context). */
export function insertFrom(tx: NrTransaction, carrier: Record<string, string>): void {
  tx.insertDistributedTraceHeaders(carrier);
}

/** Write the active transaction's DT headers into `carrier`, if there is one. */
export function insertHeaders(tracer: NrTracer, carrier: Record<string, string>): void {
  const tx = tracer.getTransaction();
  if (tx) tx.insertDistributedTraceHeaders(carrier);
}

/** An agent context with no transaction and no segment: where our transactions start. */
export function cleanContext(tracer: NrTracer): NrContext | undefined {
  try {
    return tracer.getContext().enterSegment({ transaction: null, segment: null });
  } catch (error) {
    log.fault('newrelic.context', error);
    return undefined;
  }
}

/** DT headers of the parent, or undefined for a new trace. */
export function parentHeaders(
  parent: Parent<NrRef>, active: { insertDistributedTraceHeaders(h: Record<string, string>): void } | null,
): Record<string, string> | undefined {
  switch (parent.type) {
    case 'root':
      return undefined;
    case 'remote':
      return pickHeaders(parent.carrier);
    case 'ref':
      return parent.ref && parent.ref.traceparent ? refHeaders(parent.ref) : undefined;
    case 'active': {
      if (!active) return undefined;
      const headers: Record<string, string> = {};
      active.insertDistributedTraceHeaders(headers);
      return headers;
    }
    default:
      return undefined;
  }
}

function refHeaders(ref: NrRef): Record<string, string> {
  const headers: Record<string, string> = { [HEADER_TRACEPARENT]: ref.traceparent! };
  if (ref.tracestate) headers[HEADER_TRACESTATE] = ref.tracestate;
  return headers;
}

/** traceparent, tracestate and newrelic from a validated carrier; undefined when none is present. */
export function pickHeaders(carrier: Carrier): Record<string, string> | undefined {
  let out: Record<string, string> | undefined;
  for (const key of [HEADER_TRACEPARENT, HEADER_TRACESTATE, NR_HEADER]) {
    const raw = carrier[key];
    const value = Array.isArray(raw) ? raw.join(',') : raw;
    if (typeof value === 'string' && value !== '') (out ??= {})[key] = value;
  }
  return out;
}

/** The connection's handshake trace id, for the summary event and transactions (typed on the spec). */
export function linkedTraceId(spec: OperationSpec<NrRef>): string | undefined {
  if (spec.handshakeTraceId !== undefined) return spec.handshakeTraceId;
  const links = spec.links;
  if (!links) return undefined;
  for (const link of links) {
    const id = traceIdOfTraceparent(link?.traceparent);
    if (id) return id;
  }
  return undefined;
}

export function toCustom(attributes: Attributes): Record<string, NrAttributeValue> {
  const out: Record<string, NrAttributeValue> = {};
  for (const key in attributes) {
    const value = attributes[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

export function asError(error: unknown): Error {
  if (error instanceof Error) return error;
  return new Error(typeof error === 'string' ? error : describe(error));
}

export function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  try {
    return String(error);
  } catch {
    return 'unprintable value';
  }
}

/** The request path of a handshake (already redacted by the tracer), for the agent's `request.uri`. */
export function urlOf(spec: OperationSpec<NrRef>): string {
  const path = spec.urlPath;
  return path !== undefined && path !== '' ? path : spec.route || '/';
}
