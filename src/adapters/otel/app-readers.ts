/**
 * ws-apm's histograms on the metric readers of an app's own OpenTelemetry SDK that was not
 * given `metricProducer()` — the usual case: auto-instrumentations-node's `register`, or a
 * NodeSDK set up before ws-apm was added. The alternative, one `Histogram.record` per value
 * through the API, hashes the attribute set on every call: about 0.8 µs per value, three
 * values per echoed message (measured: bench/micro.js).
 *
 * A reader collects its `_metricProducers` next to the SDK's own instruments (sdk-metrics
 * 2.x and 3.x, the lines tested; the `metricProducers` option fills the same array), so
 * adding ws-apm's producer there is what the app would have written. These are the SDK's
 * internals: every shape is checked before anything is touched, and whatever does not look
 * exactly as expected leaves the readers alone (the caller then records through the API). So
 * do an app's choices that a producer would bypass: views, and a histogram aggregation other
 * than the default.
 */
import type { MetricSource } from '../../tracer/adapter';
import { HistogramProducer, type Temporality } from './producer';

// sdk-metrics' InstrumentType.HISTOGRAM, AggregationTemporality.DELTA, AggregationType.DEFAULT
// (the same values in 2.x and 3.x).
const INSTRUMENT_HISTOGRAM = 'HISTOGRAM';
const TEMPORALITY_DELTA = 0;
const AGGREGATION_DEFAULT = 0;

interface ReaderLike {
  _metricProducers: unknown[];
  selectAggregationTemporality(instrumentType: string): unknown;
  selectAggregation(instrumentType: string): unknown;
}

interface ProviderLike {
  _sharedState?: {
    metricCollectors?: unknown;
    viewRegistry?: { _registeredViews?: unknown };
  };
}

function readerOf(collector: unknown): ReaderLike | undefined {
  const reader = (collector as { _metricReader?: Partial<ReaderLike> } | null)?._metricReader;
  if (
    reader === null ||
    typeof reader !== 'object' ||
    !Array.isArray(reader._metricProducers) ||
    typeof reader.selectAggregationTemporality !== 'function' ||
    typeof reader.selectAggregation !== 'function'
  ) {
    return undefined;
  }
  return reader as ReaderLike;
}

/** The reader's aggregation of histograms is the SDK's default (explicit buckets, the instrument's advice). */
function defaultAggregation(reader: ReaderLike): boolean {
  const selected = reader.selectAggregation(INSTRUMENT_HISTOGRAM) as { type?: unknown } | null;
  return selected?.type === AGGREGATION_DEFAULT;
}

/**
 * Put a producer of `source` on every reader of `provider` (the registered global meter
 * provider): returns the function that takes them off again, or undefined when nothing was
 * touched (a shape that is not sdk-metrics', views, a non-default histogram aggregation).
 * A provider with no reader gets nothing and needs nothing: no reader would collect a value.
 */
export function attachToAppReaders(provider: unknown, source: () => MetricSource | undefined): (() => void) | undefined {
  const state = (provider as ProviderLike | null)?._sharedState;
  const collectors = state?.metricCollectors;
  const views = state?.viewRegistry?._registeredViews;
  if (!Array.isArray(collectors) || !Array.isArray(views) || views.length > 0) return undefined;
  const readers: ReaderLike[] = [];
  for (const collector of collectors) {
    const reader = readerOf(collector);
    if (reader === undefined || !defaultAggregation(reader)) return undefined;
    readers.push(reader);
  }
  const attached = readers.map((reader) => {
    const temporality: Temporality = reader.selectAggregationTemporality(INSTRUMENT_HISTOGRAM) === TEMPORALITY_DELTA ? 'delta' : 'cumulative';
    const producer = new HistogramProducer(source, temporality);
    reader._metricProducers.push(producer);
    return { reader, producer };
  });
  return () => {
    for (const { reader, producer } of attached) {
      const i = reader._metricProducers.indexOf(producer);
      if (i !== -1) reader._metricProducers.splice(i, 1);
    }
  };
}
