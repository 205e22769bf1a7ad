/**
 * References as the adapters keep them for a connection's whole life (`Adapter.pack`): every
 * idle connection holds one, so it is one flat string with the hex ids as bytes (one char per
 * byte, half the length). A `traceparent` (`00-{32 hex}-{16 hex}-{2 hex}`, 72 B as a string)
 * packs to 26 chars (48 B). Unpacking, once per connection on first use, gives back the very
 * same strings.
 */

const LOWER_HEX = /^[0-9a-f]*$/;
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
/** A char that a trip through latin1 would not keep (every one below U+0100 survives it). */
const NOT_LATIN1 = /[\u0100-\uffff]/;

/** Bytes of a traceparent: version, trace id, parent id, flags. */
export const TRACEPARENT_BYTES = 26;

/** `hex` (lower case, even length) as one latin1 char per byte, then `tail` as is; undefined when `hex` is not that. */
export function packHex(hex: string, tail = ''): string | undefined {
  if (hex.length % 2 !== 0 || !LOWER_HEX.test(hex) || NOT_LATIN1.test(tail)) return undefined;
  const bytes = hex.length / 2;
  const buf = Buffer.allocUnsafe(bytes + tail.length);
  buf.write(hex, 0, bytes, 'hex');
  buf.write(tail, bytes, 'latin1');
  // Built in one buffer: a `+` here would keep a cons string and both of its halves instead.
  return buf.toString('latin1');
}

/** The lower-case hex of the first `bytes` chars of a string `packHex` made. */
export function unpackHex(packed: string, bytes: number): string {
  return Buffer.from(packed.slice(0, bytes), 'latin1').toString('hex');
}

/** A traceparent packed to TRACEPARENT_BYTES chars, `tail` after it; undefined when it is not a lower-case traceparent. */
export function packTraceparent(traceparent: string, tail = ''): string | undefined {
  if (!TRACEPARENT.test(traceparent)) return undefined;
  return packHex(traceparent.replace(/-/g, ''), tail);
}

/** The traceparent at the start of a string `packTraceparent` made. */
export function unpackTraceparent(packed: string): string {
  const hex = unpackHex(packed, TRACEPARENT_BYTES);
  return `${hex.slice(0, 2)}-${hex.slice(2, 34)}-${hex.slice(34, 50)}-${hex.slice(50, 52)}`;
}

/** Marks a packed tracestate whose app prefix was followed by the traceparent's span id (dropped). */
const PREFIXED = 1;
/** Marks a packed tracestate whose app prefix was followed by anything else (kept). */
const PREFIXED_AS_IS = 2;
/** Distinct prefixes remembered (one per account and app in practice). */
const MAX_PREFIXES = 64;
/** New Relic's entry up to its span id: `{trust key}@nr={version}-{parent type}-{account}-{app}-`. */
const NR_APP_PREFIX = /^[^,=]*@nr=(?:[^-,]*-){4}/;

/**
 * New Relic's tracestate (`…@nr=0-0-{account}-{app}-{span id}-{transaction id}-…`), which the agent
 * builds as a tree of joined strings, as a short flat tail: the prefix, the same for every
 * transaction of the app, kept once and referred to by its index; the span id, when it is the
 * traceparent's, not repeated. A tracestate of any other shape is kept as it is (a tracestate
 * starts with a printable char, so never with a marker).
 */
export class TracestatePrefixes {
  private readonly prefixes: string[] = [];

  pack(traceparent: string, tracestate: string): string {
    const prefix = NR_APP_PREFIX.exec(tracestate)?.[0];
    if (prefix === undefined || tracestate.charCodeAt(0) < 0x20) return tracestate;
    let index = this.prefixes.indexOf(prefix);
    if (index === -1) {
      if (this.prefixes.length >= MAX_PREFIXES) return tracestate;
      index = this.prefixes.push(prefix) - 1;
    }
    const spanId = traceparent.slice(36, 52);
    return tracestate.startsWith(spanId, prefix.length)
      ? `${String.fromCharCode(PREFIXED, index)}${tracestate.slice(prefix.length + 16)}`
      : `${String.fromCharCode(PREFIXED_AS_IS, index)}${tracestate.slice(prefix.length)}`;
  }

  unpack(traceparent: string, tail: string): string {
    const marker = tail.charCodeAt(0);
    if (marker !== PREFIXED && marker !== PREFIXED_AS_IS) return tail;
    const prefix = this.prefixes[tail.charCodeAt(1)]!;
    return marker === PREFIXED ? `${prefix}${traceparent.slice(36, 52)}${tail.slice(2)}` : `${prefix}${tail.slice(2)}`;
  }
}
