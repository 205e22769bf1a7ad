/**
 * The `WebSocketConnection` custom event New Relic gets when a connection closes: the
 * connection summary, with short attribute names for NRQL next to every semconv attribute.
 */
import type { Attributes, OperationOutcome, OperationSpec } from '../../tracer/adapter';
import {
  ATTR_WS_BYTES_IN, ATTR_WS_BYTES_OUT, ATTR_WS_CLOSE_CODE, ATTR_WS_CLOSE_INITIATOR, ATTR_WS_CLOSE_REASON,
  ATTR_WS_CONNECTION_BROKEN, ATTR_WS_CONNECTION_DURATION_MS, ATTR_WS_MESSAGES_IN, ATTR_WS_MESSAGES_OUT, ATTR_WS_SIDE,
} from '../../semconv';
import type { NrApi } from './agent';
import { toCustom, type NrOp, type NrRef } from './context';

/**
 * Custom event type of the connection summary.
 * @internal exported for the tests that look the event up.
 */
export const NR_CONNECTION_EVENT = 'WebSocketConnection';

/** What a close operation keeps for its summary event; undefined for the other roles. */
export function closeEvent(spec: OperationSpec<NrRef>, handshakeTraceId: string | undefined): NrOp['event'] {
  if (spec.role !== 'close') return undefined;
  return { route: spec.route, attributes: spec.attributes, handshakeTraceId };
}

/** The `WebSocketConnection` custom event: short names for NRQL, plus every semconv attribute. */
export function recordCloseEvent(nr: NrApi, event: NonNullable<NrOp['event']>, outcome: OperationOutcome): void {
  const all: Attributes = { ...event.attributes, ...outcome.attributes };
  const out = toCustom(all);
  const short: Record<string, string | undefined> = {
    code: ATTR_WS_CLOSE_CODE,
    reason: ATTR_WS_CLOSE_REASON,
    initiator: ATTR_WS_CLOSE_INITIATOR,
    durationMs: ATTR_WS_CONNECTION_DURATION_MS,
    messagesIn: ATTR_WS_MESSAGES_IN,
    messagesOut: ATTR_WS_MESSAGES_OUT,
    bytesIn: ATTR_WS_BYTES_IN,
    bytesOut: ATTR_WS_BYTES_OUT,
    side: ATTR_WS_SIDE,
    broken: ATTR_WS_CONNECTION_BROKEN,
  };
  for (const name in short) {
    const value = all[short[name]!];
    if (value !== undefined) out[name] = value;
  }
  out.route = event.route;
  if (event.handshakeTraceId) out.handshakeTraceId = event.handshakeTraceId;
  if (outcome.error !== undefined) out.error = true;
  nr.recordCustomEvent(NR_CONNECTION_EVENT, out);
}
