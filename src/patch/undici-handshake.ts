/**
 * Handshakes of undici's WebSocket (Node's built-in client, and the `undici` package's own),
 * seen only through the diagnostics channels undici publishes for instrumentation:
 *
 * - `undici:request:create` is published synchronously inside `new WebSocket()` (in the
 *   app's context) for the upgrade request (`request.upgrade === 'websocket'`): the
 *   `WS CONNECT` starts there, and its trace context goes into the request's documented
 *   `headers` array (replacing a value another instrumentation put there, else `addHeader`).
 * - `undici:request:headers` (the response status) and `undici:request:error` end it.
 * - The socket itself only becomes visible when undici dispatches `open` on it. From the
 *   101 being published to that `open` undici runs microtasks only (the fetch promise chain,
 *   then `queueMicrotask(processResponse)`, on undici 6 and 7), so no other connection's
 *   response can come in between: the socket that opens next is the one whose 101 came last.
 *   `claim()` hands that connect over once, after checking the socket's URL is the request's.
 * - `undici:websocket:pong` names its socket from undici 7 on: the round trip of a `ping()`.
 */
import diagnostics from 'node:diagnostics_channel';
import { log } from '../logger';
import type { Boundary } from '../tracer/boundary';
import type { PendingConnect } from '../tracer/client';

/** The fields of undici's request object (documented in its DiagnosticsChannel.md) that we read. */
interface UndiciRequest {
  readonly origin?: unknown;
  readonly path?: unknown;
  readonly upgrade?: unknown;
  readonly headers?: unknown;
  addHeader?(name: string, value: string): unknown;
}

/** A client connect of undici's, from its upgrade request to the socket that opens. */
interface UndiciConnect {
  readonly pending: PendingConnect;
  /** The request's URL as the socket will report it (`ws:`/`wss:`, no credentials). */
  readonly url: string;
}

type Listener = (message: unknown, name: string | symbol) => void;

export class UndiciHandshakes {
  private readonly handshakes = new WeakMap<object, UndiciConnect>();
  /** The connect whose 101 was published last and that no socket has claimed yet. */
  private upgraded: UndiciConnect | undefined;
  private readonly subscriptions: Array<[string, Listener]> = [];

  constructor(private readonly boundary: Boundary) {}

  get subscribed(): boolean {
    return this.subscriptions.length > 0;
  }

  subscribe(): void {
    if (this.subscribed) return;
    this.on('undici:request:create', (m) => this.created(m));
    this.on('undici:request:headers', (m) => this.answered(m));
    this.on('undici:request:error', (m) => this.failed(m));
    this.on('undici:websocket:pong', (m) => this.pong(m));
  }

  unsubscribe(): void {
    for (const [name, listener] of this.subscriptions.splice(0)) diagnostics.unsubscribe(name, listener);
    this.upgraded = undefined;
  }

  /** The socket `ws` dispatched `open`: tracked from now on, if it is the connect whose 101 came last. */
  opened(ws: { readonly url?: unknown }): void {
    try {
      const pending = this.claim(ws);
      if (pending !== undefined) this.boundary.connectOpened(ws, pending, undefined);
    } catch (err) {
      this.boundary.fault('ws-apm undici open', err);
    }
  }

  /** The connect `ws` belongs to, once. */
  private claim(ws: { readonly url?: unknown }): PendingConnect | undefined {
    const handshake = this.upgraded;
    if (handshake === undefined) return undefined;
    this.upgraded = undefined;
    if (typeof ws.url === 'string' && withoutCredentials(ws.url) === handshake.url) return handshake.pending;
    log.debug(`WebSocket ${ws.url} opened without a handshake ws-apm saw; its messages are not traced`);
    return undefined;
  }

  private on(name: string, handle: (message: unknown) => void): void {
    const listener: Listener = (message) => {
      try {
        handle(message);
      } catch (err) {
        this.boundary.fault('ws-apm undici handshake', err);
      }
    };
    diagnostics.subscribe(name, listener);
    this.subscriptions.push([name, listener]);
  }

  private created(message: unknown): void {
    const request = requestOf(message);
    if (request === undefined || request.upgrade !== 'websocket' || !hasHeader(request.headers, 'sec-websocket-key')) return;
    const origin = new URL(String(request.origin));
    const path = typeof request.path === 'string' && request.path !== '' ? request.path : '/';
    const secure = origin.protocol === 'https:';
    const pending = this.boundary.connectStart({
      secure,
      hostname: origin.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: Number(origin.port) || (secure ? 443 : 80),
      path,
    });
    if (pending === undefined) return;
    this.handshakes.set(request, { pending, url: `${secure ? 'wss' : 'ws'}://${origin.host}${path}` });
    const carrier = this.boundary.connectHeaders(pending);
    for (const key of Object.keys(carrier)) setHeader(request, key, carrier[key]);
  }

  private answered(message: unknown): void {
    const request = requestOf(message);
    if (request === undefined || request.upgrade !== 'websocket') return;
    const handshake = this.handshakes.get(request);
    const status = (message as { response?: { statusCode?: unknown } }).response?.statusCode;
    const upgraded = status === 101;
    // A 101 of a request we did not see (sent before ws-apm started) clears the slot too.
    if (upgraded) this.upgraded = handshake;
    if (handshake === undefined) return;
    this.handshakes.delete(request);
    this.boundary.connectSettled(
      handshake.pending,
      upgraded ? { upgraded: true, status: 101 } : { upgraded: false, status: typeof status === 'number' ? status : undefined },
    );
  }

  private failed(message: unknown): void {
    const request = requestOf(message);
    const handshake = request === undefined ? undefined : this.handshakes.get(request);
    if (handshake === undefined) return;
    this.handshakes.delete(request!);
    this.boundary.connectSettled(handshake.pending, { upgraded: false, error: (message as { error?: unknown }).error ?? new Error('request failed') });
  }

  private pong(message: unknown): void {
    const ws = message !== null && typeof message === 'object' ? (message as { websocket?: unknown }).websocket : undefined;
    if (ws !== null && typeof ws === 'object') this.boundary.pong(ws);
  }
}

function requestOf(message: unknown): UndiciRequest | undefined {
  const request = message !== null && typeof message === 'object' ? (message as { request?: unknown }).request : undefined;
  return request !== null && typeof request === 'object' ? (request as UndiciRequest) : undefined;
}

/** undici 6+ keeps headers as a flat [name, value, ...] array (undici 5: a raw string). */
function hasHeader(headers: unknown, name: string): boolean {
  if (typeof headers === 'string') return headers.toLowerCase().includes(`${name}:`);
  if (!Array.isArray(headers)) return false;
  for (let i = 0; i < headers.length; i += 2) {
    if (typeof headers[i] === 'string' && (headers[i] as string).toLowerCase() === name) return true;
  }
  return false;
}

/** Ours wins over a value another instrumentation (or the app) put there, as for ws. */
function setHeader(request: UndiciRequest, name: string, value: string): void {
  const headers = request.headers;
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) {
      if (typeof headers[i] === 'string' && (headers[i] as string).toLowerCase() === name) {
        headers[i + 1] = value;
        return;
      }
    }
  }
  request.addHeader?.(name, value);
}

function withoutCredentials(url: string): string {
  if (!url.includes('@')) return url;
  const parsed = new URL(url);
  parsed.username = '';
  parsed.password = '';
  return parsed.href;
}
