/**
 * The OpenTelemetry context of a message that was not sampled: one object that is both the
 * non-recording span (sampled=0, ids made only when asked) and the context holding it, and
 * the random ids it makes up.
 */
import { type Context, createContextKey, ROOT_CONTEXT, type Span, type SpanContext, trace, TraceFlags } from '@opentelemetry/api';

const TRACE_ID_WORDS = 4;
const SPAN_ID_WORDS = 2;
const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** `words` × 32 random bits as hex; Math.random is enough for ids nobody records. */
function randomHex(words: number): string {
  let out = '';
  for (let i = 0; i < words; i++) {
    const n = (Math.random() * 0x100000000) >>> 0;
    out += HEX[n >>> 24] + HEX[(n >>> 16) & 0xff] + HEX[(n >>> 8) & 0xff] + HEX[n & 0xff];
  }
  // An all-zero id is invalid (and would be dropped by propagators).
  return out === '0'.repeat(words * 8) ? randomHex(words) : out;
}

/** The API's key of the active span (context keys are `Symbol.for(description)`). */
const SPAN_KEY = createContextKey('OpenTelemetry Context Key SPAN');

/**
 * The span of a message that was not sampled, and the context that holds it, in one object
 * (the API's context costs a Map and three closures per instance; this is one allocation
 * per unsampled message). Non-recording, sampled=0, and its ids are made only if something
 * asks (a nested span's sampler, a propagator): most listeners never do.
 */
export class UnsampledSpan implements Span, Context {
  private context: SpanContext | undefined;

  getValue(key: symbol): unknown {
    return key === SPAN_KEY ? this : undefined;
  }

  setValue(key: symbol, value: unknown): Context {
    return trace.setSpan(ROOT_CONTEXT, this).setValue(key, value);
  }

  deleteValue(key: symbol): Context {
    return key === SPAN_KEY ? ROOT_CONTEXT : this;
  }

  spanContext(): SpanContext {
    return (this.context ??= { traceId: randomHex(TRACE_ID_WORDS), spanId: randomHex(SPAN_ID_WORDS), traceFlags: TraceFlags.NONE });
  }

  setAttribute(): this {
    return this;
  }

  setAttributes(): this {
    return this;
  }

  addEvent(): this {
    return this;
  }

  addLink(): this {
    return this;
  }

  addLinks(): this {
    return this;
  }

  setStatus(): this {
    return this;
  }

  updateName(): this {
    return this;
  }

  end(): void {}

  isRecording(): boolean {
    return false;
  }

  recordException(): void {}
}
