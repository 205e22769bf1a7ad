/**
 * When the app registered no OpenTelemetry SDK, ws-apm starts `@opentelemetry/sdk-node`
 * itself, configured only by the standard OTEL_* variables, and owns its shutdown.
 */
import { createRequire } from 'node:module';
import { log } from '../logger';
import type { MetricSource } from '../tracer/adapter';
import { withTimeout } from './bounded';
import { otelSdkRegistered } from './otel-providers';
import { HistogramProducer, type Temporality } from './otel-producer';

export interface OwnedSdk {
  shutdown(timeoutMs: number): Promise<void>;
  /** How many of its metric readers report ws-apm's histograms through a producer (otel-producer.ts). */
  readonly producers: number;
}

/**
 * Start the SDK unless one is registered (or OTEL_SDK_DISABLED=true, which the SDK
 * honours itself). Loaded lazily: apps with their own SDK never load sdk-node.
 * With `histograms`, every metric reader also collects them through a producer.
 */
export function startOwnSdk(flushTimeoutMs: number, histograms?: () => MetricSource | undefined): OwnedSdk | undefined {
  if (otelSdkRegistered()) return undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const sdkNode = require('@opentelemetry/sdk-node') as SdkNode;
    const env = new EnvOverride();
    try {
      // An export in flight holds a socket, and so the process, for the exporter's timeout
      // (10 s by default, retried on 503) when the collector hangs: an app that would end by
      // itself would linger. Unless the user chose a timeout, bound each export by the flush
      // timeout, so ws-apm never keeps a process alive longer than that.
      const TIMEOUTS = ['OTEL_EXPORTER_OTLP_TIMEOUT', 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', 'OTEL_EXPORTER_OTLP_METRICS_TIMEOUT'];
      if (TIMEOUTS.every((name) => process.env[name] === undefined)) {
        env.set('OTEL_EXPORTER_OTLP_TIMEOUT', String(Math.max(1, flushTimeoutMs)));
      }
      const readers = histograms === undefined ? undefined : metricReadersWithProducer(sdkNode, histograms);
      if (readers !== undefined && readers.list.length > 0) {
        // Our readers replace the ones sdk-node would build from OTEL_METRICS_EXPORTER: keep it
        // from building (unused) duplicates.
        env.set('OTEL_METRICS_EXPORTER', 'none');
      } else if (process.env.OTEL_METRICS_EXPORTER === undefined) {
        // The OpenTelemetry spec's default for OTEL_METRICS_EXPORTER is `otlp`, but sdk-node
        // starts no metric reader when it is unset; metrics are half of what ws-apm is for.
        env.set('OTEL_METRICS_EXPORTER', 'otlp');
      }
      const sdk = new sdkNode.NodeSDK({
        instrumentations: [],
        ...(readers !== undefined && readers.list.length > 0 ? { metricReaders: readers.list as never } : {}),
      });
      sdk.start();
      log.debug('started @opentelemetry/sdk-node from OTEL_* settings');
      return {
        shutdown: (timeoutMs) => withTimeout(sdk.shutdown(), timeoutMs),
        producers: readers?.list.length ?? 0,
      };
    } finally {
      env.restore();
    }
  } catch (err) {
    log.warn(`could not start the OpenTelemetry SDK (${(err as Error).message}); spans go to whatever SDK registers later`);
    return undefined;
  }
}

/** Environment variables set for the SDK's start-up only. */
class EnvOverride {
  private readonly saved = new Map<string, string | undefined>();

  set(name: string, value: string): void {
    if (!this.saved.has(name)) this.saved.set(name, process.env[name]);
    process.env[name] = value;
  }

  restore(): void {
    for (const [name, value] of this.saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

// ---------------------------------------------------------------- metric readers

type SdkNode = typeof import('@opentelemetry/sdk-node');

interface ExporterLike {
  selectAggregationTemporality?(instrumentType: string): number;
}

type ExporterClass = new (config?: object) => ExporterLike;

/**
 * The metric readers sdk-node 0.208 builds from OTEL_METRICS_EXPORTER (its
 * `configureMetricProviderFromEnv`, same exporters, intervals and timeouts), each with
 * ws-apm's histogram producer: sdk-node has no way to add a producer to the readers it
 * builds itself. The exporters come from sdk-node's own dependencies, so they are the
 * versions it would have used. Undefined when they cannot be built (then sdk-node builds
 * its readers and ws-apm records histograms through the API).
 */
function metricReadersWithProducer(sdkNode: SdkNode, histograms: () => MetricSource | undefined): { list: unknown[] } | undefined {
  try {
    // A disabled SDK starts nothing; a reader built anyway could (the Prometheus exporter listens at once).
    if (/^\s*true\s*$/i.test(process.env.OTEL_SDK_DISABLED ?? '')) return undefined;
    const raw = process.env.OTEL_METRICS_EXPORTER;
    // As sdk-node: unset is ws-apm's default `otlp` (see above); empty or blank means none.
    const names = raw === undefined ? ['otlp'] : raw.trim() === '' ? [] : raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (names.includes('none')) return { list: [] };
    const fromSdkNode = createRequire(require.resolve('@opentelemetry/sdk-node'));
    const sdkMetrics = sdkNode.metrics;
    const producer = (exporter: ExporterLike): HistogramProducer =>
      new HistogramProducer(histograms, temporalityOf(exporter, sdkMetrics.AggregationTemporality.DELTA));
    const list: unknown[] = [];
    for (const name of names) {
      if (name === 'otlp') {
        const protocol = process.env.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL?.trim() || process.env.OTEL_EXPORTER_OTLP_PROTOCOL?.trim();
        const pkg =
          protocol === 'grpc'
            ? '@opentelemetry/exporter-metrics-otlp-grpc'
            : protocol === 'http/json'
              ? '@opentelemetry/exporter-metrics-otlp-http'
              : '@opentelemetry/exporter-metrics-otlp-proto';
        if (protocol !== undefined && protocol !== '' && !['grpc', 'http/json', 'http/protobuf'].includes(protocol)) {
          log.warn(`unsupported OTLP metrics protocol "${protocol}"; using http/protobuf`);
        }
        const { OTLPMetricExporter } = fromSdkNode(pkg) as { OTLPMetricExporter: ExporterClass };
        const exporter = new OTLPMetricExporter();
        list.push(
          new sdkMetrics.PeriodicExportingMetricReader({
            exporter: exporter as never,
            exportIntervalMillis: envMillis('OTEL_METRIC_EXPORT_INTERVAL', 60000),
            exportTimeoutMillis: envMillis('OTEL_METRIC_EXPORT_TIMEOUT', 30000),
            metricProducers: [producer(exporter) as never],
          }),
        );
      } else if (name === 'console') {
        const exporter = new sdkMetrics.ConsoleMetricExporter();
        list.push(new sdkMetrics.PeriodicExportingMetricReader({ exporter, metricProducers: [producer(exporter) as never] }));
      } else if (name === 'prometheus') {
        const { PrometheusExporter } = fromSdkNode('@opentelemetry/exporter-prometheus') as { PrometheusExporter: ExporterClass };
        list.push(new PrometheusExporter({ metricProducers: [new HistogramProducer(histograms, 'cumulative')] }));
      } else {
        log.warn(`unsupported OTEL_METRICS_EXPORTER value "${name}" (supported: otlp, console, prometheus, none)`);
      }
    }
    return { list };
  } catch (err) {
    log.debug(`could not build the metric readers (${(err as Error).message}); histograms go through the OpenTelemetry API`);
    return undefined;
  }
}

function temporalityOf(exporter: ExporterLike, delta: number): Temporality {
  return exporter.selectAggregationTemporality?.('HISTOGRAM') === delta ? 'delta' : 'cumulative';
}

/** As sdk-node: a positive integer from the environment, else the default. */
function envMillis(name: string, fallback: number): number {
  return parseInt(process.env[name] || '', 10) || fallback;
}
