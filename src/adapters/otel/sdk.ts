/**
 * When the app registered no OpenTelemetry SDK, ws-apm starts `@opentelemetry/sdk-node`
 * itself, configured only by the standard OTEL_* variables, and owns its shutdown.
 *
 * Where sdk-node's own defaults would cost the telemetry, ws-apm sets a better default in the
 * environment for the duration of `start()` only (sdkEnv); a value the SDK would refuse gets one
 * warning naming the variable and a safe value instead. If `start()` fails all the same, what
 * it had started is stopped and unregistered: no half-started SDK stays behind.
 */
import { createRequire } from 'node:module';
import { context, metrics, propagation, ProxyTracerProvider, trace, type TracerProvider } from '@opentelemetry/api';
import { log } from '../../logger';
import type { MetricSource } from '../../tracer/adapter';
import { withTimeout } from '../bounded';
import { watchedSpanProcessors, watchExports } from './exporters';
import { otelSdkRegistered } from './providers';
import { HistogramProducer, type Temporality } from './producer';

export interface OwnedSdk {
  shutdown(timeoutMs: number): Promise<void>;
  /** How many of its metric readers report ws-apm's histograms through a producer (producer.ts). */
  readonly producers: number;
}

/** sdk-node's metric export interval when OTEL_METRIC_EXPORT_INTERVAL is unset. */
const DEFAULT_METRIC_INTERVAL_MS = 60_000;
const OTLP_TIMEOUTS = ['OTEL_EXPORTER_OTLP_TIMEOUT', 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', 'OTEL_EXPORTER_OTLP_METRICS_TIMEOUT'];

/**
 * Start the SDK unless one is registered (or OTEL_SDK_DISABLED=true, which the SDK
 * honours itself). Loaded lazily: apps with their own SDK never load sdk-node.
 * With `histograms`, every metric reader also collects them through a producer.
 */
export function startOwnSdk(flushTimeoutMs: number, histograms?: () => MetricSource | undefined): OwnedSdk | undefined {
  if (otelSdkRegistered()) return undefined;
  let stopped = false;
  try {
    const sdkNode = require('@opentelemetry/sdk-node') as SdkNode;
    const vars = sdkEnv(flushTimeoutMs);
    // Readers are built under the same settings sdk-node would see (intervals, timeouts).
    let readers: { list: unknown[] } | undefined;
    let spanProcessors: unknown[] | undefined;
    withEnv(vars, () => {
      readers = histograms === undefined ? undefined : metricReadersWithProducer(sdkNode, histograms);
      spanProcessors = sdkDisabled() ? undefined : watchedSpanProcessors(sdkNode.tracing);
    });
    const ownReaders = readers !== undefined && readers.list.length > 0;
    // Our readers replace the ones sdk-node would build from OTEL_METRICS_EXPORTER: keep it
    // from building (unused) duplicates.
    if (ownReaders) vars.OTEL_METRICS_EXPORTER = 'none';
    const sdk = new sdkNode.NodeSDK({
      instrumentations: [],
      ...(ownReaders ? { metricReaders: readers!.list as never } : {}),
      ...(spanProcessors ? { spanProcessors: spanProcessors as never } : {}),
    });
    const registeredBefore = registeredApis();
    const proxy = trace.getTracerProvider();
    try {
      withEnv(vars, () => sdk.start());
    } catch (err) {
      undoStart(sdk, registeredBefore, proxy);
      stopped = true;
      throw err;
    }
    log.debug('started @opentelemetry/sdk-node from OTEL_* settings');
    return {
      shutdown: (timeoutMs) => withTimeout(sdk.shutdown(), timeoutMs),
      producers: ownReaders ? readers!.list.length : 0,
    };
  } catch (err) {
    log.warn(
      `could not start the OpenTelemetry SDK (${(err as Error).message})${stopped ? '; stopped what it had started' : ''}: ` +
        'spans go to whatever SDK registers later',
    );
    return undefined;
  }
}

/**
 * The variables ws-apm sets while sdk-node starts (never the user's valid settings):
 * - OTEL_METRICS_EXPORTER=otlp: the OpenTelemetry spec's default, but sdk-node starts no metric
 *   reader when it is unset; metrics are half of what ws-apm is for.
 * - OTEL_EXPORTER_OTLP_TIMEOUT = the flush timeout: an export in flight holds a socket, and so
 *   the process, for the exporter's timeout (10 s by default, retried on 503) when the collector
 *   hangs; ws-apm never keeps an ending process alive longer than its flush timeout.
 * - OTEL_EXPORTER_OTLP_METRICS_TIMEOUT = that, at most half the metric interval: metrics are
 *   exported every interval whether or not anything changed, and against a hanging collector
 *   requests that last a whole interval leave the process never idle, so an app that ends by
 *   itself would never end.
 * - OTEL_METRIC_EXPORT_TIMEOUT = the metric export timeout, at most the interval: sdk-node's
 *   default is 30 s, and its metric reader throws when the timeout exceeds the interval, so any
 *   OTEL_METRIC_EXPORT_INTERVAL under 30000 alone would turn every metric off.
 */
function sdkEnv(flushTimeoutMs: number, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  if (env.OTEL_METRICS_EXPORTER === undefined) out.OTEL_METRICS_EXPORTER = 'otlp';

  const rawInterval = env.OTEL_METRIC_EXPORT_INTERVAL;
  let interval = millis(rawInterval);
  if (interval === undefined) {
    interval = DEFAULT_METRIC_INTERVAL_MS;
    if (isSet(rawInterval)) {
      invalid('OTEL_METRIC_EXPORT_INTERVAL', rawInterval, 'a positive number of milliseconds', interval);
      out.OTEL_METRIC_EXPORT_INTERVAL = String(interval);
    }
  }

  const flushMs = Math.max(1, flushTimeoutMs);
  if (OTLP_TIMEOUTS.every((name) => env[name] === undefined)) out.OTEL_EXPORTER_OTLP_TIMEOUT = String(flushMs);
  let metricsExportMs = millis(env.OTEL_EXPORTER_OTLP_METRICS_TIMEOUT) ?? millis(env.OTEL_EXPORTER_OTLP_TIMEOUT);
  if (env.OTEL_EXPORTER_OTLP_METRICS_TIMEOUT === undefined && env.OTEL_EXPORTER_OTLP_TIMEOUT === undefined) {
    metricsExportMs = Math.min(flushMs, Math.max(1, Math.floor(interval / 2)));
    out.OTEL_EXPORTER_OTLP_METRICS_TIMEOUT = String(metricsExportMs);
  }

  const rawTimeout = env.OTEL_METRIC_EXPORT_TIMEOUT ?? '';
  const timeout = millis(rawTimeout);
  if (timeout === undefined) {
    const safe = Math.min(metricsExportMs ?? flushMs, interval);
    if (isSet(rawTimeout)) invalid('OTEL_METRIC_EXPORT_TIMEOUT', rawTimeout, 'a positive number of milliseconds', safe);
    out.OTEL_METRIC_EXPORT_TIMEOUT = String(safe);
  } else if (timeout > interval) {
    invalid('OTEL_METRIC_EXPORT_TIMEOUT', rawTimeout, `at most OTEL_METRIC_EXPORT_INTERVAL (${interval})`, interval);
    out.OTEL_METRIC_EXPORT_TIMEOUT = String(interval);
  }
  return out;
}

function isSet(raw: string | undefined): raw is string {
  return raw !== undefined && raw.trim() !== '';
}

/** A millisecond setting read as sdk-node reads it (parseInt); undefined unless positive. */
function millis(raw: string | undefined): number | undefined {
  const ms = isSet(raw) ? parseInt(raw, 10) : NaN;
  return ms > 0 ? ms : undefined;
}

function invalid(name: string, raw: string, expected: string, using: number): void {
  log.warn(`invalid ${name}=${JSON.stringify(raw.slice(0, 60))}: expected ${expected}; using ${using}`);
}

/** Run `fn` with `vars` set in process.env, then put back what was there. */
function withEnv(vars: Record<string, string>, fn: () => void): void {
  const saved = Object.keys(vars).map((name) => [name, process.env[name]] as const);
  Object.assign(process.env, vars);
  try {
    fn();
  } finally {
    for (const [name, value] of saved) {
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
    if (sdkDisabled()) return undefined;
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
        watchExports(exporter, 'metrics');
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

function sdkDisabled(): boolean {
  return /^\s*true\s*$/i.test(process.env.OTEL_SDK_DISABLED ?? '');
}

function temporalityOf(exporter: ExporterLike, delta: number): Temporality {
  return exporter.selectAggregationTemporality?.('HISTOGRAM') === delta ? 'delta' : 'cumulative';
}

/** As sdk-node: a positive integer from the environment, else the default. */
function envMillis(name: string, fallback: number): number {
  return parseInt(process.env[name] || '', 10) || fallback;
}

/** The OpenTelemetry API globals registered now (trace, context, propagation, metrics, logs). */
function registeredApis(): Set<string> {
  const g = globalThis as Record<symbol, object | undefined>;
  const names = new Set(Object.keys(g[Symbol.for('opentelemetry.js.api.1')] ?? {}));
  if (g[Symbol.for('io.opentelemetry.js.api.logs')] !== undefined) names.add('logs');
  return names;
}

/**
 * `start()` threw part way: shut down the providers it made (and their exporters), and
 * unregister the globals it set, so the app (or nothing) can register an SDK later.
 */
function undoStart(sdk: { shutdown(): Promise<void> }, registeredBefore: Set<string>, proxy: TracerProvider): void {
  void sdk.shutdown().catch(() => undefined);
  const added = [...registeredApis()].filter((name) => !registeredBefore.has(name));
  for (const name of added) {
    if (name === 'trace') {
      trace.disable();
      // ws-apm's tracer was taken from the proxy that delegated to the stopped provider:
      // point that proxy at the new global one, so its spans go to a later SDK (or to none).
      if (proxy instanceof ProxyTracerProvider) proxy.setDelegate(trace.getTracerProvider());
    } else if (name === 'context') {
      context.disable();
    } else if (name === 'propagation') {
      propagation.disable();
    } else if (name === 'metrics') {
      metrics.disable();
    } else if (name === 'logs') {
      // sdk-node's own copy of the logs API (not a dependency of ws-apm).
      const fromSdk = createRequire(require.resolve('@opentelemetry/sdk-node'));
      (fromSdk('@opentelemetry/api-logs') as { logs: { disable(): void } }).logs.disable();
    }
  }
}
