/**
 * ws-apm's metrics (names in semconv.ts), recorded cheaply: counters are plain number cells and
 * histograms are bucket cells (histograms.ts), both read by the adapter on its own
 * collection cycle (a few additions per message, whatever the backend); every attribute
 * set is built once per route, message name or close-code class, and reused.
 */
import {
  ATTR_WS_CLOSE_CODE_CLASS,
  ATTR_WS_CONNECTION_OUTCOME,
  ATTR_WS_DIRECTION,
  ATTR_WS_MESSAGE_NAME,
  ATTR_WS_MESSAGE_TYPE,
  ATTR_WS_PROTOCOL_MESSAGE,
  ATTR_WS_ROUTE,
  ATTR_WS_SIDE,
  METRIC_ACTIVE_CONNECTIONS,
  METRIC_CONNECTION_DURATION,
  METRIC_CONNECTIONS,
  METRIC_CONNECTIONS_BROKEN,
  METRIC_HEARTBEAT_RTT,
  METRIC_INFO,
  METRIC_MESSAGE_PROCESS_DURATION,
  METRIC_MESSAGE_SIZE,
  METRIC_MESSAGES,
} from '../semconv';
import type { Attributes, CounterCell, MetricSource } from './adapter';
import { type FaultSink, type HistogramForward, HistogramCell } from './histograms';
import { log } from '../logger';
import { OTHER } from './naming';

export type Side = 'server' | 'client';

/** Close codes as a low-cardinality class: the registered codes as is, app ranges grouped. */
function closeCodeClass(code: number): string {
  if (code >= 1000 && code <= 1015) return String(code);
  if (code >= 3000 && code <= 3999) return '3xxx';
  if (code >= 4000 && code <= 4999) return '4xxx';
  return OTHER;
}

const SIZE_IN: Attributes = Object.freeze({ [ATTR_WS_DIRECTION]: 'in' });
const SIZE_OUT: Attributes = Object.freeze({ [ATTR_WS_DIRECTION]: 'out' });

const HISTOGRAM_NAMES = [METRIC_MESSAGE_SIZE, METRIC_MESSAGE_PROCESS_DURATION, METRIC_CONNECTION_DURATION, METRIC_HEARTBEAT_RTT];

function detachedCell(name: string, attributes: Attributes, upDown: boolean): CounterCell {
  return { name, attributes, upDown, value: 0 };
}

/** Pre-built cells for one (side, route). */
export class RouteMetrics {
  readonly active: CounterCell;
  readonly accepted: CounterCell;
  readonly rejected: CounterCell;
  readonly broken: CounterCell;
  readonly inText: CounterCell;
  readonly inBinary: CounterCell;
  readonly outText: CounterCell;
  readonly outBinary: CounterCell;
  /** `websocket.message.size`, direction in / out: one cell each for every route and side. */
  readonly sizeIn: HistogramCell;
  readonly sizeOut: HistogramCell;
  readonly heartbeat: HistogramCell;
  private readonly base: Attributes;
  private readonly processUnnamed: HistogramCell;
  private readonly processNamed = new Map<string, HistogramCell>();
  private readonly durations = new Map<string, HistogramCell>();
  private readonly labelled = new Map<string, CounterCell>();

  constructor(private readonly registry: Metrics, readonly route: string, side: Side) {
    const base = { [ATTR_WS_ROUTE]: route, [ATTR_WS_SIDE]: side };
    this.base = base;
    // The `websocket.server.*` metrics exist for server routes only; a client route gets
    // cells nobody exports, so the hot path needs no side check.
    const serverCell = (name: string, attributes: Attributes, upDown = false): CounterCell =>
      side === 'server' ? registry.cell(name, attributes, upDown) : detachedCell(name, attributes, upDown);
    this.active = serverCell(METRIC_ACTIVE_CONNECTIONS, { [ATTR_WS_ROUTE]: route }, true);
    this.accepted = serverCell(METRIC_CONNECTIONS, { [ATTR_WS_ROUTE]: route, [ATTR_WS_CONNECTION_OUTCOME]: 'accepted' });
    this.rejected = serverCell(METRIC_CONNECTIONS, { [ATTR_WS_ROUTE]: route, [ATTR_WS_CONNECTION_OUTCOME]: 'rejected' });
    this.broken = registry.cell(METRIC_CONNECTIONS_BROKEN, base);
    const messages = (direction: string, type: string): CounterCell =>
      registry.cell(METRIC_MESSAGES, { ...base, [ATTR_WS_DIRECTION]: direction, [ATTR_WS_MESSAGE_TYPE]: type });
    this.inText = messages('in', 'text');
    this.inBinary = messages('in', 'binary');
    this.outText = messages('out', 'text');
    this.outBinary = messages('out', 'binary');
    // Per-message histograms carry as few attributes as they can (sizes: the direction
    // only), so their series stay few whatever the number of routes.
    this.sizeIn = registry.sizeIn;
    this.sizeOut = registry.sizeOut;
    // Handler latency has no side: a client and a server route of the same name share cells.
    this.processUnnamed = registry.histogram(METRIC_MESSAGE_PROCESS_DURATION, { [ATTR_WS_ROUTE]: route });
    this.heartbeat = registry.histogram(METRIC_HEARTBEAT_RTT, base);
  }

  /** Handler latency (`websocket.message.process.duration`); `name` comes from the capped MessageNamer. */
  process(name: string | undefined): HistogramCell {
    if (name === undefined) return this.processUnnamed;
    let cell = this.processNamed.get(name);
    if (cell === undefined) {
      cell = this.registry.histogram(METRIC_MESSAGE_PROCESS_DURATION, { [ATTR_WS_ROUTE]: this.route, [ATTR_WS_MESSAGE_NAME]: name });
      this.processNamed.set(name, cell);
    }
    return cell;
  }

  /**
   * `websocket.messages` of a protocol's message that belongs to a named event (graphql-ws: a
   * `next` of operation `OnMessage`), counted here instead of the route's plain cells; `name`
   * is capped by the caller, `message` is one of the protocol's few message types.
   */
  protocolMessages(out: boolean, binary: boolean, name: string, message: string): CounterCell {
    const key = `${out ? 'o' : 'i'}${binary ? 'b' : 't'}${message}\u0000${name}`;
    let cell = this.labelled.get(key);
    if (cell === undefined) {
      cell = this.registry.cell(METRIC_MESSAGES, {
        ...this.base,
        [ATTR_WS_DIRECTION]: out ? 'out' : 'in',
        [ATTR_WS_MESSAGE_TYPE]: binary ? 'binary' : 'text',
        [ATTR_WS_MESSAGE_NAME]: name,
        [ATTR_WS_PROTOCOL_MESSAGE]: message,
      });
      this.labelled.set(key, cell);
    }
    return cell;
  }

  /** Connection lifetime (`websocket.connection.duration`), by close-code class. */
  duration(code: number): HistogramCell {
    const cls = closeCodeClass(code);
    let cell = this.durations.get(cls);
    if (cell === undefined) {
      cell = this.registry.histogram(METRIC_CONNECTION_DURATION, { ...this.base, [ATTR_WS_CLOSE_CODE_CLASS]: cls });
      this.durations.set(cls, cell);
    }
    return cell;
  }
}

/** All counter and histogram cells of one tracer. */
export class Metrics implements MetricSource {
  readonly counterNames = [METRIC_ACTIVE_CONNECTIONS, METRIC_CONNECTIONS, METRIC_MESSAGES, METRIC_CONNECTIONS_BROKEN];
  readonly histogramNames = HISTOGRAM_NAMES;
  private readonly counterList: CounterCell[] = [];
  private readonly histogramList: HistogramCell[] = [];
  /** Histogram cells by name and attribute values: equal series share one cell. */
  private readonly histogramsByKey = new Map<string, HistogramCell>();
  private readonly routes = new Map<string, RouteMetrics>();
  private forwardFor: ((cell: HistogramCell) => HistogramForward | undefined) | undefined;
  readonly sizeIn: HistogramCell;
  readonly sizeOut: HistogramCell;

  /** `faults`: where a fault of histogram forwarding is counted (the tracer's budget). */
  constructor(private readonly faults?: FaultSink) {
    this.sizeIn = this.histogram(METRIC_MESSAGE_SIZE, SIZE_IN);
    this.sizeOut = this.histogram(METRIC_MESSAGE_SIZE, SIZE_OUT);
  }

  cell(name: string, attributes: Attributes, upDown = false): CounterCell {
    const cell: CounterCell = { name, attributes: Object.freeze(attributes), upDown, value: 0 };
    this.counterList.push(cell);
    return cell;
  }

  /**
   * The histogram cell of (name, attributes), made on first use (not per value: callers keep
   * it). Bounded because every attribute set comes from capped routes, message names and
   * close-code classes.
   */
  histogram(name: string, attributes: Attributes): HistogramCell {
    const key = `${name}\u0000${JSON.stringify(Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))}`;
    let cell = this.histogramsByKey.get(key);
    if (cell === undefined) {
      cell = new HistogramCell(name, Object.freeze({ ...attributes }), METRIC_INFO[name]?.buckets ?? [], this.faults);
      if (this.forwardFor !== undefined) cell.forward = this.forwardOf(cell, this.forwardFor);
      this.histogramsByKey.set(key, cell);
      this.histogramList.push(cell);
    }
    return cell;
  }

  counters(): Iterable<CounterCell> {
    return this.counterList;
  }

  histograms(): Iterable<HistogramCell> {
    return this.histogramList;
  }

  forwardHistograms(forwardFor: ((cell: HistogramCell) => HistogramForward | undefined) | undefined): void {
    this.forwardFor = forwardFor;
    for (const cell of this.histogramList) cell.forward = forwardFor === undefined ? undefined : this.forwardOf(cell, forwardFor);
  }

  /** The backend's forward for `cell`: its callback is backend code, so a fault costs the forward, not the caller. */
  private forwardOf(cell: HistogramCell, forwardFor: (cell: HistogramCell) => HistogramForward | undefined): HistogramForward | undefined {
    try {
      return forwardFor(cell);
    } catch (err) {
      if (this.faults !== undefined) this.faults.fault(`${cell.name} histogram forward`, err);
      else log.fault(`${cell.name} histogram forward`, err);
      return undefined;
    }
  }

  /** Routes are already capped by RouteNamer, so this map is bounded too. */
  forRoute(route: string, side: Side): RouteMetrics {
    const key = side === 'server' ? route : `client ${route}`;
    let metrics = this.routes.get(key);
    if (metrics === undefined) {
      metrics = new RouteMetrics(this, route, side);
      this.routes.set(key, metrics);
    }
    return metrics;
  }
}
