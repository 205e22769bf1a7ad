/**
 * The New Relic backend: detecting the agent and loading it (it starts itself on first require).
 * The adapter's operations are in adapter.ts, loaded only once this backend is chosen.
 */
import type { Config } from '../../config';
import { log } from '../../logger';
import type { Adapter } from '../../tracer/adapter';
import { noopAdapter } from '../../tracer/noop';
import { adapterSetup, type BackendModule } from '../backend';
import { agentInternals, agentPackageVersion, loadedAgent, requireAgent, type NrApi } from './agent';
import { describe } from './context';
import { isPreloaded, NEWRELIC_PRELOAD } from '../preloads';
import { watchNewRelicConnect } from './reachability';

export const newrelicBackend: BackendModule = {
  name: 'newrelic',
  /** In use when the agent is loaded, or a license key is configured. */
  detect(env) {
    if (loadedAgent() !== undefined) return 'the newrelic agent is loaded';
    const key = env.NEW_RELIC_LICENSE_KEY;
    if (typeof key === 'string' && key.trim() !== '') return 'NEW_RELIC_LICENSE_KEY is set';
    // `-r ws-apm/register -r newrelic` with settings possibly only in newrelic.js: loading the
    // agent here first is what that preload would do (it is a require-time singleton).
    return isPreloaded(NEWRELIC_PRELOAD) ? `${NEWRELIC_PRELOAD} is preloaded` : undefined;
  },
  create: (config) => adapterSetup(createNewRelicAdapter(config)),
};

/**
 * Create the adapter, loading the agent first unless the app already did (`-r newrelic`).
 * When the agent is missing, disabled, or the no-op stub, the adapter records nothing and says why once.
 * @public test/fixtures/newrelic/ drive the adapter directly, through a require path knip cannot follow.
 */
export function createNewRelicAdapter(config: Config): Adapter {
  void config; // nothing in Config is New Relic specific: the agent reads its own NEW_RELIC_* settings
  let api: NrApi | undefined;
  try {
    api = requireAgent();
  } catch (error) {
    log.warn(`backend newrelic: cannot load the newrelic agent (${describe(error)}); npm install newrelic (13 on Node 20, 14 on Node >= 22). Recording nothing.`);
  }
  const internals = api ? agentInternals(api) : 'the newrelic agent is not installed';
  if (typeof internals === 'string') {
    if (api) log.warn(`backend newrelic: ${internals}; ws-apm records nothing for New Relic. ${stubHint()}`);
    return noopAdapter('newrelic');
  }
  if (internals.agent.config?.distributed_tracing?.enabled === false) {
    log.warn('backend newrelic: distributed_tracing is disabled in the agent config; WebSocket transactions will not join traces');
  }
  watchNewRelicConnect(internals.agent);
  const { NewRelicAdapter } = require('./adapter') as typeof import('./adapter');
  return new NewRelicAdapter(api!, internals.tracer) as unknown as Adapter;
}

function stubHint(): string {
  const version = agentPackageVersion();
  const major = Number(version?.split('.')[0]);
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  if (major >= 14 && nodeMajor < 22) {
    return `newrelic ${version} requires Node >= 22 and runs as a no-op on Node ${process.versions.node}: use newrelic 13 on this Node version.`;
  }
  return 'Check NEW_RELIC_ENABLED, NEW_RELIC_LICENSE_KEY and NEW_RELIC_APP_NAME, and the agent log (newrelic_agent.log).';
}
