/**
 * A fake New Relic collector for tests: HTTPS on 127.0.0.1 (self-signed certificate with an IP SAN,
 * generated at start), routing on `?method=`, inflating gzip/deflate bodies, answering
 * preconnect/connect/agent_settings, and recording the data the agent sends.
 *
 * `mode: 'slow'` accepts the handshake but never answers data posts (until `close()`), to prove a
 * hanging collector costs the app nothing. Use `refusedPort()` for a collector that is down.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

/** One `[intrinsics, user attributes, agent attributes]` event (transactions, spans, errors). */
export interface NrEvent {
  /** `app_name` of the agent that sent it (each connecting agent gets its own run id). */
  readonly app: string;
  readonly intrinsics: Record<string, unknown>;
  readonly user: Record<string, unknown>;
  readonly agent: Record<string, unknown>;
}

export interface NrCustomEvent {
  readonly app: string;
  readonly intrinsics: Record<string, unknown>;
  readonly attributes: Record<string, unknown>;
}

/** A metric timeslice: `[callCount, total, totalExclusive, min, max, sumOfSquares]`. */
export interface NrMetric {
  readonly app: string;
  readonly name: string;
  readonly scope?: string;
  readonly callCount: number;
  readonly total: number;
  readonly min: number;
  readonly max: number;
}

export interface CollectorOptions {
  readonly mode?: 'normal' | 'slow';
}

const DATA_METHODS = new Set([
  'analytic_event_data', 'span_event_data', 'custom_event_data', 'metric_data', 'error_event_data', 'error_data',
  'transaction_sample_data', 'sql_trace_data', 'log_event_data', 'update_loaded_modules',
]);

export class FakeCollector {
  readonly transactions: NrEvent[] = [];
  readonly spans: NrEvent[] = [];
  readonly errors: NrEvent[] = [];
  readonly customEvents: NrCustomEvent[] = [];
  readonly metrics: NrMetric[] = [];
  /** Every method called, in order (including handshake and shutdown). */
  readonly calls: string[] = [];
  /** Decoding problems (asserted empty by tests). */
  readonly problems: string[] = [];
  /** Every request body as sent (inflated), by method, for byte-level checks. */
  readonly bodies: { readonly method: string; readonly text: string }[] = [];

  private readonly waiters = new Set<() => void>();
  private readonly apps = new Map<string, string>();
  private readonly hanging = new Set<ServerResponse>();

  private constructor(
    private readonly server: https.Server,
    readonly port: number,
    readonly certPem: string,
    private readonly mode: 'normal' | 'slow',
  ) {}

  static async start(options: CollectorOptions = {}): Promise<FakeCollector> {
    const { cert, key } = await selfSignedCert();
    const server = https.createServer({ cert, key });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    const collector = new FakeCollector(server, port, cert, options.mode ?? 'normal');
    server.on('request', (req, res) => collector.handle(req, res));
    return collector;
  }

  /** Resolves when `predicate()` holds (checked now and after every recorded payload). */
  waitFor(predicate: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`collector: timed out waiting for ${what}; calls: ${this.calls.join(',')}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  /** A metric summed over every harvest (unscoped only), optionally of one app. */
  metric(name: string, app?: string): NrMetric | undefined {
    let out: NrMetric | undefined;
    for (const m of this.metrics) {
      if (m.name !== name || m.scope || (app !== undefined && m.app !== app)) continue;
      out = out === undefined ? m : {
        app: m.app, name, callCount: out.callCount + m.callCount, total: out.total + m.total,
        min: Math.min(out.min, m.min), max: Math.max(out.max, m.max),
      };
    }
    return out;
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const method = url.searchParams.get('method') ?? '';
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      this.calls.push(method);
      let body: unknown;
      try {
        const text = inflate(Buffer.concat(chunks), String(req.headers['content-encoding'] ?? ''));
        this.bodies.push({ method, text });
        body = text.length === 0 ? undefined : JSON.parse(text);
      } catch (error) {
        this.problems.push(`${method}: ${(error as Error).message}`);
      }
      if (this.mode === 'slow' && DATA_METHODS.has(method)) {
        this.hanging.add(res); // never answered: the agent must not care
        return;
      }
      const app = this.apps.get(url.searchParams.get('run_id') ?? '') ?? '';
      this.record(method, body, app);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ return_value: this.reply(method, body) }));
      for (const check of [...this.waiters]) check();
    });
  }

  private reply(method: string, body: unknown): unknown {
    switch (method) {
      case 'preconnect':
        return { redirect_host: `127.0.0.1:${this.port}`, security_policies: {} };
      case 'connect': {
        const runId = `run-${this.apps.size + 1}`;
        const names = Array.isArray(body) ? (body[0] as { app_name?: unknown } | undefined)?.app_name : undefined;
        this.apps.set(runId, Array.isArray(names) ? String(names[0]) : '');
        return {
          agent_run_id: runId,
          account_id: '1111',
          primary_application_id: '2222',
          trusted_account_key: '1111',
          application_id: '2222',
          entity_guid: 'ENTITY-GUID',
          collect_span_events: true,
          collect_errors: true,
          collect_error_events: true,
          collect_analytics_events: true,
          collect_custom_events: true,
          collect_traces: true,
          data_report_period: 1,
          sampling_target: 120,
          sampling_target_period_in_seconds: 60,
          event_harvest_config: {
            report_period_ms: 1000,
            harvest_limits: {
              analytic_event_data: 10_000, custom_event_data: 10_000, error_event_data: 100, span_event_data: 10_000,
              log_event_data: 100,
            },
          },
        };
      }
      case 'agent_settings':
        return [];
      default:
        return null;
    }
  }

  /** Transactions (analytic events) sent by the agent of `app`. */
  transactionsOf(app: string): NrEvent[] {
    return this.transactions.filter((t) => t.app === app);
  }

  private record(method: string, body: unknown, app: string): void {
    if (!Array.isArray(body)) return;
    try {
      switch (method) {
        case 'analytic_event_data':
          this.transactions.push(...events(body[2], app));
          break;
        case 'span_event_data':
          this.spans.push(...events(body[2], app));
          break;
        case 'error_event_data':
          this.errors.push(...events(body[2], app));
          break;
        case 'custom_event_data':
          for (const e of body[1] as unknown[][]) {
            this.customEvents.push({
              app,
              intrinsics: e[0] as Record<string, unknown>, attributes: (e[1] ?? {}) as Record<string, unknown>,
            });
          }
          break;
        case 'metric_data':
          for (const m of body[3] as [{ name: string; scope?: string }, number[]][]) {
            const [callCount, total, , min, max] = m[1];
            this.metrics.push({ app, name: m[0].name, scope: m[0].scope, callCount, total, min, max });
          }
          break;
        default:
      }
    } catch (error) {
      this.problems.push(`${method}: ${(error as Error).message}`);
    }
  }
}

function events(list: unknown, app: string): NrEvent[] {
  return (list as unknown[][]).map((e) => ({
    app,
    intrinsics: (e[0] ?? {}) as Record<string, unknown>,
    user: (e[1] ?? {}) as Record<string, unknown>,
    agent: (e[2] ?? {}) as Record<string, unknown>,
  }));
}

function inflate(raw: Buffer, encoding: string): string {
  let text: Buffer = raw;
  if (encoding.includes('gzip')) text = zlib.gunzipSync(raw);
  else if (encoding.includes('deflate')) text = zlib.inflateSync(raw);
  return text.toString('utf8');
}

async function selfSignedCert(): Promise<{ cert: string; key: string }> {
  const selfsigned = require('selfsigned') as {
    generate(attrs: unknown, options: unknown): Promise<{ cert: string; private: string }>;
  };
  const pems = await selfsigned.generate([{ name: 'commonName', value: '127.0.0.1' }], {
    days: 1,
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

/** A port on 127.0.0.1 where nothing listens (a collector that is down). */
export async function refusedPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A temporary `NEW_RELIC_HOME` whose `newrelic.js` points the agent at the collector, trusts its
 * certificate, samples everything, and skips cloud detection. Returns the env for the child.
 */
export function agentHome(
  port: number, certPem: string, appName: string, options: { sampleAll?: boolean } = {},
): { env: NodeJS.ProcessEnv; dir: string; cleanup(): void } {
  const sampleAll = options.sampleAll ?? true;
  const dir = mkdtempSync(path.join(tmpdir(), 'ws-apm-nr-'));
  const config = {
    app_name: [appName],
    license_key: '0123456789abcdef0123456789abcdef01234567',
    host: '127.0.0.1',
    port,
    certificates: [certPem],
    logging: { level: 'info', filepath: path.join(dir, 'newrelic_agent.log') },
    distributed_tracing: sampleAll
      ? { enabled: true, sampler: { root: 'always_on', remote_parent_sampled: 'always_on', remote_parent_not_sampled: 'always_on' } }
      : { enabled: true },
    span_events: { enabled: true },
    transaction_events: { enabled: true },
    custom_insights_events: { enabled: true },
    error_collector: { enabled: true },
    application_logging: { enabled: false },
    utilization: {
      detect_aws: false, detect_azure: false, detect_gcp: false, detect_pcf: false, detect_docker: false,
      detect_kubernetes: false,
    },
  };
  writeFileSync(path.join(dir, 'newrelic.js'), `'use strict'\nexports.config = ${JSON.stringify(config, null, 2)}\n`);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('NEW_RELIC_') && !k.startsWith('WS_APM_')) env[k] = v;
  }
  env.NEW_RELIC_HOME = dir;
  return { env, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
