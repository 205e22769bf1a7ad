/**
 * Client connections. ws creates its upgrade request with `http.request` (ws 8) or
 * `http.get` (ws 7), looked up on the module at call time, from a private options
 * object that already holds the WebSocket handshake headers. Wrapping those four
 * functions (http and https) lets the tracer inject trace context into that object
 * before the request exists, on both major versions, without touching ws's private
 * fields. Any other request passes straight through after one property check.
 *
 * The request is sent with the backend's own http client instrumentation standing aside
 * (it *is* the WS CONNECT), while the connection's socket is opened inside the WS CONNECT
 * itself, so the socket's later callbacks keep a normal context.
 */
import { log } from '../logger';
import type { PendingConnect } from '../tracer/client';
import type { Tracer } from '../tracer/tracer';
import type { Patches } from './wrap';

type AnyFn = (...args: any[]) => any;

/** The options object ws passes to http(s).request/get for a client upgrade. */
interface UpgradeOptions {
  host?: string;
  hostname?: string;
  port?: number | string;
  path?: string;
  protocol?: string;
  defaultPort?: number;
  headers?: Record<string, string | string[] | number>;
  createConnection?: AnyFn;
}

interface RequestLike {
  once(event: string, listener: (...args: any[]) => void): unknown;
}

/** ws's own upgrade request options: a single object carrying its handshake headers. */
function isWsUpgrade(options: unknown, argc: number): options is UpgradeOptions {
  if (argc > 2 || options === null || typeof options !== 'object') return false;
  const headers = (options as UpgradeOptions).headers;
  return (
    headers !== undefined &&
    headers !== null &&
    headers.Upgrade === 'websocket' &&
    headers['Sec-WebSocket-Key'] !== undefined &&
    typeof (options as UpgradeOptions).createConnection === 'function'
  );
}

/** Client connects between the upgrade request and the socket's `upgrade` event. */
export class ClientUpgrades {
  /** Upgrade responses → their connect, until ws emits `upgrade` with the same object. */
  private readonly responses = new WeakMap<object, PendingConnect>();

  constructor(private readonly tracer: Tracer) {}

  /** `http(s).request/get` called by ws with its upgrade options. */
  request(options: UpgradeOptions, request: AnyFn, thisArg: unknown, args: unknown[]): unknown {
    const clients = this.tracer.clients;
    let pending: PendingConnect | undefined;
    try {
      pending = this.begin(options);
    } catch (err) {
      log.fault('ws-apm client connect', err);
    }
    if (pending === undefined) return request.apply(thisArg, args);
    const req = clients.request<RequestLike>(pending, request, thisArg, args);
    try {
      this.watch(req, pending);
    } catch (err) {
      log.fault('ws-apm client connect', err);
    }
    return req;
  }

  /** ws emitted `upgrade` with the response of a connect we saw. */
  upgraded(ws: object, res: unknown): void {
    const pending = res !== null && typeof res === 'object' ? this.responses.get(res) : undefined;
    if (pending === undefined) return;
    this.responses.delete(res as object);
    this.tracer.clients.opened(ws, pending);
    // A protocol over ws may recognise the connection by its URL (engine.io's EIO=).
    this.tracer.frames.opened(ws, (ws as { url?: unknown }).url);
  }

  private begin(options: UpgradeOptions): PendingConnect {
    const clients = this.tracer.clients;
    const secure = options.protocol === 'https:' || options.defaultPort === 443;
    const pending = clients.begin({
      secure,
      hostname: options.host ?? options.hostname ?? 'localhost',
      port: Number(options.port) || (secure ? 443 : 80),
      path: options.path ?? '/',
    });
    const headers = options.headers;
    if (headers !== undefined) {
      // Ours wins over a traceparent injected by an outer http instrumentation.
      const carrier = clients.headers(pending);
      for (const key of Object.keys(carrier)) headers[key] = carrier[key];
    }
    const connect = options.createConnection;
    if (typeof connect === 'function' && pending.op !== undefined) {
      options.createConnection = function createConnection(this: unknown): unknown {
        return clients.openSocket(pending, connect, this, Array.prototype.slice.call(arguments));
      };
    }
    return pending;
  }

  /** End the connect from the request's own events: 101, another status, an error, or a close. */
  private watch(req: RequestLike, pending: PendingConnect): void {
    const clients = this.tracer.clients;
    // Registered while the request is created, so this runs before ws's own listener,
    // which then emits `upgrade` on the WebSocket with the same response object.
    req.once('upgrade', (res: { statusCode?: number }) => {
      this.responses.set(res, pending);
      clients.settled(pending, { upgraded: true, status: res.statusCode ?? 101 });
    });
    req.once('response', (res: { statusCode?: number }) => clients.settled(pending, { upgraded: false, status: res.statusCode }));
    req.once('error', (error: unknown) => clients.settled(pending, { upgraded: false, error }));
    req.once('close', () => clients.settled(pending, { upgraded: false }));
  }
}

/**
 * Wrap `request` and `get` of http or https, kept the outermost wrapper (`Patches.keepOnTop`):
 * the backend's own http instrumentation must see ws's upgrade request only from inside the
 * WS CONNECT, where it stands aside. Found below another wrapper at a connect, ws-apm wraps
 * again for the next one (the modules layer also does at each ws load and after the main module).
 */
export function patchClientRequests(httpModule: object, upgrades: ClientUpgrades, patches: Patches): void {
  for (const name of ['request', 'get']) {
    patches.wrap(
      httpModule,
      name,
      (original: AnyFn) =>
        function request(this: unknown, options: unknown): unknown {
          if (!isWsUpgrade(options, arguments.length)) return original.apply(this, arguments as unknown as unknown[]);
          try {
            if (!patches.isOnTop(httpModule, name)) patches.keepOnTop();
          } catch (err) {
            log.fault('ws-apm http patch', err);
          }
          return upgrades.request(options, original, this, Array.prototype.slice.call(arguments));
        },
      { onTop: true },
    );
  }
}
