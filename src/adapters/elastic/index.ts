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
import { ELASTIC_START_PRELOAD, isPreloaded } from '../preloads';

export const elasticBackend: BackendModule = {
  name: 'elastic',
  /**
   * In use under `auto` when the agent is already started in this process, or
   * `ELASTIC_APM_SERVER_URL` is set, or `elastic-apm-node/start` is preloaded after ws-apm
   * (settings possibly only in its config file). Never loads the agent.
   */
  detect(env) {
    try {
      if (loadedAgent()?.isStarted()) return 'the elastic-apm-node agent is started';
    } catch {
      // A broken agent copy: fall back to the environment.
    }
    const url = env.ELASTIC_APM_SERVER_URL;
    if (typeof url === 'string' && url.trim() !== '') return 'ELASTIC_APM_SERVER_URL is set';
    return isPreloaded(ELASTIC_START_PRELOAD) ? `${ELASTIC_START_PRELOAD} is preloaded` : undefined;
  },
  create: (config) => adapterSetup(createElasticAdapter(config)),
};

/**
 * The Elastic adapter over the app's agent singleton. Starts the agent from its
 * standard `ELASTIC_APM_*` variables when the app has not started it, with the agent's
 * own `ws` instrumentation off (ws-apm reports ws; both would double-count sends).
 * When elastic-apm-node is not installed, logs a warning and returns an inert adapter.
 * @internal exported for test/fixtures/elastic/, which drive the adapter directly.
 */
export function createElasticAdapter(config: Config): Adapter {
  const agent = resolveAgent();
  if (!agent) {
    warnMissing('elastic', 'elastic-apm-node', 'npm install elastic-apm-node', 'ws traffic is not reported');
    return noopAdapter('elastic');
  }
  let startedByUs = false;
  let agentWsWasOn = false;
  let later = false;
  try {
    if (!agent.isStarted()) {
      // `-r ws-apm/register -r elastic-apm-node/start`: the agent's own preload runs right
      // after this one and starts the agent (from its env or config file) before the app
      // does anything; a start() here would make that one throw and end the process.
      // The adapter records from the moment the agent is started (it checks per operation).
      later = isPreloaded(ELASTIC_START_PRELOAD);
      if (!later) {
        agent.start({ disableInstrumentations: withWs(agent._conf?.disableInstrumentations ?? envList('ELASTIC_APM_DISABLE_INSTRUMENTATIONS')) });
        startedByUs = true;
      }
    }
    if (!later) agentWsWasOn = disableAgentWs(agent);
  } catch (err) {
    log.fault('elastic agent start', err);
  }
  if (startedByUs) absorbAppStart(agent);
  const { ElasticAdapter } = require('./adapter') as typeof import('./adapter');
  const adapter = new ElasticAdapter(agent, config, startedByUs, agentWsWasOn);
  if (later) afterStart(agent, () => {
    if (disableAgentWs(agent)) adapter.dropAgentWsSpans();
  });
  return adapter;
}

/**
 * Run `fn` right after the agent's next start() (its own preload's), before the app loads
 * ws: the agent reads its configuration anew in start(), so ws-apm's changes to it wait.
 */
function afterStart(agent: ElasticAgent, fn: () => void): void {
  const own = Object.prototype.hasOwnProperty.call(agent, 'start');
  const start = agent.start;
  const target = agent as { start: ElasticAgent['start'] };
  target.start = function (this: ElasticAgent, ...args: Parameters<ElasticAgent['start']>) {
    if (own) target.start = start;
    else delete (target as { start?: unknown }).start;
    const result = start.apply(this, args);
    try {
      fn();
    } catch (err) {
      log.fault('elastic agent start', err);
    }
    return result;
  };
}

/**
 * ws-apm started the agent (no agent preload in sight), and the app's own code may start it
 * too, as Elastic's docs show (`require('elastic-apm-node').start()` first in the main
 * module): without ws-apm that call works, with it the agent would throw "Do not call
 * .start() more than once" and end the app. That one call is absorbed: without options it
 * would have read the same environment and config file; options it cannot apply any more
 * are named once.
 */
function absorbAppStart(agent: ElasticAgent): void {
  const target = agent as { start: ElasticAgent['start'] };
  const own = Object.prototype.hasOwnProperty.call(agent, 'start');
  const start = agent.start;
  target.start = function (this: ElasticAgent, options?: Record<string, unknown>) {
    if (own) target.start = start;
    else delete (target as { start?: unknown }).start;
    const keys = options !== null && typeof options === 'object' ? Object.keys(options) : [];
    if (keys.length > 0) {
      log.warn(
        `elastic-apm-node was already started by ws-apm from its ELASTIC_APM_* environment and config file; ` +
          `the app's start() options are not applied (${keys.join(', ')}): set them in elastic-apm-node.js or ` +
          'ELASTIC_APM_* variables, or start the agent before ws-apm (node -r elastic-apm-node/start -r ws-apm/register)',
      );
    }
    return this;
  };
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
