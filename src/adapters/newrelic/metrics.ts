/**
 * ws-apm metrics in New Relic: the tracer's counter and histogram cells moved into the agent's
 * custom metrics on each metric harvest, and the metric names (`Custom/WebSocket/...`).
 *
 * Counters and histograms are aggregated by the tracer (number and bucket cells) and read on the
 * agent's own metric harvest (`starting_data_send-metric_data` on the metric aggregator, which also
 * fires on the final harvest of `shutdown`): histograms as the stats of the interval (count, total,
 * min, max, sum of squares since the last harvest), so the per-message cost of a metric is a few
 * additions in the tracer, never an agent call.
 */
import type { Attributes, CounterCell, HistogramCell, MetricSource } from '../../tracer/adapter';
import { log } from '../../logger';
import {
  ATTR_MESSAGING_DESTINATION_NAME, ATTR_WS_CONNECTION_OUTCOME, ATTR_WS_DIRECTION, ATTR_WS_MESSAGE_NAME, ATTR_WS_PROTOCOL_MESSAGE, ATTR_WS_ROUTE,
  ATTR_WS_SIDE, inSeconds, METRIC_ACTIVE_CONNECTIONS, METRIC_CONNECTION_DURATION, METRIC_CONNECTIONS,
  METRIC_CONNECTIONS_BROKEN, METRIC_HEARTBEAT_RTT, METRIC_MESSAGE_PROCESS_DURATION, METRIC_MESSAGE_SIZE, METRIC_MESSAGES,
} from '../../semconv';
import type { NrApi, NrMetricStats } from './agent';

/** Prefix of our custom metrics (the agent prepends `Custom/`). */
const NR_METRIC_PREFIX = 'WebSocket';

/** Fallback collection period when the agent exposes no harvest event (the agent's default cycle). */
const FALLBACK_HARVEST_MS = 60_000;
const HARVEST_EVENT = 'starting_data_send-metric_data';

/** What one histogram cell had at the last harvest, and the metric it reports to (null: past the name cap). */
interface HarvestedCell {
  readonly metric: string | null;
  /** 1000 for time metrics: seconds in the tracer, milliseconds in New Relic (like the agent's own timings). */
  readonly scale: number;
  count: number;
  sum: number;
  sumOfSquares: number;
}

/** Reads the tracer's metric cells into the agent, right before each of its metric harvests. */
export class NewRelicMetrics {
  private readonly harvested = new Map<HistogramCell, HarvestedCell>();
  private readonly histogramMetrics = new Set<string>();
  private readonly lastCounts = new Map<CounterCell, number>();
  private source: MetricSource | undefined;

  constructor(private readonly nr: NrApi) {
    this.hookHarvest();
  }

  bind(source: MetricSource): void {
    this.source = source;
  }

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
 * @internal exported for its unit test and the tests that look metrics up by name.
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
  if (messageName === undefined) return out;
  // A protocol's message of a named event (graphql-ws: `.../OnMessage/next`).
  const protocolMessage = attributes[ATTR_WS_PROTOCOL_MESSAGE];
  return protocolMessage === undefined ? `${out}/${messageName}` : `${out}/${messageName}/${protocolMessage}`;
}
