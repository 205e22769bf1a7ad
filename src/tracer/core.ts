/**
 * What every part of the tracer shares: the guarded adapter, the configuration, the
 * socket store (on the socket, nothing retained after close), route names and metric
 * cells, and the attribute sets that do not change per message. The parts themselves
 * (handshake, client, messages, heartbeat, close, hand-off) live in files of their own.
 */
import { performance } from 'node:perf_hooks';
import type { Config } from '../config';
import * as S from '../semconv';
import type { Adapter, Attributes, Parent, Side } from './adapter';
import type { RunMode, Traced } from './boundary';
import { FaultBudget, GuardedAdapter } from './guard';
import { Metrics } from './metrics';
import { MessageNamer, RouteNamer, UrlRedactor } from './naming';
import { ObjectIndex } from './object-index';
import { type Endpoints, type Relations, type RouteInfo, type SocketGroup, SocketState } from './socket-state';

export const ROOT: Parent = Object.freeze({ type: 'root' });
export const ACTIVE: Parent = Object.freeze({ type: 'active' });

/** Relations of a socket with no handshake reference. */
const NO_RELATIONS: Relations = Object.freeze({
  ref: undefined, handshakeTraceId: undefined, parent: ROOT, links: undefined, carriedLinks: undefined,
});

/**
 * Interned groups and peer addresses: enough for every route and host of a real app. A
 * Host header or an address beyond it (hostile, or many peers) is kept per socket instead.
 */
const MAX_GROUPS = 1024;
const MAX_PEER_ADDRESSES = 256;

/** Epoch milliseconds with sub-millisecond precision (what adapters take as start/end times). */
export const now = (): number => performance.timeOrigin + performance.now();

export class TracerCore {
  readonly metrics: Metrics;
  readonly adapter: GuardedAdapter;
  /** The app's WebSocket → its state, on the socket (non-enumerable): looked up on every message and send. */
  readonly sockets = new ObjectIndex<SocketState>('ws-apm.socket');
  readonly routes: RouteNamer;
  readonly names: MessageNamer;
  readonly redactor: UrlRedactor;
  private readonly routeInfos = new Map<string, RouteInfo>();
  private readonly groups = new Map<string, SocketGroup>();
  private readonly peerAddresses = new Map<string, string>();
  private readonly linkMessages: boolean;
  private readonly relate = (packedRef: unknown): Relations => this.relations(packedRef);

  constructor(readonly config: Config, adapter: Adapter) {
    const budget = new FaultBudget();
    this.adapter = new GuardedAdapter(adapter, budget);
    this.metrics = new Metrics(budget);
    this.routes = new RouteNamer(config);
    this.names = new MessageNamer(config);
    this.redactor = new UrlRedactor(config.redactQueryParams);
    this.linkMessages = config.messageParent === 'link';
    this.adapter.bindMetrics(this.metrics);
  }

  /** Names, scratch attributes and metric cells of a route, built once per (route, side). */
  routeInfo(route: string, side: Side): RouteInfo {
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

  /** Set when a protocol chooses sockets by their subprotocol (tracer/frames.ts): sees each socket once tracked. */
  onTrack: ((ws: object) => void) | undefined;

  /** Start tracking an open socket whose handshake (or client connect) left `ref`. */
  track(ws: object, side: Side, info: RouteInfo, ignored: boolean, ends: Endpoints, ref: unknown): SocketState {
    const state = new SocketState(
      this.group(side, info, ignored, ends),
      this.peerAddress(ends.peerAddress),
      ends.peerPort,
      ref === undefined ? undefined : this.adapter.pack(ref),
      Math.floor(performance.now()),
    );
    this.sockets.set(ws, state);
    this.onTrack?.(ws);
    return state;
  }

  /** The group of connections with this route, side and server end (one object for all of them). */
  private group(side: Side, info: RouteInfo, ignored: boolean, ends: Endpoints): SocketGroup {
    const key = `${side === 'server' ? 's' : 'c'}${ignored ? 'i' : 't'}${ends.serverPort ?? ''} ${ends.serverAddress ?? ''} ${info.route}`;
    let group = this.groups.get(key);
    if (group === undefined) {
      group = { info, ignored, serverAddress: ends.serverAddress, serverPort: ends.serverPort, relate: this.relate };
      if (this.groups.size < MAX_GROUPS) this.groups.set(key, group);
    }
    return group;
  }

  /** One string per peer address (each socket would otherwise hold its own copy of, say, a proxy's address). */
  private peerAddress(address: string | undefined): string | undefined {
    if (address === undefined) return undefined;
    const known = this.peerAddresses.get(address);
    if (known !== undefined) return known;
    if (this.peerAddresses.size < MAX_PEER_ADDRESSES) this.peerAddresses.set(address, address);
    return address;
  }

  /** Parent and links of a socket's operations, from its handshake reference (made once per socket, on first use). */
  private relations(packedRef: unknown): Relations {
    if (packedRef === undefined) return NO_RELATIONS;
    const ref = this.adapter.unpack(packedRef);
    if (ref === undefined) return NO_RELATIONS;
    const links = [ref];
    return {
      ref,
      handshakeTraceId: this.adapter.traceIdOf(ref),
      parent: this.linkMessages ? ROOT : { type: 'ref', ref },
      links: this.linkMessages ? links : undefined,
      carriedLinks: links,
    };
  }

  /** Attributes of a summary-style operation (close, heartbeat): rare, so built plainly. */
  summaryAttributes(state: SocketState, extra: Attributes): Attributes {
    const attributes: Attributes = { ...connectionAttributes(state.side, state.info.route, state), ...extra };
    if (state.user !== undefined) attributes[S.ATTR_ENDUSER_ID] = state.user;
    if (state.handshakeTraceId !== undefined) attributes[S.ATTR_WS_HANDSHAKE_TRACE_ID] = state.handshakeTraceId;
    return attributes;
  }
}

/**
 * Attributes every operation of a connection shares, built when needed rather than kept
 * per socket: the peer is the client on the server side and the server on the client side.
 */
export function connectionAttributes(side: Side, route: string, ends: Endpoints): Attributes {
  const server = side === 'server';
  return {
    [S.ATTR_MESSAGING_SYSTEM]: S.MESSAGING_SYSTEM_WEBSOCKET,
    [S.ATTR_MESSAGING_DESTINATION_NAME]: route,
    [S.ATTR_NETWORK_PROTOCOL_NAME]: 'websocket',
    [server ? S.ATTR_NETWORK_PEER_ADDRESS : S.ATTR_SERVER_ADDRESS]: ends.peerAddress,
    [server ? S.ATTR_NETWORK_PEER_PORT : S.ATTR_SERVER_PORT]: ends.peerPort,
    [S.ATTR_WS_SIDE]: side,
  };
}

/** An outcome with nothing to add. */
export const NO_OUTCOME = Object.freeze({});

/**
 * An operation the app's call runs under (`mode`), ended with its outcome and `attributes`
 * (the app's exception recorded as the error): what the boundary's `run` takes for a
 * close, a connection callback or a send.
 */
export class OperationRun implements Traced {
  readonly carried = undefined;

  constructor(
    private readonly adapter: GuardedAdapter,
    readonly op: unknown,
    readonly mode: RunMode,
    private readonly attributes?: Attributes,
  ) {}

  ended(threw: boolean, error: unknown): void {
    const attributes = this.attributes;
    if (threw) this.adapter.end(this.op, attributes === undefined ? { error } : { error, attributes });
    else this.adapter.end(this.op, attributes === undefined ? NO_OUTCOME : { attributes });
  }
}
