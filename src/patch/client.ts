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
import type { PendingConnect } from '../tracer/client';
import type { Boundary } from '../tracer/boundary';
import type { Patches } from './wrap';
import type { AnyFn } from '../tracer/adapter';

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
  once(event: string, listener: AnyFn): unknown;
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

  constructor(private readonly boundary: Boundary) {}

  /** False once ws-apm spent its fault budget. */
  get on(): boolean {
    return this.boundary.on;
  }

  fault(key: string, err: unknown): void {
    this.boundary.fault(key, err);
  }

  /** `http(s).request/get` called by ws with its upgrade options. */
  request(options: UpgradeOptions, request: AnyFn, thisArg: unknown, args: unknown[]): unknown {
    let pending: PendingConnect | undefined;
    try {
      pending = this.begin(options);
    } catch (err) {
      this.boundary.fault('ws-apm client connect', err);
    }
    if (pending === undefined) return request.apply(thisArg, args);
    const req = this.boundary.withinRequest<RequestLike>(pending.op, request, thisArg, args);
    try {
      this.watch(req, pending);
    } catch (err) {
      this.boundary.fault('ws-apm client connect', err);
    }
    return req;
  }

  /** ws emitted `upgrade` with the response of a connect we saw. */
  upgraded(ws: object, res: unknown): void {
    const pending = res !== null && typeof res === 'object' ? this.responses.get(res) : undefined;
    if (pending === undefined) return;
    this.responses.delete(res as object);
    // A protocol over ws may recognise the connection by its URL (engine.io's EIO=).
    this.boundary.connectOpened(ws, pending, (ws as { url?: unknown }).url);
  }

  private begin(options: UpgradeOptions): PendingConnect | undefined {
    const boundary = this.boundary;
    const secure = options.protocol === 'https:' || options.defaultPort === 443;
    const pending = boundary.connectStart({
      secure,
      hostname: options.host ?? options.hostname ?? 'localhost',
      port: Number(options.port) || (secure ? 443 : 80),
      path: options.path ?? '/',
    });
    if (pending === undefined) return undefined;
    const headers = options.headers;
    if (headers !== undefined) {
      // Ours wins over a traceparent injected by an outer http instrumentation.
      const carrier = boundary.connectHeaders(pending);
      for (const key of Object.keys(carrier)) headers[key] = carrier[key];
    }
    const connect = options.createConnection;
    if (typeof connect === 'function' && pending.op !== undefined) {
      options.createConnection = function createConnection(this: unknown): unknown {
        return boundary.within(pending.op, connect, this, Array.prototype.slice.call(arguments));
      };
    }
    return pending;
  }

  /** End the connect from the request's own events: 101, another status, an error, or a close. */
  private watch(req: RequestLike, pending: PendingConnect): void {
    const boundary = this.boundary;
    // Registered while the request is created, so this runs before ws's own listener,
    // which then emits `upgrade` on the WebSocket with the same response object.
    req.once('upgrade', (res: { statusCode?: number }) => {
      this.responses.set(res, pending);
      boundary.connectSettled(pending, { upgraded: true, status: res.statusCode ?? 101 });
    });
    req.once('response', (res: { statusCode?: number }) => boundary.connectSettled(pending, { upgraded: false, status: res.statusCode }));
    req.once('error', (error: unknown) => boundary.connectSettled(pending, { upgraded: false, error }));
    req.once('close', () => boundary.connectSettled(pending, { upgraded: false }));
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
          if (!upgrades.on || !isWsUpgrade(options, arguments.length)) return original.apply(this, arguments as unknown as unknown[]);
          try {
            if (!patches.isOnTop(httpModule, name)) patches.keepOnTop();
          } catch (err) {
            upgrades.fault('ws-apm http patch', err);
          }
          return upgrades.request(options, original, this, Array.prototype.slice.call(arguments));
        },
      { onTop: true },
    );
  }
}
