/**
 * A local OTLP/HTTP JSON receiver (what a collector would be), for child-process
 * tests: spans and metric points flattened, with an event for each batch.
 */
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** OTLP span kinds as they arrive in JSON. */
export const SERVER = 2;
export const CLIENT = 3;
export const PRODUCER = 4;
export const CONSUMER = 5;

/** The environment of an app exporting to `url` through the SDK ws-apm starts (OTLP/HTTP JSON). */
export function otlpEnv(url: string, service: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    WS_APM_BACKEND: 'otel',
    OTEL_SERVICE_NAME: service,
    OTEL_EXPORTER_OTLP_ENDPOINT: url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    // Only local resource detectors: no cloud metadata requests from a test.
    OTEL_NODE_RESOURCE_DETECTORS: 'env,host,os,process',
    ...extra,
  };
}

type AnyValue = { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
type KeyValue = { key: string; value: AnyValue };

export interface ReceivedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  readonly attributes: Record<string, unknown>;
  readonly links: { traceId: string; spanId: string }[];
  readonly status: { code?: number; message?: string };
}

export interface ReceivedPoint {
  readonly service: string;
  readonly name: string;
  readonly attributes: Record<string, unknown>;
  /** Sums and gauges: the value; histograms: the count. */
  readonly value: number;
  readonly scope: string;
  readonly unit: string;
  /** Which export request (batch) of the receiver it came in, from 1. */
  readonly batch: number;
  readonly histogram?: ReceivedHistogram;
}

export interface ReceivedHistogram {
  readonly count: number;
  readonly sum: number;
  readonly min?: number;
  readonly max?: number;
  readonly bucketCounts: number[];
  readonly explicitBounds: number[];
  /** OTLP: 1 delta, 2 cumulative. */
  readonly temporality: number;
}

function value(v: AnyValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return undefined;
}

function attributes(list: KeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) out[kv.key] = value(kv.value);
  return out;
}

export class OtlpReceiver extends EventEmitter {
  readonly spans: ReceivedSpan[] = [];
  readonly points: ReceivedPoint[] = [];
  private batches = 0;
  /** Every request body as received (path and text), for byte-level checks. */
  readonly bodies: { readonly path: string; readonly text: string }[] = [];
  private server = http.createServer((req, res) => this.handle(req, res));
  url = '';

  async start(): Promise<this> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      this.bodies.push({ path: req.url ?? '', text });
      try {
        const body = JSON.parse(text);
        if (req.url === '/v1/traces') this.traces(body);
        else if (req.url === '/v1/metrics') this.metrics(body);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } catch {
        res.writeHead(400).end();
      }
      this.emit('batch');
    });
  }

  private traces(body: any): void {
    for (const rs of body.resourceSpans ?? []) {
      const service = String(attributes(rs.resource?.attributes)['service.name']);
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          this.spans.push({
            service,
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId ?? '',
            name: s.name,
            kind: s.kind,
            attributes: attributes(s.attributes),
            links: (s.links ?? []).map((l: any) => ({ traceId: l.traceId, spanId: l.spanId })),
            status: s.status ?? {},
          });
        }
      }
    }
  }

  private metrics(body: any): void {
    const batch = ++this.batches;
    for (const rm of body.resourceMetrics ?? []) {
      const service = String(attributes(rm.resource?.attributes)['service.name']);
      for (const sm of rm.scopeMetrics ?? []) {
        const scope = String(sm.scope?.name ?? '');
        for (const m of sm.metrics ?? []) {
          const data = m.sum ?? m.gauge ?? m.histogram;
          for (const p of data?.dataPoints ?? []) {
            const v = m.histogram ? Number(p.count) : Number(p.asInt ?? p.asDouble ?? 0);
            const histogram: ReceivedHistogram | undefined = m.histogram
              ? {
                  count: Number(p.count),
                  sum: Number(p.sum),
                  min: p.min === undefined ? undefined : Number(p.min),
                  max: p.max === undefined ? undefined : Number(p.max),
                  bucketCounts: (p.bucketCounts ?? []).map(Number),
                  explicitBounds: (p.explicitBounds ?? []).map(Number),
                  temporality: Number(m.histogram.aggregationTemporality),
                }
              : undefined;
            this.points.push({ service, name: m.name, attributes: attributes(p.attributes), value: v, scope, unit: String(m.unit ?? ''), batch, histogram });
          }
        }
      }
    }
  }

  /** Resolve with `check`'s value once it has one (checked again on every batch); reject after `ms`. */
  async waitFor<T>(what: string, check: () => T | undefined | false, ms = 15_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = check();
      if (value !== undefined && value !== false) return value;
      const left = deadline - Date.now();
      if (left <= 0) {
        const points = [...new Set(this.points.map((p) => `${p.service} ${p.name} ${JSON.stringify(p.attributes)}=${p.value}`))];
        const spans = [...new Set(this.spans.map((s) => `${s.service} ${s.name}`))];
        throw new Error(`timed out waiting for ${what}; metric points: ${JSON.stringify(points.slice(-40))}; spans: ${JSON.stringify(spans.slice(-20))}`);
      }
      const timer = new AbortController();
      const t = setTimeout(() => timer.abort(), left);
      try {
        await once(this, 'batch', { signal: timer.signal });
      } catch {
        // the deadline: checked once more above
      } finally {
        clearTimeout(t);
      }
    }
  }

  spansOf(service: string, name?: string | RegExp): ReceivedSpan[] {
    return this.spans.filter(
      (s) => s.service === service && (name === undefined || (typeof name === 'string' ? s.name === name : name.test(s.name))),
    );
  }

  /** The last reported value of a metric for `service` whose attributes include `match`. */
  lastPoint(service: string, name: string, match: Record<string, unknown> = {}): number | undefined {
    const points = this.points.filter(
      (p) => p.service === service && p.name === name && Object.entries(match).every(([k, v]) => p.attributes[k] === v),
    );
    return points.length === 0 ? undefined : points[points.length - 1].value;
  }
}
