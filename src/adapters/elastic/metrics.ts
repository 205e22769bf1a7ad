/**
 * ws-apm metrics as Elastic metricsets, through the agent's public `registerMetric`
 * (a gauge read by the agent on its own `metricsInterval`):
 * - every tracer counter cell becomes one gauge whose value is the cell's current value:
 *   `websocket.server.active_connections` per route is a true gauge, the monotonic
 *   counters (`websocket.messages`, `websocket.server.connections`, ...) are reported as
 *   cumulative values (Kibana: "counter rate" / derivative);
 * - every tracer histogram cell with values becomes a summary of two cumulative gauges,
 *   `<name>.count` and `<name>.sum` (seconds or bytes): average = rate(sum) / rate(count).
 *   The cells are aggregated by the tracer: nothing here runs per recorded value.
 * Labels become metricset tags under Elastic's key rules. Series are capped. New cells
 * (a new route, message name or close-code class) are picked up every half interval and
 * at every flush.
 *
 * The agent reads gauges only on its interval (30 s by default) and reports nothing when the
 * process ends, so an app living less than an interval would never send one. At exit, ws-apm
 * writes one last metricset per tag set itself, as the agent's reporter would, just before the
 * agent ends its intake stream (beforeExit) or when ws-apm delivers on a signal. That is one more
 * sample of each gauge at a later time, never a repeated one: the agent never reports at exit.
 */
import os from 'node:os';
import { log } from '../../logger';
import type { CounterCell, HistogramCell, MetricSource } from '../../tracer/adapter';
import type { ElasticAgent } from './agent';
import { toLabels } from './labels';

/** The agent's own default `metricsLimit` is 1000 series; stay well below it. */
const MAX_SERIES = 500;
const DEFAULT_INTERVAL_S = 30;

/** The histogram cells behind one (name, tags) summary (distinct cells whose labels coincide). */
type Summary = HistogramCell[];

type Labels = ReturnType<typeof toLabels>;

/** One gauge registered with the agent: what the final metricset reports again. */
interface Series {
  readonly name: string;
  readonly tags: Labels;
  readonly tagsKey: string;
  readonly read: () => number;
}

export class ElasticMetrics {
  private readonly registeredCells = new WeakSet<CounterCell | HistogramCell>();
  private readonly summariesByKey = new Map<string, Summary>();
  private series = 0;
  private source: MetricSource | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly registered: Series[] = [];
  private finalSent = false;
  // Prepended: it must run before the agent's own beforeExit listener ends the intake stream.
  private readonly onBeforeExit = (): void => this.final();

  constructor(private readonly agent: ElasticAgent) {}

  /** Start exporting the tracer's cells; new cells are picked up every half interval. */
  bind(source: MetricSource): void {
    this.source = source;
    this.scan();
    const intervalS = this.agent._conf?.metricsInterval;
    if (intervalS === 0) return; // metrics disabled in the agent
    process.prependOnceListener('beforeExit', this.onBeforeExit);
    const periodMs = Math.max(250, ((typeof intervalS === 'number' && intervalS > 0 ? intervalS : DEFAULT_INTERVAL_S) * 1000) / 2);
    this.timer = setInterval(() => this.scan(), periodMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    process.removeListener('beforeExit', this.onBeforeExit);
  }

  /**
   * The process is ending: write the current value of every gauge as metricsets (one per
   * tag set, like the agent's reporter) into the agent's intake stream, once. The agent's
   * final request carries them.
   */
  final(): void {
    if (this.finalSent || !this.source) return;
    this.finalSent = true;
    try {
      const conf = this.agent._conf;
      const client = this.agent._apmClient;
      if (!this.agent.isStarted() || conf?.metricsInterval === 0 || conf?.contextPropagationOnly === true) return;
      if (!client || typeof client.sendMetricSet !== 'function') return;
      this.scan();
      // The agent's reporter adds these default dimensions to every metricset it sends.
      const defaults = { hostname: conf?.hostname || os.hostname(), env: conf?.environment || '' };
      const timestamp = Date.now() * 1000;
      const sets = new Map<string, { timestamp: number; tags: Labels; samples: Record<string, { value: number }> }>();
      for (const series of this.registered) {
        if (this.agent._isMetricNameDisabled?.(series.name) === true) continue;
        const value = series.read();
        if (!Number.isFinite(value)) continue;
        let set = sets.get(series.tagsKey);
        if (!set) {
          set = { timestamp, tags: { ...defaults, ...series.tags }, samples: {} };
          sets.set(series.tagsKey, set);
        }
        set.samples[series.name] = { value };
      }
      for (const set of sets.values()) client.sendMetricSet(set);
    } catch (err) {
      log.fault('elastic final metrics', err);
    }
  }

  /** Register a gauge for every counter cell, and a summary for every histogram cell with values, not seen yet. */
  scan(): void {
    // Before start() the agent drops registrations silently: wait (its preload may come after ws-apm's).
    if (!this.source || !this.agent.isStarted()) return;
    try {
      for (const cell of this.source.counters()) {
        if (this.registeredCells.has(cell)) continue;
        if (!this.reserve()) return;
        this.registeredCells.add(cell);
        this.register(cell.name, toLabels(cell.attributes), () => cell.value);
      }
      for (const cell of this.source.histograms()) {
        if (cell.count === 0 || this.registeredCells.has(cell)) continue;
        if (!this.addToSummary(cell)) return;
        this.registeredCells.add(cell);
      }
    } catch (err) {
      log.fault('elastic metrics', err);
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

  /** Join the summary of (name, tags), registering its two gauges when it is new; false once capped. */
  private addToSummary(cell: HistogramCell): boolean {
    const tags = toLabels(cell.attributes);
    const key = `${cell.name}\u0000${tagsKey(tags)}`;
    const existing = this.summariesByKey.get(key);
    if (existing) {
      existing.push(cell);
      return true;
    }
    if (!this.reserve()) return false;
    const summary: Summary = [cell];
    this.summariesByKey.set(key, summary);
    this.register(`${cell.name}.count`, tags, () => total(summary, 'count'));
    this.register(`${cell.name}.sum`, tags, () => total(summary, 'sum'));
    return true;
  }

  private register(name: string, tags: Labels, read: () => number): void {
    this.agent.registerMetric(name, tags, read);
    this.registered.push({ name, tags, tagsKey: tagsKey(tags), read });
  }
}

function tagsKey(tags: Labels): string {
  return JSON.stringify(Object.entries(tags).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function total(cells: Summary, field: 'count' | 'sum'): number {
  let out = 0;
  for (const cell of cells) out += cell[field];
  return out;
}
