/**
 * The backend-neutral tracer: the patch layer reports ws events here, and this is the
 * only place that decides names, attributes, parents, links, sampling and metrics.
 * Every call into the adapter is guarded: a faulty backend costs telemetry, never the
 * app's behaviour, and user code always runs exactly once with its own exceptions.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Config } from '../config';
import { log } from '../logger';
import * as S from '../semconv';
import type { Adapter, Attributes, Carrier, OperationOutcome, OperationSpec, Parent } from './adapter';
import { Metrics, type Side } from './metrics';
import { fieldAt, MessageNamer, parseMessage, queryParam, RouteNamer, UrlRedactor } from './naming';
import { sanitizeCarrier } from './propagation';
import type { RouteInfo, SocketState } from './socket-state';

/** The minimal view of a ws WebSocket the tracer needs (ws 7 and 8 alike). */
export interface WsLike {
  readonly readyState: number;
  listenerCount(event: string): number;
}

type AnyFn = (...args: any[]) => any;

const OPEN = 1;
const ROOT: Parent = { type: 'root' };
const ACTIVE: Parent = { type: 'active' };
const MAX_CLOSE_REASON = 123; // the protocol's own limit for a close reason

/** A server handshake in progress, keyed by its upgrade request. */
interface Handshake {
  readonly req: object;
  readonly op: unknown;
  readonly info: RouteInfo;
  readonly ignored: boolean;
  readonly peerAddress: string | undefined;
  readonly peerPort: number | undefined;
  readonly socket: Socket;
  status: number | undefined;
  settled: boolean;
  readonly release: () => void;
}

/** The options object ws passes to http(s).request/get for a client upgrade. */
export interface ClientRequestOptions {
  host?: string;
  hostname?: string;
  port?: number | string;
  path?: string;
  protocol?: string;
  defaultPort?: number;
  headers?: Record<string, string | string[] | number>;
}

interface ClientRequestLike {
  once(event: string, listener: (...args: any[]) => void): unknown;
}

/** A client connect between the upgrade request and the socket's `upgrade` event. */
interface PendingClient {
  readonly op: unknown;
  readonly info: RouteInfo;
  readonly ignored: boolean;
  readonly peerAddress: string;
  readonly peerPort: number;
  readonly ref: unknown;
  settled: boolean;
}

const now = (): number => performance.timeOrigin + performance.now();

/** Bytes of a message as ws accepts or delivers it (string, Buffer, ArrayBuffer, views, fragments, Blob). */
export function sizeOf(data: unknown): number {
  if (typeof data === 'string') return Buffer.byteLength(data);
  if (data === null || data === undefined) return 0;
  const d = data as { byteLength?: unknown; size?: unknown };
  if (typeof d.byteLength === 'number') return d.byteLength;
  if (Array.isArray(data)) {
    let total = 0;
    for (const part of data) total += sizeOf(part);
    return total;
  }
  if (typeof d.size === 'number') return d.size; // Blob
  if (typeof data === 'number') return String(data).length;
  return 0;
}

export class Tracer {
  readonly metrics = new Metrics();
  private readonly sockets = new WeakMap<object, SocketState>();
  private readonly handshakes = new WeakMap<object, Handshake>();
  /** Client upgrade responses → their pending connect, until ws emits `upgrade`. */
  private readonly clients = new WeakMap<object, PendingClient>();
  private readonly routeInfos = new Map<string, RouteInfo>();
  private readonly routes: RouteNamer;
  private readonly names: MessageNamer;
  private readonly redactor: UrlRedactor;
  private readonly vendorHeaders: readonly string[];
  private readonly sampleRate: number;
  private readonly linkMessages: boolean;
  private readonly messageContext: readonly string[];
  private readonly parseMessages: boolean;

  constructor(readonly config: Config, readonly adapter: Adapter) {
    this.routes = new RouteNamer(config);
    this.names = new MessageNamer(config);
    this.redactor = new UrlRedactor(config.redactQueryParams);
    this.vendorHeaders = adapter.propagationHeaders ?? [];
    this.sampleRate = config.messageSampleRate;
    this.linkMessages = config.messageParent === 'link';
    this.messageContext = config.messageContext;
    this.parseMessages = this.names.enabled || config.messageContext.length > 0;
    try {
      adapter.bindMetrics(this.metrics);
    } catch (err) {
      log.fault(`${adapter.name} bindMetrics`, err);
    }
  }

  // ---------------------------------------------------------------- adapter guards

  private start(spec: OperationSpec): unknown {
    try {
      return this.adapter.start(spec);
    } catch (err) {
      log.fault(`${this.adapter.name} start`, err);
      return undefined;
    }
  }

  private end(op: unknown, outcome: OperationOutcome): void {
    if (op === undefined) return;
    try {
      this.adapter.end(op, outcome);
    } catch (err) {
      log.fault(`${this.adapter.name} end`, err);
    }
  }

  private ref(op: unknown): unknown {
    if (op === undefined) return undefined;
    try {
      return this.adapter.ref(op);
    } catch (err) {
      log.fault(`${this.adapter.name} ref`, err);
      return undefined;
    }
  }

  private traceIdOf(ref: unknown): string | undefined {
    if (ref === undefined || !this.adapter.traceIdOf) return undefined;
    try {
      return this.adapter.traceIdOf(ref);
    } catch (err) {
      log.fault(`${this.adapter.name} traceIdOf`, err);
      return undefined;
    }
  }

  /**
   * Run user code `fn` with `op` active. `fn` runs exactly once whatever the adapter
   * does, and its own exception (the same object) is what propagates.
   */
  private run<R>(op: unknown, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    if (op === undefined) return fn.apply(thisArg, args);
    let phase = 0; // 0: not entered, 1: returned, 2: threw
    let result: unknown;
    let thrown: unknown;
    const inner = function (this: unknown): unknown {
      try {
        result = fn.apply(this, arguments as unknown as unknown[]);
        phase = 1;
        return result;
      } catch (err) {
        phase = 2;
        thrown = err;
        throw err;
      }
    };
    try {
      return this.adapter.run(op, inner as AnyFn, thisArg, args) as R;
    } catch (err) {
      if (phase === 2 && err === thrown) throw err;
      log.fault(`${this.adapter.name} run`, err);
      if (phase === 0) return fn.apply(thisArg, args);
      if (phase === 2) throw thrown;
      return result as R;
    }
  }

  /** Run `fn` inside `op`, then end `op` with the outcome (error included) and `attributes`. */
  private runAndEnd<R>(op: unknown, fn: AnyFn, thisArg: unknown, args: unknown[], attributes?: Attributes): R {
    let error: unknown;
    let failed = false;
    try {
      return this.run<R>(op, fn, thisArg, args);
    } catch (err) {
      error = err;
      failed = true;
      throw err;
    } finally {
      this.end(op, failed ? { error, attributes } : { attributes });
    }
  }

  // ---------------------------------------------------------------- naming

  private routeInfo(route: string, side: Side): RouteInfo {
    const key = side === 'server' ? route : `client ${route}`;
    let info = this.routeInfos.get(key);
    if (info === undefined) {
      // Message operations carry only what varies per message plus the destination; the
      // peer, side and URL sit on the handshake they link to. Every attribute costs the
      // SDK a copy and a limit check per span, so the hot path keeps them few.
      const message = (operation: string): Attributes => ({
        [S.ATTR_MESSAGING_SYSTEM]: S.MESSAGING_SYSTEM_WEBSOCKET,
        [S.ATTR_MESSAGING_DESTINATION_NAME]: route,
        [S.ATTR_MESSAGING_OPERATION_TYPE]: operation,
      });
      info = {
        route,
        side,
        receiveAttributes: message('receive'),
        sendAttributes: message('send'),
        metrics: this.metrics.forRoute(route, side),
        receiveName: `${S.OP_RECEIVE} ${route}`,
        sendName: `${S.OP_SEND} ${route}`,
        closeName: `${S.OP_CLOSE} ${route}`,
        pingName: `${S.OP_PING} ${route}`,
        namedReceive: new Map(),
      };
      this.routeInfos.set(key, info);
    }
    return info;
  }

  private receiveName(info: RouteInfo, name: string | undefined): string {
    if (name === undefined) return info.receiveName;
    let full = info.namedReceive.get(name);
    if (full === undefined) {
      full = `${info.receiveName} ${name}`;
      info.namedReceive.set(name, full);
    }
    return full;
  }

  // ---------------------------------------------------------------- server handshake

  /**
   * An upgrade request reached the server (from the http `upgrade` event or from
   * `handleUpgrade`). Starts `WS CONNECT {route}` continuing the caller's trace.
   * Idempotent per request.
   */
  upgradeStarted(req: IncomingMessage, socket: Socket): Handshake | undefined {
    const known = this.handshakes.get(req);
    if (known !== undefined) return known;
    try {
      return this.beginHandshake(req, socket);
    } catch (err) {
      log.fault('ws-apm handshake', err);
      return undefined;
    }
  }

  private beginHandshake(req: IncomingMessage, socket: Socket): Handshake {
    const url = req.url ?? '/';
    const route = this.routes.route(url);
    const info = this.routeInfo(route, 'server');
    const ignored = this.routes.isIgnored(route, url);
    const encrypted = (socket as { encrypted?: boolean }).encrypted === true;
    const q = url.indexOf('?');
    const host = req.headers.host;
    const peerAddress = socket.remoteAddress;
    const peerPort = socket.remotePort;
    const attributes: Attributes = {
      ...baseAttributes('server', route, peerAddress, peerPort),
      [S.ATTR_URL_PATH]: q === -1 ? url : url.slice(0, q),
      [S.ATTR_URL_QUERY]: q === -1 ? undefined : this.redactor.redact(url.slice(q)).slice(1),
      [S.ATTR_URL_SCHEME]: encrypted ? 'wss' : 'ws',
      // From the Host header: socket.localPort would make Node cache a sockname object on
      // every socket for as long as it lives.
      [S.ATTR_SERVER_ADDRESS]: typeof host === 'string' ? host.replace(/:\d+$/, '') : undefined,
      [S.ATTR_SERVER_PORT]: hostPort(host, encrypted),
      [S.ATTR_CLIENT_ADDRESS]: peerAddress,
      [S.ATTR_USER_AGENT_ORIGINAL]: req.headers['user-agent'],
      [S.ATTR_WS_ROUTE]: route,
    };
    let op: unknown;
    if (!ignored) {
      const param = this.config.propagationQueryParam;
      const fromQuery = param ? queryParam(url, param) : undefined;
      const carrier = sanitizeCarrier(req.headers as Carrier, this.vendorHeaders, fromQuery);
      op = this.start({
        name: `${S.OP_CONNECT} ${route}`,
        role: 'connect',
        kind: 'server',
        parent: carrier ? { type: 'remote', carrier } : ROOT,
        attributes,
        route,
      });
    }
    // Learn the status of a rejection from the response ws or the app writes, and
    // notice a socket that closes before the upgrade completes; both undone on accept.
    const hs: Handshake = {
      req,
      op,
      info,
      ignored,
      peerAddress,
      peerPort,
      socket,
      status: undefined,
      settled: false,
      release: () => undefined,
    };
    const sniff = (chunk: unknown): void => {
      if (hs.status !== undefined) return;
      const text = typeof chunk === 'string' ? chunk.slice(0, 16) : Buffer.isBuffer(chunk) ? chunk.toString('latin1', 0, 16) : '';
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (m) hs.status = Number(m[1]);
    };
    // Shadow write/end on this socket only until the handshake settles. They are set back
    // to the inherited functions rather than deleted: deleting properties from a socket
    // would drop it into V8's slow dictionary mode for the rest of its life.
    const own = Object.prototype.hasOwnProperty;
    const origWrite = own.call(socket, 'write') ? undefined : socket.write;
    const origEnd = own.call(socket, 'end') ? undefined : socket.end;
    const shadow = (name: string, value: unknown): void => {
      Object.defineProperty(socket, name, { value, writable: true, configurable: true, enumerable: false });
    };
    if (origWrite && origEnd) {
      shadow('write', function (this: Socket, chunk: unknown) {
        sniff(chunk);
        return origWrite.apply(this, arguments as unknown as Parameters<Socket['write']>);
      });
      shadow('end', function (this: Socket, chunk: unknown) {
        sniff(chunk);
        return origEnd.apply(this, arguments as unknown as Parameters<Socket['end']>);
      });
    }
    const onClose = (): void => this.handshakeRejected(hs);
    socket.once('close', onClose);
    (hs as { release: () => void }).release = () => {
      socket.removeListener('close', onClose);
      if (origWrite && origEnd) {
        shadow('write', origWrite);
        shadow('end', origEnd);
      }
    };
    this.handshakes.set(req, hs);
    return hs;
  }

  /** Run the app's `upgrade` listeners (or the connection callback) inside WS CONNECT. */
  runInHandshake<R>(hs: Handshake | undefined, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    if (hs === undefined || hs.op === undefined) return fn.apply(thisArg, args);
    return this.run<R>(hs.op, fn, thisArg, args);
  }

  /**
   * ws completed the upgrade: from here on `ws` is tracked, and the connection
   * callback runs inside WS CONNECT, which ends when the callback returns.
   */
  handshakeAccepted<R>(hs: Handshake | undefined, ws: WsLike, cb: AnyFn, thisArg: unknown, args: unknown[]): R {
    if (hs === undefined || hs.settled) return cb.apply(thisArg, args);
    hs.settled = true;
    this.handshakes.delete(hs.req);
    try {
      hs.release();
      const state = this.newState('server', hs.info, hs.ignored, hs.peerAddress, hs.peerPort, this.ref(hs.op));
      state.counted = true;
      this.sockets.set(ws, state);
      hs.info.metrics.accepted.value++;
      hs.info.metrics.active.value++;
    } catch (err) {
      log.fault('ws-apm accept', err);
    }
    return this.runAndEnd<R>(hs.op, cb, thisArg, args, { [S.ATTR_HTTP_RESPONSE_STATUS_CODE]: 101 });
  }

  private handshakeRejected(hs: Handshake): void {
    if (hs.settled) return;
    hs.settled = true;
    this.handshakes.delete(hs.req);
    hs.release();
    hs.info.metrics.rejected.value++;
    this.end(hs.op, {
      failed: true,
      attributes: {
        [S.ATTR_HTTP_RESPONSE_STATUS_CODE]: hs.status,
        [S.ATTR_WS_CONNECTION_OUTCOME]: 'rejected',
        [S.ATTR_ERROR_TYPE]: hs.status !== undefined ? String(hs.status) : 'connection_closed',
      },
    });
  }

  // ---------------------------------------------------------------- per-socket state

  private newState(
    side: Side, info: RouteInfo, ignored: boolean, peerAddress: string | undefined, peerPort: number | undefined, ref: unknown,
  ): SocketState {
    return {
      side,
      info,
      ignored,
      peerAddress,
      peerPort,
      ref,
      parent: this.messageParent({ ref }),
      links: this.links({ ref }),
      openedAt: now(),
      counted: false,
      messagesIn: 0,
      messagesOut: 0,
      bytesIn: 0,
      bytesOut: 0,
      closeBy: undefined,
      closeStartedAt: 0,
      terminated: false,
      pingAt: 0,
      user: undefined,
    };
  }

  setUser(ws: object, id: string | undefined): void {
    const state = this.sockets.get(ws);
    if (state !== undefined) state.user = id === undefined ? undefined : String(id).slice(0, 256);
  }

  private messageParent(state: Pick<SocketState, 'ref'>): Parent {
    return !this.linkMessages && state.ref !== undefined ? { type: 'ref', ref: state.ref } : ROOT;
  }

  private links(state: Pick<SocketState, 'ref'>): readonly unknown[] | undefined {
    return this.linkMessages && state.ref !== undefined ? [state.ref] : undefined;
  }

  /** Attributes of a summary-style operation (close, heartbeat): rare, so built plainly. */
  private operationAttributes(state: SocketState, extra: Attributes): Attributes {
    const attributes: Attributes = { ...baseAttributes(state.side, state.info.route, state.peerAddress, state.peerPort), ...extra };
    if (state.user !== undefined) attributes[S.ATTR_ENDUSER_ID] = state.user;
    const refTraceId = this.traceIdOf(state.ref);
    if (refTraceId !== undefined) attributes[S.ATTR_WS_HANDSHAKE_TRACE_ID] = refTraceId;
    return attributes;
  }

  /**
   * Attributes of a message operation, on the hot path: the route's scratch object,
   * refilled in place (adapters copy what they keep during start(), per the contract).
   */
  private messageAttributes(scratch: Attributes, state: SocketState, size: number, binary: boolean): Attributes {
    scratch[S.ATTR_MESSAGING_MESSAGE_BODY_SIZE] = size;
    scratch[S.ATTR_WS_MESSAGE_TYPE] = binary ? 'binary' : 'text';
    scratch[S.ATTR_ENDUSER_ID] = state.user;
    return scratch;
  }

  // ---------------------------------------------------------------- messages

  /**
   * A `message` event: count it, and when sampled run every listener inside
   * `WS RECEIVE`. `argc` is the emit's argument count, preserved exactly.
   */
  receive(ws: WsLike, emit: AnyFn, data: unknown, isBinary: unknown, argc: number): boolean {
    const state = this.sockets.get(ws);
    if (state === undefined) {
      return callWithArgc(emit, ws, argc, 'message', data, isBinary) as boolean;
    }
    // ws 8 passes isBinary; ws 7 passes strings for text and Buffers/ArrayBuffers for binary.
    const binary = isBinary === undefined ? typeof data !== 'string' : isBinary === true;
    const size = sizeOf(data);
    const metrics = state.info.metrics;
    state.messagesIn++;
    state.bytesIn += size;
    (binary ? metrics.inBinary : metrics.inText).value++;
    metrics.sizeIn.record(size);

    if (ws.listenerCount('message') === 0) {
      return callWithArgc(emit, ws, argc, 'message', data, isBinary) as boolean;
    }
    // JSON is parsed only when a name or a carried context is configured, once for both.
    const message = this.parseMessages ? parseMessage(data, binary, size, this.config.messageNameMaxBytes) : undefined;
    const name = message !== undefined && this.names.enabled ? this.names.name(message) : undefined;
    const started = performance.now();
    let op: unknown;
    if (!state.ignored && (this.sampleRate >= 1 || Math.random() < this.sampleRate)) {
      op = this.startReceive(state, data, binary, size, name, message);
    }
    try {
      if (op === undefined) {
        return callWithArgc(emit, ws, argc, 'message', data, isBinary) as boolean;
      }
      return this.runAndEnd<boolean>(op, emit, ws, argc === 2 ? ['message', data] : ['message', data, isBinary]);
    } finally {
      metrics.process(name).record((performance.now() - started) / 1000);
    }
  }

  private startReceive(
    state: SocketState, data: unknown, binary: boolean, size: number, name: string | undefined, message: unknown,
  ): unknown {
    const info = state.info;
    const attributes = this.messageAttributes(info.receiveAttributes, state, size, binary);
    attributes[S.ATTR_WS_MESSAGE_NAME] = name;
    const body = this.config.captureBody === 'all' ? this.captureBody(data, binary, size) : undefined;
    attributes[S.ATTR_WS_MESSAGE_BODY] = body;
    const carried = this.messageContext.length > 0 ? carriedContext(message, this.messageContext, this.vendorHeaders) : undefined;
    return this.start({
      name: this.receiveName(info, name),
      role: 'receive',
      kind: 'consumer',
      parent: carried !== undefined ? { type: 'remote', carrier: carried } : state.parent,
      links: state.links,
      attributes,
      route: info.route,
      messageName: name,
      body,
    });
  }

  private captureBody(data: unknown, binary: boolean, size: number): string | undefined {
    if (binary) return `[binary ${size} bytes]`;
    const max = this.config.captureBodyMaxBytes;
    if (typeof data === 'string') {
      if (size <= max) return data;
      return Buffer.from(data).toString('utf8', 0, max);
    }
    if (Buffer.isBuffer(data)) return data.toString('utf8', 0, Math.min(max, data.length));
    return undefined;
  }

  /**
   * `send(data[, options][, cb])`: counted when the socket is open; traced as
   * `WS SEND` when an operation is active (or orphan sends are traced). The original
   * runs with the very same arguments except a callback that ends the span first.
   */
  send(ws: WsLike, send: AnyFn, data: unknown, options: unknown, cb: unknown, argc: number): unknown {
    const state = this.sockets.get(ws);
    if (state !== undefined && ws.readyState === OPEN) {
      const size = sizeOf(data);
      const binary =
        typeof options === 'object' && options !== null && typeof (options as { binary?: unknown }).binary === 'boolean'
          ? (options as { binary: boolean }).binary
          : typeof data !== 'string' && typeof data !== 'number';
      const metrics = state.info.metrics;
      state.messagesOut++;
      state.bytesOut += size;
      (binary ? metrics.outBinary : metrics.outText).value++;
      metrics.sizeOut.record(size);
      if (!state.ignored && (this.config.traceOrphanSends || this.hasActive())) {
        return this.tracedSend(state, ws, send, data, options, cb, argc, size, binary);
      }
    }
    return callWithArgc(send, ws, argc, data, options, cb);
  }

  private hasActive(): boolean {
    try {
      return this.adapter.hasActive();
    } catch (err) {
      log.fault(`${this.adapter.name} hasActive`, err);
      return false;
    }
  }

  private tracedSend(
    state: SocketState, ws: WsLike, send: AnyFn, data: unknown, options: unknown, cb: unknown,
    argc: number, size: number, binary: boolean,
  ): unknown {
    const info = state.info;
    const op = this.start({
      name: info.sendName,
      role: 'send',
      kind: 'producer',
      parent: ACTIVE,
      attributes: this.messageAttributes(info.sendAttributes, state, size, binary),
      route: info.route,
    });
    if (op === undefined) return callWithArgc(send, ws, argc, data, options, cb);
    const callback = typeof options === 'function' ? options : cb;
    let ended = false;
    const finish = (err: unknown): void => {
      if (ended) return;
      ended = true;
      this.end(op, err ? { error: err } : {});
    };
    try {
      if (typeof callback === 'function') {
        // ws calls back with the write's error (or none): end the span first, then the app's callback.
        const wrapped = function (this: unknown, err?: unknown): unknown {
          finish(err);
          return callback.apply(this, arguments as unknown as unknown[]);
        };
        return typeof options === 'function'
          ? callWithArgc(send, ws, argc, data, wrapped, cb)
          : callWithArgc(send, ws, argc, data, options, wrapped);
      }
      const result = callWithArgc(send, ws, argc, data, options, cb);
      finish(undefined);
      return result;
    } catch (err) {
      finish(err);
      throw err;
    }
  }

  // ---------------------------------------------------------------- heartbeat

  ping(ws: object): void {
    const state = this.sockets.get(ws);
    if (state !== undefined && state.pingAt === 0) state.pingAt = performance.now();
  }

  pong(ws: object): void {
    const state = this.sockets.get(ws);
    if (state === undefined || state.pingAt === 0) return;
    const rtt = performance.now() - state.pingAt;
    const startTime = now() - rtt;
    state.pingAt = 0;
    state.info.metrics.heartbeat.record(rtt / 1000);
    if (this.config.traceHeartbeat && !state.ignored) {
      const op = this.start({
        name: state.info.pingName,
        role: 'heartbeat',
        kind: 'internal',
        parent: state.parent,
        links: state.links,
        attributes: this.operationAttributes(state, { [S.ATTR_WS_HEARTBEAT_RTT_MS]: rtt }),
        startTime,
        route: state.info.route,
      });
      this.end(op, {});
    }
  }

  // ---------------------------------------------------------------- close

  /** `close()` was called: by the app (local) or by ws answering the peer's close frame. */
  closing(ws: object, peerClosed: boolean | undefined): void {
    const state = this.sockets.get(ws);
    if (state === undefined || state.closeBy !== undefined) return;
    state.closeBy = peerClosed === true ? 'remote' : 'local';
    state.closeStartedAt = now();
  }

  terminating(ws: object): void {
    const state = this.sockets.get(ws);
    if (state === undefined) return;
    state.terminated = true;
    if (state.closeBy === undefined) {
      state.closeBy = 'local';
      state.closeStartedAt = now();
    }
  }

  /**
   * The socket's `close` event: record the summary and the metrics, forget the
   * socket, and run the app's close listeners inside `WS CLOSE`.
   */
  closed(ws: object, emit: AnyFn, args: unknown[], code: unknown, reason: unknown): boolean {
    const state = this.sockets.get(ws);
    if (state === undefined) return emit.apply(ws, args);
    this.sockets.delete(ws);
    let op: unknown;
    let attributes: Attributes | undefined;
    try {
      const closeCode = typeof code === 'number' ? code : 1005;
      const broken = state.terminated || closeCode === 1006;
      const metrics = state.info.metrics;
      const durationMs = now() - state.openedAt;
      if (state.counted) {
        state.counted = false;
        metrics.active.value--;
      }
      if (broken) metrics.broken.value++;
      metrics.duration(closeCode).record(durationMs / 1000);
      if (!state.ignored) {
        const other: Side = state.side === 'server' ? 'client' : 'server';
        const initiator =
          state.closeBy === 'local' ? state.side : state.closeBy === 'remote' ? other : closeCode === 1006 ? 'network' : other;
        const reasonText = reason === undefined || reason === null ? '' : String(reason).slice(0, MAX_CLOSE_REASON);
        attributes = {
          [S.ATTR_WS_CLOSE_CODE]: closeCode,
          [S.ATTR_WS_CLOSE_REASON]: reasonText === '' ? undefined : reasonText,
          [S.ATTR_WS_CLOSE_INITIATOR]: initiator,
          [S.ATTR_WS_CONNECTION_BROKEN]: broken,
          [S.ATTR_WS_CONNECTION_DURATION_MS]: Math.round(durationMs),
          [S.ATTR_WS_MESSAGES_IN]: state.messagesIn,
          [S.ATTR_WS_MESSAGES_OUT]: state.messagesOut,
          [S.ATTR_WS_BYTES_IN]: state.bytesIn,
          [S.ATTR_WS_BYTES_OUT]: state.bytesOut,
        };
        op = this.start({
          name: state.info.closeName,
          role: 'close',
          kind: 'internal',
          parent: state.parent,
          links: state.links,
          attributes: this.operationAttributes(state, attributes),
          startTime: state.closeBy !== undefined ? state.closeStartedAt : undefined,
          route: state.info.route,
        });
      }
    } catch (err) {
      log.fault('ws-apm close', err);
    }
    return this.runAndEnd<boolean>(op, emit, ws, args, attributes);
  }

  // ---------------------------------------------------------------- client

  /**
   * ws is about to create a client upgrade request from `opts` (its own private copy):
   * start `WS CONNECT {host}{route}` as a child of the active operation, inject it into
   * the request headers, and create the request inside it.
   */
  clientRequest<R>(opts: ClientRequestOptions, request: AnyFn, thisArg: unknown, args: unknown[]): R {
    let pending: PendingClient | undefined;
    try {
      pending = this.beginClient(opts);
    } catch (err) {
      log.fault('ws-apm client connect', err);
    }
    if (pending === undefined) return request.apply(thisArg, args);
    const req = this.run<R>(pending.op, request, thisArg, args);
    try {
      this.watchClientRequest(req as unknown as ClientRequestLike, pending);
    } catch (err) {
      log.fault('ws-apm client connect', err);
    }
    return req;
  }

  private beginClient(opts: ClientRequestOptions): PendingClient {
    const path = opts.path ?? '/';
    const route = this.routes.route(path);
    const info = this.routeInfo(route, 'client');
    const ignored = this.routes.isIgnored(route, path);
    const secure = opts.protocol === 'https:' || opts.defaultPort === 443;
    const hostname = opts.host ?? opts.hostname ?? 'localhost';
    const port = Number(opts.port) || (secure ? 443 : 80);
    const host = `${hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname}:${port}`;
    let op: unknown;
    if (!ignored) {
      op = this.start({
        name: `${S.OP_CONNECT} ${host}${route}`,
        role: 'client-connect',
        kind: 'client',
        parent: ACTIVE,
        attributes: {
          ...baseAttributes('client', route, hostname, port),
          [S.ATTR_URL_FULL]: this.redactor.redact(`${secure ? 'wss' : 'ws'}://${host}${path}`),
          [S.ATTR_URL_SCHEME]: secure ? 'wss' : 'ws',
          [S.ATTR_URL_PATH]: path.split('?')[0],
          [S.ATTR_WS_ROUTE]: route,
        },
        route,
      });
    }
    const ref = this.ref(op);
    if (op !== undefined && opts.headers !== undefined) {
      const carrier: Record<string, string> = {};
      this.adapter.inject(op, carrier);
      // Ours wins over a traceparent injected by an outer http instrumentation.
      for (const key of Object.keys(carrier)) opts.headers[key] = carrier[key];
    }
    return { op, info, ignored, peerAddress: hostname, peerPort: port, ref, settled: false };
  }

  /** End the CLIENT span from the request's own events: 101, another status, an error, or a close. */
  private watchClientRequest(req: ClientRequestLike, pending: PendingClient): void {
    const settle = (outcome: OperationOutcome): void => {
      if (pending.settled) return;
      pending.settled = true;
      this.end(pending.op, outcome);
    };
    // Registered while the request is created, so this runs before ws's own listener,
    // which then emits `upgrade` on the WebSocket with the same response object.
    req.once('upgrade', (res: { statusCode?: number }) => {
      this.clients.set(res, pending);
      settle({ attributes: { [S.ATTR_HTTP_RESPONSE_STATUS_CODE]: res.statusCode ?? 101 } });
    });
    req.once('response', (res: { statusCode?: number }) =>
      settle({
        failed: true,
        attributes: { [S.ATTR_HTTP_RESPONSE_STATUS_CODE]: res.statusCode, [S.ATTR_ERROR_TYPE]: String(res.statusCode) },
      }),
    );
    req.once('error', (error: unknown) =>
      settle({ error, attributes: { [S.ATTR_ERROR_TYPE]: error instanceof Error ? error.name : 'error' } }),
    );
    req.once('close', () => settle({ failed: true, attributes: { [S.ATTR_ERROR_TYPE]: 'connection_closed' } }));
  }

  /** The client socket got its `upgrade` response: from here on it is tracked like a server socket. */
  clientUpgraded(ws: object, res: unknown): void {
    const pending = res !== null && typeof res === 'object' ? this.clients.get(res) : undefined;
    if (pending === undefined || this.sockets.has(ws)) return;
    this.clients.delete(res as object);
    const state = this.newState('client', pending.info, pending.ignored, pending.peerAddress, pending.peerPort, pending.ref);
    this.sockets.set(ws, state);
  }

  // ---------------------------------------------------------------- broker hand-off API

  inject(carrier: Record<string, string>): Record<string, string> {
    try {
      this.adapter.inject(undefined, carrier);
    } catch (err) {
      log.fault(`${this.adapter.name} inject`, err);
    }
    return carrier;
  }

  extract(carrier: Carrier): unknown {
    const clean = sanitizeCarrier(carrier, this.vendorHeaders);
    if (clean === undefined) return undefined;
    try {
      return this.adapter.extract(clean);
    } catch (err) {
      log.fault(`${this.adapter.name} extract`, err);
      return undefined;
    }
  }

  runWithContext<R>(carrier: Carrier, fn: () => R): R {
    const clean = sanitizeCarrier(carrier, this.vendorHeaders);
    if (clean === undefined) return fn();
    let entered = false;
    try {
      return this.adapter.runWithRemote(clean, () => {
        entered = true;
        return fn();
      });
    } catch (err) {
      if (entered) throw err;
      log.fault(`${this.adapter.name} runWithRemote`, err);
      return fn();
    }
  }
}

/**
 * Attributes every operation of a socket shares, built when needed rather than kept per
 * socket: the peer is the client on the server side and the server on the client side.
 */
function baseAttributes(side: Side, route: string, peerAddress: string | undefined, peerPort: number | undefined): Attributes {
  const server = side === 'server';
  return {
    [S.ATTR_MESSAGING_SYSTEM]: S.MESSAGING_SYSTEM_WEBSOCKET,
    [S.ATTR_MESSAGING_DESTINATION_NAME]: route,
    [S.ATTR_NETWORK_PROTOCOL_NAME]: 'websocket',
    [server ? S.ATTR_NETWORK_PEER_ADDRESS : S.ATTR_SERVER_ADDRESS]: peerAddress,
    [server ? S.ATTR_NETWORK_PEER_PORT : S.ATTR_SERVER_PORT]: peerPort,
    [S.ATTR_WS_SIDE]: side,
  };
}

/** A valid trace context carried in a message field (an object of header-like strings), or undefined. */
function carriedContext(message: unknown, path: readonly string[], vendorHeaders: readonly string[]): Carrier | undefined {
  const field = fieldAt(message, path);
  if (field === null || typeof field !== 'object' || Array.isArray(field)) return undefined;
  return sanitizeCarrier(field as Carrier, vendorHeaders);
}

/** The port of a Host header (`h:8080`, `[::1]:8080`), else the scheme's default. */
function hostPort(host: string | undefined, encrypted: boolean): number {
  const m = typeof host === 'string' ? /:(\d+)$/.exec(host) : null;
  return m ? Number(m[1]) : encrypted ? 443 : 80;
}

/** Call a ws method (`send`, `emit`) with exactly as many arguments as its caller passed. */
function callWithArgc(fn: AnyFn, thisArg: unknown, argc: number, a: unknown, b: unknown, c: unknown): unknown {
  switch (argc) {
    case 0:
      return fn.call(thisArg);
    case 1:
      return fn.call(thisArg, a);
    case 2:
      return fn.call(thisArg, a, b);
    default:
      return fn.call(thisArg, a, b, c);
  }
}
