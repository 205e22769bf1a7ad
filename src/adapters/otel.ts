/**
 * OpenTelemetry adapter: spans and metrics through the global `@opentelemetry/api`
 * providers (the app's SDK, or the one ws-apm starts in otel-sdk.ts).
 */
import {
  type BatchObservableResult,
  context,
  type Context,
  createContextKey,
  type Histogram,
  type Link,
  type Meter,
  metrics,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  type Tracer,
  SpanKind,
  isSpanContextValid,
  SpanStatusCode,
  trace,
  TraceFlags,
} from '@opentelemetry/api';
import { METRIC_ACTIVE_CONNECTIONS, METRIC_INFO, ATTR_ERROR_TYPE } from '../semconv';
import type { Adapter, Attributes, Carrier, CounterSource, OperationKind, OperationOutcome, OperationSpec } from '../tracer/adapter';
import { VERSION } from '../version';
import { withTimeout } from './bounded';

/**
 * The key OpenTelemetry's own instrumentations check to stand aside (`suppressTracing` of
 * @opentelemetry/core). Context keys are `Symbol.for(description)`, so this is the same key
 * whatever copy of core the app's instrumentations use, without depending on core here.
 */
const SUPPRESS_TRACING_KEY = createContextKey('OpenTelemetry SDK Context Key SUPPRESS_TRACING');

/**
 * A context that carries the SUPPRESS_TRACING key while `scope.suppressing` is true, and is
 * `base` otherwise; contexts derived from it keep the same scope. Only the public `Context`
 * interface is used, so any context manager and any copy of the API accept it.
 */
class SuppressedWhile implements Context {
  constructor(
    private readonly base: Context,
    private readonly scope: { suppressing: boolean },
  ) {}

  getValue(key: symbol): unknown {
    if (key === SUPPRESS_TRACING_KEY && this.scope.suppressing) return true;
    return this.base.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    return new SuppressedWhile(this.base.setValue(key, value), this.scope);
  }

  deleteValue(key: symbol): Context {
    return new SuppressedWhile(this.base.deleteValue(key), this.scope);
  }
}

const KIND: Record<OperationKind, SpanKind> = {
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
  internal: SpanKind.INTERNAL,
};

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

export class OtelAdapter implements Adapter<Span, SpanContext> {
  readonly name = 'otel';
  /**
   * Taken at bootstrap too: a tracer taken from this copy of @opentelemetry/api before any SDK
   * registered is bound to this copy's proxy provider, which only an SDK using the same copy
   * ever fills. An SDK on another copy (auto-instrumentations-node installed with its own API,
   * loaded after `-r ws-apm/register`) registers its own proxy: ws-apm's spans would all be no-ops.
   */
  private tracer: Tracer | undefined;
  /**
   * The metrics API has no proxy provider: a meter taken before the SDK registers stays
   * a no-op forever. So the meter is taken at bootstrap (see below), not at construction.
   */
  private meter: Meter | undefined;
  private counterSource: CounterSource | undefined;
  private readonly instruments = new Map<string, Histogram>();
  private unbindCounters: (() => void) | undefined;
  private bootstrapped = false;
  private readonly linkCache = new WeakMap<readonly SpanContext[], Link[]>();
  /** False while no SDK is registered: nothing to record or propagate, so no context switch. */
  private sdk = false;

  /**
   * `beforeBootstrap` (e.g. starting an SDK) runs once at bootstrap, which happens at the
   * first operation or when the app's main module has run (select.ts), whichever is first.
   */
  constructor(private readonly beforeBootstrap?: () => void) {}

  /** Take the tracer and the meter and bind the counters, once; after the app had its chance to register an SDK. */
  bootstrap(): void {
    if (this.bootstrapped) return;
    this.bootstrapped = true;
    this.beforeBootstrap?.();
    this.sdk = otelSdkRegistered();
    this.tracer = trace.getTracer('ws-apm', VERSION);
    this.meter = metrics.getMeter('ws-apm', VERSION);
    if (this.counterSource !== undefined) this.bindNow(this.meter, this.counterSource);
  }

  readonly histograms = {
    record: (name: string, value: number, attributes: Attributes): void => {
      let histogram = this.instruments.get(name);
      if (histogram === undefined) {
        if (!this.bootstrapped) this.bootstrap();
        const info = METRIC_INFO[name];
        histogram = this.meter!.createHistogram(name, {
          unit: info?.unit,
          description: info?.description,
          advice: info?.buckets ? { explicitBucketBoundaries: [...info.buckets] } : undefined,
        });
        this.instruments.set(name, histogram);
      }
      histogram.record(value, attributes as Record<string, string | number | boolean>);
    },
  };

  start(spec: OperationSpec<SpanContext>): Span | undefined {
    if (!this.bootstrapped) this.bootstrap();
    const parent = spec.parent;
    let ctx: Context;
    switch (parent.type) {
      case 'active':
        ctx = context.active();
        break;
      case 'remote':
        ctx = propagation.extract(ROOT_CONTEXT, parent.carrier);
        break;
      case 'ref':
        ctx = trace.setSpanContext(ROOT_CONTEXT, parent.ref);
        break;
      default:
        ctx = ROOT_CONTEXT;
    }
    let links: Link[] | undefined;
    if (spec.links !== undefined) {
      // The tracer passes the same array for every message of a socket: convert it once.
      links = this.linkCache.get(spec.links);
      if (links === undefined) {
        links = spec.links.map((ref) => ({ context: ref }));
        this.linkCache.set(spec.links, links);
      }
    }
    const span = this.tracer!.startSpan(
      spec.name,
      {
        kind: KIND[spec.kind],
        attributes: spec.attributes as Record<string, string | number | boolean>,
        links,
        startTime: spec.startTime,
        root: parent.type === 'root',
      },
      ctx,
    );
    // No SDK registered (the API's no-op tracer): nothing to record or propagate, so the
    // tracer skips the context switch entirely. A span a sampler dropped keeps a valid
    // context and still runs, so what nests under it is dropped consistently.
    if (!isSpanContextValid(span.spanContext())) return undefined;
    return span;
  }

  end(span: Span, outcome: OperationOutcome): void {
    if (outcome.attributes !== undefined) span.setAttributes(outcome.attributes as Record<string, string | number | boolean>);
    const error = outcome.error;
    if (error !== undefined && error !== null) {
      if (error instanceof Error) span.recordException(error);
      const type = error instanceof Error ? error.constructor.name || error.name : typeof error;
      span.setAttribute(ATTR_ERROR_TYPE, type);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
    } else if (outcome.failed) {
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end(outcome.endTime);
  }

  run<A extends unknown[], R>(span: Span, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    return context.with(trace.setSpan(ROOT_CONTEXT, span), fn, thisArg, ...args);
  }

  ref(span: Span): SpanContext {
    return span.spanContext();
  }

  traceIdOf(ref: SpanContext): string {
    return ref.traceId;
  }

  /**
   * The request that is this client span: OpenTelemetry's http instrumentation stands aside
   * for it (suppressed tracing: no span, no header of its own), but only while the request is
   * being created. instrumentation-http binds the request's emitter to the context it was
   * called in, and ws emits the socket's `upgrade`, `open`, `error`, `close` and
   * `unexpected-response` from the request's listeners: a plain suppressed context would
   * silence everything the app does in those listeners (http calls, a reconnect). Once the
   * call returns, the same context reads as the WS CONNECT span's, unsuppressed.
   */
  runRequest<A extends unknown[], R>(span: Span, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    const scope = { suppressing: true };
    try {
      return context.with(new SuppressedWhile(trace.setSpan(ROOT_CONTEXT, span), scope), fn, thisArg, ...args);
    } finally {
      scope.suppressing = false;
    }
  }

  /**
   * A non-recording span with sampled=0 and fresh ids (or the upstream context that said
   * "not sampled"): the SDK's parent-based samplers drop everything nested, and
   * propagators send `-00` downstream. No SDK: nothing would record anyway, so no switch.
   */
  runUnsampled<A extends unknown[], R>(carrier: Carrier | undefined, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    if (!this.bootstrapped) this.bootstrap();
    if (!this.sdk) return fn.apply(thisArg, args);
    const ctx =
      carrier !== undefined
        ? propagation.extract(ROOT_CONTEXT, carrier)
        : trace.setSpanContext(ROOT_CONTEXT, { traceId: randomHex(TRACE_ID_WORDS), spanId: randomHex(SPAN_ID_WORDS), traceFlags: TraceFlags.NONE });
    return context.with(ctx, fn, thisArg, ...args);
  }

  active(): object | undefined {
    return trace.getSpan(context.active());
  }

  keyOf(span: Span): object {
    return span;
  }

  live(key: object): boolean {
    // isRecording() is false once a span ended, and for unsampled spans (whose children would
    // not be sampled either). A sampled remote context made active by runWithContext() (a
    // broker hand-off) counts as live.
    const span = key as Span;
    if (span.isRecording()) return true;
    const sc = span.spanContext();
    return sc.isRemote === true && (sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED;
  }

  inject(span: Span | undefined, carrier: Record<string, string>): void {
    const ctx = span === undefined ? context.active() : trace.setSpan(context.active(), span);
    propagation.inject(ctx, carrier);
  }

  extract(carrier: Carrier): Context {
    return propagation.extract(ROOT_CONTEXT, carrier);
  }

  runWithRemote<R>(carrier: Carrier, fn: () => R): R {
    return context.with(propagation.extract(context.active(), carrier), fn);
  }

  bindCounters(source: CounterSource): void {
    this.counterSource = source;
    if (this.meter !== undefined) this.bindNow(this.meter, source);
  }

  private bindNow(meter: Meter, source: CounterSource): void {
    const observables = source.counterNames.map((name) => {
      const info = METRIC_INFO[name];
      const options = { unit: info?.unit, description: info?.description };
      return name === METRIC_ACTIVE_CONNECTIONS
        ? meter.createObservableUpDownCounter(name, options)
        : meter.createObservableCounter(name, options);
    });
    const byName = new Map(source.counterNames.map((name, i) => [name, observables[i]]));
    const callback = (result: BatchObservableResult): void => {
      for (const cell of source.cells()) {
        const instrument = byName.get(cell.name);
        if (instrument !== undefined) result.observe(instrument, cell.value, cell.attributes as Record<string, string>);
      }
    };
    meter.addBatchObservableCallback(callback, observables);
    this.unbindCounters = () => meter.removeBatchObservableCallback(callback, observables);
  }

  async flush(timeoutMs: number): Promise<void> {
    await withTimeout(forceFlushGlobalProviders(), timeoutMs);
  }

  /** Stop reporting this tracer's counters; the providers themselves are not ours to stop. */
  async shutdown(): Promise<void> {
    this.unbindCounters?.();
    this.unbindCounters = undefined;
  }
}

type Flushable = { forceFlush?: () => Promise<void>; getDelegate?: () => unknown };

function delegateOf(provider: unknown): Flushable {
  const p = provider as Flushable;
  return (typeof p.getDelegate === 'function' ? p.getDelegate() : p) as Flushable;
}

/** Flush whatever SDK providers are registered (the app's or ours); never rejects. */
export async function forceFlushGlobalProviders(): Promise<void> {
  const providers = [delegateOf(trace.getTracerProvider()), delegateOf(metrics.getMeterProvider())];
  await Promise.all(
    providers.map(async (p) => {
      try {
        if (typeof p.forceFlush === 'function') await p.forceFlush();
      } catch {
        // Export failures are the exporter's to report; flushing is best effort.
      }
    }),
  );
}

/** True when an SDK (anything but the API's no-op) is registered as the global tracer provider. */
export function otelSdkRegistered(): boolean {
  const delegate = delegateOf(trace.getTracerProvider()) as { constructor?: { name?: string } };
  return delegate?.constructor?.name !== 'NoopTracerProvider';
}

