/**
 * When the app registered no OpenTelemetry SDK, ws-apm starts `@opentelemetry/sdk-node`
 * itself, configured only by the standard OTEL_* variables, and owns its shutdown.
 */
import { log } from '../logger';
import { withTimeout } from './bounded';
import { otelSdkRegistered } from './otel';

export interface OwnedSdk {
  shutdown(timeoutMs: number): Promise<void>;
}

/**
 * Start the SDK unless one is registered (or OTEL_SDK_DISABLED=true, which the SDK
 * honours itself). Loaded lazily: apps with their own SDK never load sdk-node.
 */
export function startOwnSdk(flushTimeoutMs: number): OwnedSdk | undefined {
  if (otelSdkRegistered()) return undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
    const sdk = new NodeSDK({ instrumentations: [] });
    // The OpenTelemetry spec's default for OTEL_METRICS_EXPORTER is `otlp`, but sdk-node
    // starts no metric reader when it is unset; metrics are half of what ws-apm is for.
    const defaultMetrics = process.env.OTEL_METRICS_EXPORTER === undefined;
    if (defaultMetrics) process.env.OTEL_METRICS_EXPORTER = 'otlp';
    // An export in flight holds a socket, and so the process, for the exporter's timeout
    // (10 s by default, retried on 503) when the collector hangs: an app that would end by
    // itself would linger. Unless the user chose a timeout, bound each export by the flush
    // timeout, so ws-apm never keeps a process alive longer than that.
    const TIMEOUTS = ['OTEL_EXPORTER_OTLP_TIMEOUT', 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', 'OTEL_EXPORTER_OTLP_METRICS_TIMEOUT'];
    const defaultTimeout = TIMEOUTS.every((name) => process.env[name] === undefined);
    if (defaultTimeout) process.env.OTEL_EXPORTER_OTLP_TIMEOUT = String(Math.max(1, flushTimeoutMs));
    try {
      sdk.start();
    } finally {
      if (defaultMetrics) delete process.env.OTEL_METRICS_EXPORTER;
      if (defaultTimeout) delete process.env.OTEL_EXPORTER_OTLP_TIMEOUT;
    }
    log.debug('started @opentelemetry/sdk-node from OTEL_* settings');
    return {
      shutdown: (timeoutMs) => withTimeout(sdk.shutdown(), timeoutMs),
    };
  } catch (err) {
    log.warn(`could not start the OpenTelemetry SDK (${(err as Error).message}); spans go to whatever SDK registers later`);
    return undefined;
  }
}
