/**
 * The one interface every backend implements (docs/ARCHITECTURE.md, steps 5 and 6).
 *
 * The tracer decides *what* happens (names, attributes, parents, links, sampling);
 * an adapter only knows *how* its backend starts, ends and activates an operation and
 * carries trace context. Metrics are aggregated in the tracer — counters as plain number
 * cells, histograms as bucket cells (histograms.ts) — and read by the adapter on its
 * backend's own collection cycle, so the per-message cost of a metric is a few additions
 * whatever the backend.
 */
import type { AttributeValue, Attributes } from './attributes';
import type { HistogramCell, HistogramForward } from './histograms';

export type { AnyFn } from '../types';

export type { AttributeValue, Attributes, HistogramCell };

/** A header-like bag: incoming request headers, or a broker message's metadata. */
export type Carrier = Record<string, string | string[] | undefined>;

/** What the operation is, in backend-neutral terms: each adapter maps it to its own kind of span, transaction or segment. */
export type OperationRole =
  | 'connect' // server accepts/rejects an upgrade
  | 'receive' // a message arrives (server or client socket)
  | 'send' // a message is sent
  | 'client-connect' // a client opens a connection
  | 'close' // connection summary
  | 'heartbeat'; // ping -> pong (opt-in)

export type OperationKind = 'server' | 'client' | 'producer' | 'consumer' | 'internal';

/**
 * Where an operation hangs in the trace.
 * - `root`: a new trace (links carry the relation).
 * - `active`: child of whatever operation is active in the calling context, else root.
 * - `remote`: continue the trace in `carrier` (already validated by the tracer).
 * - `ref`: child of an earlier operation of ours, by the minimal reference it left.
 */
export type Parent<Ref = unknown> =
  | { readonly type: 'root' }
  | { readonly type: 'active' }
  | { readonly type: 'remote'; readonly carrier: Carrier }
  | { readonly type: 'ref'; readonly ref: Ref };

/** Which end of the connection an operation belongs to. */
export type Side = 'server' | 'client';

/**
 * What to start. Adapters decide from the typed fields; `attributes` is only what gets
 * exported. The spec and its `attributes` object are only valid during `start()`: the
 * tracer reuses them for the next message of the same socket, so an adapter copies what
 * it keeps (OpenTelemetry's SDK and the agents all copy attributes on start).
 */
export interface OperationSpec<Ref = unknown> {
  readonly name: string;
  readonly role: OperationRole;
  readonly kind: OperationKind;
  /** Server socket (accepted by a WebSocketServer) or client socket (opened by the app). */
  readonly side: Side;
  readonly parent: Parent<Ref>;
  /** Minimal references of related operations (a message links its handshake). */
  readonly links?: readonly Ref[];
  readonly attributes: Attributes;
  /** Epoch milliseconds; defaults to now. */
  readonly startTime?: number;
  /** Low-cardinality route (template), for backends that group by destination. */
  readonly route: string;
  /** The server end: its host and port (the peer of a client socket; from the Host header on the server side). */
  readonly serverAddress?: string;
  readonly serverPort?: number;
  /** Request path of the handshake (no query string). */
  readonly urlPath?: string;
  /** Trace id of the connection's handshake (for operations that link or summarise a connection). */
  readonly handshakeTraceId?: string;
  /** Message name when a name extractor is configured. */
  readonly messageName?: string;
  /** Captured message body (already truncated), only when capture is on. */
  readonly body?: string;
}

export interface OperationOutcome {
  /** The exception thrown by user code (recorded, never swallowed by the tracer). */
  readonly error?: unknown;
  /** Marks failure without an exception (e.g. a rejected handshake). */
  readonly failed?: boolean;
  /** Attributes known only at the end (status code, close code...). */
  readonly attributes?: Attributes;
  /** Epoch milliseconds; defaults to now. */
  readonly endTime?: number;
}

/** A cumulative counter (or up-down counter) cell owned by the tracer. */
export interface CounterCell {
  readonly name: string;
  readonly attributes: Attributes;
  /** `true` for up-down counters (active connections): may go down. */
  readonly upDown: boolean;
  value: number;
}

/** What the tracer exposes to an adapter for pull-style metric export. */
export interface MetricSource {
  /** Every counter cell, in creation order (new routes add cells); read `value` at collection time. */
  counters(): Iterable<CounterCell>;
  /** Every histogram cell, in creation order; cumulative since the cell was made. */
  histograms(): Iterable<HistogramCell>;
  /** Names of every counter metric, so an adapter can pre-register instruments. */
  readonly counterNames: readonly string[];
  /** Names of every histogram metric (units and boundaries: METRIC_INFO). */
  readonly histogramNames: readonly string[];
  /**
   * For a backend that cannot take pre-aggregated histograms (an app's OpenTelemetry SDK
   * without ws-apm's metric producer): also hand every value of every cell, present and
   * future, to `forwardFor(cell)` (undefined: not that cell). `undefined` stops it.
   */
  forwardHistograms(forwardFor: ((cell: HistogramCell) => HistogramForward | undefined) | undefined): void;
}

export interface Adapter<Op = unknown, Ref = unknown> {
  readonly name: string;
  /** Extra vendor headers the adapter wants in `remote` carriers (lower case). */
  readonly propagationHeaders?: readonly string[];
  /** Start an operation; `undefined` means "not recorded" (the tracer then skips it). */
  start(spec: OperationSpec<Ref>): Op | undefined;
  /** End an operation; called exactly once per started operation. */
  end(op: Op, outcome: OperationOutcome): void;
  /** Run `fn` with `op` as the active operation (so nested instrumentation parents under it). */
  run<A extends unknown[], R>(op: Op, fn: (...args: A) => R, thisArg: unknown, args: A): R;
  /** A minimal, long-lived reference to `op` for later parents/links (keep it small). */
  ref(op: Op): Ref;
  /**
   * Optional: `ref` in the form kept for a connection's whole life (every idle connection holds
   * one), e.g. one flat string; `unpack` gives back an equal reference when the connection's
   * operations first need it. Without them the reference is kept as `ref` returned it.
   */
  pack?(ref: Ref): unknown;
  unpack?(packed: unknown): Ref;
  /** The trace id behind a reference, for cross-linking attributes (may be undefined). */
  traceIdOf?(ref: Ref): string | undefined;
  /**
   * The backend's object for the operation active in this context (ours or another
   * instrumentation's span or transaction), ended or not; undefined when there is none.
   * The tracer uses its identity to apply per-operation rules (fan-out caps, the
   * send-after-await window), so it must be the same object `keyOf` returns for our ops.
   */
  active(): object | undefined;
  /** The object `active()` returns while `op` is the active operation. */
  keyOf(op: Op): object;
  /** Has the operation behind an `active()` key not ended yet (and is it recorded)? */
  live(key: object): boolean;
  /**
   * Run `fn` in a context that carries a non-sampled trace: nested instrumentation records
   * nothing and propagates "not sampled" where the backend can say so. `carrier` is an
   * upstream context that came with the message (already validated), else a fresh one.
   */
  runUnsampled<A extends unknown[], R>(carrier: Carrier | undefined, fn: (...args: A) => R, thisArg: unknown, args: A): R;
  /**
   * Would code run right here already be unsampled, so that `runUnsampled(carrier, fn)` would just
   * call `fn` (an agent already outside any transaction, no SDK)? Asked first, on every untraced
   * message: a yes skips the switch and its machinery. Optional: no means `runUnsampled` is called.
   */
  unsampledHere?(carrier: Carrier | undefined): boolean;
  /**
   * Run `fn`, which sends the outgoing upgrade request that *is* client-connect `op`: like
   * `run`, and the backend's own http client instrumentation must not record it again.
   * Optional: defaults to `run`.
   */
  runRequest?<A extends unknown[], R>(op: Op, fn: (...args: A) => R, thisArg: unknown, args: A): R;
  /** Write trace context of `op` (or of the active context) into `carrier`. */
  inject(op: Op | undefined, carrier: Record<string, string>): void;
  /** Run `fn` with the remote context in `carrier` active (broker hand-off). */
  runWithRemote<R>(carrier: Carrier, fn: () => R): R;
  /** Extract the remote context in `carrier` as an adapter-specific value. */
  extract(carrier: Carrier): unknown;
  /** Called once: start reading the tracer's metric cells on the backend's own cycle. */
  bindMetrics(source: MetricSource): void;
  /** Export what is pending; resolves (never rejects) within `timeoutMs`. */
  flush(timeoutMs: number): Promise<void>;
  /**
   * The process is ending (beforeExit, or a signal nobody else handles): deliver
   * everything, even if that stops the backend's agent. Defaults to `flush`.
   */
  exit?(timeoutMs: number): Promise<void>;
  /** Stop using the backend (uninstrument): release ws-apm's own listeners/timers, never the app's agent. */
  shutdown(timeoutMs: number): Promise<void>;
}
