import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { JsonFieldReader, type JsonData } from '../../src/tracer/json-field';

/** What JSON.parse says is at `path` (own properties, canonical array indexes): a string, a plain object, or nothing. */
function reference(text: string, path: readonly string[]): { string?: string; object?: unknown } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return {};
  }
  for (const segment of path) {
    if (value === null || typeof value !== 'object') return {};
    if (Array.isArray(value) ? !/^(0|[1-9][0-9]*)$/.test(segment) : false) return {};
    if (!Object.prototype.hasOwnProperty.call(value, segment)) return {};
    value = (value as Record<string, unknown>)[segment];
  }
  if (typeof value === 'string') return { string: value };
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) return { object: value };
  return {};
}

const PATHS = [['type'], ['meta', 'action'], ['0'], ['1', 'type'], ['trace'], ['meta', '0', 'type']];

/**
 * The text with every string token made valid (raw control characters and bad escapes
 * replaced), structure untouched: what the reader answers from when JSON.parse rejects only
 * the inside of strings it skips.
 */
function lenient(text: string): string {
  return text.replace(/"(?:[^"\\]|\\[\s\S])*"/g, (token) =>
    // eslint-disable-next-line no-control-regex -- JSON's control characters, which a string may not hold raw
    token.replace(/[\u0000-\u001f]/g, ' ').replace(/\\(["\\/bfnrt]|u[0-9a-fA-F]{4})?/g, (escape, valid) => (valid ? escape : '\\\\')));
}

function check(reader: JsonFieldReader, data: JsonData, text: string, label: string): void {
  reader.read(data);
  let valid = true;
  try {
    JSON.parse(text);
  } catch {
    valid = false;
  }
  for (let p = 0; p < PATHS.length; p++) {
    const where = `${label}: at ${PATHS[p].join('.')} of ${JSON.stringify(text.slice(0, 300))}`;
    const want = reference(text, PATHS[p]);
    const got = { string: reader.string(p), object: reader.object(p) };
    // A hash only for a plain string, which then reads as itself (names are found by it undecoded).
    const hash = reader.stringHash(p);
    if (hash !== -1) assert.ok(got.string !== undefined && reader.stringIs(p, got.string) === (label === 'string' || /^\p{ASCII}*$/u.test(got.string)), `hash ${where}`);
    if (!valid && (got.string !== undefined || got.object !== undefined)) {
      // The one documented difference: bad content inside a string the reader skipped.
      const loose = reference(lenient(text), PATHS[p]);
      assert.equal(got.string, loose.string, `lenient string ${where}`);
      assert.deepEqual(got.object, loose.object, `lenient object ${where}`);
      continue;
    }
    assert.equal(got.string, want.string, `string ${where}`);
    assert.deepEqual(got.object, want.object, `object ${where}`);
  }
  reader.release();
}

/** Both shapes ws delivers text in: a Buffer (ws 8) and a string (ws 7, undici). */
function checkBoth(reader: JsonFieldReader, text: string): void {
  check(reader, text, text, 'string');
  const bytes = Buffer.from(text);
  check(reader, bytes, bytes.toString('utf8'), 'Buffer');
}

/** mulberry32: a seeded generator, so a failure reproduces. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KEYS = ['type', 'meta', 'action', '0', '1', 'trace', 'traceparent', 'x', '', 'typ', 'types', '__proto__', 'é', '\u{1F600}'];
const WORDS = ['join', 'leave', 'a b', '', 'x'.repeat(70), 'é', '\u{1F600}', '\ud800', 'q"uote', 'back\\slash', 'tab\t', 'line\n', '\u2028'];
const NUMBERS = ['0', '-0', '1', '-12', '3.25', '1e3', '1E+30', '-2.5e-7', '1e999', '123456789012345678901234567890'];

function generator(rnd: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const ws = (): string => (rnd() < 0.7 ? '' : pick([' ', '\n', '\t', '\r\n  ', '   ']));
  // Escape some characters the way other serializers do (\uXXXX, \/), so keys and values need decoding.
  const str = (s: string): string => {
    let out = '"';
    for (const ch of s) {
      const code = ch.codePointAt(0)!;
      if (ch === '"' || ch === '\\') out += '\\' + ch;
      else if (code < 0x20) out += '\\u' + code.toString(16).padStart(4, '0');
      else if (rnd() < 0.1) {
        // \uXXXX for every UTF-16 unit (a surrogate pair for astral characters), either case.
        for (let u = 0; u < ch.length; u++) {
          const hex = ch.charCodeAt(u).toString(16).padStart(4, '0');
          out += '\\u' + (rnd() < 0.5 ? hex : hex.toUpperCase());
        }
      }
      else if (ch === '/' && rnd() < 0.5) out += '\\/';
      else out += ch;
    }
    return out + '"';
  };
  const value = (depth: number): string => {
    const r = rnd();
    if (depth > 4 || r < 0.35) {
      const q = rnd();
      if (q < 0.45) return str(pick(WORDS));
      if (q < 0.7) return pick(NUMBERS);
      return pick(['true', 'false', 'null']);
    }
    if (r < 0.75) {
      const members: string[] = [];
      const count = Math.floor(rnd() * 5);
      for (let k = 0; k < count; k++) members.push(`${ws()}${str(pick(KEYS))}${ws()}:${ws()}${value(depth + 1)}${ws()}`);
      return `{${members.join(',')}${members.length === 0 ? ws() : ''}}`;
    }
    const items: string[] = [];
    const count = Math.floor(rnd() * 4);
    for (let k = 0; k < count; k++) items.push(`${ws()}${value(depth + 1)}${ws()}`);
    return `[${items.join(',')}${items.length === 0 ? ws() : ''}]`;
  };
  return { value, ws, pick };
}

/** Small damage that JSON.parse may or may not reject: the reader must agree either way. */
function mutate(text: string, rnd: () => number): string {
  const at = Math.floor(rnd() * (text.length + 1));
  const junk = [',', '}', ']', '"', '\\', ':', ' ', '0', '-', '.', 'e', '\u0001', '\ufeff', '\ud800', 'x', '{', '['];
  const j = junk[Math.floor(rnd() * junk.length)];
  const r = rnd();
  if (r < 0.4) return text.slice(0, at) + j + text.slice(at);
  if (r < 0.7) return text.slice(0, at) + text.slice(at + 1);
  return text.slice(0, at) + j + text.slice(at + 1);
}

describe('reading a JSON field without parsing the message', () => {
  test('agrees with JSON.parse on 10,000 generated messages, valid and damaged, as Buffer and string', () => {
    const rnd = random(0x5eed);
    const g = generator(rnd);
    const reader = new JsonFieldReader(PATHS);
    let valid = 0;
    for (let k = 0; k < 10_000; k++) {
      let text = `${g.ws()}${g.value(0)}${g.ws()}`;
      if (rnd() < 0.35) text = mutate(text, rnd);
      if (rnd() < 0.1) text = mutate(text, rnd);
      checkBoth(reader, text);
      try {
        JSON.parse(text);
        valid++;
      } catch {
        // counted below
      }
    }
    // Both kinds were really exercised.
    assert.ok(valid > 2_500 && valid < 9_500, `valid ${valid}`);
  });

  test('agrees with JSON.parse on hostile messages', () => {
    const reader = new JsonFieldReader(PATHS);
    const hostile = [
      '{"type":"a","type":"b"}',
      '{"type":"a","type":5}',
      '{"meta":{"action":"a"},"meta":{"action":"b"}}',
      '{"meta":{"action":"a"},"meta":1}',
      '{"meta":{"action":"a"},"meta":{"x":1}}',
      '{"meta":{"action":"a","action":"c"},"other":[1,2,{"meta":{"action":"no"}}]}',
      '{"\\u0074ype":"escaped key"}',
      '{"type":"\\u006aoin"}',
      '{"type":"\\ud83d\\ude00"}',
      '{"type":"\\ud800"}',
      '{"type":"\\udc00x"}',
      '{"type":"\\u12"}',
      '{"type":"\\x41"}',
      '{"type":"a\tb"}',
      '{"type":"a\u0000b"}',
      '{"type":"\u007f"}',
      '\ufeff{"type":"bom"}',
      ' \t\r\n{"type":"ws"} \n',
      '{"type":"trailing"} x',
      '{"type":"trailing comma",}',
      '{"type":"a"}{"type":"b"}',
      '["join",{"type":"second"}]',
      '[ "first" , "x" ]',
      '[]',
      '{}',
      '""',
      '"type"',
      '42',
      'null',
      'tru',
      '{"type":01}',
      '{"type":-}',
      '{"type":1.}',
      '{"type":.5}',
      '{"type":1e}',
      '{"type":+1}',
      '{"type":1e5,"x":-0.0e-0}',
      '{"type" "a"}',
      '{type:"a"}',
      "{'type':'a'}",
      '{"type":"a"',
      '{"type":"a"]',
      '["a"}',
      '{"0":"object key zero"}',
      '[{"type":"not at 0"}, "at 1"]',
      '{"1":{"type":"object one"}}',
      '{"trace":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","traceparent":"dup"}}',
      '{"trace":"string context"}',
      '{"trace":["array context"]}',
      '{"__proto__":"proto"}',
      `{"type":"${'x'.repeat(100_000)}"}`,
      `{"pad":"${'x'.repeat(100_000)}","type":"late"}`,
      `{"type":"early","pad":"${'x'.repeat(100_000)}\u0001"}`,
      `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
      `${'['.repeat(100_000)}${']'.repeat(99_999)}`,
      `{"meta":${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)},"type":"after deep"}`,
      `{"type":"a",${'"x":1,'.repeat(10_000)}"type":"last"}`,
      '{"type":"é\u{1F600}"}',
      '{"type":"\u2028\u2029"}',
    ];
    for (const text of hostile) checkBoth(reader, text);
  });

  test('invalid UTF-8 in a Buffer reads as its decoded text does', () => {
    const reader = new JsonFieldReader(PATHS);
    const rnd = random(7);
    const prefix = Buffer.from('{"type":"');
    const suffix = Buffer.from('","meta":{"action":"b"}}');
    for (let k = 0; k < 2_000; k++) {
      const middle = Buffer.alloc(1 + Math.floor(rnd() * 6));
      for (let j = 0; j < middle.length; j++) middle[j] = 0x80 + Math.floor(rnd() * 0x80);
      const bytes = Buffer.concat([prefix, middle, suffix]);
      check(reader, bytes, bytes.toString('utf8'), 'bytes');
    }
  });

  test('a known name is found by its hash without decoding, the same from a Buffer and a string', () => {
    const reader = new JsonFieldReader([['type']]);
    reader.read(Buffer.from('{"type":"chat","n":1}'));
    const fromBytes = reader.stringHash(0);
    assert.equal(reader.stringIs(0, 'chat'), true);
    assert.equal(reader.stringIs(0, 'chap'), false);
    reader.read('{ "type" : "chat" }');
    assert.equal(reader.stringHash(0), fromBytes);
    reader.read('{"type":"ch\\u0061t"}');
    assert.equal(reader.stringHash(0), -1, 'an escaped string is decoded, not hashed');
    assert.equal(reader.string(0), 'chat');
  });

  test('every shape ws delivers: Buffer, ArrayBuffer, Uint8Array, fragments, string', () => {
    const reader = new JsonFieldReader([['meta', 'action']]);
    const text = '{"meta":{"action":"join"}}';
    const bytes = Buffer.from(text);
    const shapes: JsonData[] = [
      text,
      bytes,
      bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length),
      new Uint8Array(bytes),
      [bytes.subarray(0, 5), bytes.subarray(5)],
    ];
    for (const shape of shapes) {
      assert.equal(reader.read(shape), true);
      assert.equal(reader.string(0), 'join');
    }
  });
});
