/**
 * Server handshakes. The `upgrade` event of Node's http/https servers is where a
 * WebSocket handshake begins — also for apps that authenticate in their own upgrade
 * listener and reject with `socket.write('HTTP/1.1 401 ...')` before ws ever sees it —
 * and `WebSocketServer.prototype.handleUpgrade` is where ws accepts it.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Tracer, WsLike } from '../tracer/tracer';
import type { Patches } from './wrap';

type AnyFn = (...args: any[]) => any;

function isWebSocketUpgrade(req: IncomingMessage | undefined): boolean {
  const upgrade = req?.headers?.upgrade;
  return typeof upgrade === 'string' && upgrade.toLowerCase() === 'websocket';
}

/** `http.Server.prototype.emit` / `https.Server.prototype.emit`: only `upgrade` is looked at. */
export function patchHttpServer(proto: object, tracer: Tracer, patches: Patches): void {
  patches.wrap(proto, 'emit', (original: AnyFn) =>
    function emit(this: { listenerCount(e: string): number }, event: unknown, req?: IncomingMessage, socket?: Socket): boolean {
      if (event !== 'upgrade' || socket === undefined || !isWebSocketUpgrade(req) || this.listenerCount('upgrade') === 0) {
        return original.apply(this, arguments as unknown as unknown[]);
      }
      const hs = tracer.upgradeStarted(req as IncomingMessage, socket);
      return tracer.runInHandshake(hs, original, this, Array.prototype.slice.call(arguments));
    },
  );
}

/** `WebSocketServer.prototype.handleUpgrade(req, socket, head, cb)`. */
export function patchWebSocketServer(proto: object, tracer: Tracer, patches: Patches): void {
  patches.wrap(proto, 'handleUpgrade', (original: AnyFn) =>
    function handleUpgrade(this: unknown, req: IncomingMessage, socket: Socket, _head: unknown, cb: AnyFn): unknown {
      if (typeof cb !== 'function' || req === null || typeof req !== 'object' || socket === null || typeof socket !== 'object') {
        return original.apply(this, arguments as unknown as unknown[]);
      }
      const hs = tracer.upgradeStarted(req, socket);
      const args = Array.prototype.slice.call(arguments);
      args[3] = function connected(this: unknown, ws: WsLike): unknown {
        return tracer.handshakeAccepted(hs, ws, cb, this, Array.prototype.slice.call(arguments));
      };
      return tracer.runInHandshake(hs, original, this, args);
    },
  );
}
