/**
 * The OpenTelemetry backend: spans and metrics through the global `@opentelemetry/api`
 * providers (adapter.ts), the app's SDK or the one ws-apm starts (sdk.ts). This file
 * loads neither: `@opentelemetry/api` and `@opentelemetry/sdk-node` are optional peers,
 * required only once this backend is chosen.
 */
import type { Config } from '../../config';
import { log } from '../../logger';
import { type BackendModule, type BackendOptions, type BackendSetup, resolvable, warnMissing } from '../backend';
import type { OwnedSdk } from './sdk';

const API = '@opentelemetry/api';
const SDK = '@opentelemetry/sdk-node';

const OTLP_ENDPOINTS = [
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT',
];

/** Where every copy of @opentelemetry/api 1.x keeps its global providers. */
const API_GLOBAL = Symbol.for('opentelemetry.js.api.1');

/**
 * True when an SDK registered a tracer provider. Through ws-apm's copy of the API when it has
 * one; else from the API's global (an app whose API copy ws-apm cannot load), without loading it.
 */
function sdkRegistered(): boolean {
  if (resolvable(API)) return (require('./providers') as typeof import('./providers')).otelSdkRegistered();
  const api = (globalThis as Record<symbol, { trace?: unknown } | undefined>)[API_GLOBAL];
  return api?.trace !== undefined;
}

export const otelBackend: BackendModule = {
  name: 'otel',
  detect(env) {
    if (sdkRegistered()) return 'an OpenTelemetry SDK is registered';
    const endpoint = OTLP_ENDPOINTS.find((name) => (env[name] ?? '').trim() !== '');
    return endpoint === undefined ? undefined : `${endpoint} is set`;
  },
  create(config: Config, options: BackendOptions): BackendSetup | undefined {
    if (!resolvable(API)) {
      warnMissing('otel', API, `npm install ${API} ${SDK}`, 'ws traffic is not instrumented');
      return undefined;
    }
    return otelSetup(options.startSdk !== false, config.flushTimeoutMs);
  },
};

function otelSetup(startSdk: boolean, flushTimeoutMs: number): BackendSetup {
  const { OtelAdapter } = require('./adapter') as typeof import('./adapter');
  const { otelSdkRegistered } = require('./providers') as typeof import('./providers');
  let owned: OwnedSdk | undefined;
  // An app that registers its SDK in its own code does so after `-r ws-apm/register`
  // ran: decide when the main module's synchronous part is done, or at the first span
  // if one comes sooner (a client connecting at the top level), whichever is first.
  // The SDK ws-apm starts collects the tracer's histograms through a producer on its readers.
  const adapter = new OtelAdapter(
    startSdk && !otelSdkRegistered()
      ? (histograms) => {
          if (otelSdkRegistered()) return false;
          if (!resolvable(SDK)) {
            warnMissing('otel', SDK, `npm install ${SDK}`, 'no OpenTelemetry SDK is registered, so spans and metrics go nowhere (or register your own SDK)');
            return false;
          }
          owned = (require('./sdk') as typeof import('./sdk')).startOwnSdk(flushTimeoutMs, histograms);
          return owned !== undefined && owned.producers > 0;
        }
      : undefined,
  );
  setImmediate(() => {
    try {
      adapter.bootstrap();
    } catch (err) {
      log.fault('otel bootstrap', err);
    }
  }).unref();
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
      // The SDK ws-apm started collects ws-apm's metrics at its shutdown: before they are unbound.
      await stopOwned(timeoutMs);
      await adapter.shutdown();
    },
    get releaseDelivers() {
      return owned !== undefined;
    },
  };
}
