/**
 * What the tracer remembers about one WebSocket, held in a WeakMap keyed by the socket
 * (never as properties on the app's objects), and what it remembers about one route.
 */
import type { Attributes, Parent, Side } from './adapter';
import type { FrameClaim } from './frames';
import type { RouteMetrics } from './metrics';

/** Names and metric cells of one route, built once. */
export interface RouteInfo {
  readonly route: string;
  readonly side: Side;
  readonly metrics: RouteMetrics;
  /** Scratch attributes of message operations on this route, refilled per message. */
  readonly receiveAttributes: Attributes;
  readonly sendAttributes: Attributes;
  readonly receiveName: string;
  readonly sendName: string;
  readonly closeName: string;
  readonly pingName: string;
  /** Per message name (bounded by the name cap): `WS RECEIVE {route} {name}` and its scratch attributes. */
  readonly namedReceive: Map<string, NamedReceive>;
}

/** A named message's operation name and scratch attributes (the route's, plus the name), built once. */
export interface NamedReceive {
  readonly spanName: string;
  readonly attributes: Attributes;
}

/** The other end of a connection, and the server end (which is the peer on the client side). */
export interface Endpoints {
  /** The client for a server socket, the server for a client socket. */
  readonly peerAddress: string | undefined;
  readonly peerPort: number | undefined;
  readonly serverAddress: string | undefined;
  readonly serverPort: number | undefined;
}

export interface SocketState extends Endpoints {
  readonly side: Side;
  readonly info: RouteInfo;
  /** Route in WS_APM_IGNORE_ROUTES: metrics only, no operations. */
  readonly ignored: boolean;
  /** Reference to the handshake (server) or client connect operation, for links/parents. */
  readonly ref: unknown;
  /** Trace id behind `ref`, computed once. */
  readonly handshakeTraceId: string | undefined;
  /** Parent and links of every message operation, computed once. */
  readonly parent: Parent;
  readonly links: readonly unknown[] | undefined;
  /** Links of a message that continues a context it carried: always the handshake, whatever the parent mode. */
  readonly carriedLinks: readonly unknown[] | undefined;
  readonly openedAt: number;
  /** Counted in `websocket.server.active_connections` (server sockets once accepted). */
  counted: boolean;
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Who began the close: set by close()/terminate() or by the peer's close frame. */
  closeBy: 'local' | 'remote' | undefined;
  closeStartedAt: number;
  terminated: boolean;
  /** `performance.now()` of an unanswered ping, 0 when none. */
  pingAt: number;
  user: string | undefined;
  /** A protocol over ws claimed this socket's frames (tracer/frames.ts): it records its own operations. */
  frames: FrameClaim | undefined;
}
