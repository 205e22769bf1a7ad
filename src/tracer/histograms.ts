/**
 * Histograms aggregated by the tracer itself, so that a message costs the same few additions
 * whether it is sampled or not (docs/ARCHITECTURE.md, step 8): one
 * cell per (metric, attribute set), made once and kept, so recording a value is a few
 * comparisons and additions — no attribute hashing, no allocation, no backend call.
 * Every adapter reads the cells on its backend's own collection cycle (adapter.ts).
 */
import { log } from '../logger';
import type { AttributeValue, Attributes } from './attributes';

/** Where a cell reports a fault of its forward (the tracer's fault budget, guard.ts). */
export interface FaultSink {
  fault(key: string, err: unknown): void;
}

/** A cell made outside a tracer: the fault is only logged. */
const LOG_ONLY: FaultSink = { fault: (key, err) => log.fault(key, err) };

/** Where a cell also hands each value, for a backend that cannot take pre-aggregated histograms. */
export interface HistogramForward {
  record(value: number, attributes: Record<string, AttributeValue>): void;
}

/**
 * A cumulative explicit-bucket histogram, since the cell was created. Buckets follow
 * OpenTelemetry: bucket `i` counts values in (boundaries[i-1], boundaries[i]] (a value equal
 * to a boundary falls in the bucket that boundary closes), the last one values above the
 * last boundary. Values that are not finite, or negative (a clock step), are ignored:
 * every ws-apm histogram is a size or a duration.
 */
export class HistogramCell {
  readonly boundaries: readonly number[];
  /** `boundaries.length + 1` bucket counts. */
  readonly counts: Float64Array;
  count = 0;
  sum = 0;
  /** Σ value², for backends that report a spread (New Relic). */
  sumOfSquares = 0;
  min = Infinity;
  max = -Infinity;
  /**
   * Min and max since `resetInterval()`, for the one reader that reports per interval
   * (New Relic's harvest, a delta-temporality OpenTelemetry reader).
   */
  intervalMin = Infinity;
  intervalMax = -Infinity;
  /** Epoch milliseconds: the start of this cumulative series. */
  readonly startTime = Date.now();
  /** Set by `MetricSource.forwardHistograms` only (an OpenTelemetry SDK without ws-apm's producer). */
  forward: HistogramForward | undefined = undefined;
  private readonly bounds: Float64Array;

  constructor(
    readonly name: string,
    readonly attributes: Attributes,
    boundaries: readonly number[],
    private readonly faults: FaultSink = LOG_ONLY,
  ) {
    this.boundaries = Object.freeze([...boundaries]);
    this.bounds = Float64Array.from(boundaries);
    this.counts = new Float64Array(boundaries.length + 1);
  }

  record(value: number): void {
    if (!(value >= 0 && value < Infinity)) return; // NaN, ±Infinity, negative
    this.count++;
    this.sum += value;
    this.sumOfSquares += value * value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    if (value < this.intervalMin) this.intervalMin = value;
    if (value > this.intervalMax) this.intervalMax = value;
    // Linear from the bottom: sizes and latencies are mostly small, so this ends within a
    // few comparisons (at most 15 with ws-apm's boundaries).
    const bounds = this.bounds;
    const n = bounds.length;
    let i = 0;
    while (i < n && value > bounds[i]) i++;
    this.counts[i]++;
    if (this.forward !== undefined) this.forwardValue(value);
  }

  /**
   * `record(micros / 1e6)` for a duration in whole microseconds: an integer argument is passed
   * as a small integer, where a fractional one is a heap number allocated per call.
   */
  recordMicros(micros: number): void {
    this.record(micros / 1e6);
  }

  resetInterval(): void {
    this.intervalMin = Infinity;
    this.intervalMax = -Infinity;
  }

  private forwardValue(value: number): void {
    try {
      this.forward!.record(value, this.attributes as Record<string, AttributeValue>);
    } catch (err) {
      this.faults.fault(`${this.name} histogram`, err);
    }
  }
}
