/**
 * The small part of the New Relic Node.js agent (`newrelic` 13.x and 14.x) that the adapter uses,
 * declared here because the agent ships no TypeScript types, plus how to find the agent the
 * application already loaded (it is a process singleton: there must never be a second copy).
 *
 * Public API (`api.js`): transactions, segments, custom attributes/events/metrics, shutdown.
 * Internals, used only where the public API has no equivalent and guarded by shape checks:
 * `agent.tracer` (enter a given agent context; read the active transaction without marking it
 * "handled externally", which `newrelic.getTransaction()` would do to the app's own transactions)
 * and `agent.metrics` (the metric aggregator's pre-harvest event).
 */

import path from 'node:path';

/** A value the agent accepts as a custom attribute. */
export type NrAttributeValue = string | number | boolean;

/** What `newrelic.getTransaction()` returns (`lib/transaction/handle.js`). */
export interface NrTransactionHandle {
  end(callback?: () => void): void;
  ignore(): void;
  acceptDistributedTraceHeaders(transportType: string, headers: Record<string, string>): void;
  insertDistributedTraceHeaders(headers: Record<string, string>): void;
}

/** The agent's internal transaction (`lib/transaction/index.js`): only what we read. */
export interface NrTransaction {
  readonly id?: string;
  readonly traceId?: string;
  isActive(): boolean;
  end(): void;
  acceptDistributedTraceHeaders(transportType: string, headers: Record<string, string>): void;
  insertDistributedTraceHeaders(headers: Record<string, string>): void;
}

/** The agent's immutable async context (`lib/context-manager/context.js`). */
export interface NrContext {
  readonly transaction?: NrTransaction | null;
  /** The current segment; `opaque` segments get no child segments (the agent's outbound http checks it). */
  readonly segment?: { opaque?: boolean } | null;
  enterSegment(next: { transaction?: NrTransaction | null; segment?: unknown }): NrContext;
}

export interface NrTracer {
  getContext(): NrContext;
  getTransaction(): NrTransaction | null;
  bindFunction<F extends (...args: never[]) => unknown>(fn: F, context: NrContext): F;
  /** Runs a function in a context without wrapping it (13.x and 14.x); bindFunction is the fallback. */
  readonly _contextManager?: {
    runInContext<A extends unknown[], R>(context: NrContext, fn: (...args: A) => R, thisArg: unknown, args: A): R;
    /** Its store (13.x and 14.x): read directly, since getContext() makes a new Context when there is none. */
    readonly _asyncLocalStorage?: { getStore(): NrContext | undefined };
  };
}

interface NrMetricAggregator {
  on(event: string, listener: () => void): unknown;
  removeListener(event: string, listener: () => void): unknown;
}

export interface NrAgent {
  readonly version?: string;
  readonly config?: {
    readonly agent_enabled?: boolean;
    readonly distributed_tracing?: { readonly enabled?: boolean };
    readonly code_level_metrics?: { enabled?: boolean };
  };
  readonly tracer?: NrTracer;
  readonly metrics?: NrMetricAggregator;
  forceHarvestAll?(callback: (error?: unknown) => void): void;
  canCollectData?(): boolean;
}

/** Stats accepted by `recordMetric` in place of a single value. */
export interface NrMetricStats {
  count: number;
  total: number;
  min: number;
  max: number;
  sumOfSquares: number;
}

/** The `newrelic` module's export (`api.js`; `stub_api.js` has the same methods, no `agent`). */
export interface NrApi {
  readonly agent?: NrAgent | null;
  startWebTransaction<R>(url: string, handle: () => R): R;
  startBackgroundTransaction<R>(name: string, group: string, handle: () => R): R;
  startSegment<R>(name: string, record: boolean, handler: (callback: () => void) => R, callback?: () => void): R;
  getTransaction(): NrTransactionHandle;
  setTransactionName(name: string): void;
  addCustomAttributes(attributes: Record<string, NrAttributeValue>): void;
  addCustomSpanAttributes(attributes: Record<string, NrAttributeValue>): void;
  noticeError(error: Error, customAttributes?: Record<string, NrAttributeValue>, expected?: boolean): void;
  recordCustomEvent(eventType: string, attributes: Record<string, NrAttributeValue>): void;
  recordMetric(name: string, value: number | NrMetricStats): void;
  incrementMetric(name: string, value?: number): void;
  shutdown(options: { collectPendingData?: boolean; timeout?: number; waitForIdle?: boolean }, callback?: (error?: unknown) => void): void;
}

/** Where the agent stores its singleton (`newrelic/index.js`). */
const NR_CACHE_KEY = '__NR_cache';

/** The agent the process already loaded (by `-r newrelic`, `require`, or its ESM loader), if any. */
export function loadedAgent(): NrApi | undefined {
  const cache = require.cache as unknown as Record<string, unknown>;
  const api = cache[NR_CACHE_KEY];
  return api && typeof api === 'object' ? (api as NrApi) : undefined;
}

/** Load the agent (it starts itself on first require), or return the one already loaded. */
export function requireAgent(): NrApi {
  const loaded = loadedAgent();
  if (loaded) return loaded;
  return require('newrelic') as NrApi;
}

/** Version of the loaded `newrelic` package (else of the one `require('newrelic')` resolves to). */
export function agentPackageVersion(): string | undefined {
  try {
    const index = Object.keys(require.cache).find((file) => /[\\/]newrelic[\\/]index\.js$/.test(file));
    const manifest = index ? path.join(path.dirname(index), 'package.json') : 'newrelic/package.json';
    return (require(manifest) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/** The internals the adapter needs, or why they are missing (for one clear warning). */
export function agentInternals(api: NrApi): { tracer: NrTracer; agent: NrAgent } | string {
  const agent = api.agent;
  if (!agent) return 'the loaded newrelic module is the no-op stub';
  const tracer = agent.tracer;
  if (!tracer || typeof tracer.getContext !== 'function' || typeof tracer.bindFunction !== 'function'
    || typeof tracer.getTransaction !== 'function') {
    return 'this newrelic version has no agent.tracer.getContext/bindFunction/getTransaction';
  }
  return { tracer, agent };
}

/**
 * Run `fn` (which only calls the agent API with ws-apm's own handler closures) with the agent's
 * code-level metrics off. Otherwise the agent attributes those closures as if they were app code:
 * `code.*` attributes pointing into ws-apm, bought with a `require('@newrelic/fn-inspect')` and a
 * native call per transaction and per segment (a thrown MODULE_NOT_FOUND each time when that
 * optional module is absent), which cut echo throughput by an order of magnitude here.
 */
export function withoutCodeLevelMetrics<R>(agent: NrAgent, fn: () => R): R {
  const clm = agent.config?.code_level_metrics;
  if (!clm || clm.enabled !== true) return fn();
  clm.enabled = false;
  try {
    return fn();
  } finally {
    clm.enabled = true;
  }
}
