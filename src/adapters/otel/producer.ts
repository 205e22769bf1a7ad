/**
 * ws-apm's histograms as an OpenTelemetry `MetricProducer` (@opentelemetry/sdk-metrics):
 * a metric reader collects it next to the SDK's own instruments, on the reader's cycle, so
 * the histograms the tracer aggregates itself (histograms.ts) reach the exporter without
 * one `Histogram.record` per value (which hashes the attribute set every time).
 *
 * - The SDK ws-apm starts itself puts a producer on every metric reader (sdk.ts).
 * - An app with its own SDK passes `metricProducer()` to its reader:
 *   `new PeriodicExportingMetricReader({ exporter, metricProducers: [metricProducer()] })`.
 *   A producer handed out before ws-apm's OpenTelemetry adapter starts (the normal case:
 *   the app builds its SDK at start-up) makes the adapter use it instead of recording each
 *   value through the API (adapter.ts); one handed out later reports nothing (the values
 *   already go through the API), so nothing is ever reported twice.
 *
 * Only plain data crosses to the SDK (the shapes of sdk-metrics 2.x and 3.x alike), so
 * this module loads nothing from the SDK.
 */
import { log } from '../../logger';
import { METRIC_INFO } from '../../semconv';
import type { HistogramCell, MetricSource } from '../../tracer/adapter';
import { VERSION } from '../../version';

export type Temporality = 'cumulative' | 'delta';

export interface MetricProducerOptions {
  /**
   * The aggregation temporality of the histograms: `cumulative` (the default, OpenTelemetry's)
   * or `delta`, for a reader whose exporter prefers delta
   * (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta`).
   */
  readonly temporality?: Temporality;
}

/**
 * An `@opentelemetry/sdk-metrics` `MetricProducer` (structurally: ws-apm does not depend on
 * the SDK's types), for `metricProducers` of a metric reader.
 */
export interface WsApmMetricProducer {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the SDK's own Resource and ScopeMetrics types, which ws-apm does not import
  collect(options?: { timeoutMillis?: number }): Promise<{ resourceMetrics: { resource: any; scopeMetrics: any[] }; errors: unknown[] }>;
}

// Enum values of the SDK (stable across 1.x-3.x): DataPointType.HISTOGRAM, AggregationTemporality,
// and @opentelemetry/api's ValueType.DOUBLE.
const HISTOGRAM = 0;
const DELTA = 0;
const CUMULATIVE = 1;
const DOUBLE = 1;

type HrTime = [number, number];

function hrTime(epochMs: number): HrTime {
  const ms = Math.trunc(epochMs);
  return [Math.trunc(ms / 1000), (ms % 1000) * 1e6];
}

/**
 * The SDK's reader keeps its own resource and ignores the producers' (MetricReader.collect):
 * this placeholder only fills the field.
 */
const NO_RESOURCE = Object.freeze({
  attributes: Object.freeze({}),
  asyncAttributesPending: false,
  getRawAttributes: () => [],
  waitForAsyncAttributes: async () => undefined,
  merge(other: unknown) {
    return other ?? this;
  },
});

const SCOPE = Object.freeze({ name: 'ws-apm', version: VERSION });

interface Reported {
  count: number;
  sum: number;
  counts: number[];
}

interface HistogramPoint {
  readonly startTime: HrTime;
  readonly endTime: HrTime;
  readonly attributes: HistogramCell['attributes'];
  readonly value: {
    readonly buckets: { readonly boundaries: number[]; readonly counts: number[] };
    readonly count: number;
    readonly sum: number;
    readonly min: number;
    readonly max: number;
  };
}

export class HistogramProducer implements WsApmMetricProducer {
  /** Delta only: what the previous collection reported, per cell. */
  private readonly reported = new Map<HistogramCell, Reported>();
  private lastCollect = Date.now();

  constructor(
    private readonly source: () => MetricSource | undefined,
    readonly temporality: Temporality = 'cumulative',
  ) {}

  async collect(): Promise<{ resourceMetrics: { resource: typeof NO_RESOURCE; scopeMetrics: unknown[] }; errors: unknown[] }> {
    try {
      const metrics = this.metrics();
      return { resourceMetrics: { resource: NO_RESOURCE, scopeMetrics: metrics.length === 0 ? [] : [{ scope: SCOPE, metrics }] }, errors: [] };
    } catch (err) {
      log.fault('otel metric producer', err);
      return { resourceMetrics: { resource: NO_RESOURCE, scopeMetrics: [] }, errors: [err] };
    }
  }

  /** One HISTOGRAM metric per name with values, its data points the cells (cumulative or since the last collection). */
  private metrics(): unknown[] {
    const source = this.source();
    if (source === undefined) return [];
    const now = Date.now();
    const delta = this.temporality === 'delta';
    const endTime = hrTime(now);
    const deltaStart = hrTime(this.lastCollect);
    this.lastCollect = now;
    const byName = new Map<string, HistogramPoint[]>();
    for (const cell of source.histograms()) {
      const point = delta ? this.deltaPoint(cell, deltaStart, endTime) : cumulativePoint(cell, endTime);
      if (point === undefined) continue;
      const points = byName.get(cell.name);
      if (points === undefined) byName.set(cell.name, [point]);
      else points.push(point);
    }
    const out: unknown[] = [];
    for (const [name, dataPoints] of byName) {
      const info = METRIC_INFO[name];
      out.push({
        descriptor: { name, description: info?.description ?? '', unit: info?.unit ?? '', valueType: DOUBLE },
        aggregationTemporality: delta ? DELTA : CUMULATIVE,
        dataPointType: HISTOGRAM,
        dataPoints,
      });
    }
    return out;
  }

  private deltaPoint(cell: HistogramCell, startTime: HrTime, endTime: HrTime): HistogramPoint | undefined {
    let last = this.reported.get(cell);
    if (last === undefined) {
      last = { count: 0, sum: 0, counts: new Array<number>(cell.counts.length).fill(0) };
      this.reported.set(cell, last);
    }
    const count = cell.count - last.count;
    if (count === 0) return undefined;
    const counts = Array.from(cell.counts, (c, i) => c - last.counts[i]);
    const point: HistogramPoint = {
      startTime,
      endTime,
      attributes: cell.attributes,
      value: {
        buckets: { boundaries: [...cell.boundaries], counts },
        count,
        sum: cell.sum - last.sum,
        // The interval's own: a delta reader is the one reader of the cells' intervals.
        min: cell.intervalMin,
        max: cell.intervalMax,
      },
    };
    cell.resetInterval();
    last.count = cell.count;
    last.sum = cell.sum;
    last.counts = Array.from(cell.counts);
    return point;
  }
}

function cumulativePoint(cell: HistogramCell, endTime: HrTime): HistogramPoint | undefined {
  if (cell.count === 0) return undefined;
  return {
    startTime: hrTime(cell.startTime),
    endTime,
    attributes: cell.attributes,
    value: {
      buckets: { boundaries: [...cell.boundaries], counts: Array.from(cell.counts) },
      count: cell.count,
      sum: cell.sum,
      min: cell.min,
      max: cell.max,
    },
  };
}

// ---------------------------------------------------------------- the app's SDK

/** Shared by every copy of ws-apm in the process (like the instrumentation itself, index.ts). */
interface Hub {
  /** Producers handed out by `metricProducer()`. */
  requested: number;
  /** Set while an OpenTelemetry adapter reports its histograms through the handed-out producers. */
  source: (() => MetricSource | undefined) | undefined;
  /** Set while an OpenTelemetry adapter reports histograms another way (how, for the warning). */
  boundElsewhere: string | undefined;
}

const HUB = Symbol.for('ws-apm.otel-metric-producer');

function hub(): Hub {
  const g = globalThis as typeof globalThis & { [HUB]?: Hub };
  return (g[HUB] ??= { requested: 0, source: undefined, boundElsewhere: undefined });
}

/**
 * ws-apm's histograms for an OpenTelemetry SDK the app sets up itself: pass it to the app's
 * metric reader, before ws-apm starts recording (at the app's start-up),
 * `new PeriodicExportingMetricReader({ exporter, metricProducers: [metricProducer()] })`.
 * Without it ws-apm puts the same producer on the SDK's readers itself where it can
 * (app-readers.ts), else records every value through the OpenTelemetry API (correct, and dearer).
 */
export function metricProducer(options: MetricProducerOptions = {}): WsApmMetricProducer {
  const h = hub();
  h.requested++;
  if (h.boundElsewhere !== undefined) {
    log.warn(
      `metricProducer() was called after ws-apm began reporting histograms ${h.boundElsewhere}; ` +
        'this producer reports nothing (pass it when the app builds its SDK, at start-up)',
    );
  }
  return new HistogramProducer(() => hub().source?.(), options.temporality ?? 'cumulative');
}

/**
 * The OpenTelemetry adapter starts reporting `source` through the handed-out producers, if
 * any were: true when it should record nothing through the API.
 */
export function claimHandedOutProducers(source: () => MetricSource | undefined): boolean {
  const h = hub();
  if (h.requested === 0) return false;
  h.source = source;
  return true;
}

/**
 * The OpenTelemetry adapter reports histograms `how` (on the app's readers, through the API):
 * a producer handed out now would double them.
 */
export function reportingElsewhere(how: string): void {
  hub().boundElsewhere = how;
}

/** The adapter stops (uninstrument): handed-out producers report nothing until the next one claims them. */
export function releaseHandedOutProducers(source: () => MetricSource | undefined): void {
  const h = hub();
  if (h.source === source) h.source = undefined;
  h.boundElsewhere = undefined;
}
