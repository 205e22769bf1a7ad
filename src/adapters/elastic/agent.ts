/**
 * The part of elastic-apm-node (4.x) the Elastic adapter uses, typed structurally so
 * the agent stays an optional peer dependency, and the one place that finds the agent
 * singleton the application uses.
 *
 * Public API where it exists (`start`, `isStarted`, `captureError`, `registerMetric`,
 * `flush`, `addSpanFilter`, transaction/span methods). These internals, each
 * feature-detected by the adapter, because the public API has no equivalent:
 * - `_instrumentation.createTransaction()` / `currRunContext()` / `withRunContext()`:
 *   start a transaction *without* making it current for the rest of the tick, and make
 *   an operation current only while a listener runs (the agent's own instrumentations
 *   use exactly these);
 * - `_instrumentation._disableInstrumentationsSet` / `_conf.disableInstrumentations`:
 *   switch off the agent's `ws` instrumentation when the app started the agent;
 * - `_conf.metricsInterval`: the collection period, to discover new metric series;
 * - `_apmClient._writableState.ending`: the agent ended its intake stream on beforeExit, so a
 *   flush now would only break that last request;
 * - `_apmClient.sendMetricSet()`, `_isMetricNameDisabled()`, `_conf.hostname`/`environment`:
 *   the last metricset at exit, which the agent's reporter (interval only) never sends.
 */

type Outcome = 'success' | 'failure' | 'unknown';

export interface ApmRunContext {
  currTransaction(): ApmTransaction | null;
  currSpan(): ApmSpan | null;
  enterTrans(trans: ApmTransaction): ApmRunContext;
  enterSpan(span: ApmSpan): ApmRunContext;
}

interface ApmGenericSpan {
  readonly id: string;
  readonly traceId: string;
  readonly traceparent: string;
  readonly sampled: boolean;
  readonly ended: boolean;
  readonly type: string | null;
  setLabel(key: string, value: string | number | boolean, stringify?: boolean): boolean;
  setOutcome(outcome: Outcome): void;
  propagateTraceContextHeaders(carrier: Record<string, string>, setter: (c: Record<string, string>, k: string, v: string) => void): void;
}

export interface ApmTransaction extends ApmGenericSpan {
  result: string | number;
  end(result?: string | number | null, endTime?: number): void;
  createSpan(name: string, type: string, subtype: string, action: string, opts: SpanOptions): ApmSpan | null;
  setMessageContext?(context: MessageContext): void;
}

export interface ApmSpan extends ApmGenericSpan {
  readonly subtype: string | null;
  readonly transaction: ApmTransaction;
  readonly _exitSpan?: boolean;
  end(endTime?: number): void;
  setServiceTarget?(type: string | null, name: string | null): void;
  setMessageContext?(context: MessageContext): void;
}

interface MessageContext {
  queue?: { name: string };
  body?: string;
}

export interface Link {
  context: string;
}

export interface TransactionOptions {
  childOf?: ApmTransaction | ApmSpan | string;
  tracestate?: string;
  links?: Link[];
  startTime?: number;
}

interface SpanOptions {
  childOf?: ApmTransaction | ApmSpan;
  links?: Link[];
  startTime?: number;
  exitSpan?: boolean;
}

interface ApmInstrumentation {
  createTransaction?(name: string, type: string, opts: TransactionOptions): ApmTransaction;
  currRunContext?(): ApmRunContext | null;
  withRunContext?<R>(rc: ApmRunContext, fn: (...args: unknown[]) => R, thisArg: unknown, ...args: unknown[]): R;
  /** The run context manager: `root()` is the context with no transaction (like OTel's ROOT_CONTEXT). */
  _runCtxMgr?: { root(): ApmRunContext };
  _disableInstrumentationsSet?: Set<string>;
}

interface ApmConf {
  disableInstrumentations?: string[];
  metricsInterval?: number;
  instrument?: boolean;
  contextPropagationOnly?: boolean;
  hostname?: string;
  environment?: string;
}

export interface ElasticAgent {
  isStarted(): boolean | undefined;
  start(options?: Record<string, unknown>): ElasticAgent;
  readonly currentTransaction: ApmTransaction | null;
  readonly currentSpan: ApmSpan | null;
  startTransaction(name: string, type: string, opts?: TransactionOptions): ApmTransaction;
  captureError(error: unknown, opts?: Record<string, unknown>): void;
  registerMetric(name: string, labels: Record<string, unknown>, callback: () => number): void;
  flush(cb: (err?: unknown) => void): void;
  addSpanFilter?(fn: (payload: Record<string, unknown>) => Record<string, unknown> | null | undefined | false): void;
  destroy?(): Promise<void> | void;
  readonly _instrumentation?: ApmInstrumentation;
  readonly _conf?: ApmConf;
  /** The agent's `disableMetrics` check, which its metrics reporter applies to every sample. */
  _isMetricNameDisabled?(name: string): boolean;
  /** The intake client (a Writable); ended by the agent itself on beforeExit. */
  readonly _apmClient?: {
    /** Queue a metricset (`{timestamp, tags, samples}`) for the current intake request. */
    sendMetricSet?(metricset: object): void;
    readonly writableEnded?: boolean;
    readonly destroyed?: boolean;
    /** The agent's client is a readable-stream Writable: `writableEnded` may be absent. */
    readonly _writableState?: { readonly ending?: boolean; readonly ended?: boolean };
  } | null;
}

const AGENT_INDEX = /[\\/]elastic-apm-node[\\/]index\.js$/;

function looksLikeAgent(value: unknown): value is ElasticAgent {
  const v = value as Partial<ElasticAgent> | null;
  return (
    typeof v === 'object' && v !== null && typeof v.isStarted === 'function' && typeof v.start === 'function' &&
    typeof v.startTransaction === 'function'
  );
}

/**
 * The agent already loaded in this process (by `-r elastic-apm-node/start` or the app's
 * own `require`), preferring a started one; never loads the module itself.
 */
export function loadedAgent(): ElasticAgent | undefined {
  let found: ElasticAgent | undefined;
  for (const [file, mod] of Object.entries(require.cache)) {
    if (!AGENT_INDEX.test(file) || !mod) continue;
    const agent = mod.exports as unknown;
    if (!looksLikeAgent(agent)) continue;
    if (agent.isStarted()) return agent;
    found ??= agent;
  }
  return found;
}

/**
 * The agent singleton the app uses: one already loaded, else the copy resolvable from
 * ws-apm, else from the app's working directory. Undefined when not installed.
 */
export function resolveAgent(): ElasticAgent | undefined {
  const loaded = loadedAgent();
  if (loaded) return loaded;
  for (const load of [
    () => require('elastic-apm-node') as unknown,
    () => require(require.resolve('elastic-apm-node', { paths: [process.cwd()] })) as unknown,
  ]) {
    try {
      const agent = load();
      if (looksLikeAgent(agent)) return agent;
    } catch {
      // Not installed where we looked: try the next place.
    }
  }
  return undefined;
}
