/**
 * Console adapter: one compact line per operation on stderr, for local development
 * (`WS_APM_BACKEND=console`, or `auto` with NODE_ENV=development). It keeps its own
 * ids and active context, speaks W3C traceparent, and prints a metrics summary
 * periodically and at exit.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import * as S from '../semconv';
import { HEADER_TRACEPARENT, inSeconds } from '../semconv';
import type { Adapter, Attributes, Carrier, MetricSource, OperationOutcome, OperationSpec } from '../tracer/adapter';
import { isValidTraceparent, traceIdOfTraceparent } from '../tracer/propagation';
import { adapterSetup, type BackendModule } from './backend';

interface Ref {
  readonly traceId: string;
  readonly spanId: string;
  /** False for the context of a message that was not sampled. */
  readonly sampled?: boolean;
}

interface ConsoleOp extends Ref {
  readonly name: string;
  readonly parentId: string | undefined;
  readonly links: readonly Ref[];
  readonly start: number;
  readonly attributes: Attributes;
  ended: boolean;
}

/** Attributes worth a glance, with short labels, in this order. */
const SHOWN: ReadonlyArray<readonly [string, string]> = [
  [S.ATTR_WS_MESSAGE_TYPE, 'type'],
  [S.ATTR_MESSAGING_MESSAGE_BODY_SIZE, 'bytes'],
  [S.ATTR_HTTP_RESPONSE_STATUS_CODE, 'status'],
  [S.ATTR_WS_CLOSE_CODE, 'code'],
  [S.ATTR_WS_CLOSE_REASON, 'reason'],
  [S.ATTR_WS_CLOSE_INITIATOR, 'by'],
  [S.ATTR_WS_CONNECTION_BROKEN, 'broken'],
  [S.ATTR_WS_CONNECTION_DURATION_MS, 'open_ms'],
  [S.ATTR_WS_MESSAGES_IN, 'msgs_in'],
  [S.ATTR_WS_MESSAGES_OUT, 'msgs_out'],
  [S.ATTR_WS_SENDS_UNRECORDED, 'sends_unrecorded'],
  [S.ATTR_WS_MESSAGE_KEPT, 'kept'],
  [S.ATTR_WS_HEARTBEAT_RTT_MS, 'rtt_ms'],
  [S.ATTR_NETWORK_PEER_ADDRESS, 'peer'],
  [S.ATTR_ENDUSER_ID, 'user'],
  [S.ATTR_ERROR_TYPE, 'error'],
];

const METRICS_INTERVAL_MS = 10_000;

class ConsoleAdapter implements Adapter<ConsoleOp, Ref> {
  readonly name = 'console';
  private readonly storage = new AsyncLocalStorage<ConsoleOp | Ref>();
  private source: MetricSource | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastMetrics = '';

  constructor(private readonly write: (line: string) => void = (line) => process.stderr.write(`${line}\n`)) {}

  start(spec: OperationSpec<Ref>): ConsoleOp {
    let parent: Ref | undefined;
    switch (spec.parent.type) {
      case 'active':
        parent = this.storage.getStore();
        break;
      case 'remote':
        parent = parseTraceparent(spec.parent.carrier[HEADER_TRACEPARENT]);
        break;
      case 'ref':
        parent = spec.parent.ref;
        break;
    }
    return {
      name: spec.name,
      traceId: parent?.traceId ?? randomBytes(16).toString('hex'),
      spanId: randomBytes(8).toString('hex'),
      parentId: parent?.spanId,
      links: spec.links ?? [],
      start: spec.startTime ?? performance.timeOrigin + performance.now(),
      attributes: { ...spec.attributes },
      ended: false,
    };
  }

  end(op: ConsoleOp, outcome: OperationOutcome): void {
    op.ended = true;
    const end = outcome.endTime ?? performance.timeOrigin + performance.now();
    const attributes = { ...op.attributes, ...outcome.attributes };
    const failed = outcome.error !== undefined || outcome.failed === true;
    const parts = [
      new Date(op.start).toISOString().slice(11, 23),
      op.name,
      `${(end - op.start).toFixed(2)}ms`,
      `trace=${op.traceId.slice(0, 8)}`,
      `span=${op.spanId.slice(0, 8)}`,
      `parent=${op.parentId ? op.parentId.slice(0, 8) : '-'}`,
    ];
    if (op.links.length > 0) parts.push(`link=${op.links.map((l) => l.spanId.slice(0, 8)).join(',')}`);
    parts.push(failed ? 'ERROR' : 'ok');
    for (const [key, label] of SHOWN) {
      const value = attributes[key];
      if (value !== undefined && value !== '') parts.push(`${label}=${shown(value)}`);
    }
    if (outcome.error !== undefined) {
      const e = outcome.error;
      parts.push(`exception=${JSON.stringify(e instanceof Error ? `${e.name}: ${e.message}` : String(e))}`);
    }
    this.write(parts.join(' '));
  }

  run<A extends unknown[], R>(op: ConsoleOp, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    return this.storage.run(op, () => fn.apply(thisArg, args));
  }

  ref(op: ConsoleOp): Ref {
    return { traceId: op.traceId, spanId: op.spanId };
  }

  traceIdOf(ref: Ref): string {
    return ref.traceId;
  }

  runUnsampled<A extends unknown[], R>(carrier: Carrier | undefined, fn: (...args: A) => R, thisArg: unknown, args: A): R {
    const upstream = carrier !== undefined ? parseTraceparent(carrier[HEADER_TRACEPARENT]) : undefined;
    const ref: Ref = upstream ?? { traceId: randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex') };
    return this.storage.run({ traceId: ref.traceId, spanId: ref.spanId, sampled: false }, () => fn.apply(thisArg, args));
  }

  active(): object | undefined {
    return this.storage.getStore();
  }

  keyOf(op: ConsoleOp): object {
    return op;
  }

  live(key: object): boolean {
    const ref = key as Partial<ConsoleOp>;
    return ref.sampled !== false && ref.ended !== true;
  }

  inject(op: ConsoleOp | undefined, carrier: Record<string, string>): void {
    const ref = op ?? this.storage.getStore();
    if (ref !== undefined) carrier[HEADER_TRACEPARENT] = `00-${ref.traceId}-${ref.spanId}-${ref.sampled === false ? '00' : '01'}`;
  }

  extract(carrier: Carrier): Ref | undefined {
    return parseTraceparent(carrier[HEADER_TRACEPARENT]);
  }

  runWithRemote<R>(carrier: Carrier, fn: () => R): R {
    const ref = parseTraceparent(carrier[HEADER_TRACEPARENT]);
    return ref === undefined ? fn() : this.storage.run(ref, fn);
  }

  bindMetrics(source: MetricSource): void {
    this.source = source;
    this.timer = setInterval(() => this.printMetrics(), METRICS_INTERVAL_MS);
    this.timer.unref();
  }

  /** One line: every non-zero counter, and count/average of each histogram. */
  printMetrics(): void {
    if (this.source === undefined) return;
    const parts: string[] = [];
    for (const cell of this.source.counters()) {
      if (cell.value === 0 && !cell.upDown) continue;
      const labels = Object.values(cell.attributes).join(',');
      parts.push(`${cell.name}{${labels}}=${cell.value}`);
    }
    // Histograms: count and average per metric, over all its series (the tracer's cells).
    const sums = new Map<string, { count: number; sum: number }>();
    for (const cell of this.source.histograms()) {
      if (cell.count === 0) continue;
      const s = sums.get(cell.name);
      if (s === undefined) sums.set(cell.name, { count: cell.count, sum: cell.sum });
      else {
        s.count += cell.count;
        s.sum += cell.sum;
      }
    }
    for (const [name, { count, sum }] of sums) {
      const unitIsSeconds = inSeconds(name);
      parts.push(`${name}{count=${count},avg=${unitIsSeconds ? `${((sum / count) * 1000).toFixed(2)}ms` : `${Math.round(sum / count)}B`}}`);
    }
    // The same line again (a flush on SIGTERM, then the one at exit) says nothing new.
    const line = `metrics ${parts.join(' ')}`;
    if (parts.length > 0 && line !== this.lastMetrics) this.write(line);
    this.lastMetrics = line;
  }

  async flush(): Promise<void> {
    this.printMetrics();
  }

  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
  }
}

/** A value as read on one line: strings quoted, fractions to two decimals (`rtt_ms=1.64`). */
function shown(value: string | number | boolean): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' && !Number.isInteger(value)) return String(Math.round(value * 100) / 100);
  return String(value);
}

function parseTraceparent(value: string | string[] | undefined): Ref | undefined {
  if (!isValidTraceparent(value)) return undefined;
  return { traceId: traceIdOfTraceparent(value)!, spanId: value.slice(36, 52) };
}

export const consoleBackend: BackendModule = {
  name: 'console',
  detect: (env) => (env.NODE_ENV === 'development' ? 'NODE_ENV=development' : undefined),
  create: () => adapterSetup(new ConsoleAdapter()),
};
