/**
 * Client connections. ws builds the upgrade request inside a module-private function
 * and stores it as `websocket._req` before calling `req.end()`, and offers no public
 * hook for every client. An accessor for `_req` on `WebSocket.prototype` sees that
 * first assignment while the headers can still be set; it then turns itself into a
 * plain own property on the instance, so ws's later writes (`_req = null`) are untouched.
 * Tested on ws 7 and 8; if a future ws stops assigning `_req`, client connect spans
 * simply stop appearing (nothing else changes).
 */
import type { Tracer, WsLike } from '../tracer/tracer';
import type { Patches } from './wrap';

const FIELD = '_req';

export function patchClient(proto: object, tracer: Tracer, patches: Patches): void {
  patches.defineAccessor(proto, FIELD, {
    get(this: object): unknown {
      return undefined;
    },
    set(this: WsLike, value: unknown): void {
      Object.defineProperty(this, FIELD, { value, writable: true, configurable: true, enumerable: true });
      if (value !== null && typeof value === 'object' && typeof (value as { setHeader?: unknown }).setHeader === 'function') {
        tracer.clientRequest(this, value as Parameters<Tracer['clientRequest']>[1]);
      }
    },
  });
}
