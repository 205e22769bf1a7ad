/**
 * A recording Adapter for the reliability tests: it keeps a copy of everything the
 * tracer hands a backend (names, attributes, parents, bodies, outcomes), counts open
 * operations, and reads the tracer's counter and histogram cells directly, so a test can
 * check the active-connections gauge and "started = ended" without any SDK.
 */
import type { Adapter, Attributes, CounterCell, HistogramCell, MetricSource, OperationOutcome, OperationSpec } from '../../src/tracer/adapter';

export interface RecordedOp {
  readonly id: number;
  readonly name: string;
  readonly role: string;
  readonly parent: unknown;
  readonly attributes: Attributes;
  readonly body: string | undefined;
  readonly messageName: string | undefined;
  outcome?: { error?: unknown; failed?: boolean; attributes?: Attributes };
}

export interface RecordingAdapter extends Adapter<RecordedOp, RecordedOp> {
  readonly ops: RecordedOp[];
  /** Operations started and not ended yet. */
  open(): number;
  /** Sum of a counter's cells whose attributes include `match`. */
  counter(name: string, match?: Record<string, unknown>): number;
  cells(): CounterCell[];
  /** Distinct values of one attribute over the cells of one counter. */
  cellValues(name: string, attribute: string): Set<unknown>;
  /** Attribute sets of the histogram series that got values. */
  histogramSeries(): Set<Attributes>;
  /** How many values a histogram got, over the series whose attributes include `match`. */
  histogramCount(name: string, match?: Record<string, unknown>): number;
  reset(): void;
  /** Every string the tracer handed over (names, attributes, bodies, outcomes). */
  dump(): string;
}

const UNSAMPLED = Object.freeze({ unsampled: true });

export function recordingAdapter(options: { propagationHeaders?: string[]; keepOps?: boolean } = {}): RecordingAdapter {
  const ops: RecordedOp[] = [];
  const openOps = new Set<RecordedOp>();
  let source: MetricSource | undefined;
  const histograms = (): HistogramCell[] => (source ? [...source.histograms()].filter((c) => c.count > 0) : []);
  let next = 0;
  /** What run()/runUnsampled() made active, innermost last (an unsampled run pushes a marker). */
  const stack: object[] = [];
  const keep = options.keepOps !== false;
  const adapter: RecordingAdapter = {
    name: 'recording',
    propagationHeaders: options.propagationHeaders,
    ops,
    start(spec: OperationSpec<RecordedOp>): RecordedOp {
      const op: RecordedOp = {
        id: next++,
        name: spec.name,
        role: spec.role,
        parent: JSON.parse(JSON.stringify(spec.parent, (_k, v) => (typeof v === 'object' && v !== null && 'id' in v && 'role' in v ? `op#${v.id}` : v))),
        attributes: { ...spec.attributes },
        body: spec.body,
        messageName: spec.messageName,
      };
      openOps.add(op);
      if (keep) ops.push(op);
      return op;
    },
    end(op: RecordedOp, outcome: OperationOutcome): void {
      if (!openOps.delete(op)) throw new Error(`operation ${op.name} ended twice`);
      op.outcome = { error: outcome.error, failed: outcome.failed, attributes: outcome.attributes && { ...outcome.attributes } };
    },
    run<A extends unknown[], R>(op: RecordedOp, fn: (...args: A) => R, thisArg: unknown, args: A): R {
      stack.push(op);
      try {
        return fn.apply(thisArg, args);
      } finally {
        stack.pop();
      }
    },
    runUnsampled<A extends unknown[], R>(_carrier: unknown, fn: (...args: A) => R, thisArg: unknown, args: A): R {
      stack.push(UNSAMPLED);
      try {
        return fn.apply(thisArg, args);
      } finally {
        stack.pop();
      }
    },
    // Already unsampled (a message emitted from an unsampled listener): nothing to switch.
    unsampledHere: () => stack[stack.length - 1] === UNSAMPLED,
    ref: (op) => op,
    active: () => stack[stack.length - 1],
    keyOf: (op) => op,
    live: (key) => openOps.has(key as RecordedOp),
    inject(op, carrier) {
      if (op !== undefined) carrier.traceparent = `00-${'1'.repeat(32)}-${(op.id + 1).toString(16).padStart(16, '0')}-01`;
    },
    runWithRemote: (_carrier, fn) => fn(),
    extract: (carrier) => carrier,
    bindMetrics(s) {
      source = s;
    },
    flush: async () => undefined,
    shutdown: async () => undefined,
    open: () => openOps.size,
    cells: () => (source ? [...source.counters()] : []),
    counter(name, match = {}) {
      let sum = 0;
      for (const cell of adapter.cells()) {
        if (cell.name !== name) continue;
        if (Object.entries(match).every(([k, v]) => cell.attributes[k] === v)) sum += cell.value;
      }
      return sum;
    },
    cellValues(name, attribute) {
      return new Set(adapter.cells().filter((c) => c.name === name).map((c) => c.attributes[attribute]));
    },
    histogramSeries: () => new Set(histograms().map((c) => c.attributes)),
    histogramCount(name, match = {}) {
      let sum = 0;
      for (const cell of histograms()) {
        if (cell.name === name && Object.entries(match).every(([k, v]) => cell.attributes[k] === v)) sum += cell.count;
      }
      return sum;
    },
    reset() {
      ops.length = 0;
    },
    dump() {
      return JSON.stringify(
        ops.map((o) => ({
          ...o,
          outcome: o.outcome && {
            ...o.outcome,
            error: o.outcome.error instanceof Error ? `${o.outcome.error.message}\n${o.outcome.error.stack}` : String(o.outcome.error),
          },
        })),
      );
    },
  };
  return adapter;
}

export const ACTIVE = 'websocket.server.active_connections';
export const CONNECTIONS = 'websocket.server.connections';
