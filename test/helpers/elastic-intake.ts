/**
 * A local stand-in for APM Server: `POST /intake/v2/events` (gzip or plain ndjson,
 * parsed as it streams in), every event validated against APM Server's intake-v2 JSON
 * Schemas with ajv, and helpers to wait for events instead of sleeping.
 *
 * Modes: `ok` answers 202; `error` answers 500; `slow` reads the body but never answers
 * (the agent's request times out); `down` is a closed port (see `downUrl()`).
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import zlib from 'node:zlib';
import Ajv, { type ValidateFunction } from 'ajv';

export type EventKind = 'metadata' | 'transaction' | 'span' | 'error' | 'metricset';
export type IntakeMode = 'ok' | 'error' | 'slow';

/** Loosely typed intake event bodies (fields per the intake schema). */
export type IntakeEvent = Record<string, any>;

export interface Captured {
  readonly kind: EventKind;
  readonly body: IntakeEvent;
}

const KINDS: readonly EventKind[] = ['metadata', 'transaction', 'span', 'error', 'metricset'];

/** APM Server's intake-v2 schemas, vendored byte-identical (source and licence in its README.md). */
export const SCHEMA_DIR = path.resolve(__dirname, '..', 'fixtures', 'elastic-intake-schema');

let validators: Record<EventKind, ValidateFunction> | undefined;

function loadValidators(): Record<EventKind, ValidateFunction> {
  if (validators) return validators;
  const ajv = new Ajv({ allErrors: true, allowUnionTypes: true, strict: true });
  const out: Partial<Record<EventKind, ValidateFunction>> = {};
  for (const kind of KINDS) {
    const schema = JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, `${kind}.json`), 'utf8')) as object;
    out[kind] = ajv.compile(schema);
  }
  validators = out as Record<EventKind, ValidateFunction>;
  return validators;
}

export class Intake {
  readonly events: Captured[] = [];
  /** Schema violations and unparsable lines; a test asserts this stays empty. */
  readonly invalid: string[] = [];
  /** Intake requests received (including the ones answered 500 or never answered). */
  requests = 0;
  mode: IntakeMode;
  private readonly server: http.Server;
  private readonly waiters = new Set<() => void>();
  private readonly sockets = new Set<net.Socket>();
  private port = 0;

  constructor(mode: IntakeMode = 'ok') {
    this.mode = mode;
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  async listen(): Promise<this> {
    loadValidators();
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  of(kind: 'metadata' | 'transaction' | 'span' | 'error' | 'metricset'): IntakeEvent[] {
    return this.events.filter((e) => e.kind === kind).map((e) => e.body);
  }

  transactions(name?: string): IntakeEvent[] {
    return this.of('transaction').filter((t) => name === undefined || t.name === name);
  }

  spans(name?: string): IntakeEvent[] {
    return this.of('span').filter((s) => name === undefined || s.name === name);
  }

  /** Resolves once `predicate` holds for the captured events; rejects after `timeoutMs`. */
  waitFor<T>(what: string, predicate: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = (): boolean => {
        const value = predicate();
        if (value === undefined || value === false) return false;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(value);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; captured: ${this.summary()}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** The captured transactions, spans and errors (and how many metricsets), for failure messages. */
  summary(): string {
    const named = this.events
      .filter((e) => e.kind === 'transaction' || e.kind === 'span' || e.kind === 'error')
      .map((e) => `${e.kind}:${e.body.name ?? e.body.exception?.message ?? ''}`);
    return `${named.join(', ')} (+${this.of('metricset').length} metricsets)`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.method === 'GET' && (req.url === '/' || req.url === '')) {
      // Server information: the agent asks for the version when apmServerVersion is unset.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ build_date: '2024-01-01T00:00:00Z', build_sha: 'test', publish_ready: true, version: '8.15.0' }));
      return;
    }
    if (req.method !== 'POST' || !req.url?.startsWith('/intake/v2/events')) {
      req.resume();
      res.writeHead(404).end();
      return;
    }
    this.requests++;
    const body = req.headers['content-encoding'] === 'gzip' ? req.pipe(zlib.createGunzip()) : req;
    let buffered = '';
    body.setEncoding('utf8');
    body.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        this.line(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    });
    body.on('error', (err) => this.invalid.push(`body: ${err.message}`));
    body.on('end', () => {
      if (buffered.trim() !== '') this.line(buffered);
      if (this.mode === 'ok') {
        res.writeHead(202).end();
      } else if (this.mode === 'error') {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":"test intake answers 500"}');
      }
      // 'slow': never answer; the agent gives up on its own timeout.
    });
  }

  private line(text: string): void {
    if (text.trim() === '') return;
    let parsed: Record<string, IntakeEvent>;
    try {
      parsed = JSON.parse(text) as Record<string, IntakeEvent>;
    } catch {
      this.invalid.push(`not JSON: ${text.slice(0, 200)}`);
      return;
    }
    const kind = Object.keys(parsed)[0] as EventKind;
    if (!KINDS.includes(kind)) {
      this.invalid.push(`unknown event kind: ${text.slice(0, 200)}`);
      return;
    }
    const body = parsed[kind] as IntakeEvent;
    const label = `${kind} ${String(body?.name ?? '')}`;
    const validate = loadValidators()[kind];
    if (!validate(body)) this.invalid.push(`${label}: ${JSON.stringify(validate.errors)}`);
    this.events.push({ kind, body });
    for (const check of [...this.waiters]) check();
  }
}

export async function startIntake(mode: IntakeMode = 'ok'): Promise<Intake> {
  return new Intake(mode).listen();
}

/** A URL on which nothing listens (a port bound then released). */
export async function downUrl(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** Environment for a fixture process whose agent reports to `serverUrl`. */
export function agentEnv(serverUrl: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('ELASTIC_APM_') && !k.startsWith('WS_APM_') && !k.startsWith('OTEL_') && !k.startsWith('NEW_RELIC_')) {
      env[k] = v;
    }
  }
  // NODE_OPTIONS from the test runner (tsx loader) is not for the plain-JS fixtures.
  delete env.NODE_OPTIONS;
  return {
    ...env,
    ELASTIC_APM_SERVER_URL: serverUrl,
    ELASTIC_APM_SERVICE_NAME: 'ws-apm-test',
    ELASTIC_APM_CENTRAL_CONFIG: 'false',
    ELASTIC_APM_CLOUD_PROVIDER: 'none',
    ELASTIC_APM_METRICS_INTERVAL: '1s',
    ELASTIC_APM_API_REQUEST_TIME: '1s',
    ELASTIC_APM_SPAN_COMPRESSION_ENABLED: 'false',
    ELASTIC_APM_CAPTURE_EXCEPTIONS: 'false',
    ELASTIC_APM_LOG_LEVEL: 'warn',
    WS_APM_LOG_LEVEL: 'warn',
    ...extra,
  };
}
