/**
 * Frames ws writes without `WebSocket#send`: engine.io writes a broadcast's pre-encoded frame
 * straight through ws's (private, but stable since ws 2) `_sender.sendFrame`, once per
 * recipient. For sockets a protocol claimed, every data frame the sender writes reaches the
 * tracer, which skips those `send()` already counted — so the out-count is every frame written.
 */
import type { Boundary } from '../tracer/boundary';
import type { Patches } from './wrap';
import type { AnyFn } from '../tracer/adapter';

export class FrameWrites {
  /** ws's sender of a claimed socket → the socket. */
  private readonly senders = new WeakMap<object, object>();

  constructor(private readonly boundary: Boundary, private readonly patches: Patches) {}

  /** Count the frames written on `ws` (already claimed by a protocol) through its sender. */
  watch(ws: object): void {
    const sender = (ws as { _sender?: unknown })._sender;
    if (sender === null || typeof sender !== 'object') return;
    this.senders.set(sender, ws);
    const proto = Object.getPrototypeOf(sender) as object | null;
    if (proto === null) return;
    const { senders, boundary } = this;
    // Wrapped once per copy of ws (the wrapper refuses a second time).
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
          if (frame >= 0) boundary.frameWritten(owner, Math.floor(frame / 2), frame % 2 === 1);
        }
        return original.apply(this, arguments as unknown as unknown[]);
      },
    );
  }
}

/**
 * A data frame's payload size and type from its header (ws's frame: a list of buffers), as one
 * number (size × 2, + 1 when binary: no object per frame), or -1 for a control frame.
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
