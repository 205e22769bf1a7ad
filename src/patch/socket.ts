/**
 * `WebSocket.prototype`: the one choke point for incoming messages (`emit('message')`,
 * so every listener API — on, once, addEventListener, onmessage — is covered without
 * wrapping a single listener), plus send, ping, close and terminate.
 */
import type { Boundary, Traced } from '../tracer/boundary';
import type { ClientUpgrades } from './client';
import { READ_AT_WRITE } from './frames';
import type { Patches } from './wrap';
import { callWithArgc, receivedBinary, sentBinary, sizeOf } from './ws-args';
import type { AnyFn } from '../tracer/adapter';

interface WsSocket {
  readonly readyState: number;
  readonly [READ_AT_WRITE]?: boolean;
  listenerCount(event: string): number;
}

const OPEN = 1;

export function patchWebSocket(proto: object, boundary: Boundary, upgrades: ClientUpgrades, patches: Patches): void {
  // The listeners' argument list, reused: ws's emit applies it before any listener runs, and a
  // message emitted from inside a listener (while it is in use) gets a fresh one.
  const args2: unknown[] = ['message', undefined];
  const args3: unknown[] = ['message', undefined, undefined];
  let argsInUse = false;

  patches.wrap(proto, 'emit', (original: AnyFn) =>
    function emit(this: WsSocket, event: unknown, a?: unknown, b?: unknown): unknown {
      if (!boundary.on) return original.apply(this, arguments as unknown as unknown[]);
      const argc = arguments.length;
      if (event === 'message' && (argc === 2 || argc === 3)) {
        const traced = boundary.receiveStart(this, a, sizeOf(a), receivedBinary(a, b), this.listenerCount('message') > 0);
        // The listeners get exactly ws's arguments: ws 8 passes isBinary, ws 7 does not.
        let args: unknown[];
        const reused = !argsInUse;
        if (reused) {
          args = argc === 2 ? args2 : args3;
          args[1] = a;
          if (argc === 3) args[2] = b;
          argsInUse = true;
        } else {
          // A message emitted from inside a listener: the shared array is in use.
          args = argc === 2 ? [event, a] : [event, a, b];
        }
        try {
          return traced === undefined ? original.apply(this, args) : boundary.run(traced, original, this, args);
        } catch (err) {
          // The app's exception, re-thrown unchanged; ws will not emit this socket's close.
          boundary.listenerThrew(this);
          throw err;
        } finally {
          if (reused) {
            // Nothing of the app's is retained between messages.
            args[1] = undefined;
            if (argc === 3) args[2] = undefined;
            argsInUse = false;
          }
        }
      }
      switch (event) {
        case 'close': {
          const traced = boundary.closeStart(this, a, b);
          if (traced !== undefined) return boundary.run(traced, original, this, Array.prototype.slice.call(arguments));
          break;
        }
        case 'pong':
          boundary.pong(this);
          break;
        case 'upgrade':
          upgrades.upgraded(this, a);
          break;
      }
      return original.apply(this, arguments as unknown as unknown[]);
    },
  );

  patches.wrap(proto, 'send', (original: AnyFn) =>
    function send(this: WsSocket, data: unknown, options?: unknown, cb?: unknown): unknown {
      const argc = arguments.length;
      // A socket whose frames are all read where ws writes them (patch/frames.ts): nothing to look at here.
      if (!boundary.on || this[READ_AT_WRITE] === true) return callWithArgc(original, this, argc, data, options, cb);
      const traced = boundary.sendStart(this, sizeOf(data), sentBinary(data, options), this.readyState === OPEN, data);
      if (traced === undefined) return callWithArgc(original, this, argc, data, options, cb);
      const callback = typeof options === 'function' ? options : cb;
      // No callback (the common case): ended when send returns.
      if (typeof callback !== 'function') return boundary.run(traced, original, this, Array.prototype.slice.call(arguments));
      return sendWithCallback(boundary, traced, original, this, argc, data, options, cb, callback as AnyFn);
    },
  );

  patches.wrap(proto, 'ping', (original: AnyFn) =>
    function ping(this: object): unknown {
      if (boundary.on) boundary.ping(this);
      return original.apply(this, arguments as unknown as unknown[]);
    },
  );

  patches.wrap(proto, 'close', (original: AnyFn) =>
    function close(this: object): unknown {
      // ws answers a peer's close frame by calling close() itself; its (private, but
      // stable since ws 3) `_closeFrameReceived` flag tells the two apart. Best effort:
      // an unknown value reads as a local close.
      if (boundary.on) boundary.closing(this, (this as { _closeFrameReceived?: unknown })._closeFrameReceived === true);
      return original.apply(this, arguments as unknown as unknown[]);
    },
  );

  patches.wrap(proto, 'terminate', (original: AnyFn) =>
    function terminate(this: object): unknown {
      if (boundary.on) boundary.terminating(this);
      return original.apply(this, arguments as unknown as unknown[]);
    },
  );
}

/**
 * A traced `send(data[, options], cb)`: the very same arguments, except a callback that
 * ends the operation (with the write's error, if any) first.
 */
function sendWithCallback(
  boundary: Boundary, traced: Traced, send: AnyFn, ws: object, argc: number, data: unknown, options: unknown, cb: unknown, callback: AnyFn,
): unknown {
  let ended = false;
  const finish = (threw: boolean, err: unknown): void => {
    if (ended) return;
    ended = true;
    boundary.end(traced, threw, err);
  };
  const wrapped = function (this: unknown, err?: unknown): unknown {
    finish(Boolean(err), err);
    return callback.apply(this, arguments as unknown as unknown[]);
  };
  try {
    return typeof options === 'function'
      ? callWithArgc(send, ws, argc, data, wrapped, cb)
      : callWithArgc(send, ws, argc, data, options, wrapped);
  } catch (err) {
    finish(true, err);
    throw err;
  }
}
