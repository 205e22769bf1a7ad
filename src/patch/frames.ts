/**
 * Frames ws writes without `WebSocket#send`: engine.io writes a broadcast's pre-encoded frame
 * straight through ws's (private, but stable since ws 2) `_sender.sendFrame`, once per
 * recipient. For sockets a protocol claimed, every data frame the sender writes reaches the
 * tracer, which skips those `send()` already counted — so the out-count is every frame written.
 *
 * A server's frames on a socket without permessage-deflate are written as the app gave them
 * (unmasked, uncompressed): those are read here only, size and kind from the frame itself, and
 * the socket's `send()` passes straight through (one look at an outgoing message instead of two,
 * and no second measure of a string ws has just measured).
 */
import type { Boundary } from '../tracer/boundary';
import type { Patches } from './wrap';
import type { AnyFn } from '../tracer/adapter';

/** On a socket whose frames are all read where ws writes them: its `send()` is not looked at (patch/socket.ts). */
export const READ_AT_WRITE = Symbol('ws-apm.readAtWrite');

interface WsSocket {
  readonly _isServer?: unknown;
  readonly _sender?: unknown;
  readonly extensions?: unknown;
}

export class FrameWrites {
  /** ws's sender of a claimed socket → the socket. */
  private readonly senders = new WeakMap<object, object>();

  constructor(private readonly boundary: Boundary, private readonly patches: Patches) {}

  /**
   * Count the frames written on `ws` (already claimed by a protocol) through its sender. When
   * every data frame of `ws` can be read there (a server's, with no extension to compress it) and
   * the tracer takes them all there (`readAtWrite()` says yes), the socket's `send()` then passes
   * straight through.
   */
  watch(ws: object, readAtWrite: () => boolean): void {
    const socket = ws as WsSocket;
    const sender = socket._sender;
    if (sender === null || typeof sender !== 'object') return;
    const proto = Object.getPrototypeOf(sender) as object | null;
    if (proto === null) return;
    const { senders, boundary } = this;
    // Wrapped once per copy of ws (the wrapper refuses a second time: then it is ours, or
    // another copy of ws-apm's, which would never tell this tracer).
    this.patches.wrap(proto, 'sendFrame', (original: AnyFn) =>
      function sendFrame(this: object, list: unknown): unknown {
        const owner = boundary.on ? senders.get(this) : undefined;
        if (owner !== undefined) {
          let frame = -1;
          try {
            frame = dataFrame(list);
          } catch (err) {
            boundary.fault('ws-apm frames', err);
          }
          if (frame >= 0) boundary.frameWritten(owner, Math.floor(frame / 2), frame % 2 === 1, (list as unknown[])[1]);
        }
        return original.apply(this, arguments as unknown as unknown[]);
      },
    );
    if (!this.patches.applies(proto, 'sendFrame')) return;
    this.senders.set(sender, ws);
    // `extensions` (public since ws 2): the negotiated extensions, '' for none.
    if (socket._isServer !== true || socket.extensions !== '' || !readAtWrite()) return;
    Object.defineProperty(ws, READ_AT_WRITE, { value: true, writable: true, configurable: true, enumerable: false });
  }
}

/**
 * A data frame's payload size and type from its header (ws's frame: a list of buffers, the
 * header first, then the payload unless it is empty), as one number (size × 2, + 1 when binary:
 * no object per frame), or -1 for a control frame.
 */
function dataFrame(list: unknown): number {
  const head = Array.isArray(list) ? list[0] : undefined;
  if (!(head instanceof Uint8Array) || head.length < 2) return -1;
  const opcode = head[0] & 0x0f;
  if (opcode > 2) return -1;
  let size = head[1] & 0x7f;
  if (size === 126 && head.length >= 4) size = (head[2] << 8) | head[3];
  else if (size === 127 && head.length >= 10) {
    const view = new DataView(head.buffer, head.byteOffset, head.length);
    size = view.getUint32(2) * 2 ** 32 + view.getUint32(6);
  }
  return size * 2 + (opcode === 2 ? 1 : 0);
}
