/**
 * Frames of a socket that a protocol over ws (src/protocols) has claimed: the protocol records
 * its own operations where it dispatches (an event, not a frame), so here every frame is only
 * counted — or, when the protocol says it is one of its heartbeats, measured as a heartbeat and
 * never counted as a message, never traced, never charged to the rate limit. Also counts the
 * frames ws writes without `WebSocket#send` (engine.io writes a broadcast's pre-encoded frame
 * through ws's sender), so the out-count is every data frame ws writes. Where the patch layer can
 * read every frame of a socket as ws writes it (a server's, uncompressed), the socket's sends are
 * not looked at all: each frame is counted, or told a heartbeat, once, at write.
 */
import { log } from '../logger';
import type { Traced } from './boundary';
import type { Channels } from './channels';
import type { TracerCore } from './core';
import type { Events } from './events';
import type { Heartbeats } from './heartbeat';
import type { SocketState } from './socket-state';

/** What a frame is to the protocol: a message, or a heartbeat's request or answer. */
export const FrameKind = { Message: 0, Ping: 1, Pong: 2 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Reads the kind of a frame (its data as ws gives or takes it); must be cheap and never throw. */
export type FrameClassifier = (data: unknown, binary: boolean) => FrameKind;

/**
 * A protocol's message that belongs to one of its named events (graphql-ws: a `next` of
 * operation `OnMessage`): counted in `websocket.messages` under its name and protocol type;
 * with `operation`, a received one runs its listeners as `WS RECEIVE {route} {name}` and a sent
 * one is `WS SEND {route} {name}` under the active operation. Readers return the same object
 * for the same meaning (it is not copied).
 */
export interface FrameMeaning {
  /** Capped by the protocol (`tracer.events.name`). */
  readonly name: string;
  /** The protocol's message type, from a fixed set (`next`, `error`, `complete`, `subscribe`). */
  readonly message: string;
  readonly operation: boolean;
}

/** Reads a frame of `ws` (received, or sent when `out`): a kind, or a meaning (a message); must never throw into the app (guarded). */
export type FrameReader = (ws: object, data: unknown, binary: boolean, out: boolean) => FrameKind | FrameMeaning;

/** A protocol's claim on one socket's frames. */
export interface FrameClaim {
  readonly protocol: string;
  readonly classify: FrameClassifier;
  /** Instead of `classify`, for a protocol that names its messages (and then runs them as events of the socket's channel). */
  readonly read?: FrameReader;
  /** Data frames `WebSocket#send` counted that ws has not written yet (so `written()` skips them). */
  pendingSends: number;
  /** Every frame is read at write (`written()`), and `send()` never reaches the tracer. */
  atWrite: boolean;
}

export class Frames {
  /** Client connections a protocol recognises by their URL (engine.io's `EIO=` query parameter). */
  private readonly byUrl: { readonly protocol: string; readonly url: RegExp; readonly classify: FrameClassifier }[] = [];

  /** Protocols that sockets choose by their negotiated subprotocol (graphql-ws), or every socket when `subprotocol` is undefined. */
  private readonly bySubprotocol: { readonly protocol: string; readonly subprotocol: string | undefined; readonly read: FrameReader }[] = [];
  private events: Events | undefined;
  private channels: Channels | undefined;

  constructor(private readonly core: TracerCore, private readonly heartbeats: Heartbeats) {}

  /** The tracer's protocol parts (built after this one): a named frame's operation is an event of the socket's channel. */
  attach(events: Events, channels: Channels): void {
    this.events = events;
    this.channels = channels;
  }

  /**
   * A protocol claims every tracked socket, server or client, whose negotiated subprotocol is
   * `subprotocol` (every socket when undefined); the socket is its own channel.
   */
  claimSubprotocol(protocol: string, subprotocol: string | undefined, read: FrameReader): void {
    this.bySubprotocol.push({ protocol, subprotocol, read });
    this.core.onTrack = (ws) => {
      try {
        this.tracked(ws);
      } catch (err) {
        log.fault('ws-apm frames', err);
      }
    };
  }

  /** A socket is tracked: claimed if a protocol recognises its subprotocol (a client's is known once ws finished its upgrade). */
  private tracked(ws: object): void {
    const subprotocol = (ws as { protocol?: unknown }).protocol;
    if (typeof subprotocol === 'string' && subprotocol !== '') this.bySubprotocolOf(ws, subprotocol);
    else if (this.core.sockets.get(ws)?.side === 'client') {
      // ws sets a client's subprotocol right after its `upgrade` event, before any frame is read.
      queueMicrotask(() => {
        try {
          const late = (ws as { protocol?: unknown }).protocol;
          this.bySubprotocolOf(ws, typeof late === 'string' ? late : '');
        } catch {
          // A socket we cannot read is left to the plain ws path.
        }
      });
    } else this.bySubprotocolOf(ws, '');
  }

  private bySubprotocolOf(ws: object, subprotocol: string): void {
    for (const entry of this.bySubprotocol) {
      if (entry.subprotocol !== undefined && entry.subprotocol !== subprotocol) continue;
      const state = this.core.sockets.get(ws);
      if (state === undefined || state.frames !== undefined) return;
      state.frames = { protocol: entry.protocol, classify: readerKind, read: entry.read, pendingSends: 0, atWrite: false };
      this.channels?.adopt(ws, entry.protocol, state);
      return;
    }
  }

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
    state.frames ??= { protocol, classify, pendingSends: 0, atWrite: false };
    return true;
  }

  /**
   * From now on every frame of claimed `ws` is read where ws writes it, and its sends are not seen
   * here. False (nothing changes) for a claim that reads its sends (a protocol's named messages).
   */
  readAtWrite(ws: object): boolean {
    const claim = this.core.sockets.get(ws)?.frames;
    if (claim === undefined || claim.read !== undefined) return false;
    claim.atWrite = true;
    return true;
  }

  /** Is `ws` claimed by a protocol? */
  claimed(ws: object): boolean {
    return this.core.sockets.get(ws)?.frames !== undefined;
  }

  /**
   * A frame arrived on a claimed socket: a heartbeat, or a message counted. Its listeners run
   * plainly, except a protocol's named operation message (graphql-ws's `subscribe`), whose
   * event run is returned for the boundary to run them in.
   */
  received(ws: object, state: SocketState, claim: FrameClaim, data: unknown, size: number, binary: boolean): Traced | undefined {
    const read = claim.read !== undefined ? safeRead(claim.read, ws, data, binary, false) : safeClassify(claim, data, binary);
    if (read === FrameKind.Pong) this.heartbeats.pong(ws);
    else if (read !== FrameKind.Ping) {
      const metrics = state.info.metrics;
      state.messagesIn++;
      state.bytesIn += size;
      if (typeof read === 'object') metrics.protocolMessages(false, binary, read.name, read.message).value++;
      else (binary ? metrics.inBinary : metrics.inText).value++;
      metrics.sizeIn.record(size);
      if (typeof read === 'object' && read.operation && this.events !== undefined) return this.events.received(ws, read.name, undefined);
    }
    return undefined;
  }

  /**
   * `WebSocket#send` on a claimed, open socket: counted (or a heartbeat). No span of its own,
   * except a protocol's named operation message (`WS SEND {route} {name}`, returned to be
   * ended when the write completes).
   */
  sent(ws: object, state: SocketState, claim: FrameClaim, data: unknown, size: number, binary: boolean): Traced | undefined {
    claim.pendingSends++;
    const read = claim.read !== undefined ? safeRead(claim.read, ws, data, binary, true) : safeClassify(claim, data, binary);
    return this.outgoing(ws, state, read, size, binary);
  }

  /** An outgoing frame of `ws`, read as `read` (at send or at write): a heartbeat, or a message counted. */
  private outgoing(ws: object, state: SocketState, read: FrameKind | FrameMeaning, size: number, binary: boolean): Traced | undefined {
    if (read === FrameKind.Ping) this.heartbeats.ping(ws);
    else if (typeof read === 'object') {
      this.countOut(state, size, binary, state.info.metrics.protocolMessages(true, binary, read.name, read.message));
      if (read.operation && this.events !== undefined) return this.events.sendStarted(ws, read.name);
    } else if (read === FrameKind.Message) this.countOut(state, size, binary);
    return undefined;
  }

  /**
   * ws wrote a data frame on a claimed socket: read here when the claim says so (its sends
   * were not seen), else counted only if it did not come through `send()`.
   */
  written(ws: object, size: number, binary: boolean, payload: unknown): void {
    const state = this.core.sockets.get(ws);
    const claim = state?.frames;
    if (state === undefined || claim === undefined) return;
    if (claim.atWrite) {
      this.outgoing(ws, state, safeClassify(claim, payload, binary), size, binary);
      return;
    }
    if (claim.pendingSends > 0) {
      claim.pendingSends--;
      return;
    }
    this.countOut(state, size, binary);
  }

  private countOut(state: SocketState, size: number, binary: boolean, cell?: { value: number }): void {
    const metrics = state.info.metrics;
    state.messagesOut++;
    state.bytesOut += size;
    (cell ?? (binary ? metrics.outBinary : metrics.outText)).value++;
    metrics.sizeOut.record(size);
  }
}

/** The classifier of a claim that has a reader (never called: `read` is). */
function readerKind(): FrameKind {
  return FrameKind.Message;
}

function safeRead(read: FrameReader, ws: object, data: unknown, binary: boolean, out: boolean): FrameKind | FrameMeaning {
  try {
    return read(ws, data, binary, out);
  } catch {
    return FrameKind.Message;
  }
}

function safeClassify(claim: FrameClaim, data: unknown, binary: boolean): FrameKind {
  try {
    return claim.classify(data, binary);
  } catch {
    return FrameKind.Message;
  }
}
