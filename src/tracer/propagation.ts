/**
 * Validation of incoming trace context, shared by every adapter: a malformed,
 * oversized or all-zero `traceparent` is dropped here so no backend ever continues
 * (or propagates) an invalid id; the operation simply starts a fresh trace.
 */
import { HEADER_TRACEPARENT, HEADER_TRACESTATE } from '../semconv';
import type { Carrier } from './adapter';

// Version 00 exactly; other versions must still start with the 00 layout (W3C forward compat).
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const MAX_TRACEPARENT = 512;
const MAX_TRACESTATE = 512;
const MAX_VENDOR_HEADER = 4096;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

export function isValidTraceparent(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > MAX_TRACEPARENT) return false;
  const m = TRACEPARENT.exec(value);
  if (!m) return false;
  const [, version, traceId, spanId, , rest] = m;
  if (version === 'ff') return false;
  if (version === '00' && rest !== undefined) return false;
  return traceId !== ZERO_TRACE && spanId !== ZERO_SPAN;
}

/** The trace id of a valid traceparent, else undefined. */
export function traceIdOfTraceparent(value: unknown): string | undefined {
  return isValidTraceparent(value) ? value.slice(3, 35) : undefined;
}

/**
 * The one value of a header: repeated trace headers are invalid per W3C (and Node joins
 * unknown repeats with ", "), so a repeated header counts as absent.
 */
export function first(value: string | string[] | undefined): string | undefined {
  if (Array.isArray(value)) return value.length === 1 ? value[0] : undefined;
  return value;
}

/**
 * A clean carrier from incoming headers: W3C fields only when `traceparent` is valid,
 * plus the adapter's vendor headers (bounded in size; the agent validates their content).
 * Returns undefined when nothing usable is present.
 */
export function sanitizeCarrier(
  headers: Carrier | undefined,
  vendorHeaders: readonly string[] = [],
  queryTraceparent?: string,
): Carrier | undefined {
  let out: Record<string, string> | undefined;
  const traceparent = first(headers?.[HEADER_TRACEPARENT]) ?? queryTraceparent;
  if (isValidTraceparent(traceparent)) {
    out = { [HEADER_TRACEPARENT]: traceparent };
    const tracestate = first(headers?.[HEADER_TRACESTATE]);
    if (typeof tracestate === 'string' && tracestate.length <= MAX_TRACESTATE) out[HEADER_TRACESTATE] = tracestate;
  }
  for (const name of vendorHeaders) {
    const value = first(headers?.[name]);
    if (typeof value === 'string' && value.length > 0 && value.length <= MAX_VENDOR_HEADER) {
      (out ??= {})[name] = value;
    }
  }
  return out;
}
