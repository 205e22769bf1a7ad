/**
 * Channels of a protocol over ws (socket.io: a socket in a namespace): a server channel opens
 * with `WS CONNECT {route}`, which covers the protocol's connect middlewares and the app's
 * connection handler and ends accepted or rejected (with the middleware's error); a client channel
 * (socket.io-client) opens with the ws client connect under it. What a channel's events need
 * (route, parent, links) is computed once here; its events are in events.ts.
 */
import * as S from '../semconv';
import type { AnyFn, Carrier, Parent } from './adapter';
import { ROOT, type TracerCore } from './core';
import { sanitizeCarrier } from './propagation';
import type { RouteInfo, SocketState } from './socket-state';

/** How a channel opens, as plain values. */
export interface ChannelOpen {
  /** The protocol's name (`socket.io`), recorded as `websocket.protocol`. */
  readonly protocol: string;
  /** The channel's own route (socket.io: the namespace), capped like any route. */
  readonly route: string;
  /** The ws socket it runs over, when it does: the connect is a child of its handshake. */
  readonly over?: object;
  /** Otherwise the headers of the request that opened it, whose trace the connect continues. */
  readonly headers?: Carrier;
  readonly transport?: string;
}

/** An open channel: what its events need, computed once. */
export interface Channel {
  readonly protocol: string;
  readonly info: RouteInfo;
  readonly ignored: boolean;
  readonly parent: Parent;
  readonly links: readonly unknown[] | undefined;
  readonly handshakeTraceId: string | undefined;
  counted: boolean;
}

/** A connect in progress. */
export interface Opening {
  readonly key: object;
  readonly protocol: string;
  readonly info: RouteInfo;
  readonly ignored: boolean;
  readonly op: unknown;
  settled: boolean;
}

export class Channels {
  private readonly channels = new WeakMap<object, Channel>();
  private readonly linkEvents: boolean;

  constructor(private readonly core: TracerCore) {
    this.linkEvents = core.config.messageParent === 'link';
  }

  /** The open channel of `key`, if ws-apm saw it open. */
  get(key: object): Channel | undefined {
    return this.channels.get(key);
  }

  /** Run protocol code (the connect middlewares, the app's connection handler) inside the connect. */
  run<R>(o: Opening, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    if (o.op !== undefined) return this.core.adapter.run<R>(o.op, fn, thisArg, args);
    return fn.apply(thisArg, args);
  }

  /** Channel `key` is opening: start `WS CONNECT {route}` (child of the ws handshake, or the request's trace). */
  opening(key: object, rec: ChannelOpen): Opening {
    const core = this.core;
    const route = core.routes.route(rec.route);
    const info = core.routeInfo(route, 'server');
    const ignored = core.routes.isIgnored(route, rec.route);
    let op: unknown;
    if (!ignored) {
      const ws = rec.over !== undefined ? core.sockets.get(rec.over) : undefined;
      const carrier = ws === undefined && rec.headers !== undefined ? sanitizeCarrier(rec.headers, core.adapter.propagationHeaders) : undefined;
      const parent: Parent = ws?.ref !== undefined ? { type: 'ref', ref: ws.ref } : carrier !== undefined ? { type: 'remote', carrier } : ROOT;
      op = core.adapter.start({
        name: `${S.OP_CONNECT} ${route}`,
        role: 'connect',
        kind: 'server',
        side: 'server',
        parent,
        attributes: {
          [S.ATTR_MESSAGING_SYSTEM]: S.MESSAGING_SYSTEM_WEBSOCKET,
          [S.ATTR_MESSAGING_DESTINATION_NAME]: route,
          [S.ATTR_WS_ROUTE]: route,
          [S.ATTR_WS_SIDE]: 'server',
          [S.ATTR_WS_PROTOCOL]: rec.protocol,
          [S.ATTR_WS_TRANSPORT]: rec.transport,
        },
        route,
        serverAddress: ws?.serverAddress,
        serverPort: ws?.serverPort,
        urlPath: route,
      });
    }
    return { key, protocol: rec.protocol, info, ignored, op, settled: false };
  }

  /** The connect settled: accepted (the channel is open), or rejected with the middleware's error. */
  opened(o: Opening, accepted: boolean, error?: unknown): void {
    if (o.settled) return;
    o.settled = true;
    const core = this.core;
    const metrics = o.info.metrics;
    if (!accepted) {
      metrics.rejected.value++;
      core.adapter.end(o.op, {
        error,
        failed: true,
        attributes: { [S.ATTR_WS_CONNECTION_OUTCOME]: 'rejected', [S.ATTR_ERROR_TYPE]: errorType(error) },
      });
      return;
    }
    const ref = o.op !== undefined ? core.adapter.ref(o.op) : undefined;
    this.channels.set(o.key, this.channel(o.protocol, o.info, o.ignored, ref, true));
    metrics.accepted.value++;
    metrics.active.value++;
    core.adapter.end(o.op, { attributes: { [S.ATTR_WS_CONNECTION_OUTCOME]: 'accepted' } });
  }

  /**
   * A client-side channel (socket.io-client) connected: its events link to (or are children of)
   * the client connect of the ws socket under it, when there is one.
   */
  clientOpened(key: object, rec: ChannelOpen): void {
    const core = this.core;
    const route = core.routes.route(rec.route);
    const info = core.routeInfo(route, 'client');
    const ref = rec.over !== undefined ? core.sockets.get(rec.over)?.ref : undefined;
    this.channels.set(key, this.channel(rec.protocol, info, core.routes.isIgnored(route, rec.route), ref, false));
  }

  /**
   * A protocol spoken on the ws socket itself (graphql-ws): the socket is the channel, with no
   * connect of its own (the ws handshake is it) and nothing counted twice; its events link to
   * (or are children of) the socket's handshake or client connect, like its messages.
   */
  adopt(ws: object, protocol: string, state: SocketState): void {
    if (!this.channels.has(ws)) this.channels.set(ws, this.channel(protocol, state.info, state.ignored, state.ref, false));
  }

  private channel(protocol: string, info: RouteInfo, ignored: boolean, ref: unknown, counted: boolean): Channel {
    const link = this.linkEvents || ref === undefined;
    return {
      protocol,
      info,
      ignored,
      parent: link ? ROOT : { type: 'ref', ref },
      links: link && ref !== undefined ? [ref] : undefined,
      handshakeTraceId: ref !== undefined ? this.core.adapter.traceIdOf(ref) : undefined,
      counted,
    };
  }

  /** Channel `key` closed. */
  closed(key: object): void {
    const channel = this.channels.get(key);
    if (channel === undefined || !channel.counted) return;
    channel.counted = false;
    channel.info.metrics.active.value--;
  }
}

function errorType(error: unknown): string {
  if (error instanceof Error) return error.name || 'Error';
  return error === undefined ? 'connection_closed' : typeof error;
}
