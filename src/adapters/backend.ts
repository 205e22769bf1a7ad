/**
 * The one contract every backend implements (otel/, elastic/, newrelic/, console.ts):
 * `detect` says why the backend is in use under `auto` without loading its packages, and
 * `create` loads them only then, so an install without a backend's packages never fails
 * to start because of them.
 */
import type { ConcreteBackend, Config } from '../config';
import { log } from '../logger';
import type { Adapter } from '../tracer/adapter';

export type { ConcreteBackend };

export interface BackendSetup {
  readonly adapter: Adapter;
  /** The process is ending: deliver everything (may stop an agent), within a bound. */
  exit(timeoutMs: number): Promise<void>;
  /** Uninstrument: stop what ws-apm started itself (its own SDK), never the app's agent. */
  release(timeoutMs: number): Promise<void>;
  /**
   * True when `release` itself delivers what is pending (ws-apm's own SDK: its shutdown flushes
   * the span processors and collects the metrics once more), so uninstrument skips its flush: a
   * flush first would export the same metric points twice.
   */
  readonly releaseDelivers?: boolean;
}

export interface BackendOptions {
  /** For `otel`: start @opentelemetry/sdk-node when no SDK is registered (default true). */
  readonly startSdk?: boolean;
}

export interface BackendModule {
  readonly name: Exclude<ConcreteBackend, 'none'>;
  /** Why this backend is in use (e.g. `ELASTIC_APM_SERVER_URL is set`), or undefined. Loads none of its packages. */
  detect(env: NodeJS.ProcessEnv): string | undefined;
  /** The backend's adapter, its packages loaded now; undefined (after one warning) when they are missing. */
  create(config: Config, options: BackendOptions): BackendSetup | undefined;
}

/** The setup of an adapter that owns nothing beyond itself. */
export function adapterSetup(adapter: Adapter): BackendSetup {
  return {
    adapter,
    exit: (timeoutMs) => (adapter.exit ? adapter.exit(timeoutMs) : adapter.flush(timeoutMs)),
    release: (timeoutMs) => adapter.shutdown(timeoutMs),
  };
}

/** True when ws-apm can load `name` (a peer package the app may not have installed). */
export function resolvable(name: string): boolean {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}

/** The one warning for a backend whose package is not installed. */
export function warnMissing(backend: string, pkg: string, install: string, consequence: string): void {
  log.warn(`backend ${backend}: ${pkg} is not installed (${install}); ${consequence}`);
}
