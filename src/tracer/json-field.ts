/**
 * Reading one or two fields of a JSON message (`type`, `meta.action`, `0`, a carried trace
 * context) without JSON.parse: one pass over the bytes (or UTF-16 units of a string) as ws
 * delivers them, nothing decoded or allocated except the field's own value.
 *
 * Contract — the answer is JSON.parse's, following own properties and array elements by
 * canonical index: the last of duplicate keys wins, and a message whose structure is not
 * JSON (a BOM, a trailing comma, a bad number or literal, unbalanced brackets, anything
 * after the value) has no field. The one difference, the price of not decoding: the inside
 * of strings other than the field itself and the keys on its path is skipped, not checked,
 * so a raw control character or a bad escape there does not take the field away.
 * Cost: the pass goes to the end (the last duplicate and the structure need it), but a
 * string is skipped natively (memchr for its closing quote), so it grows with the number
 * of tokens, not with the bytes of long strings: a 16 KiB chat message costs what a 64 B
 * one does. Nesting depth is bounded only by memory (a byte stack, no recursion).
 */

/** JSON.parse of one token or container the scan located, or undefined if it is invalid. */
function parseOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const OBJECT = 1;
const ARRAY = 2;
/** Strings shorter than this are scanned in JS; longer ones are skipped natively (memchr). */
const SHORT_STRING = 48;
/** Container stacks deeper than this are dropped after the message. */
const MAX_KEPT_DEPTH = 4096;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

/** What a field reader can read: ws 8 text (Buffer), ws 7 and undici text (string), binary shapes. */
export type JsonData = string | Uint8Array | ArrayBuffer | readonly Uint8Array[];

interface Segment {
  /** The key's UTF-16 units (all ASCII: config accepts [A-Za-z0-9_$-]). */
  readonly units: readonly number[];
  readonly key: string;
  /** The array index it names, or -1 when it is not a canonical index. */
  readonly index: number;
}

function compileSegment(key: string): Segment {
  const units: number[] = [];
  for (let k = 0; k < key.length; k++) units.push(key.charCodeAt(k));
  const index = /^(0|[1-9][0-9]{0,8})$/.test(key) ? Number(key) : -1;
  return { units, key, index };
}

/**
 * Reads the values at fixed paths. One instance per configuration; `read()` reuses its
 * state, so a reader must not be used re-entrantly (the tracer reads synchronously).
 */
export class JsonFieldReader {
  private readonly paths: readonly (readonly Segment[])[];
  private readonly maxPathLength: number;
  /** Per path: where the value starts and ends (-1: none), how deep the path is still followed. */
  private readonly starts: Int32Array;
  private readonly ends: Int32Array;
  private readonly live: Int32Array;
  private readonly targetDepth: Int32Array;
  /** Per path: the value about to be read is the field (1) or a container on the way to it (2). */
  private readonly pending: Uint8Array;
  /** Element counters of arrays that are on a path (depth ≤ maxPathLength). */
  private readonly counters: Int32Array;
  private kinds = new Uint8Array(64);
  private bytes: Buffer | null = null;
  private text = '';
  private n = 0;
  private valid = false;

  /** `paths`: field paths as segments (`['meta', 'action']`); at least one segment each. */
  constructor(paths: readonly (readonly string[])[]) {
    this.paths = paths.map((p) => p.map(compileSegment));
    const count = paths.length;
    this.maxPathLength = Math.max(0, ...paths.map((p) => p.length));
    this.starts = new Int32Array(count);
    this.ends = new Int32Array(count);
    this.live = new Int32Array(count);
    this.targetDepth = new Int32Array(count);
    this.pending = new Uint8Array(count);
    this.counters = new Int32Array(this.maxPathLength + 2);
  }

  /**
   * Scan a message; afterwards `string(i)` and `object(i)` answer for path `i`. Returns
   * whether the message is valid JSON. Fragments (`Buffer[]`) are joined first.
   */
  read(data: JsonData): boolean {
    if (typeof data === 'string') {
      this.bytes = null;
      this.text = data;
      this.n = data.length;
    } else if (Buffer.isBuffer(data)) {
      this.bytes = data;
      this.n = data.length;
    } else if (data instanceof Uint8Array) {
      this.bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      this.n = data.length;
    } else if (data instanceof ArrayBuffer) {
      this.bytes = Buffer.from(data);
      this.n = this.bytes.length;
    } else if (Array.isArray(data) && data.every((part) => part instanceof Uint8Array)) {
      this.bytes = Buffer.concat(data as Uint8Array[]);
      this.n = this.bytes.length;
    } else {
      this.bytes = null;
      this.n = 0;
    }
    for (let p = 0; p < this.starts.length; p++) {
      this.starts[p] = -1;
      this.ends[p] = -1;
      this.live[p] = 0;
      this.targetDepth[p] = 0;
      // The top-level value is the container every path starts in.
      this.pending[p] = 2;
    }
    const ok = this.n > 0 && this.scan();
    this.valid = ok;
    if (!ok) this.release();
    return ok;
  }

  /** The string at path `i` of the last message read, or undefined (absent, not a string, invalid JSON). */
  string(i: number): string | undefined {
    const start = this.starts[i];
    if (start === -1 || !this.valid || this.unit(start) !== QUOTE) return undefined;
    const end = this.ends[i];
    if (this.hasControl(start + 1, end - 1)) return undefined;
    for (let k = start + 1; k < end - 1; k++) {
      if (this.unit(k) === BACKSLASH) return parseOrUndefined(this.slice(start, end)) as string | undefined;
    }
    return this.slice(start + 1, end - 1);
  }

  /**
   * A hash of the string at path `i` when it is plain (no escape, no control character),
   * else -1: with `stringIs()`, a caller finds a string it has seen before without decoding it.
   */
  stringHash(i: number): number {
    const start = this.starts[i];
    if (start === -1 || !this.valid || this.unit(start) !== QUOTE) return -1;
    const end = this.ends[i] - 1;
    let h = 0x811c9dc5;
    for (let k = start + 1; k < end; k++) {
      const c = this.unit(k);
      if (c < 0x20 || c === BACKSLASH) return -1;
      h = Math.imul(h ^ c, 0x01000193);
    }
    // Small enough to stay a small integer (no heap number as a Map key).
    return (h ^ (h >>> 30)) & 0x3fffffff;
  }

  /** Is the string at path `i` exactly `s`, unit for unit (so only ASCII `s` can match a Buffer)? */
  stringIs(i: number, s: string): boolean {
    const start = this.starts[i];
    if (start === -1 || !this.valid || this.ends[i] - start - 2 !== s.length) return false;
    for (let k = 0; k < s.length; k++) {
      if (this.unit(start + 1 + k) !== s.charCodeAt(k)) return false;
    }
    return true;
  }

  /** The plain object at path `i` of the last message read (parsed alone), or undefined. */
  object(i: number): Record<string, unknown> | undefined {
    const start = this.starts[i];
    if (start === -1 || !this.valid || this.unit(start) !== OPEN_OBJECT) return undefined;
    return parseOrUndefined(this.slice(start, this.ends[i])) as Record<string, unknown> | undefined;
  }

  /** Drop the reference to the last message (a reader must not keep a large buffer alive). */
  release(): void {
    this.bytes = null;
    this.text = '';
    this.valid = false;
    // A deeply nested message grew the container stack: do not keep it.
    if (this.kinds.length > MAX_KEPT_DEPTH) this.kinds = new Uint8Array(64);
  }

  private unit(i: number): number {
    const b = this.bytes;
    return b !== null ? b[i] : this.text.charCodeAt(i);
  }

  private slice(start: number, end: number): string {
    const b = this.bytes;
    return b === null ? this.text.slice(start, end) : b.toString('utf8', start, end);
  }

  /** Validate the whole message and note where each path's value is. */
  private scan(): boolean {
    const n = this.n;
    let depth = 0;
    let i = this.ws(0);
    for (;;) {
      // A value starts at i.
      if (i >= n) return false;
      const c = this.unit(i);
      if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
        depth++;
        this.open(depth, c === OPEN_OBJECT ? OBJECT : ARRAY, i);
        i = this.ws(i + 1);
        if (i >= n) return false;
        const close = c === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY;
        if (this.unit(i) === close) {
          i++;
          this.close(depth, i);
          depth--;
        } else if (c === OPEN_OBJECT) {
          i = this.member(i, depth);
          if (i < 0) return false;
          continue;
        } else {
          this.element(depth);
          continue;
        }
      } else {
        const start = i;
        if (c === QUOTE) i = this.string_(i);
        else if (c === MINUS || (c >= ZERO && c <= NINE)) i = this.number(i);
        else if (c === 0x74) i = this.literal(i, 'true');
        else if (c === 0x66) i = this.literal(i, 'false');
        else if (c === 0x6e) i = this.literal(i, 'null');
        else return false;
        if (i < 0) return false;
        this.primitive(start, i);
      }
      // A value ended at i: what follows it in its container.
      for (;;) {
        i = this.ws(i);
        if (depth === 0) return i === n;
        if (i >= n) return false;
        const c2 = this.unit(i);
        const kind = this.kinds[depth];
        if (c2 === COMMA) {
          i = this.ws(i + 1);
          if (kind === OBJECT) {
            i = this.member(i, depth);
            if (i < 0) return false;
          } else {
            if (depth <= this.maxPathLength) this.counters[depth]++;
            this.element(depth);
          }
          break;
        }
        if (c2 !== (kind === OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY)) return false;
        i++;
        this.close(depth, i);
        depth--;
      }
    }
  }

  /** A container opened at `depth`: the paths waiting for it follow it, or take it as their field. */
  private open(depth: number, kind: number, start: number): void {
    if (depth >= this.kinds.length) {
      const grown = new Uint8Array(this.kinds.length * 2);
      grown.set(this.kinds);
      this.kinds = grown;
    }
    this.kinds[depth] = kind;
    if (depth <= this.maxPathLength) this.counters[depth] = 0;
    const pending = this.pending;
    for (let p = 0; p < pending.length; p++) {
      if (pending[p] === 0) continue;
      if (pending[p] === 2) this.live[p] = depth;
      else {
        this.starts[p] = start;
        this.targetDepth[p] = depth;
      }
      pending[p] = 0;
    }
  }

  /** A container at `depth` closed just before `end`. */
  private close(depth: number, end: number): void {
    for (let p = 0; p < this.live.length; p++) {
      if (this.targetDepth[p] === depth) {
        this.ends[p] = end;
        this.targetDepth[p] = 0;
      }
      if (this.live[p] >= depth) this.live[p] = depth - 1;
    }
  }

  /** A string, number or literal value spanned [start, end). */
  private primitive(start: number, end: number): void {
    const pending = this.pending;
    for (let p = 0; p < pending.length; p++) {
      if (pending[p] === 1) {
        this.starts[p] = start;
        this.ends[p] = end;
      }
      pending[p] = 0;
    }
  }

  /** An array element at `depth` is next: is it on a path? */
  private element(depth: number): void {
    for (let p = 0; p < this.live.length; p++) {
      if (this.live[p] !== depth) continue;
      const path = this.paths[p];
      if (path[depth - 1].index === this.counters[depth]) this.follow(p, depth, path.length);
    }
  }

  /** The value after this key (or element) at `depth` is on path `p`: the field, or on the way to it. */
  private follow(p: number, depth: number, length: number): void {
    // A later duplicate replaces all an earlier one held.
    this.starts[p] = -1;
    this.ends[p] = -1;
    this.pending[p] = depth === length ? 1 : 2;
  }

  /** An object member at i (`"key": `): returns where its value starts, or -1. */
  private member(i: number, depth: number): number {
    if (i >= this.n || this.unit(i) !== QUOTE) return -1;
    const keyStart = i;
    i = this.string_(i);
    if (i < 0) return -1;
    const keyEnd = i;
    i = this.ws(i);
    if (i >= this.n || this.unit(i) !== COLON) return -1;
    for (let p = 0; p < this.live.length; p++) {
      if (this.live[p] !== depth) continue;
      const path = this.paths[p];
      if (this.keyIs(keyStart, keyEnd, path[depth - 1])) this.follow(p, depth, path.length);
    }
    return this.ws(i + 1);
  }

  private keyIs(start: number, end: number, segment: Segment): boolean {
    const units = segment.units;
    let escaped = false;
    if (end - start - 2 === units.length) {
      let k = 0;
      while (k < units.length && this.unit(start + 1 + k) === units[k]) k++;
      if (k === units.length) return true;
    }
    for (let k = start + 1; k < end - 1; k++) {
      if (this.unit(k) === BACKSLASH) {
        escaped = true;
        break;
      }
    }
    // Escapes (`"\u0074ype"`) are rare: decode this key alone.
    return escaped && !this.hasControl(start + 1, end - 1) && parseOrUndefined(this.slice(start, end)) === segment.key;
  }

  /**
   * The string token at i (on its opening quote): the index after its closing quote, or -1.
   * Skipped, not validated: the closing quote is found natively (memchr) and an escaped
   * quote is told by the backslashes before it. The field's own string and path keys are
   * checked exactly when they are read (`string()`, `keyIs()`).
   */
  private string_(i: number): number {
    const b = this.bytes;
    const n = this.n;
    // Short strings (keys, names) end sooner than a native call costs.
    const near = Math.min(n, i + SHORT_STRING);
    let k = i + 1;
    if (b !== null) {
      for (; k < near; k++) {
        const c = b[k];
        if (c === QUOTE) return k + 1;
        if (c === BACKSLASH) break;
      }
    } else {
      for (; k < near; k++) {
        const c = this.text.charCodeAt(k);
        if (c === QUOTE) return k + 1;
        if (c === BACKSLASH) break;
      }
    }
    for (let from = k; ; ) {
      const q = b !== null ? b.indexOf(QUOTE, from) : this.text.indexOf('"', from);
      if (q === -1) return -1;
      let j = q - 1;
      while (j > i && this.unit(j) === BACKSLASH) j--;
      if ((q - 1 - j) % 2 === 0) return q + 1;
      from = q + 1;
    }
  }

  /** Does [start, end) hold a raw control character (invalid inside a JSON string)? */
  private hasControl(start: number, end: number): boolean {
    for (let k = start; k < end; k++) {
      if (this.unit(k) < 0x20) return true;
    }
    return false;
  }

  /** A number at i: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; the index after it, or -1. */
  private number(i: number): number {
    const n = this.n;
    if (this.unit(i) === MINUS) i++;
    if (i >= n) return -1;
    let c = this.unit(i);
    if (c === ZERO) i++;
    else if (c >= 0x31 && c <= NINE) i = this.digits(i);
    else return -1;
    if (i < n && this.unit(i) === DOT) {
      const from = i + 1;
      i = this.digits(from);
      if (i === from) return -1;
    }
    if (i < n && ((c = this.unit(i)) === 0x65 || c === 0x45)) {
      i++;
      if (i < n && ((c = this.unit(i)) === PLUS || c === MINUS)) i++;
      const from = i;
      i = this.digits(from);
      if (i === from) return -1;
    }
    return i;
  }

  private digits(i: number): number {
    let c: number;
    while (i < this.n && (c = this.unit(i)) >= ZERO && c <= NINE) i++;
    return i;
  }

  private literal(i: number, word: string): number {
    if (i + word.length > this.n) return -1;
    for (let k = 0; k < word.length; k++) {
      if (this.unit(i + k) !== word.charCodeAt(k)) return -1;
    }
    return i + word.length;
  }

  /** JSON whitespace (space, tab, LF, CR; not a BOM) from i. */
  private ws(i: number): number {
    let c: number;
    while (i < this.n && ((c = this.unit(i)) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
    return i;
  }
}
