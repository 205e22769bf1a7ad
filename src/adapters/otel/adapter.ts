/**
 * OpenTelemetry adapter: spans and metrics through the global `@opentelemetry/api`
 * providers (the app's SDK, or the one ws-apm starts in sdk.ts). It owns the mapping
 * of operations to spans and of the tracer's metric cells to instruments; the unsampled
 * context is in unsampled.ts, the global providers' checks and flush in providers.ts.
 */
import {
  type BatchObservableResult,
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
import { METRIC_ACTIVE_CONNECTIONS, METRIC_INFO, ATTR_ERROR_TYPE } from '../../semconv';
import type { Adapter, Carrier, HistogramCell, MetricSource, OperationKind, OperationOutcome, OperationSpec } from '../../tracer/adapter';
import { log } from '../../logger';
import { VERSION } from '../../version';
import { withTimeout } from '../bounded';
import { packHex, unpackHex } from '../packed';
import { attachToAppReaders } from './app-readers';
import { activeContext, withContext } from './context-manager';
import { claimHandedOutProducers, releaseHandedOutProducers, reportingElsewhere } from './producer';
import { forceFlushGlobalProviders, meterSdkRegistered, otelSdkRegistered } from './providers';
import { UnsampledSpan } from './unsampled';

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
  private metricSource: MetricSource | undefined;
  private readonly histogramSource = (): MetricSource | undefined => this.metricSource;
  private unbindCounters: (() => void) | undefined;
  /** Takes ws-apm's producers off the app's readers (app-readers.ts), when they were put there. */
  private detachReaders: (() => void) | undefined;
  private bootstrapped = false;
  private readonly linkCache = new WeakMap<readonly SpanContext[], Link[]>();
  /** False while no SDK is registered: nothing to record or propagate, so no context switch. */
  private sdk = false;

  /**
   * `beforeBootstrap` (e.g. starting an SDK) runs once at bootstrap, which happens at the
   * first operation or when the app's main module has run (index.ts), whichever is first.
   * It gets the tracer's histograms for the SDK's metric readers, and returns true when
   * every reader collects them through ws-apm's producer (producer.ts).
   */
  constructor(private readonly beforeBootstrap?: (histograms: () => MetricSource | undefined) => boolean) {}

  /** Take the tracer and the meter and bind the metrics, once; after the app had its chance to register an SDK. */
  bootstrap(): void {
    if (this.bootstrapped) return;
    this.bootstrapped = true;
    const ownProducers = this.beforeBootstrap?.(this.histogramSource) === true;
    this.sdk = otelSdkRegistered();
    this.tracer = trace.getTracer('ws-apm', VERSION);
    this.meter = metrics.getMeter('ws-apm', VERSION);
    if (this.metricSource !== undefined) this.bindNow(this.meter, this.metricSource, ownProducers);
  }

  start(spec: OperationSpec<SpanContext>): Span | undefined {
    if (!this.bootstrapped) this.bootstrap();
    const parent = spec.parent;
    let ctx: Context;
    switch (parent.type) {
      case 'active':
        ctx = activeContext();
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
        // No `root: true` for a root: ROOT_CONTEXT has no span already, and the option makes the
        // SDK copy the context to delete one (an object and a Map per span).
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
    return withContext(trace.setSpan(ROOT_CONTEXT, span), fn, thisArg, args);
  }

  ref(span: Span): SpanContext {
    return span.spanContext();
  }

  /**
   * A connection's handshake as 25 chars (trace id, span id, flags as bytes; 48 B) instead of the
   * span's context with its two id strings (136 B). A context with a trace state (or ids a custom
   * generator made otherwise) is kept as it is.
   */
  pack(ref: SpanContext): unknown {
    if (ref.traceState !== undefined || ref.isRemote === true || ref.traceId.length !== 32 || ref.spanId.length !== 16) return ref;
    const flags = ref.traceFlags;
    if (!Number.isInteger(flags) || flags < 0 || flags > 255) return ref;
    return packHex(`${ref.traceId}${ref.spanId}${flags < 16 ? '0' : ''}${flags.toString(16)}`) ?? ref;
  }

  /** The span context `pack` was given: the same fields, as the SDK makes them for a local span. */
  unpack(packed: unknown): SpanContext {
    if (typeof packed !== 'string') return packed as SpanContext;
    const hex = unpackHex(packed, 25);
    return { traceId: hex.slice(0, 32), spanId: hex.slice(32, 48), traceFlags: parseInt(hex.slice(48), 16), traceState: undefined };
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
      return withContext(new SuppressedWhile(trace.setSpan(ROOT_CONTEXT, span), scope), fn, thisArg, args);
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
    if (this.unsampledHere()) return fn.apply(thisArg, args);
    const ctx = carrier !== undefined ? propagation.extract(ROOT_CONTEXT, carrier) : new UnsampledSpan();
    return withContext(ctx, fn, thisArg, args);
  }

  /** No SDK registered: nothing records, so there is nothing to switch. */
  unsampledHere(): boolean {
    if (!this.bootstrapped) this.bootstrap();
    return !this.sdk;
  }

  active(): object | undefined {
    return trace.getSpan(activeContext());
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
    if (span instanceof UnsampledSpan) return false; // without making up its ids
    const sc = span.spanContext();
    return sc.isRemote === true && (sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED;
  }

  inject(span: Span | undefined, carrier: Record<string, string>): void {
    const active = activeContext();
    const ctx = span === undefined ? active : trace.setSpan(active, span);
    propagation.inject(ctx, carrier);
  }

  extract(carrier: Carrier): Context {
    return propagation.extract(ROOT_CONTEXT, carrier);
  }

  runWithRemote<R>(carrier: Carrier, fn: () => R): R {
    return withContext(propagation.extract(activeContext(), carrier), fn, undefined, []);
  }

  bindMetrics(source: MetricSource): void {
    this.metricSource = source;
    if (this.meter !== undefined) this.bindNow(this.meter, source, false);
  }

  private bindNow(meter: Meter, source: MetricSource, ownProducers: boolean): void {
    this.bindHistograms(meter, source, ownProducers);
    this.bindCounters(meter, source);
  }

  /**
   * Histograms are aggregated by the tracer; one path to the SDK per process:
   * - `producer`: a metric reader collects the cells through ws-apm's MetricProducer — the
   *   SDK ws-apm started itself, or the app's SDK when the app passed `metricProducer()`;
   * - `readers`: the app's SDK without the producer: ws-apm puts it on the SDK's readers
   *   itself (app-readers.ts), where their shapes and the app's choices allow;
   * - `api`: otherwise, each cell also records every value in an SDK histogram (same name,
   *   unit, boundaries and frozen attributes);
   * - `none`: no SDK meter provider is registered (the API's no-op).
   */
  private bindHistograms(meter: Meter, source: MetricSource, ownProducers: boolean): void {
    if (ownProducers || claimHandedOutProducers(this.histogramSource)) {
      log.debug(`otel: histograms are collected through ws-apm's metric producer (${ownProducers ? "ws-apm's SDK" : "the app's SDK"})`);
      return;
    }
    if (!meterSdkRegistered()) return; // the API's no-op: nothing to record into
    this.detachReaders = attachToAppReaders(metrics.getMeterProvider(), this.histogramSource);
    if (this.detachReaders !== undefined) {
      log.debug("otel: histograms are collected through ws-apm's metric producer (put on the readers of the app's SDK)");
      reportingElsewhere("through the producer it put on the app's metric readers");
      return;
    }
    log.debug(
      "otel: histograms are recorded through the OpenTelemetry API (the app's SDK has no metricProducer() from ws-apm, and views, " +
        'a histogram aggregation of its own, or readers ws-apm does not recognise)',
    );
    reportingElsewhere('through the OpenTelemetry API');
    const instruments = new Map<string, Histogram>();
    for (const name of source.histogramNames) {
      const info = METRIC_INFO[name];
      instruments.set(
        name,
        meter.createHistogram(name, {
          unit: info?.unit,
          description: info?.description,
          advice: info?.buckets ? { explicitBucketBoundaries: [...info.buckets] } : undefined,
        }),
      );
    }
    source.forwardHistograms((cell: HistogramCell) => instruments.get(cell.name));
  }

  private bindCounters(meter: Meter, source: MetricSource): void {
    const observables = source.counterNames.map((name) => {
      const info = METRIC_INFO[name];
      const options = { unit: info?.unit, description: info?.description };
      return name === METRIC_ACTIVE_CONNECTIONS
        ? meter.createObservableUpDownCounter(name, options)
        : meter.createObservableCounter(name, options);
    });
    const byName = new Map(source.counterNames.map((name, i) => [name, observables[i]]));
    const callback = (result: BatchObservableResult): void => {
      for (const cell of source.counters()) {
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

  /** Stop reporting this tracer's metrics; the providers themselves are not ours to stop. */
  async shutdown(): Promise<void> {
    this.unbindCounters?.();
    this.unbindCounters = undefined;
    this.metricSource?.forwardHistograms(undefined);
    this.detachReaders?.();
    this.detachReaders = undefined;
    releaseHandedOutProducers(this.histogramSource);
  }
}
