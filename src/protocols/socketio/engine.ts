/**
 * engine.io, socket.io's transport layer: an engine.io packet is one ws frame whose first
 * character is its type — `2` ping, `3` pong (heartbeats, and the `2probe`/`3probe` of an
 * upgrade), anything else a message. And where a ws socket joins engine.io: its server's
 * `onWebSocket(req, socket, websocket)`, for a new connection and for an upgrade alike.
 */
import { log } from '../../logger';
import { FrameKind } from '../../tracer/frames';
import type { Patches } from '../../patch/wrap';
import type { AnyFn } from '../../types';

const PING = 0x32; // '2'
const PONG = 0x33; // '3'

/** The kind of an engine.io frame, as ws gives or takes it (a string to send, a Buffer received). */
export function engineFrame(data: unknown, binary: boolean): FrameKind {
  if (binary) return FrameKind.Message;
  let first: number;
  if (typeof data === 'string') first = data.charCodeAt(0);
  else if (data instanceof Uint8Array && data.length > 0) first = data[0];
  else return FrameKind.Message;
  return first === PING ? FrameKind.Ping : first === PONG ? FrameKind.Pong : FrameKind.Message;
}

/**
 * Patch the `onWebSocket` of an engine.io server instance's class (found from the instance
 * socket.io binds, so no separate hook on engine.io is needed): `claim` sees each ws socket first.
 */
export function patchEngine(engine: unknown, patches: Patches, claim: (ws: object) => void): void {
  let proto = engine !== null && typeof engine === 'object' ? (Object.getPrototypeOf(engine) as object | null) : null;
  while (proto !== null && !Object.prototype.hasOwnProperty.call(proto, 'onWebSocket')) proto = Object.getPrototypeOf(proto) as object | null;
  if (proto === null) {
    log.debug('engine.io server without onWebSocket: socket.io frames are recorded as plain ws messages');
    return;
  }
  patches.wrap(proto, 'onWebSocket', (original: AnyFn) =>
    function onWebSocket(this: unknown, _req: unknown, _socket: unknown, websocket: unknown): unknown {
      if (websocket !== null && typeof websocket === 'object') {
        try {
          claim(websocket);
        } catch (err) {
          log.fault('ws-apm socket.io', err);
        }
      }
      return original.apply(this, arguments as unknown as unknown[]);
    },
  );
}
