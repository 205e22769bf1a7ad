/**
 * `WebSocket.prototype`: the one choke point for incoming messages (`emit('message')`,
 * so every listener API — on, once, addEventListener, onmessage — is covered without
 * wrapping a single listener), plus send, ping, close and terminate.
 */
import type { Tracer, WsLike } from '../tracer/tracer';
import type { Patches } from './wrap';

type AnyFn = (...args: any[]) => any;

export function patchWebSocket(proto: object, tracer: Tracer, patches: Patches): void {
  patches.wrap(proto, 'emit', (original: AnyFn) =>
    function emit(this: WsLike, event: unknown, a?: unknown, b?: unknown): boolean {
      const argc = arguments.length;
      if (event === 'message' && (argc === 2 || argc === 3)) return tracer.receive(this, original, a, b, argc);
      switch (event) {
        case 'close':
          return tracer.closed(this, original, Array.prototype.slice.call(arguments), a, b);
        case 'pong':
          tracer.pong(this);
          break;
        case 'upgrade':
          tracer.clientUpgraded(this, a);
          break;
      }
      return original.apply(this, arguments as unknown as unknown[]);
    },
  );

  patches.wrap(proto, 'send', (original: AnyFn) =>
    function send(this: WsLike, data: unknown, options?: unknown, cb?: unknown): unknown {
      return tracer.send(this, original, data, options, cb, arguments.length);
    },
  );

  patches.wrap(proto, 'ping', (original: AnyFn) =>
    function ping(this: object): unknown {
      tracer.ping(this);
      return original.apply(this, arguments as unknown as unknown[]);
    },
  );

  patches.wrap(proto, 'close', (original: AnyFn) =>
    function close(this: object): unknown {
      // ws answers a peer's close frame by calling close() itself; its (private, but
      // stable since ws 3) `_closeFrameReceived` flag tells the two apart. Best effort:
      // an unknown value reads as a local close.
      tracer.closing(this, (this as { _closeFrameReceived?: unknown })._closeFrameReceived === true);
      return original.apply(this, arguments as unknown as unknown[]);
    },
  );

  patches.wrap(proto, 'terminate', (original: AnyFn) =>
    function terminate(this: object): unknown {
      tracer.terminating(this);
      return original.apply(this, arguments as unknown as unknown[]);
    },
  );
}
