/**
 * ws-apm metrics as Elastic metricsets, through the agent's public `registerMetric`
 * (a gauge read by the agent on its own `metricsInterval`):
 * - every tracer counter cell becomes one gauge whose value is the cell's current value:
 *   `websocket.server.active_connections` per route is a true gauge, the monotonic
 *   counters (`websocket.messages`, `websocket.server.connections`, ...) are reported as
 *   cumulative values (Kibana: "counter rate" / derivative);
 * - every histogram series becomes a summary of two cumulative gauges, `<name>.count`
 *   and `<name>.sum` (seconds or bytes): average = rate(sum) / rate(count). One
 *   addition per recorded value, nothing allocated after the first value of a series.
 * Labels become metricset tags under Elastic's key rules. Series are capped.
 */
import { log } from '../logger';
import { SeriesCache } from './series';
import type { Attributes, CounterCell, CounterSource, HistogramSink } from '../tracer/adapter';
import type { ElasticAgent } from './elastic-agent';
import { toLabels } from './elastic-labels';

/** The agent's own default `metricsLimit` is 1000 series; stay well below it. */
const MAX_SERIES = 500;
const DEFAULT_INTERVAL_S = 30;

interface Summary {
  count: number;
  sum: number;
}

export class ElasticMetrics implements HistogramSink {
  private readonly registeredCells = new WeakSet<CounterCell>();
  private readonly summaries = new SeriesCache<Summary | null>();
  private readonly summaryFor = (name: string, attributes: Attributes): Summary | null => this.summary(name, attributes);
  private readonly summariesByKey = new Map<string, Summary>();
  private series = 0;
  private source: CounterSource | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly agent: ElasticAgent) {}

  /** Record one histogram value (hot path: two map lookups, two additions). */
  record(name: string, value: number, attributes: Attributes): void {
    try {
      const summary = this.summaries.get(name, attributes, this.summaryFor);
      if (summary !== null && Number.isFinite(value)) {
        summary.count++;
        summary.sum += value;
      }
    } catch (err) {
      log.fault('elastic histogram', err);
    }
  }

  /** Start exporting the tracer's counters; new cells are picked up every half interval. */
  bind(source: CounterSource): void {
    this.source = source;
    this.scan();
    const intervalS = this.agent._conf?.metricsInterval;
    if (intervalS === 0) return; // metrics disabled in the agent
    const periodMs = Math.max(250, ((typeof intervalS === 'number' && intervalS > 0 ? intervalS : DEFAULT_INTERVAL_S) * 1000) / 2);
    this.timer = setInterval(() => this.scan(), periodMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Register a gauge for every counter cell not seen yet. */
  scan(): void {
    if (!this.source) return;
    try {
      for (const cell of this.source.cells()) {
        if (this.registeredCells.has(cell)) continue;
        if (!this.reserve()) return;
        this.registeredCells.add(cell);
        this.agent.registerMetric(cell.name, toLabels(cell.attributes), () => cell.value);
      }
    } catch (err) {
      log.fault('elastic counters', err);
    }
  }

  private reserve(): boolean {
    if (this.series >= MAX_SERIES) {
      log.fault('elastic metric series cap', new Error(`more than ${MAX_SERIES} metric series; new ones dropped`));
      return false;
    }
    this.series++;
    return true;
  }

  /** The summary of (name, attributes), shared by equal attribute sets; null once capped. */
  private summary(name: string, attributes: Attributes): Summary | null {
    const tags = toLabels(attributes);
    const key = `${name}\u0000${JSON.stringify(Object.entries(tags).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))}`;
    const existing = this.summariesByKey.get(key);
    if (existing) return existing;
    if (!this.reserve()) return null;
    const summary: Summary = { count: 0, sum: 0 };
    this.summariesByKey.set(key, summary);
    this.agent.registerMetric(`${name}.count`, tags, () => summary.count);
    this.agent.registerMetric(`${name}.sum`, tags, () => summary.sum);
    return summary;
  }
}
