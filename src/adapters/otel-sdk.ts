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
export function startOwnSdk(): OwnedSdk | undefined {
  if (otelSdkRegistered()) return undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
    const sdk = new NodeSDK({ instrumentations: [] });
    // The OpenTelemetry spec's default for OTEL_METRICS_EXPORTER is `otlp`, but sdk-node
    // starts no metric reader when it is unset; metrics are half of what ws-apm is for.
    const defaultMetrics = process.env.OTEL_METRICS_EXPORTER === undefined;
    if (defaultMetrics) process.env.OTEL_METRICS_EXPORTER = 'otlp';
    try {
      sdk.start();
    } finally {
      if (defaultMetrics) delete process.env.OTEL_METRICS_EXPORTER;
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
