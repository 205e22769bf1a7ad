/**
 * New Relic adapter: ws traffic through the real `newrelic` agent (13.x on Node 20, 14.x on Node 22).
 *
 * | role           | New Relic                                                                   |
 * |----------------|-----------------------------------------------------------------------------|
 * | connect        | web transaction `WebTransaction/Custom/WS CONNECT {route}`, continuing the  |
 * |                | caller's distributed trace (traceparent/tracestate/newrelic headers)        |
 * | receive        | background transaction `OtherTransaction/WebSocket/WS RECEIVE {route}`,     |
 * |                | one per message, always started from a clean agent context                  |
 * | send           | segment `WS SEND {route}` in the active transaction (else its own           |
 * |                | background transaction, when the tracer asks for one)                       |
 * | client-connect | segment `WS CONNECT {host}{route}` in the active transaction, else its own  |
 * |                | background transaction so the server's handshake has a DT parent; the       |
 * |                | agent's http instrumentation adds its `External/{host}/...` segment inside  |
 * | close          | custom event `WebSocketConnection` + background transaction `WS CLOSE`     |
 * | heartbeat      | background transaction `WS PING {route}` (opt-in in the tracer)             |
 *
 * Why background and not message-consumer transactions for messages: the agent creates message
 * transactions (`OtherTransaction/Message/...`) only through its internal message shim, bound to a
 * registered broker instrumentation, and names them after a broker destination type (Queue/Topic/
 * Exchange) that a WebSocket route is not. Background transactions come from the public API on
 * 13.x and 14.x alike, are grouped under our own `WebSocket` category in the APM "Non-web"
 * transactions list, get `transactionType = 'Other'` in NRQL like message transactions do, and
 * carry distributed tracing, errors and nested segments identically.
 *
 * Message rules (src/tracer/messages.ts), as they come out of this agent:
 * - An unsampled message runs its listeners outside any transaction (`runUnsampled`): the agent
 *   records nothing nested (no External segment, no transaction) and its http client sends no
 *   `traceparent`/`tracestate`/`newrelic` header at all (there is no "sampled=0" context to send).
 * - A kept message (failed or slow while not sampled) is recorded after its listeners returned, and
 *   the agent's API cannot start a transaction in the past: the transaction's own `timestamp` and
 *   `duration` are those of the recording (≈ 0 ms); its real start and duration are the custom
 *   attributes `websocket.message.start_time_ms` (epoch ms) and `websocket.message.duration_ms`.
 * - A send after an async listener's `await` is a background transaction `WS SEND {route}` whose
 *   parent span is the message's (same trace): the message transaction has ended by then, so it
 *   cannot take a segment; `ref()` reads the ended transaction's trace context for it.
 * - Async work still running when the listeners return (an http request) stays in the message
 *   transaction, as a segment the agent names `Truncated/...`.
 *
 * Counters and histograms are aggregated by the tracer (number and bucket cells) and read on the
 * agent's own metric harvest (`starting_data_send-metric_data` on the metric aggregator, which also
 * fires on the final harvest of `shutdown`): histograms as the stats of the interval (count, total,
 * min, max, sum of squares since the last harvest), so the per-message cost of a metric is a few
 * additions in the tracer, never an agent call.
 */
import type {
  Adapter, Attributes, Carrier, CounterCell, HistogramCell, MetricSource, OperationOutcome, OperationRole,
  OperationSpec, Parent,
} from '../tracer/adapter';
import type { Config } from '../config';
import { log } from '../logger';
import { noopAdapter } from '../tracer/noop';
import { traceIdOfTraceparent } from '../tracer/propagation';
import { bounded } from './bounded';
import {
  ATTR_MESSAGING_DESTINATION_NAME, ATTR_WS_BYTES_IN, ATTR_WS_BYTES_OUT,
  ATTR_WS_CLOSE_CODE, ATTR_WS_CLOSE_INITIATOR, ATTR_WS_CLOSE_REASON, ATTR_WS_CONNECTION_BROKEN,
  ATTR_WS_CONNECTION_DURATION_MS, ATTR_WS_CONNECTION_OUTCOME, ATTR_WS_DIRECTION, ATTR_WS_HANDSHAKE_TRACE_ID,
  ATTR_WS_MESSAGE_DURATION_MS, ATTR_WS_MESSAGE_NAME, ATTR_WS_MESSAGE_START_TIME_MS, ATTR_WS_MESSAGES_IN,
  ATTR_WS_MESSAGES_OUT, ATTR_WS_ROUTE, ATTR_WS_SIDE, HEADER_TRACEPARENT, HEADER_TRACESTATE,
  METRIC_ACTIVE_CONNECTIONS, METRIC_CONNECTION_DURATION, METRIC_CONNECTIONS, METRIC_CONNECTIONS_BROKEN,
  METRIC_HEARTBEAT_RTT, METRIC_MESSAGE_PROCESS_DURATION, METRIC_MESSAGE_SIZE, METRIC_MESSAGES, inSeconds,
} from '../semconv';
import {
  agentInternals, agentPackageVersion, loadedAgent, requireAgent, type NrApi, type NrAttributeValue, type NrContext,
  type NrAgent, type NrMetricStats, type NrTracer, type NrTransaction, type NrTransactionHandle, withoutCodeLevelMetrics,
} from './newrelic-agent';

/** Background-transaction group: `OtherTransaction/WebSocket/{name}`. */
export const NR_TRANSACTION_GROUP = 'WebSocket';
/** Custom event type of the connection summary. */
export const NR_CONNECTION_EVENT = 'WebSocketConnection';
/** Prefix of our custom metrics (the agent prepends `Custom/`). */
export const NR_METRIC_PREFIX = 'WebSocket';
/** The New Relic proprietary DT header, accepted and emitted next to W3C trace context. */
export const NR_HEADER = 'newrelic';
/** Name of the transaction `runWithRemote` starts. */
export const NR_HANDOFF_NAME = 'WS HANDOFF';

/** Fallback collection period when the agent exposes no harvest event (the agent's default cycle). */
const FALLBACK_HARVEST_MS = 60_000;
const HARVEST_EVENT = 'starting_data_send-metric_data';

/** The minimal reference kept per handshake: W3C trace context only (no `newrelic` header). */
export interface NrRef {
  readonly traceparent?: string;
  readonly tracestate?: string;
}

/** One started operation. */
export interface NrOp {
  readonly role: OperationRole;
  /** Agent context with this operation's transaction/segment current; undefined = nothing recorded. */
  readonly ctx: NrContext | undefined;
  /** Our own transaction, ended in `end`. */
  readonly handle?: NrTransactionHandle;
  /** Ends our segment. */
  readonly done?: () => void;
  /** Connection summary data (close only). */
  readonly event?: { readonly route: string; readonly attributes: Attributes; readonly handshakeTraceId?: string };
  /** A message recorded after the fact (kept): its real start, epoch ms (the transaction starts now). */
  readonly startTime?: number;
  ended: boolean;
}

/** What one histogram cell had at the last harvest, and the metric it reports to (null: past the name cap). */
interface HarvestedCell {
  readonly metric: string | null;
  /** 1000 for time metrics: seconds in the tracer, milliseconds in New Relic (like the agent's own timings). */
  readonly scale: number;
  count: number;
  sum: number;
  sumOfSquares: number;
}

const EMPTY_REF: NrRef = Object.freeze({});

/** Is New Relic in use: the agent is loaded, or a license key is configured. */
export function newrelicDetected(env: NodeJS.ProcessEnv): boolean {
  if (loadedAgent() !== undefined) return true;
  const key = env.NEW_RELIC_LICENSE_KEY;
  return typeof key === 'string' && key.trim() !== '';
}

/**
 * Create the adapter, loading the agent first unless the app already did (`-r newrelic`).
 * When the agent is missing, disabled, or the no-op stub, the adapter records nothing and says why once.
 */
export function createNewRelicAdapter(config: Config): Adapter<NrOp, NrRef> {
  void config; // nothing in Config is New Relic specific: the agent reads its own NEW_RELIC_* settings
  let api: NrApi | undefined;
  try {
    api = requireAgent();
  } catch (error) {
    log.warn(`backend newrelic: cannot load the newrelic agent (${describe(error)}); install newrelic 13 (Node 20) or 14 (Node >= 22). Recording nothing.`);
  }
  const internals = api ? agentInternals(api) : 'the newrelic agent is not installed';
  if (typeof internals === 'string') {
    if (api) log.warn(`backend newrelic: ${internals}; ws-apm records nothing for New Relic. ${stubHint()}`);
    return noopAdapter('newrelic') as Adapter<NrOp, NrRef>;
  }
  if (internals.agent.config?.distributed_tracing?.enabled === false) {
    log.warn('backend newrelic: distributed_tracing is disabled in the agent config; WebSocket transactions will not join traces');
  }
  return new NewRelicAdapter(api!, internals.tracer);
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

class NewRelicAdapter implements Adapter<NrOp, NrRef> {
  readonly name = 'newrelic';
  readonly propagationHeaders: readonly string[] = [NR_HEADER];

  private readonly clean: NrContext | undefined;
  private readonly agent: NrAgent;
  private readonly harvested = new Map<HistogramCell, HarvestedCell>();
  private readonly histogramMetrics = new Set<string>();
  private readonly lastCounts = new Map<CounterCell, number>();
  private source: MetricSource | undefined;
  private shutdownPromise: Promise<void> | undefined;

  constructor(
    private readonly nr: NrApi,
    private readonly tracer: NrTracer,
  ) {
    this.clean = cleanContext(tracer);
    this.agent = nr.agent!;
    this.hookHarvest();
  }

  start(spec: OperationSpec<NrRef>): NrOp | undefined {
    const { nr, tracer } = this;
    const active = tracer.getTransaction();
    if ((spec.role === 'send' || spec.role === 'client-connect') && active && spec.parent.type === 'active') {
      return this.startSegment(nr, tracer, spec);
    }
    return this.startTransaction(nr, tracer, spec, spec.role === 'connect', parentHeaders(spec.parent, active));
  }

  end(op: NrOp, outcome: OperationOutcome): void {
    if (op.ended) return;
    op.ended = true;
    if (op.ctx) this.within(op.ctx, endInContext, undefined, [this.nr, op, outcome]);
    else endInContext(this.nr, op, outcome);
  }

  run<A extends unknown[], R>(op: NrOp, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    if (op.ctx === undefined) return fn.apply(thisArg, args);
    return this.within(op.ctx, fn, thisArg, args);
  }

  /** The upgrade request is this operation: its segment is opaque while the request is made, so the agent adds no External segment. */
  runRequest<A extends unknown[], R>(op: NrOp, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    const segment = op.ctx?.segment;
    if (segment === undefined || segment === null) return this.run(op, fn, thisArg, args);
    const was = segment.opaque;
    segment.opaque = true;
    try {
      return this.run(op, fn, thisArg, args);
    } finally {
      segment.opaque = was;
    }
  }

  /** Outside any transaction: the agent records nothing nested and starts no trace downstream. */
  runUnsampled<A extends unknown[], R>(_carrier: Carrier | undefined, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    const clean = this.clean;
    return clean === undefined ? fn.apply(thisArg, args) : this.within(clean, fn, thisArg, args);
  }

  active(): object | undefined {
    return this.tracer.getContext()?.transaction ?? undefined;
  }

  keyOf(op: NrOp): object {
    return op.ctx?.transaction ?? op;
  }

  live(key: object): boolean {
    return (key as NrTransaction).isActive();
  }

  /** Run `fn` in agent context `ctx`: without a wrapper where the agent allows it. */
  private within<A extends ArrayLike<unknown>, R>(ctx: NrContext, fn: (...args: any[]) => R, thisArg: unknown, args: A): R {
    const manager = this.tracer._contextManager;
    if (manager !== undefined) return manager.runInContext(ctx, fn, thisArg, args);
    return (this.tracer.bindFunction(fn as (...a: never[]) => unknown, ctx) as unknown as (...a: unknown[]) => R).apply(
      thisArg, args as unknown as unknown[],
    );
  }

  /**
   * From the operation's own transaction, in its own context (so its segment is the parent span),
   * whether or not the agent still calls it active: the tracer also asks for the reference of an
   * operation that has ended, to parent the sends an async listener makes after its `await`, and
   * by then `inject()` (which follows the agent's *active* transaction) would write nothing.
   */
  ref(op: NrOp): NrRef {
    const headers: Record<string, string> = {};
    const ctx = op.ctx;
    if (ctx?.transaction) this.within(ctx, insertFrom, undefined, [ctx.transaction, headers]);
    if (!headers[HEADER_TRACEPARENT]) return EMPTY_REF;
    return Object.freeze({ traceparent: headers[HEADER_TRACEPARENT], tracestate: headers[HEADER_TRACESTATE] });
  }

  traceIdOf(ref: NrRef): string | undefined {
    return traceIdOfTraceparent(ref.traceparent);
  }


  inject(op: NrOp | undefined, carrier: Record<string, string>): void {
    const tracer = this.tracer;
    if (op?.ctx) this.within(op.ctx, insertHeaders, undefined, [tracer, carrier]);
    else if (op === undefined) insertHeaders(tracer, carrier);
  }

  runWithRemote<R>(carrier: Carrier, fn: () => R): R {
    const { nr, tracer, clean } = this;
    if (!clean) return fn();
    const headers = pickHeaders(carrier);
    let entered = false;
    const body = (): R => {
      entered = true;
      let tx: NrTransaction | null = null;
      try {
        tx = tracer.getTransaction();
        if (tx && headers) tx.acceptDistributedTraceHeaders('Other', headers);
      } catch (error) {
        log.fault('newrelic.runWithRemote', error);
      }
      // The agent ends the transaction when fn returns, or when its promise settles.
      try {
        return fn();
      } catch (error) {
        try {
          nr.noticeError(asError(error));
          tx?.end();
        } catch (fault) {
          log.fault('newrelic.runWithRemote', fault);
        }
        throw error;
      }
    };
    try {
      return tracer.bindFunction(
        () => nr.startBackgroundTransaction(NR_HANDOFF_NAME, NR_TRANSACTION_GROUP, body), clean,
      )();
    } catch (error) {
      if (entered) throw error; // the app's exception, already recorded
      log.fault('newrelic.runWithRemote', error);
      return fn();
    }
  }

  extract(carrier: Carrier): unknown {
    return pickHeaders(carrier);
  }

  bindMetrics(source: MetricSource): void {
    this.source = source;
  }

  flush(timeoutMs: number): Promise<void> {
    const agent = this.nr.agent;
    if (!agent || typeof agent.forceHarvestAll !== 'function' || agent.canCollectData?.() === false) {
      return Promise.resolve();
    }
    return bounded(timeoutMs, (done) => agent.forceHarvestAll!(() => done()), 'newrelic.flush');
  }

  /** Stop using the agent without stopping it: it may be the app's (uninstrument). */
  shutdown(timeoutMs: number): Promise<void> {
    return this.flush(timeoutMs);
  }

  /** The process is ending: shut the agent down with its pending data, within the bound. */
  exit(timeoutMs: number): Promise<void> {
    const nr = this.nr;
    if (!nr.agent) return Promise.resolve();
    if (!this.shutdownPromise) {
      this.shutdownPromise = bounded(
        timeoutMs,
        (done) => nr.shutdown({ collectPendingData: true, timeout: timeoutMs }, () => done()),
        'newrelic.shutdown',
      );
    }
    return this.shutdownPromise;
  }

  // --- operations ---------------------------------------------------------------------------

  private startTransaction(
    nr: NrApi, tracer: NrTracer, spec: OperationSpec<NrRef>, web: boolean, headers: Record<string, string> | undefined,
  ): NrOp | undefined {
    const clean = this.clean;
    if (!clean) return undefined;
    const handshakeTraceId = linkedTraceId(spec);
    let op: NrOp | undefined;
    const body = (): void => {
      const ctx = tracer.getContext();
      if (!ctx.transaction) return; // agent not connected yet: nothing is recorded
      // getTransaction() marks the transaction as ended by us (TransactionHandle#end), not on return.
      const handle = nr.getTransaction();
      if (web) nr.setTransactionName(spec.name); // WebTransaction/Custom/{name}
      if (headers) handle.acceptDistributedTraceHeaders(web ? 'HTTP' : 'Other', headers);
      const attributes = toCustom(spec.attributes);
      if (handshakeTraceId !== undefined) attributes[ATTR_WS_HANDSHAKE_TRACE_ID] = handshakeTraceId;
      // The public API cannot start a transaction in the past: a message recorded after the
      // fact (kept: failed or slow while not sampled) carries its real start and duration instead.
      const startTime = spec.role === 'receive' ? spec.startTime : undefined;
      if (startTime !== undefined) attributes[ATTR_WS_MESSAGE_START_TIME_MS] = Math.floor(startTime);
      nr.addCustomAttributes(attributes);
      op = { role: spec.role, ctx, handle, event: closeEvent(spec, handshakeTraceId), startTime, ended: false };
    };
    // Always from a clean agent context: inside another transaction (a client created in a request,
    // say) the agent would silently turn this transaction into a segment of that one.
    const begin = tracer.bindFunction(
      web
        ? () => nr.startWebTransaction(urlOf(spec), body)
        : () => nr.startBackgroundTransaction(spec.name, NR_TRANSACTION_GROUP, body),
      clean,
    );
    withoutCodeLevelMetrics(this.agent!, begin);
    if (op === undefined && spec.role === 'close') {
      // The summary event does not need a transaction.
      op = { role: spec.role, ctx: undefined, event: closeEvent(spec, handshakeTraceId), ended: false };
    }
    return op;
  }

  private startSegment(nr: NrApi, tracer: NrTracer, spec: OperationSpec<NrRef>): NrOp | undefined {
    let op: NrOp | undefined;
    // The agent ends a segment when the promise its handler returns settles (a callback instead
    // would add a "Callback: ..." segment under ours).
    withoutCodeLevelMetrics(this.agent!, () => nr.startSegment(spec.name, true, () => {
      const ctx = tracer.getContext();
      if (ctx.segment === undefined || ctx.segment === null) return undefined;
      nr.addCustomSpanAttributes(toCustom(spec.attributes));
      return new Promise<void>((done) => {
        op = { role: spec.role, ctx, done, ended: false };
      });
    }));
    return op;
  }

  // --- metrics -------------------------------------------------------------------------------

  private hookHarvest(): void {
    const metrics = this.nr.agent?.metrics;
    const collect = (): void => this.collect();
    if (metrics && typeof metrics.on === 'function') {
      try {
        metrics.on(HARVEST_EVENT, collect);
        return;
      } catch (error) {
        log.fault('newrelic.hookHarvest', error);
      }
    }
    log.debug('backend newrelic: no metric harvest event on this agent; collecting metrics on a 60 s timer');
    setInterval(collect, FALLBACK_HARVEST_MS).unref();
  }

  /** Move counters and histograms into the agent's metrics; runs right before each metric harvest. */
  private collect(): void {
    const nr = this.nr;
    const source = this.source;
    if (!source) return;
    try {
      for (const [metric, stats] of this.histogramDeltas(source)) nr.recordMetric(metric, stats);
      const gauges = new Map<string, number>();
      const increments = new Map<string, number>();
      for (const cell of source.counters()) {
        const metric = metricName(cell.name, cell.attributes);
        if (cell.upDown) {
          gauges.set(metric, (gauges.get(metric) ?? 0) + cell.value);
          const total = `${metricBase(cell.name, cell.attributes[ATTR_WS_SIDE] === 'client')}/all`;
          gauges.set(total, (gauges.get(total) ?? 0) + cell.value);
        } else {
          const delta = cell.value - (this.lastCounts.get(cell) ?? 0);
          this.lastCounts.set(cell, cell.value);
          if (delta > 0) increments.set(metric, (increments.get(metric) ?? 0) + delta);
        }
      }
      for (const [metric, value] of gauges) nr.recordMetric(metric, value);
      for (const [metric, delta] of increments) nr.incrementMetric(metric, Math.round(delta));
    } catch (error) {
      log.fault('newrelic.metrics', error);
    }
  }

  /**
   * Each histogram metric's stats since the last harvest: the cells' cumulative count, total
   * and sum of squares minus what the last harvest took, their interval min/max (restarted
   * here: this adapter is the only reader of the intervals). Cells of one metric name
   * (close-code classes of a route, say) are merged.
   */
  private histogramDeltas(source: MetricSource): Map<string, NrMetricStats> {
    const out = new Map<string, NrMetricStats>();
    for (const cell of source.histograms()) {
      let last = this.harvested.get(cell);
      if (last === undefined) {
        if (cell.count === 0) continue;
        let metric: string | null = metricName(cell.name, cell.attributes);
        if (!this.histogramMetrics.has(metric)) {
          if (this.histogramMetrics.size >= MAX_METRIC_NAMES) metric = null;
          else this.histogramMetrics.add(metric);
        }
        last = { metric, scale: inSeconds(cell.name) ? 1000 : 1, count: 0, sum: 0, sumOfSquares: 0 };
        this.harvested.set(cell, last);
      }
      const count = cell.count - last.count;
      if (count === 0) continue;
      const { scale } = last;
      const total = (cell.sum - last.sum) * scale;
      const sumOfSquares = (cell.sumOfSquares - last.sumOfSquares) * scale * scale;
      const min = cell.intervalMin * scale;
      const max = cell.intervalMax * scale;
      last.count = cell.count;
      last.sum = cell.sum;
      last.sumOfSquares = cell.sumOfSquares;
      cell.resetInterval();
      if (last.metric === null) continue;
      const stats = out.get(last.metric);
      if (stats === undefined) {
        out.set(last.metric, { count, total, min, max, sumOfSquares });
      } else {
        stats.count += count;
        stats.total += total;
        stats.sumOfSquares += sumOfSquares;
        if (min < stats.min) stats.min = min;
        if (max > stats.max) stats.max = max;
      }
    }
    return out;
  }
}

// --- helpers (module-level so the hot path allocates no closures) ------------------------------

function endInContext(nr: NrApi, op: NrOp, outcome: OperationOutcome): void {
  const segment = op.done !== undefined;
  if (outcome.attributes) {
    const attributes = toCustom(outcome.attributes);
    if (segment) nr.addCustomSpanAttributes(attributes);
    else if (op.handle) nr.addCustomAttributes(attributes);
  }
  if (op.startTime !== undefined && op.handle) {
    const duration = (outcome.endTime ?? Date.now()) - op.startTime;
    nr.addCustomAttributes({ [ATTR_WS_MESSAGE_DURATION_MS]: Math.round(duration * 1000) / 1000 });
  }
  if (outcome.error !== undefined && op.ctx) {
    nr.noticeError(asError(outcome.error));
  }
  if (op.event) recordCloseEvent(nr, op.event, outcome);
  if (op.done) op.done();
  else if (op.handle) op.handle.end();
}

function insertFrom(tx: NrTransaction, carrier: Record<string, string>): void {
  tx.insertDistributedTraceHeaders(carrier);
}

function insertHeaders(tracer: NrTracer, carrier: Record<string, string>): void {
  const tx = tracer.getTransaction();
  if (tx) tx.insertDistributedTraceHeaders(carrier);
}

function cleanContext(tracer: NrTracer): NrContext | undefined {
  try {
    return tracer.getContext().enterSegment({ transaction: null, segment: null });
  } catch (error) {
    log.fault('newrelic.context', error);
    return undefined;
  }
}

/** DT headers of the parent, or undefined for a new trace. */
function parentHeaders(
  parent: Parent<NrRef>, active: { insertDistributedTraceHeaders(h: Record<string, string>): void } | null,
): Record<string, string> | undefined {
  switch (parent.type) {
    case 'root':
      return undefined;
    case 'remote':
      return pickHeaders(parent.carrier);
    case 'ref':
      return parent.ref && parent.ref.traceparent ? refHeaders(parent.ref) : undefined;
    case 'active': {
      if (!active) return undefined;
      const headers: Record<string, string> = {};
      active.insertDistributedTraceHeaders(headers);
      return headers;
    }
    default:
      return undefined;
  }
}

function refHeaders(ref: NrRef): Record<string, string> {
  const headers: Record<string, string> = { [HEADER_TRACEPARENT]: ref.traceparent! };
  if (ref.tracestate) headers[HEADER_TRACESTATE] = ref.tracestate;
  return headers;
}

/** traceparent, tracestate and newrelic from a validated carrier; undefined when none is present. */
function pickHeaders(carrier: Carrier): Record<string, string> | undefined {
  let out: Record<string, string> | undefined;
  for (const key of [HEADER_TRACEPARENT, HEADER_TRACESTATE, NR_HEADER]) {
    const raw = carrier[key];
    const value = Array.isArray(raw) ? raw.join(',') : raw;
    if (typeof value === 'string' && value !== '') (out ??= {})[key] = value;
  }
  return out;
}

/** The connection's handshake trace id, for the summary event and transactions (typed on the spec). */
function linkedTraceId(spec: OperationSpec<NrRef>): string | undefined {
  if (spec.handshakeTraceId !== undefined) return spec.handshakeTraceId;
  const links = spec.links;
  if (!links) return undefined;
  for (const link of links) {
    const id = traceIdOfTraceparent(link?.traceparent);
    if (id) return id;
  }
  return undefined;
}

function toCustom(attributes: Attributes): Record<string, NrAttributeValue> {
  const out: Record<string, NrAttributeValue> = {};
  for (const key in attributes) {
    const value = attributes[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

function asError(error: unknown): Error {
  if (error instanceof Error) return error;
  return new Error(typeof error === 'string' ? error : describe(error));
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  try {
    return String(error);
  } catch {
    return 'unprintable value';
  }
}

/** The request path of a handshake (already redacted by the tracer), for the agent's `request.uri`. */
function urlOf(spec: OperationSpec<NrRef>): string {
  const path = spec.urlPath;
  return path !== undefined && path !== '' ? path : spec.route || '/';
}

function closeEvent(spec: OperationSpec<NrRef>, handshakeTraceId: string | undefined): NrOp['event'] {
  if (spec.role !== 'close') return undefined;
  return { route: spec.route, attributes: spec.attributes, handshakeTraceId };
}

/** The `WebSocketConnection` custom event: short names for NRQL, plus every semconv attribute. */
function recordCloseEvent(nr: NrApi, event: NonNullable<NrOp['event']>, outcome: OperationOutcome): void {
  const all: Attributes = { ...event.attributes, ...outcome.attributes };
  const out = toCustom(all);
  const short: Record<string, string | undefined> = {
    code: ATTR_WS_CLOSE_CODE,
    reason: ATTR_WS_CLOSE_REASON,
    initiator: ATTR_WS_CLOSE_INITIATOR,
    durationMs: ATTR_WS_CONNECTION_DURATION_MS,
    messagesIn: ATTR_WS_MESSAGES_IN,
    messagesOut: ATTR_WS_MESSAGES_OUT,
    bytesIn: ATTR_WS_BYTES_IN,
    bytesOut: ATTR_WS_BYTES_OUT,
    side: ATTR_WS_SIDE,
    broken: ATTR_WS_CONNECTION_BROKEN,
  };
  for (const name in short) {
    const value = all[short[name]!];
    if (value !== undefined) out[name] = value;
  }
  out.route = event.route;
  if (event.handshakeTraceId) out.handshakeTraceId = event.handshakeTraceId;
  if (outcome.error !== undefined) out.error = true;
  nr.recordCustomEvent(NR_CONNECTION_EVENT, out);
}

// --- metric names ------------------------------------------------------------------------------

const MAX_METRIC_NAMES = 2000;

const METRIC_BASES: Readonly<Record<string, string>> = {
  [METRIC_ACTIVE_CONNECTIONS]: 'ActiveConnections',
  [METRIC_CONNECTIONS]: 'Connections',
  [METRIC_CONNECTION_DURATION]: 'ConnectionDuration',
  [METRIC_MESSAGES]: 'Messages',
  [METRIC_MESSAGE_SIZE]: 'MessageSize',
  [METRIC_MESSAGE_PROCESS_DURATION]: 'MessageProcessDuration',
  [METRIC_HEARTBEAT_RTT]: 'HeartbeatRtt',
  [METRIC_CONNECTIONS_BROKEN]: 'BrokenConnections',
};

/** `WebSocket/{Metric}` for the server side, `WebSocket/Client/{Metric}` for client sockets. */
function metricBase(name: string, client: boolean): string {
  const prefix = client ? `${NR_METRIC_PREFIX}/Client` : NR_METRIC_PREFIX;
  const base = METRIC_BASES[name];
  if (base) return `${prefix}/${base}`;
  return `${prefix}/${name.replace(/^websocket\./, '').replace(/[^A-Za-z0-9_.-]/g, '_')}`;
}

/**
 * `WebSocket[/Client]/{Metric}[/{direction}][/{outcome}]/{route}[/{message name}]`, e.g.
 * `WebSocket/Messages/in/chat` (shown as `Custom/WebSocket/Messages/in/chat`). Route `/` becomes `(root)`.
 */
export function metricName(name: string, attributes: Attributes): string {
  let out = metricBase(name, attributes[ATTR_WS_SIDE] === 'client');
  const direction = attributes[ATTR_WS_DIRECTION];
  if (direction !== undefined) out += `/${direction}`;
  const outcome = attributes[ATTR_WS_CONNECTION_OUTCOME];
  if (outcome !== undefined) out += `/${outcome}`;
  const route = attributes[ATTR_WS_ROUTE] ?? attributes[ATTR_MESSAGING_DESTINATION_NAME];
  if (route === undefined) return `${out}/all`;
  const path = String(route).replace(/^\/+/, '');
  out += `/${path === '' ? '(root)' : path}`;
  const messageName = attributes[ATTR_WS_MESSAGE_NAME];
  return messageName === undefined ? out : `${out}/${messageName}`;
}
