/**
 * The globally registered OpenTelemetry providers, seen from ws-apm: is an SDK (not the API's
 * no-op) registered for traces or metrics, and flushing whatever is registered.
 */
import { metrics, trace } from '@opentelemetry/api';

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

/** True when an SDK (anything but the API's no-op) is registered as the global meter provider. */
export function meterSdkRegistered(): boolean {
  const provider = metrics.getMeterProvider() as { constructor?: { name?: string } };
  return provider?.constructor?.name !== 'NoopMeterProvider';
}

/** True when an SDK (anything but the API's no-op) is registered as the global tracer provider. */
export function otelSdkRegistered(): boolean {
  const delegate = delegateOf(trace.getTracerProvider()) as { constructor?: { name?: string } };
  return delegate?.constructor?.name !== 'NoopTracerProvider';
}

