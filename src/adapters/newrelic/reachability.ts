/**
 * A New Relic collector the agent cannot reach or that refuses it, said on the console.
 *
 * The agent itself writes this only to its log file (newrelic_agent.log: "Unexpected error
 * communicating with New Relic backend", or the invalid license key) and retries after 15 s,
 * 15 s, 30 s, 60 s, ...; the console stays silent, so a first run reports nothing and says
 * nothing. The agent reports each connect attempt's outcome to its health reporter
 * (`agent.healthReporter.setStatus`, looked up at every attempt): ws-apm watches that on the
 * agent's own instance, feature-detected, and reports the first failure once and the
 * connection once it succeeds after that (reachability.ts). Sends after the connection are not
 * seen (the agent reports them to no such place).
 */
import { log } from '../../logger';
import { Reachability } from '../reachability';

interface HealthReporter {
  setStatus(status: string, ...rest: unknown[]): unknown;
}

interface WatchedAgent {
  readonly config?: { readonly host?: string; readonly port?: number | string };
  readonly healthReporter?: HealthReporter;
}

// The agent's HealthReporter codes (lib/health-reporter.js).
const HEALTHY = 'NR-APM-000';
const PROBLEMS: Record<string, string> = {
  'NR-APM-001': 'rejected the license key (NEW_RELIC_LICENSE_KEY)',
  'NR-APM-004': 'cannot be reached or answered with an error (details in newrelic_agent.log)',
  'NR-APM-007': 'cannot be reached through the configured proxy (details in newrelic_agent.log)',
};

const collector = new Reachability('the New Relic collector');
const watched = new WeakSet<object>();

/** Watch the agent's connect attempts; false when this agent has no health reporter to watch. */
export function watchNewRelicConnect(agent: unknown): boolean {
  const a = agent as WatchedAgent | null | undefined;
  const reporter = a?.healthReporter;
  if (!a || !reporter || typeof reporter.setStatus !== 'function') return false;
  if (watched.has(reporter)) return true;
  watched.add(reporter);
  const address = `${a.config?.host ?? 'collector.newrelic.com'}:${a.config?.port ?? 443}`;
  const setStatus = reporter.setStatus;
  reporter.setStatus = function (this: unknown, status: string, ...rest: unknown[]): unknown {
    try {
      const ticket = collector.begin();
      if (status === HEALTHY) collector.succeeded(address, ticket);
      else if (PROBLEMS[status] !== undefined) collector.failed(address, ticket, PROBLEMS[status]);
    } catch (err) {
      log.fault('newrelic collector reachability', err);
    }
    return setStatus.call(this, status, ...rest);
  };
  return true;
}
