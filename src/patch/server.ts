/**
 * Server handshakes. The `upgrade` event of Node's http/https servers is where a
 * WebSocket handshake begins — also for apps that authenticate in their own upgrade
 * listener and reject with `socket.write('HTTP/1.1 401 ...')` before ws ever sees it —
 * and `WebSocketServer.prototype.handleUpgrade` is where ws accepts it. Until it settles,
 * the response written to the socket is read for its status, and a socket that closes
 * first is a rejection.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { ServerHandshake } from '../tracer/handshake';
import type { Boundary } from '../tracer/boundary';
import { log } from '../logger';
import type { Patches } from './wrap';
import type { AnyFn } from '../tracer/adapter';

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})/;

function isWebSocketUpgrade(req: IncomingMessage | undefined): boolean {
  const upgrade = req?.headers?.upgrade;
  return typeof upgrade === 'string' && upgrade.toLowerCase() === 'websocket';
}

interface PeerName {
  address?: string;
  port?: number;
}

/**
 * The peer of `socket`, leaving nothing on it: `remoteAddress` makes Node keep a `_peername`
 * object on the socket for the rest of its life (~90 B per connection that the app itself may
 * never have asked for). The handle's getpeername (TCP, and TLS through its proxy to the TCP
 * handle) fills a throwaway object instead; anything else goes through the public getters.
 */
function peerOf(socket: Socket): PeerName {
  const handle = (socket as { _handle?: { getpeername?: (out: PeerName) => number } | null })._handle;
  if (handle != null && typeof handle.getpeername === 'function') {
    const out: PeerName = {};
    if (handle.getpeername(out) === 0 && typeof out.address === 'string') return out;
  }
  return { address: socket.remoteAddress, port: socket.remotePort };
}

/** Handshakes in progress, by upgrade request (the http event and handleUpgrade see the same one). */
export class ServerHandshakes {
  private readonly pending = new WeakMap<object, { readonly hs: ServerHandshake; readonly release: () => void }>();
  private warned = false;

  constructor(private readonly boundary: Boundary) {}

  /** The handshake of `req`, begun on first sight (undefined if ws-apm itself failed: logged, the app unaffected). */
  of(req: IncomingMessage, socket: Socket): ServerHandshake | undefined {
    const known = this.pending.get(req);
    if (known !== undefined) return known.hs;
    try {
      return this.begin(req, socket);
    } catch (err) {
      this.boundary.fault('ws-apm handshake', err);
      return undefined;
    }
  }

  private begin(req: IncomingMessage, socket: Socket): ServerHandshake | undefined {
    const peer = peerOf(socket);
    const hs = this.boundary.handshakeStart({
      url: req.url ?? '/',
      headers: req.headers,
      peerAddress: peer.address,
      peerPort: peer.port,
      encrypted: (socket as { encrypted?: boolean }).encrypted === true,
    });
    if (hs === undefined) return undefined;
    this.pending.set(req, { hs, release: this.watch(req, socket, hs) });
    return hs;
  }

  /** A 101 went out that no instrumented ws took: accepted, and said once. */
  private untracked(req: object, hs: ServerHandshake): void {
    if (!this.pending.has(req)) return;
    this.settle(req);
    this.boundary.acceptedUntracked(hs);
    if (this.warned) return;
    this.warned = true;
    log.warn(
      'a WebSocket upgrade was accepted by a copy of ws that ws-apm has not instrumented: the messages, sends and ' +
        'closes of such connections are not recorded. ws loaded with `import` is seen through the loader hook of ' +
        '`node --import ws-apm/register` (NODE_OPTIONS="--import ws-apm/register"); a bundled ws needs instrument({ ws })',
    );
  }

  /** ws accepted the upgrade: stop watching the socket. */
  settle(req: object): void {
    try {
      const known = this.pending.get(req);
      if (known === undefined) return;
      this.pending.delete(req);
      known.release();
    } catch (err) {
      this.boundary.fault('ws-apm handshake', err);
    }
  }

  /**
   * Learn a rejection's status from the response ws or the app writes, and notice a socket
   * that closes before the upgrade completes. Returns the undo, run when the handshake settles.
   */
  private watch(req: object, socket: Socket, hs: ServerHandshake): () => void {
    let status: number | undefined;
    const sniff = (chunk: unknown): void => {
      if (status !== undefined) return;
      try {
        const text = typeof chunk === 'string' ? chunk.slice(0, 16) : Buffer.isBuffer(chunk) ? chunk.toString('latin1', 0, 16) : '';
        const m = STATUS_LINE.exec(text);
        if (m) status = Number(m[1]);
        // ws writes its 101 and hands the socket to the (patched) connection callback in the
        // same synchronous run. Still pending after it: a ws copy (or library) ws-apm did not patch.
        if (status === 101) queueMicrotask(() => this.untracked(req, hs));
      } catch (err) {
        this.boundary.fault('ws-apm handshake', err);
      }
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
    const release = (): void => {
      socket.removeListener('close', onClose);
      if (origWrite && origEnd) {
        shadow('write', origWrite);
        shadow('end', origEnd);
      }
    };
    const onClose = (): void => {
      this.settle(req);
      // A 101 is an accepted upgrade, never a rejection.
      if (status === 101) this.boundary.acceptedUntracked(hs);
      else this.boundary.rejected(hs, status);
    };
    socket.once('close', onClose);
    return release;
  }
}

/** `http.Server.prototype.emit` / `https.Server.prototype.emit`: only `upgrade` is looked at. */
export function patchHttpServer(proto: object, boundary: Boundary, handshakes: ServerHandshakes, patches: Patches): void {
  patches.wrap(proto, 'emit', (original: AnyFn) =>
    function emit(this: { listenerCount(e: string): number }, event: unknown, req?: IncomingMessage, socket?: Socket): boolean {
      if (event !== 'upgrade' || !boundary.on || socket === undefined || !isWebSocketUpgrade(req) || this.listenerCount('upgrade') === 0) {
        return original.apply(this, arguments as unknown as unknown[]);
      }
      const hs = handshakes.of(req as IncomingMessage, socket);
      if (hs === undefined) return original.apply(this, arguments as unknown as unknown[]);
      return boundary.within(hs.op, original, this, Array.prototype.slice.call(arguments));
    },
    // OpenTelemetry's instrumentation-http, enabled after ws-apm, would unwrap this.
    { onTop: true },
  );
}

/** `WebSocketServer.prototype.handleUpgrade(req, socket, head, cb)`. */
export function patchWebSocketServer(proto: object, boundary: Boundary, handshakes: ServerHandshakes, patches: Patches): void {
  patches.wrap(proto, 'handleUpgrade', (original: AnyFn) =>
    function handleUpgrade(this: unknown, req: IncomingMessage, socket: Socket, _head: unknown, cb: AnyFn): unknown {
      if (!boundary.on || typeof cb !== 'function' || req === null || typeof req !== 'object' || socket === null || typeof socket !== 'object') {
        return original.apply(this, arguments as unknown as unknown[]);
      }
      const hs = handshakes.of(req, socket);
      if (hs === undefined) return original.apply(this, arguments as unknown as unknown[]);
      const args = Array.prototype.slice.call(arguments);
      args[3] = function connected(this: unknown, ws: object): unknown {
        handshakes.settle(req);
        const traced = boundary.accepted(hs, ws);
        return traced === undefined ? cb.apply(this, arguments as unknown as unknown[]) : boundary.run(traced, cb, this, Array.prototype.slice.call(arguments));
      };
      return boundary.within(hs.op, original, this, args);
    },
  );
}
