/**
 * Which backend to report to, and building its adapter. `auto` looks at what the
 * process already has (a registered OTel SDK, an APM agent) and at the standard
 * environment variables of each backend.
 */
import type { Backend, Config } from '../config';
import type { Adapter } from '../tracer/adapter';
import { ConsoleAdapter } from './console';
import { createElasticAdapter, elasticDetected } from './elastic';
import { createNewRelicAdapter, newrelicDetected } from './newrelic';
import { OtelAdapter } from './otel';
import { otelSdkRegistered } from './otel-providers';
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
  if (newrelicDetected(env)) return 'newrelic';
  if (env.NODE_ENV === 'development') return 'console';
  return 'none';
}

export interface BackendSetup {
  readonly adapter: Adapter;
  /** The process is ending: deliver everything (may stop an agent), within a bound. */
  exit(timeoutMs: number): Promise<void>;
  /** Uninstrument: stop what ws-apm started itself (its own SDK), never the app's agent. */
  release(timeoutMs: number): Promise<void>;
}

export interface BackendOptions {
  /** For `otel`: start @opentelemetry/sdk-node when no SDK is registered (default true). */
  readonly startSdk?: boolean;
}

/** The setup of an adapter that owns nothing beyond itself. */
export function adapterSetup(adapter: Adapter): BackendSetup {
  return {
    adapter,
    exit: (timeoutMs) => (adapter.exit ? adapter.exit(timeoutMs) : adapter.flush(timeoutMs)),
    release: (timeoutMs) => adapter.shutdown(timeoutMs),
  };
}

export function createBackend(backend: ConcreteBackend, config: Config, options: BackendOptions = {}): BackendSetup | undefined {
  switch (backend) {
    case 'otel':
      return otelBackend(options.startSdk !== false, config.flushTimeoutMs);
    case 'console':
      return adapterSetup(new ConsoleAdapter());
    case 'elastic':
      return adapterSetup(createElasticAdapter(config));
    case 'newrelic':
      return adapterSetup(createNewRelicAdapter(config));
    default:
      return undefined;
  }
}

function otelBackend(startSdk: boolean, flushTimeoutMs: number): BackendSetup {
  let owned: OwnedSdk | undefined;
  // An app that registers its SDK in its own code does so after `-r ws-apm/register`
  // ran: decide when the main module's synchronous part is done, or at the first span
  // if one comes sooner (a client connecting at the top level), whichever is first.
  // The SDK ws-apm starts collects the tracer's histograms through a producer on its readers.
  const adapter = new OtelAdapter(
    startSdk && !otelSdkRegistered()
      ? (histograms) => {
          owned = startOwnSdk(flushTimeoutMs, histograms);
          return owned !== undefined && owned.producers > 0;
        }
      : undefined,
  );
  setImmediate(() => adapter.bootstrap()).unref();
  const stopOwned = async (timeoutMs: number): Promise<void> => {
    if (owned) await owned.shutdown(timeoutMs);
  };
  return {
    adapter,
    async exit(timeoutMs) {
      // The SDK ws-apm started delivers everything at its shutdown (span processors flush, each
      // metric reader collects and exports once more): a flush before it would export the same
      // metric points a second time. The app's own SDK is only flushed: stopping it is the app's.
      if (owned) await stopOwned(timeoutMs);
      else await adapter.flush(timeoutMs);
    },
    async release(timeoutMs) {
      await adapter.shutdown();
      await stopOwned(timeoutMs);
    },
  };
}
