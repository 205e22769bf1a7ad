/**
 * What the tracer remembers about one WebSocket, held on the socket under a private,
 * non-enumerable symbol (object-index.ts), and what it remembers about one route.
 *
 * An idle connection costs its SocketState and nothing else, so the state keeps only what
 * differs per connection: what connections share (route, server end, whether ignored) is one
 * interned `SocketGroup`, what only some need (parent and links of its operations, the close
 * start, the user, a protocol's claim) is made on first use, and no field holds a heap number
 * until it is set (a `0` that later becomes a fraction would make V8 box it in every socket).
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

/** What every connection of one route, side and server end shares (interned by the core). */
export interface SocketGroup {
  readonly info: RouteInfo;
  /** Route in WS_APM_IGNORE_ROUTES: metrics only, no operations. */
  readonly ignored: boolean;
  readonly serverAddress: string | undefined;
  readonly serverPort: number | undefined;
  /** What a socket's operations need from its (packed) handshake reference; made on first use, once per socket. */
  readonly relate: (packedRef: unknown) => Relations;
}

/** Parent and links of a connection's operations, computed once from the handshake reference. */
export interface Relations {
  /** The handshake (server) or client connect reference, as the adapter uses it. */
  readonly ref: unknown;
  readonly handshakeTraceId: string | undefined;
  readonly parent: Parent;
  readonly links: readonly unknown[] | undefined;
  /** Links of a message that continues a context it carried: always the handshake, whatever the parent mode. */
  readonly carriedLinks: readonly unknown[] | undefined;
}

/** What only some connections need, made on first use. */
interface SocketExtras {
  relations: Relations | undefined;
  closeStartedAt: number;
  user: string | undefined;
  frames: FrameClaim | undefined;
}

const COUNTED = 1;
const TERMINATED = 2;
const CLOSE_LOCAL = 4;
const CLOSE_REMOTE = 8;
/** The peer's port sits above the flags (0: none; no peer has port 0). */
const PORT_SHIFT = 4;

export class SocketState implements Endpoints {
  messagesIn = 0;
  messagesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** `performance.now()` of an unanswered ping. */
  private ping: number | undefined = undefined;
  /** COUNTED, TERMINATED, CLOSE_*, and the peer's port << PORT_SHIFT. */
  private flags: number;
  private extras: SocketExtras | undefined = undefined;

  constructor(
    readonly group: SocketGroup,
    readonly peerAddress: string | undefined,
    peerPort: number | undefined,
    /** The adapter's (possibly packed) reference to the handshake or client connect. */
    private readonly packedRef: unknown,
    /**
     * Whole milliseconds of `performance.now()` at open: a small integer is kept in the object
     * itself, a fractional time (or the epoch's) would be a 16 B box per connection.
     */
    readonly openedAt: number,
  ) {
    this.flags = peerPort !== undefined && Number.isInteger(peerPort) && peerPort > 0 && peerPort <= 0xffff ? peerPort << PORT_SHIFT : 0;
  }

  get peerPort(): number | undefined {
    const port = this.flags >>> PORT_SHIFT;
    return port === 0 ? undefined : port;
  }

  get info(): RouteInfo {
    return this.group.info;
  }

  get side(): Side {
    return this.group.info.side;
  }

  get ignored(): boolean {
    return this.group.ignored;
  }

  get serverAddress(): string | undefined {
    return this.group.serverAddress;
  }

  get serverPort(): number | undefined {
    return this.group.serverPort;
  }

  private more(): SocketExtras {
    return (this.extras ??= { relations: undefined, closeStartedAt: 0, user: undefined, frames: undefined });
  }

  private relations(): Relations {
    // No reference (an ignored route, an operation the backend did not record): shared relations, nothing made.
    if (this.packedRef === undefined) return this.group.relate(undefined);
    const extras = this.more();
    return (extras.relations ??= this.group.relate(this.packedRef));
  }

  /** Reference to the handshake (server) or client connect operation, for links/parents. */
  get ref(): unknown {
    return this.relations().ref;
  }

  /** Trace id behind `ref`. */
  get handshakeTraceId(): string | undefined {
    return this.relations().handshakeTraceId;
  }

  /** Parent and links of every message operation. */
  get parent(): Parent {
    return this.relations().parent;
  }

  get links(): readonly unknown[] | undefined {
    return this.relations().links;
  }

  get carriedLinks(): readonly unknown[] | undefined {
    return this.relations().carriedLinks;
  }

  /** Counted in `websocket.server.active_connections` (server sockets once accepted). */
  get counted(): boolean {
    return (this.flags & COUNTED) !== 0;
  }

  set counted(value: boolean) {
    this.flags = value ? this.flags | COUNTED : this.flags & ~COUNTED;
  }

  get terminated(): boolean {
    return (this.flags & TERMINATED) !== 0;
  }

  set terminated(value: boolean) {
    this.flags = value ? this.flags | TERMINATED : this.flags & ~TERMINATED;
  }

  /** Who began the close: set by close()/terminate() or by the peer's close frame. */
  get closeBy(): 'local' | 'remote' | undefined {
    const flags = this.flags;
    return flags & CLOSE_LOCAL ? 'local' : flags & CLOSE_REMOTE ? 'remote' : undefined;
  }

  set closeBy(value: 'local' | 'remote' | undefined) {
    const flags = this.flags & ~(CLOSE_LOCAL | CLOSE_REMOTE);
    this.flags = value === 'local' ? flags | CLOSE_LOCAL : value === 'remote' ? flags | CLOSE_REMOTE : flags;
  }

  /** Epoch ms when the close began (0 until then). */
  get closeStartedAt(): number {
    return this.extras?.closeStartedAt ?? 0;
  }

  set closeStartedAt(value: number) {
    this.more().closeStartedAt = value;
  }

  /** `performance.now()` of an unanswered ping, 0 when none. */
  get pingAt(): number {
    return this.ping ?? 0;
  }

  set pingAt(value: number) {
    this.ping = value === 0 ? undefined : value;
  }

  get user(): string | undefined {
    return this.extras?.user;
  }

  set user(value: string | undefined) {
    if (value !== undefined || this.extras !== undefined) this.more().user = value;
  }

  /** A protocol over ws claimed this socket's frames (tracer/frames.ts): it records its own operations. */
  get frames(): FrameClaim | undefined {
    return this.extras?.frames;
  }

  set frames(value: FrameClaim | undefined) {
    if (value !== undefined || this.extras !== undefined) this.more().frames = value;
  }
}
