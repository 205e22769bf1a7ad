/**
 * All ws-apm settings, parsed once from `WS_APM_*` variables plus programmatic
 * overrides, validated, and frozen. A bad value never stops the app: it gets one
 * warning naming the variable and the accepted values, then the default. A `WS_APM_*`
 * variable that is not a setting gets one warning with the nearest valid name.
 */
import { log, type LogLevel } from './logger';

export type Backend = 'auto' | 'otel' | 'console' | 'none' | 'elastic' | 'newrelic';
type MessageParent = 'link' | 'handshake';
type CaptureBody = 'off' | 'all';
/** Which protocol over ws a socket speaks: by its negotiated subprotocol (`auto`), none, or this one for every socket. */
type WsProtocol = 'auto' | 'none' | 'graphql-ws' | 'socket.io';

export interface Config {
  readonly enabled: boolean;
  readonly backend: Backend;
  /** JSON path of the message name (`type`, `meta.action`, `0`), split in segments; empty = off. */
  readonly messageName: readonly string[];
  readonly maxMessageNames: number;
  /** JSON path of a field carrying trace context (`{traceparent, tracestate}`) inside incoming messages; empty = off. */
  readonly messageContext: readonly string[];
  readonly messageNameMaxBytes: number;
  readonly maxRoutes: number;
  readonly routes: readonly string[];
  readonly ignoreRoutes: readonly string[];
  readonly messageParent: MessageParent;
  readonly protocol: WsProtocol;
  readonly messageSampleRate: number;
  /** Traced messages per second per process, after the sample rate; 0 = no limit. */
  readonly messageRateLimit: number;
  /** Record a message that was not sampled when a listener threw. */
  readonly keepErrors: boolean;
  /** Record a message that was not sampled when its listeners ran at least this long; 0 = off. */
  readonly keepSlowMs: number;
  /** At most this many such kept messages per second per process. */
  readonly keepRateLimit: number;
  /** Send spans recorded per operation; further sends are counted on the operation. */
  readonly maxSendSpans: number;
  readonly traceOrphanSends: boolean;
  readonly traceHeartbeat: boolean;
  readonly captureBody: CaptureBody;
  readonly captureBodyMaxBytes: number;
  readonly redactQueryParams: readonly string[];
  readonly propagationQueryParam: string;
  readonly logLevel: LogLevel;
  readonly flushTimeoutMs: number;
}

/** The backend once `auto` is resolved. */
export type ConcreteBackend = Exclude<Backend, 'auto'>;

/** A list setting also takes the environment's form: `'/a,/b'`, or `'meta.action'` for a JSON path. */
type OptionValue<T> = T extends readonly string[] ? string | readonly string[] : T;

/**
 * Programmatic overrides: the same settings in camelCase, typed (`backend: 'nope'` or a string
 * for a number does not compile), and validated at run time like the environment's, for
 * JavaScript callers.
 */
export type ConfigOptions = { readonly [K in keyof Config]?: OptionValue<Config[K]> };

/**
 * The environment ws-apm reads (`process.env`). Declared here rather than as `NodeJS.ProcessEnv`
 * so the published types compile in a project without `@types/node`.
 */
export type Environment = Readonly<Record<string, string | undefined>>;

/** @internal exported for its unit test. */
export const DEFAULT_REDACT_QUERY_PARAMS = [
  'token', 'access_token', 'jwt', 'auth', 'key', 'apikey', 'api_key', 'password', 'secret', 'signature',
];

const BACKENDS: readonly Backend[] = ['auto', 'otel', 'console', 'none', 'elastic', 'newrelic'];

type Parser<T> = (raw: string) => T | undefined;

interface Setting<T> {
  readonly env: string;
  readonly fallback: T;
  readonly accepted: string;
  readonly parse: Parser<T>;
}

function oneOf<T extends string>(values: readonly T[]): Parser<T> {
  return (raw) => {
    const v = raw.trim().toLowerCase() as T;
    return values.includes(v) ? v : undefined;
  };
}

const bool: Parser<boolean> = (raw) => {
  const v = raw.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  return undefined;
};

function int(min: number, max: number): Parser<number> {
  return (raw) => {
    const v = raw.trim();
    if (!/^\d+$/.test(v)) return undefined;
    const n = Number(v);
    return n >= min && n <= max ? n : undefined;
  };
}

const rate: Parser<number> = (raw) => {
  const v = raw.trim();
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(v)) return undefined;
  const n = Number(v);
  return n >= 0 && n <= 1 ? n : undefined;
};

function list(item: RegExp): Parser<string[]> {
  return (raw) => {
    const items = raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    return items.every((s) => item.test(s)) ? items : undefined;
  };
}

const ROUTE = /^\/[^\s?#]*$/;

const jsonPath: Parser<string[]> = (raw) => {
  const v = raw.trim();
  if (v === '') return [];
  const segments = v.split('.');
  return segments.every((s) => /^[A-Za-z0-9_$-]+$/.test(s)) ? segments : undefined;
};

const queryParamName: Parser<string> = (raw) => {
  const v = raw.trim();
  return v === '' || /^[A-Za-z0-9_.-]{1,64}$/.test(v) ? v : undefined;
};

const SETTINGS: { readonly [K in keyof Config]: Setting<Config[K]> } = {
  enabled: { env: 'WS_APM_ENABLED', fallback: true, accepted: 'true or false', parse: bool },
  backend: { env: 'WS_APM_BACKEND', fallback: 'auto', accepted: BACKENDS.join(', '), parse: oneOf(BACKENDS) },
  messageName: {
    env: 'WS_APM_MESSAGE_NAME', fallback: [], accepted: 'a JSON field path such as type, meta.action or 0', parse: jsonPath,
  },
  messageContext: {
    env: 'WS_APM_MESSAGE_CONTEXT', fallback: [], accepted: 'a JSON field path such as trace or meta.ctx', parse: jsonPath,
  },
  maxMessageNames: { env: 'WS_APM_MAX_MESSAGE_NAMES', fallback: 100, accepted: 'an integer from 1 to 10000', parse: int(1, 10_000) },
  messageNameMaxBytes: {
    env: 'WS_APM_MESSAGE_NAME_MAX_BYTES', fallback: 65_536, accepted: 'an integer from 16 to 16777216', parse: int(16, 16 * 1024 * 1024),
  },
  maxRoutes: { env: 'WS_APM_MAX_ROUTES', fallback: 100, accepted: 'an integer from 1 to 10000', parse: int(1, 10_000) },
  routes: { env: 'WS_APM_ROUTES', fallback: [], accepted: 'comma-separated path templates such as /rooms/:id,/files/*', parse: list(ROUTE) },
  ignoreRoutes: {
    env: 'WS_APM_IGNORE_ROUTES', fallback: [], accepted: 'comma-separated paths or templates such as /health,/internal/*', parse: list(ROUTE),
  },
  messageParent: { env: 'WS_APM_MESSAGE_PARENT', fallback: 'link', accepted: 'link or handshake', parse: oneOf(['link', 'handshake'] as const) },
  protocol: {
    env: 'WS_APM_PROTOCOL', fallback: 'auto', accepted: 'auto, none, graphql-ws or socket.io',
    parse: oneOf(['auto', 'none', 'graphql-ws', 'socket.io'] as const),
  },
  messageSampleRate: { env: 'WS_APM_MESSAGE_SAMPLE_RATE', fallback: 1, accepted: 'a number from 0 to 1', parse: rate },
  messageRateLimit: {
    env: 'WS_APM_MESSAGE_RATE_LIMIT', fallback: 100, accepted: 'an integer from 0 (no limit) to 1000000', parse: int(0, 1_000_000),
  },
  keepErrors: { env: 'WS_APM_KEEP_ERRORS', fallback: true, accepted: 'true or false', parse: bool },
  keepSlowMs: { env: 'WS_APM_KEEP_SLOW_MS', fallback: 250, accepted: 'an integer from 0 (off) to 3600000', parse: int(0, 3_600_000) },
  keepRateLimit: { env: 'WS_APM_KEEP_RATE_LIMIT', fallback: 10, accepted: 'an integer from 0 to 100000', parse: int(0, 100_000) },
  maxSendSpans: { env: 'WS_APM_MAX_SEND_SPANS', fallback: 10, accepted: 'an integer from 0 to 100000', parse: int(0, 100_000) },
  traceOrphanSends: { env: 'WS_APM_TRACE_ORPHAN_SENDS', fallback: false, accepted: 'true or false', parse: bool },
  traceHeartbeat: { env: 'WS_APM_TRACE_HEARTBEAT', fallback: false, accepted: 'true or false', parse: bool },
  captureBody: { env: 'WS_APM_CAPTURE_BODY', fallback: 'off', accepted: 'off or all', parse: oneOf(['off', 'all'] as const) },
  captureBodyMaxBytes: {
    env: 'WS_APM_CAPTURE_BODY_MAX_BYTES', fallback: 1024, accepted: 'an integer from 1 to 1048576', parse: int(1, 1024 * 1024),
  },
  redactQueryParams: {
    env: 'WS_APM_REDACT_QUERY_PARAMS', fallback: DEFAULT_REDACT_QUERY_PARAMS,
    accepted: 'comma-separated query parameter names', parse: list(/^[^\s=&]+$/),
  },
  propagationQueryParam: {
    env: 'WS_APM_PROPAGATION_QUERY_PARAM', fallback: '', accepted: 'a query parameter name (letters, digits, _ . -), or empty for off',
    parse: queryParamName,
  },
  logLevel: {
    env: 'WS_APM_LOG_LEVEL', fallback: 'info', accepted: 'silent, error, warn, info or debug',
    parse: oneOf(['silent', 'error', 'warn', 'info', 'debug'] as const),
  },
  flushTimeoutMs: { env: 'WS_APM_FLUSH_TIMEOUT_MS', fallback: 2000, accepted: 'an integer from 0 to 60000', parse: int(0, 60_000) },
};

/**
 * Every environment variable ws-apm reads.
 * @internal exported for its unit test.
 */
export const ENV_VARS: readonly string[] = Object.values(SETTINGS).map((s) => s.env);

const warnedUnknown = new Set<string>();

/**
 * A `WS_APM_*` variable ws-apm does not read is most likely a typo that silently keeps the
 * default: one warning per name and process, with the nearest valid name when one is close.
 */
function warnUnknownVariables(env: NodeJS.ProcessEnv, level: LogLevel): void {
  // The logger's level is set from this very configuration afterwards: honour it already.
  if (level === 'silent' || level === 'error') return;
  for (const name of Object.keys(env)) {
    if (!/^WS_APM_/i.test(name) || ENV_VARS.includes(name) || warnedUnknown.has(name)) continue;
    warnedUnknown.add(name);
    const nearest = nearestName(name.toUpperCase());
    log.warn(`unknown variable ${name}, ignored: ${nearest ? `did you mean ${nearest}?` : 'not a ws-apm setting (the README lists them)'}`);
  }
}

/**
 * The valid name closest to `name`: a few edits away (about one in three characters at most),
 * else one that contains it (`WS_APM_SAMPLE_RATE` → `WS_APM_MESSAGE_SAMPLE_RATE`).
 */
function nearestName(name: string): string | undefined {
  const typed = name.slice('WS_APM_'.length);
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(typed.length / 3)) + 1;
  for (const valid of ENV_VARS) {
    const d = editDistance(typed, valid.slice('WS_APM_'.length));
    if (d < bestDistance) {
      best = valid;
      bestDistance = d;
    }
  }
  return best ?? (typed.length >= 4 ? ENV_VARS.find((valid) => valid.slice('WS_APM_'.length).includes(typed)) : undefined);
}

/**
 * Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`.
 * @internal exported for its unit test.
 */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        rows[0].push(j);
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2][j - 2] + 1);
      rows[i].push(d);
    }
  }
  return rows[a.length][b.length];
}

function describeValue(raw: unknown): string {
  const s = typeof raw === 'string' ? raw : JSON.stringify(raw) ?? String(raw);
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}...` : s);
}

/** Accept a programmatic value of the right type as is; anything else goes through the env parser. */
function fromOption<T>(setting: Setting<T>, raw: unknown, key: string): T | undefined {
  if (typeof raw === typeof setting.fallback && !Array.isArray(setting.fallback)) {
    return setting.parse(String(raw));
  }
  if (Array.isArray(raw) && Array.isArray(setting.fallback)) {
    return setting.parse(raw.join(key === 'messageName' || key === 'messageContext' ? '.' : ','));
  }
  if (typeof raw === 'string') return setting.parse(raw);
  return undefined;
}

/**
 * Read the configuration: programmatic `options` win over the environment.
 * Invalid values are reported once each on stderr and replaced by the default.
 */
export function loadConfig(options: ConfigOptions = {}, env: Environment = process.env): Config {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(SETTINGS) as (keyof Config)[]) {
    const setting = SETTINGS[key] as Setting<unknown>;
    let value: unknown;
    if (options[key] !== undefined) {
      value = fromOption(setting, options[key], key);
      if (value === undefined) {
        log.warn(`invalid option ${key}=${describeValue(options[key])}: expected ${setting.accepted}; using the default`);
      }
    } else {
      const raw = env[setting.env];
      if (raw !== undefined && raw.trim() !== '') {
        value = setting.parse(raw);
        if (value === undefined) {
          log.warn(
            `invalid ${setting.env}=${describeValue(raw)}: expected ${setting.accepted}; using the default ${describeValue(
              Array.isArray(setting.fallback) ? setting.fallback.join(',') : String(setting.fallback),
            )}`,
          );
        }
      }
    }
    out[key] = Object.freeze(value === undefined ? setting.fallback : value);
  }
  warnUnknownVariables(env, out.logLevel as LogLevel);
  return Object.freeze(out) as unknown as Config;
}
