/**
 * undici's WebSocket: Node's built-in global `WebSocket` (Node 22+) and the `undici`
 * package's own `WebSocket` (the same code). What undici offers instrumentation is its
 * diagnostics channels (undici-handshake.ts); they say nothing per message and run after
 * the app's `close` listeners, so the socket itself is patched on its public prototype,
 * never on `EventTarget.prototype` and never around a listener:
 *
 * - `dispatchEvent` (an own method added to `WebSocket.prototype`, removed again on
 *   uninstrument): undici fires every event as `ws.dispatchEvent(event)`, and `onmessage`
 *   is an ordinary listener, so one choke point covers `onmessage`, `addEventListener`
 *   and `removeEventListener` alike. `open` starts tracking the socket, `message` runs
 *   the listeners inside `WS RECEIVE`, `close` inside the connection summary.
 * - `send` (no completion callback in this API: `WS SEND` covers the call that queues the
 *   data), `close` (this side began the close), and the `undici` package's `ping(ws)` export
 *   (undici 7+; its pong is published with the socket). The built-in client has no ping.
 */
import { getEventListeners } from 'node:events';
import { log } from '../logger';
import type { Boundary } from '../tracer/boundary';
import { UndiciHandshakes } from './undici-handshake';
import type { Patches } from './wrap';
import { sizeOf } from './ws-args';
import type { AnyFn } from '../tracer/adapter';

interface UndiciSocket {
  readonly readyState: number;
  readonly url: string;
}

const OPEN = 1;
const CLOSED = 3;

/** Is `value` undici's WebSocket class (an EventTarget with send/close), not ws's or a polyfill? */
function undiciClass(value: unknown): { prototype: object } | undefined {
  if (typeof value !== 'function') return undefined;
  const proto = (value as { prototype?: unknown }).prototype;
  if (proto === null || typeof proto !== 'object' || !(proto instanceof EventTarget)) return undefined;
  const p = proto as unknown as Record<string, unknown>;
  return typeof p.send === 'function' && typeof p.close === 'function' ? (value as { prototype: object }) : undefined;
}

/** What the app may pass as a message: text, or binary (ArrayBuffer, a view, Blob). */
function isBinary(data: unknown): boolean {
  return typeof data === 'object' && data !== null && (ArrayBuffer.isView(data) || data instanceof ArrayBuffer || data instanceof Blob);
}

/** readyState, without throwing where the getter's brand check would (the original method throws instead). */
function readyState(ws: UndiciSocket): number {
  try {
    return ws.readyState;
  } catch {
    return -1;
  }
}

function isOpen(ws: UndiciSocket): boolean {
  return readyState(ws) === OPEN;
}

/** Does anything listen for messages (`onmessage` is a listener too)? */
function listening(ws: object): boolean {
  try {
    return getEventListeners(ws as EventTarget, 'message').length > 0;
  } catch {
    return true;
  }
}

export class UndiciClients {
  private readonly handshakes: UndiciHandshakes;
  private readonly seen = new WeakSet<object>();

  constructor(private readonly boundary: Boundary, private readonly patches: Patches) {
    this.handshakes = new UndiciHandshakes(boundary);
  }

  /** Node's built-in client, when this Node has one. */
  enableBuiltIn(): void {
    const global = (globalThis as { WebSocket?: unknown }).WebSocket;
    if (global === undefined) {
      log.debug(`Node ${process.version} has no built-in WebSocket client: nothing to instrument there`);
      return;
    }
    if (!this.patchClass(global)) log.debug('the global WebSocket is not undici\'s (a polyfill?): left to its own instrumentation');
  }

  /** The `undici` package (its exports or ESM namespace): its WebSocket and its `ping`. */
  patchModule(mod: unknown): void {
    if (mod === null || (typeof mod !== 'object' && typeof mod !== 'function')) return;
    const m = mod as { WebSocket?: unknown; ping?: unknown; default?: { WebSocket?: unknown } };
    if (!this.patchClass(m.WebSocket ?? m.default?.WebSocket)) return;
    const boundary = this.boundary;
    const target = typeof m.ping === 'function' ? m : m.default;
    if (target !== undefined && typeof (target as { ping?: unknown }).ping === 'function') {
      this.patches.wrap(target, 'ping', (original: AnyFn) =>
        function ping(this: unknown, ws: unknown): unknown {
          if (boundary.on && ws !== null && typeof ws === 'object') boundary.ping(ws);
          return original.apply(this, arguments as unknown as unknown[]);
        },
      );
    }
  }

  disable(): void {
    this.handshakes.unsubscribe();
  }

  private patchClass(value: unknown): boolean {
    const cls = undiciClass(value);
    if (cls === undefined) return false;
    if (this.seen.has(cls.prototype)) return true;
    this.seen.add(cls.prototype);
    if (!patchPrototype(cls.prototype, this.boundary, this.handshakes, this.patches)) {
      log.warn('undici\'s WebSocket is already instrumented by another copy of ws-apm in this process; this copy leaves it alone');
      return true;
    }
    // The channels are only listened to once there is a WebSocket class to pair them with.
    this.handshakes.subscribe();
    return true;
  }
}

/** Returns false (and patches nothing) when another copy of ws-apm got there first. */
function patchPrototype(proto: object, boundary: Boundary, handshakes: UndiciHandshakes, patches: Patches): boolean {
  const patched = patches.wrap(proto, 'dispatchEvent', (original: AnyFn) =>
    function dispatchEvent(this: UndiciSocket, event: unknown): unknown {
      if (boundary.on && event instanceof Event) {
        switch (event.type) {
          case 'message': {
            const data = (event as unknown as { readonly data: unknown }).data;
            const traced = boundary.receiveStart(this, data, sizeOf(data), typeof data !== 'string', listening(this));
            if (traced !== undefined) return boundary.run(traced, original, this, [event]);
            break;
          }
          case 'close':
            // undici marks the socket CLOSED before it fires `close`; an app's own synthetic
            // close event on a live socket is just an event.
            if (readyState(this) === CLOSED) {
              const { code, reason } = event as unknown as { readonly code: unknown; readonly reason: unknown };
              const traced = boundary.closeStart(this, code, reason);
              if (traced !== undefined) return boundary.run(traced, original, this, [event]);
            }
            break;
          case 'open':
            handshakes.opened(this);
            break;
        }
      }
      return original.apply(this, arguments as unknown as unknown[]);
    },
  );
  if (!patched) return false;

  patches.wrap(proto, 'send', (original: AnyFn) =>
    function send(this: UndiciSocket, data: unknown): unknown {
      const traced = boundary.on ? boundary.sendStart(this, sizeOf(data), isBinary(data), isOpen(this)) : undefined;
      if (traced === undefined) return original.apply(this, arguments as unknown as unknown[]);
      return boundary.run(traced, original, this, Array.prototype.slice.call(arguments));
    },
  );

  patches.wrap(proto, 'close', (original: AnyFn) =>
    function close(this: UndiciSocket): unknown {
      // undici answers the peer's close frame itself (readyState is CLOSING by then), so
      // a close() on an open socket is this side's.
      if (boundary.on && isOpen(this)) boundary.closing(this, false);
      return original.apply(this, arguments as unknown as unknown[]);
    },
  );
  return true;
}
