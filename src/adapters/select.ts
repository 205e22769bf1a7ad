/**
 * Which backend to report to, and building its adapter. `auto` looks at what the
 * process already has (a registered OTel SDK, an APM agent) and at the standard
 * environment variables of each backend.
 */
import type { Backend, Config } from '../config';
import type { Adapter } from '../tracer/adapter';
import { ConsoleAdapter } from './console';
import { createElasticAdapter, elasticDetected } from './elastic';
import { OtelAdapter, otelSdkRegistered } from './otel';
import { type OwnedSdk, startOwnSdk } from './otel-sdk';

export type ConcreteBackend = Exclude<Backend, 'auto'>;

const OTLP_ENDPOINTS = [
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT',
];

export function resolveBackend(config: Config, env: NodeJS.ProcessEnv = process.env): ConcreteBackend {
  if (!config.enabled) return 'none';
  if (config.backend !== 'auto') return config.backend;
  if (otelSdkRegistered() || OTLP_ENDPOINTS.some((name) => (env[name] ?? '').trim() !== '')) return 'otel';
  if (elasticDetected(env)) return 'elastic';
  if (env.NODE_ENV === 'development') return 'console';
  return 'none';
}

export interface BackendSetup {
  readonly adapter: Adapter;
  /** Flush/stop what ws-apm started itself (its own SDK or agent), within a bound. */
  shutdown(timeoutMs: number): Promise<void>;
}

export interface BackendOptions {
  /** For `otel`: start @opentelemetry/sdk-node when no SDK is registered (default true). */
  readonly startSdk?: boolean;
}

export function createBackend(backend: ConcreteBackend, config: Config, options: BackendOptions = {}): BackendSetup | undefined {
  switch (backend) {
    case 'otel':
      return otelBackend(options.startSdk !== false);
    case 'console': {
      const adapter = new ConsoleAdapter();
      return { adapter, shutdown: (timeoutMs) => adapter.flush().then(() => adapter.shutdown()).then(() => void timeoutMs) };
    }
    case 'elastic': {
      const adapter = createElasticAdapter(config);
      return { adapter, shutdown: (timeoutMs) => adapter.shutdown(timeoutMs) };
    }
    case 'newrelic':
      throw new Error(`the ${backend} backend is not available in this version of ws-apm`);
    default:
      void config;
      return undefined;
  }
}

function otelBackend(startSdk: boolean): BackendSetup {
  let owned: OwnedSdk | undefined;
  // An app that registers its SDK in its own code does so after `-r ws-apm/register`
  // ran: decide when the main module's synchronous part is done, or at the first span
  // if one comes sooner (a client connecting at the top level), whichever is first.
  const adapter = new OtelAdapter(startSdk && !otelSdkRegistered() ? () => (owned = startOwnSdk()) : undefined);
  setImmediate(() => adapter.bootstrap()).unref();
  return {
    adapter,
    async shutdown(timeoutMs) {
      await adapter.flush(timeoutMs);
      await adapter.shutdown();
      if (owned) await owned.shutdown(timeoutMs);
    },
  };
}
