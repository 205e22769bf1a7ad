/**
 * Frames of a socket that a protocol over ws (src/protocols) has claimed: the protocol records
 * its own operations where it dispatches (an event, not a frame), so here every frame is only
 * counted — or, when the protocol says it is one of its heartbeats, measured as a heartbeat and
 * never counted as a message, never traced, never charged to the rate limit. Also counts the
 * frames ws writes without `WebSocket#send` (engine.io writes a broadcast's pre-encoded frame
 * through ws's sender), so the out-count is every data frame ws writes.
 */
import type { TracerCore } from './core';
import type { Heartbeats } from './heartbeat';
import type { SocketState } from './socket-state';

/** What a frame is to the protocol: a message, or a heartbeat's request or answer. */
export const FrameKind = { Message: 0, Ping: 1, Pong: 2 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Reads the kind of a frame (its data as ws gives or takes it); must be cheap and never throw. */
export type FrameClassifier = (data: unknown, binary: boolean) => FrameKind;

/** A protocol's claim on one socket's frames. */
export interface FrameClaim {
  readonly protocol: string;
  readonly classify: FrameClassifier;
  /** Data frames `WebSocket#send` counted that ws has not written yet (so `written()` skips them). */
  pendingSends: number;
}

export class Frames {
  /** Client connections a protocol recognises by their URL (engine.io's `EIO=` query parameter). */
  private readonly byUrl: { readonly protocol: string; readonly url: RegExp; readonly classify: FrameClassifier }[] = [];

  constructor(private readonly core: TracerCore, private readonly heartbeats: Heartbeats) {}

  /** A protocol claims every client socket whose URL matches `url`. */
  claimUrls(protocol: string, url: RegExp, classify: FrameClassifier): void {
    this.byUrl.push({ protocol, url, classify });
  }

  /** A client socket opened on `url`: claimed if a protocol recognises it. */
  opened(ws: object, url: unknown): void {
    if (typeof url !== 'string') return;
    for (const claim of this.byUrl) {
      if (claim.url.test(url)) {
        this.claim(ws, claim.protocol, claim.classify);
        return;
      }
    }
  }

  /** A protocol takes over `ws`'s frames (from now on; the socket must be tracked). */
  claim(ws: object, protocol: string, classify: FrameClassifier): boolean {
    const state = this.core.sockets.get(ws);
    if (state === undefined) return false;
    state.frames ??= { protocol, classify, pendingSends: 0 };
    return true;
  }

  /** Is `ws` claimed by a protocol? */
  claimed(ws: object): boolean {
    return this.core.sockets.get(ws)?.frames !== undefined;
  }

  /** A frame arrived on a claimed socket: a heartbeat, or a message counted (its listeners run plainly). */
  received(ws: object, state: SocketState, claim: FrameClaim, data: unknown, size: number, binary: boolean): void {
    const kind = safeClassify(claim, data, binary);
    if (kind === FrameKind.Pong) this.heartbeats.pong(ws);
    else if (kind === FrameKind.Message) {
      const metrics = state.info.metrics;
      state.messagesIn++;
      state.bytesIn += size;
      (binary ? metrics.inBinary : metrics.inText).value++;
      metrics.sizeIn.record(size);
    }
  }

  /** `WebSocket#send` on a claimed, open socket: counted (or a heartbeat); never a span of its own. */
  sent(ws: object, state: SocketState, claim: FrameClaim, data: unknown, size: number, binary: boolean): void {
    claim.pendingSends++;
    const kind = safeClassify(claim, data, binary);
    if (kind === FrameKind.Ping) this.heartbeats.ping(ws);
    else if (kind === FrameKind.Message) this.countOut(state, size, binary);
  }

  /** ws wrote a data frame on a claimed socket; those that did not come through `send()` are counted here. */
  written(ws: object, size: number, binary: boolean): void {
    const state = this.core.sockets.get(ws);
    const claim = state?.frames;
    if (state === undefined || claim === undefined) return;
    if (claim.pendingSends > 0) {
      claim.pendingSends--;
      return;
    }
    this.countOut(state, size, binary);
  }

  private countOut(state: SocketState, size: number, binary: boolean): void {
    const metrics = state.info.metrics;
    state.messagesOut++;
    state.bytesOut += size;
    (binary ? metrics.outBinary : metrics.outText).value++;
    metrics.sizeOut.record(size);
  }
}

function safeClassify(claim: FrameClaim, data: unknown, binary: boolean): FrameKind {
  try {
    return claim.classify(data, binary);
  } catch {
    return FrameKind.Message;
  }
}
