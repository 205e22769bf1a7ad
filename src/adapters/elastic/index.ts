/**
 * Elastic APM backend: finding and starting the elastic-apm-node (4.x) agent, and whether
 * Elastic is in use. The adapter's operations are in adapter.ts (loaded only once this backend
 * is chosen), the transactions and spans it builds in ops.ts, its metrics in metrics.ts.
 */
import type { Config } from '../../config';
import { log } from '../../logger';
import type { Adapter } from '../../tracer/adapter';
import { noopAdapter } from '../../tracer/noop';
import { adapterSetup, type BackendModule, warnMissing } from '../backend';
import { loadedAgent, resolveAgent, type ElasticAgent } from './agent';

export const elasticBackend: BackendModule = {
  name: 'elastic',
  /**
   * In use under `auto` when the agent is already started in this process, or
   * `ELASTIC_APM_SERVER_URL` is set. Never loads the agent.
   */
  detect(env) {
    try {
      if (loadedAgent()?.isStarted()) return 'the elastic-apm-node agent is started';
    } catch {
      // A broken agent copy: fall back to the environment.
    }
    const url = env.ELASTIC_APM_SERVER_URL;
    return typeof url === 'string' && url.trim() !== '' ? 'ELASTIC_APM_SERVER_URL is set' : undefined;
  },
  create: (config) => adapterSetup(createElasticAdapter(config)),
};

/**
 * The Elastic adapter over the app's agent singleton. Starts the agent from its
 * standard `ELASTIC_APM_*` variables when the app has not started it, with the agent's
 * own `ws` instrumentation off (ws-apm reports ws; both would double-count sends).
 * When elastic-apm-node is not installed, logs a warning and returns an inert adapter.
 */
export function createElasticAdapter(config: Config): Adapter {
  const agent = resolveAgent();
  if (!agent) {
    warnMissing('elastic', 'elastic-apm-node', 'npm install elastic-apm-node', 'ws traffic is not reported');
    return noopAdapter('elastic');
  }
  let startedByUs = false;
  let agentWsWasOn = false;
  try {
    if (!agent.isStarted()) {
      agent.start({ disableInstrumentations: withWs(agent._conf?.disableInstrumentations ?? envList('ELASTIC_APM_DISABLE_INSTRUMENTATIONS')) });
      startedByUs = true;
    }
    agentWsWasOn = disableAgentWs(agent);
  } catch (err) {
    log.fault('elastic agent start', err);
  }
  const { ElasticAdapter } = require('./adapter') as typeof import('./adapter');
  return new ElasticAdapter(agent, config, startedByUs, agentWsWasOn);
}

function envList(name: string): string[] {
  const raw = process.env[name];
  return raw ? raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0) : [];
}

function withWs(list: readonly string[]): string[] {
  return list.includes('ws') ? [...list] : [...list, 'ws'];
}

/**
 * Make the agent skip its `ws` instrumentation for any ws module loaded from now on
 * (the agent decides when a module is first required). Returns true when it was on,
 * i.e. a ws < 8 already loaded may carry the agent's `send` wrapper.
 */
function disableAgentWs(agent: ElasticAgent): boolean {
  const conf = agent._conf;
  const ins = agent._instrumentation;
  if (!conf) return false;
  const wasOn = conf.instrument !== false && !(conf.disableInstrumentations ?? []).includes('ws') &&
    !(ins?._disableInstrumentationsSet?.has('ws') ?? false);
  if (Array.isArray(conf.disableInstrumentations)) {
    if (!conf.disableInstrumentations.includes('ws')) conf.disableInstrumentations.push('ws');
  } else {
    conf.disableInstrumentations = ['ws'];
  }
  ins?._disableInstrumentationsSet?.add('ws');
  return wasOn;
}
