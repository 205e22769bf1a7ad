/**
 * Which backend to report to, and building its adapter. `auto` asks each backend in turn
 * whether the process already uses it (a registered OTel SDK, an APM agent, the standard
 * environment variables of each backend); the first that says why wins.
 */
import type { Config } from '../config';
import { type BackendModule, type BackendOptions, type BackendSetup, type ConcreteBackend } from './backend';
import { consoleBackend } from './console';
import { elasticBackend } from './elastic';
import { newrelicBackend } from './newrelic';
import { otelBackend } from './otel';

export { adapterSetup, type BackendOptions, type BackendSetup, type ConcreteBackend } from './backend';

/** In the order `auto` asks them. */
const BACKENDS: readonly BackendModule[] = [otelBackend, elasticBackend, newrelicBackend, consoleBackend];

export interface Resolved {
  readonly backend: ConcreteBackend;
  /** Why: `configured: WS_APM_BACKEND=x`, `detected: <what>`, or why nothing is instrumented. */
  readonly reason: string;
}

export function resolveBackend(config: Config, env: NodeJS.ProcessEnv = process.env): Resolved {
  if (!config.enabled) return { backend: 'none', reason: 'WS_APM_ENABLED=false' };
  if (config.backend === 'none') return { backend: 'none', reason: 'WS_APM_BACKEND=none' };
  if (config.backend !== 'auto') return { backend: config.backend, reason: `configured: WS_APM_BACKEND=${config.backend}` };
  for (const backend of BACKENDS) {
    const why = backend.detect(env);
    if (why !== undefined) return { backend: backend.name, reason: `detected: ${why}` };
  }
  return {
    backend: 'none',
    reason:
      'no backend detected: set WS_APM_BACKEND=otel|elastic|newrelic|console, or OTEL_EXPORTER_OTLP_ENDPOINT, ' +
      'ELASTIC_APM_SERVER_URL or NEW_RELIC_LICENSE_KEY',
  };
}

export function createBackend(backend: ConcreteBackend, config: Config, options: BackendOptions = {}): BackendSetup | undefined {
  return BACKENDS.find((b) => b.name === backend)?.create(config, options);
}
