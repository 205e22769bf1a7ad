/**
 * Elastic label rules, applied before anything reaches the agent: keys may not contain
 * `.`, `*` or `"` (replaced by `_`, cached per key so the hot path does no regex),
 * values are primitives, strings are bounded. Doing it here keeps the agent from
 * logging an "illegal characters" warning for every dotted OpenTelemetry name.
 */
import { ATTR_WS_MESSAGE_BODY } from '../../semconv';
import type { Attributes, AttributeValue } from '../../tracer/adapter';

/** APM Server's keyword limit; the agent truncates at the same size (in bytes). */
const LABEL_VALUE_MAX_CHARS = 1024;
const MAX_CACHED_KEYS = 1000;

const keyCache = new Map<string, string>();

/** `websocket.close.code` -> `websocket_close_code`. */
function labelKey(key: string): string {
  let out = keyCache.get(key);
  if (out === undefined) {
    out = key.replace(/[.*"]/g, '_');
    if (keyCache.size < MAX_CACHED_KEYS) keyCache.set(key, out);
  }
  return out;
}

/** A label value Elastic accepts, or undefined to skip it. */
function labelValue(value: unknown): AttributeValue | undefined {
  switch (typeof value) {
    case 'string':
      return value.length > LABEL_VALUE_MAX_CHARS ? value.slice(0, LABEL_VALUE_MAX_CHARS) : value;
    case 'number':
      return Number.isFinite(value) ? value : undefined;
    case 'boolean':
      return value;
    default:
      return undefined;
  }
}

/** Calls `set(key, value)` for every usable attribute, except those in `skip`. */
export function forEachLabel(
  attributes: Attributes | undefined,
  skip: ReadonlySet<string>,
  set: (key: string, value: AttributeValue) => void,
): void {
  if (attributes === undefined) return;
  for (const key in attributes) {
    if (skip.has(key)) continue;
    const value = labelValue(attributes[key]);
    if (value !== undefined) set(labelKey(key), value);
  }
}

/** Sanitized copy of an attribute set (for metricset tags). */
export function toLabels(attributes: Attributes): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  forEachLabel(attributes, NO_SKIP, (k, v) => {
    out[k] = v;
  });
  return out;
}

const NO_SKIP: ReadonlySet<string> = new Set();

/** Attributes that are not labels (the body goes to the message context, if anywhere). */
export const NOT_LABELS: ReadonlySet<string> = new Set([ATTR_WS_MESSAGE_BODY]);
