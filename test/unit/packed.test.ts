/**
 * The handshake reference every connection keeps (src/adapters/packed.ts, `Adapter.pack`): packed
 * to a flat string and back, it is exactly what the adapter gave; what cannot be packed exactly
 * is kept as it is.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SpanContext } from '@opentelemetry/api';
import { packHex, packTraceparent, TracestatePrefixes, unpackHex, unpackTraceparent, TRACEPARENT_BYTES } from '../../src/adapters/packed';
import { OtelAdapter } from '../../src/adapters/otel/adapter';

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

test('a traceparent packs to 26 chars and back, with any latin1 tail after it', () => {
  const packed = packTraceparent(TRACEPARENT, 'rojo=00f067aa0ba902b7');
  assert.equal(packed?.length, TRACEPARENT_BYTES + 'rojo=00f067aa0ba902b7'.length);
  assert.equal(unpackTraceparent(packed!), TRACEPARENT);
  assert.equal(packed!.slice(TRACEPARENT_BYTES), 'rojo=00f067aa0ba902b7');
  assert.equal(unpackHex(packHex('00ff10ab')!, 4), '00ff10ab');
});

test('what is not a lower-case traceparent or hex is not packed', () => {
  assert.equal(packTraceparent(TRACEPARENT.toUpperCase()), undefined);
  assert.equal(packTraceparent(`${TRACEPARENT}0`), undefined);
  assert.equal(packTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331'), undefined);
  assert.equal(packHex('abc'), undefined);
  assert.equal(packHex('zz'), undefined);
  assert.equal(packHex('ab', 'snow\u2603'), undefined);
});

test('OpenTelemetry: a local span context packs to 25 chars and unpacks to the same fields', () => {
  const adapter = new OtelAdapter();
  for (const traceFlags of [0, 1, 0x0f, 0xff]) {
    const ref: SpanContext = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags, traceState: undefined };
    const packed = adapter.pack(ref);
    assert.equal(typeof packed, 'string');
    assert.equal((packed as string).length, 25);
    assert.deepEqual(adapter.unpack(packed), ref);
  }
});

test('OpenTelemetry: a context with a trace state, a remote one or odd ids is kept as it is', () => {
  const adapter = new OtelAdapter();
  const base = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 };
  const kept: SpanContext[] = [
    { ...base, traceState: { get: () => 'x' } as unknown as SpanContext['traceState'] },
    { ...base, isRemote: true },
    { ...base, traceId: base.traceId.toUpperCase() },
    { ...base, spanId: 'b7ad6b71' },
  ];
  for (const ref of kept) {
    assert.equal(adapter.pack(ref), ref);
    assert.equal(adapter.unpack(ref), ref);
  }
});

test("New Relic: a tracestate's app prefix is kept once, its span id not repeated; with no span id in it, the rest as is", () => {
  const tracestates = new TracestatePrefixes();
  const spanId = TRACEPARENT.slice(36, 52);
  const withSpan = `33@nr=0-0-1234567-89012345-${spanId}-e8b91a159289ff74-1-1.234567-1700000000000`;
  const withoutSpan = '33@nr=0-0-1234567-89012345---1-1.234567-1700000000000';
  const other = 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE';
  const tails = [withSpan, withoutSpan, other].map((ts) => tracestates.pack(TRACEPARENT, ts));
  assert.equal(tails[0], '\u0001\u0000-e8b91a159289ff74-1-1.234567-1700000000000');
  assert.equal(tails[1], '\u0002\u0000--1-1.234567-1700000000000');
  assert.equal(tails[2], other);
  assert.deepEqual(tails.map((tail) => tracestates.unpack(TRACEPARENT, tail)), [withSpan, withoutSpan, other]);
  // Another app's prefix gets the next index; the first keeps its own.
  const second = tracestates.pack(TRACEPARENT, `1@nr=0-0-1-2-${spanId}-x`);
  assert.equal(second.charCodeAt(1), 1);
  assert.equal(tracestates.unpack(TRACEPARENT, second), `1@nr=0-0-1-2-${spanId}-x`);
  assert.equal(tracestates.unpack(TRACEPARENT, tails[0]!), withSpan);
});

test('New Relic: past 64 distinct prefixes, a tracestate is kept as it is', () => {
  const tracestates = new TracestatePrefixes();
  for (let app = 0; app < 64; app++) assert.notEqual(tracestates.pack(TRACEPARENT, `1@nr=0-0-1-${app}--x`), `1@nr=0-0-1-${app}--x`);
  assert.equal(tracestates.pack(TRACEPARENT, '1@nr=0-0-1-64--x'), '1@nr=0-0-1-64--x');
  assert.equal(tracestates.unpack(TRACEPARENT, '1@nr=0-0-1-64--x'), '1@nr=0-0-1-64--x');
});
