/**
 * What socket.io's server and client share: the protocol's name, socket.io-parser's packet
 * types, and the one choke point where a socket writes an event or an ack (`packet()`, the same
 * method on both ends), which becomes a `WS SEND` under the active operation.
 */
import type { Patches } from '../../patch/wrap';
import type { Events } from '../../tracer/events';
import type { AnyFn } from '../../types';

export type Ctor = { prototype: Record<string, unknown> };

export const PROTOCOL = 'socket.io';
/** Is socket.io instrumented under `WS_APM_PROTOCOL` (`auto`, or `socket.io` itself)? */
export function chosen(protocol: string): boolean {
  return protocol === 'auto' || protocol === PROTOCOL;
}

/** The name of a received acknowledgement's operation. */
export const ACK_NAME = 'ack';

// socket.io-parser's packet types.
export const EVENT = 2;
const ACK = 3;
export const BINARY_EVENT = 5;
const BINARY_ACK = 6;

export function asClass(value: unknown): Ctor | undefined {
  return typeof value === 'function' && typeof (value as { prototype?: unknown }).prototype === 'object' ? (value as Ctor) : undefined;
}

/** `socket.packet(packet)`: an EVENT is `WS SEND {namespace} {event}`, an ACK `WS SEND {namespace} ack`. */
export function patchSends(proto: object, events: Events, patches: Patches): void {
  patches.wrap(proto, 'packet', (original: AnyFn) =>
    function packet(this: object, p: { type?: unknown; data?: unknown }): unknown {
      const type = p !== null && typeof p === 'object' ? p.type : undefined;
      if (type === EVENT || type === BINARY_EVENT) {
        return events.send(this, Array.isArray(p.data) ? p.data[0] : undefined, false, original, this, arguments as unknown as unknown[]);
      }
      if (type === ACK || type === BINARY_ACK) return events.send(this, undefined, true, original, this, arguments as unknown as unknown[]);
      return original.apply(this, arguments as unknown as unknown[]);
    },
  );
}
