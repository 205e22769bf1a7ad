/**
 * A real OpenTelemetry SDK in this test process, exporting to memory: spans through
 * a SimpleSpanProcessor, metrics through a reader we collect on demand.
 */
import { context, metrics, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { MeterProvider, MetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { EventEmitter } from 'node:events';

class TestReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

export const spanExporter = new InMemorySpanExporter();
const ended = new EventEmitter();

/** Tells waiters about every span that ends (after the exporter has it). */
class NotifyingProcessor implements SpanProcessor {
  onStart(): void {}
  onEnd(span: ReadableSpan): void {
    ended.emit('span', span);
  }
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

/** Resolve once `count` finished spans match `name` (already finished ones count). */
export function waitForSpans(name: string | RegExp, count = 1): Promise<ReadableSpan[]> {
  return new Promise((resolve) => {
    const check = (): void => {
      const found = spansNamed(name);
      if (found.length >= count) {
        ended.removeListener('span', check);
        resolve(found);
      }
    };
    ended.on('span', check);
    check();
  });
}
const reader = new TestReader();
let registered = false;

/** Register the in-memory SDK globally (once per test process). */
export function registerMemorySdk(): void {
  if (registered) return;
  registered = true;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter), new NotifyingProcessor()] }));
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
}

export function spans(): ReadableSpan[] {
  return spanExporter.getFinishedSpans();
}

export function spansNamed(name: string | RegExp): ReadableSpan[] {
  return spans().filter((s) => (typeof name === 'string' ? s.name === name : name.test(s.name)));
}

export function resetSpans(): void {
  spanExporter.reset();
}

export interface Point {
  readonly attributes: Record<string, unknown>;
  readonly value: number;
  readonly count?: number;
  readonly sum?: number;
}

/** Collect every metric now: name → data points (histograms give count and sum). */
export async function collectMetrics(): Promise<Map<string, Point[]>> {
  const { resourceMetrics } = await reader.collect();
  const out = new Map<string, Point[]>();
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      const points = (metric.dataPoints as DataPoint<number | Histogram>[]).map((p) =>
        typeof p.value === 'number'
          ? { attributes: p.attributes, value: p.value }
          : { attributes: p.attributes, value: p.value.count, count: p.value.count, sum: p.value.sum },
      );
      out.set(metric.descriptor.name, [...(out.get(metric.descriptor.name) ?? []), ...points]);
    }
  }
  return out;
}

/** Sum of a metric's points whose attributes include `match`. */
export async function metricValue(name: string, match: Record<string, unknown> = {}): Promise<number> {
  const points = (await collectMetrics()).get(name) ?? [];
  return points
    .filter((p) => Object.entries(match).every(([k, v]) => p.attributes[k] === v))
    .reduce((sum, p) => sum + p.value, 0);
}
