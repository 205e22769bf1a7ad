/**
 * Closes: who began the close (this side, the peer, or the network), then on the socket's
 * `close` event the connection's summary (`WS CLOSE {route}`: code, reason, initiator,
 * duration, messages and bytes both ways) and its metrics; the socket is forgotten and the
 * app's close listeners run inside the summary operation.
 */
import * as S from '../semconv';
import type { Attributes, Side } from './adapter';
import { now, runAndEnd, type TracerCore } from './core';

type AnyFn = (...args: any[]) => any;

const MAX_CLOSE_REASON = 123; // the protocol's own limit for a close reason
const NO_STATUS = 1005;
const ABNORMAL = 1006;

export class Closes {
  constructor(private readonly core: TracerCore) {}

  /** `close()` was called: by the app (local) or by ws answering the peer's close frame (remote). */
  closing(ws: object, byPeer: boolean): void {
    const state = this.core.sockets.get(ws);
    if (state === undefined || state.closeBy !== undefined) return;
    state.closeBy = byPeer ? 'remote' : 'local';
    state.closeStartedAt = now();
  }

  /** `terminate()`: the connection is dropped without a close handshake. */
  terminating(ws: object): void {
    const state = this.core.sockets.get(ws);
    if (state === undefined) return;
    state.terminated = true;
    if (state.closeBy === undefined) {
      state.closeBy = 'local';
      state.closeStartedAt = now();
    }
  }

  /** The socket's `close` event (`emit` with `args`), with its code and reason. */
  closed(ws: object, code: unknown, reason: unknown, emit: AnyFn, args: unknown[]): unknown {
    const core = this.core;
    const state = core.sockets.get(ws);
    if (state === undefined) return emit.apply(ws, args);
    core.sockets.delete(ws);
    const closeCode = typeof code === 'number' ? code : NO_STATUS;
    const broken = state.terminated || closeCode === ABNORMAL;
    const metrics = state.info.metrics;
    const durationMs = now() - state.openedAt;
    if (state.counted) {
      state.counted = false;
      metrics.active.value--;
    }
    if (broken) metrics.broken.value++;
    metrics.duration(closeCode).record(durationMs / 1000);
    if (state.ignored) return emit.apply(ws, args);
    const other: Side = state.side === 'server' ? 'client' : 'server';
    const initiator =
      state.closeBy === 'local' ? state.side : state.closeBy === 'remote' ? other : closeCode === ABNORMAL ? 'network' : other;
    const reasonText = reason === undefined || reason === null ? '' : String(reason).slice(0, MAX_CLOSE_REASON);
    const attributes: Attributes = {
      [S.ATTR_WS_CLOSE_CODE]: closeCode,
      [S.ATTR_WS_CLOSE_REASON]: reasonText === '' ? undefined : reasonText,
      [S.ATTR_WS_CLOSE_INITIATOR]: initiator,
      [S.ATTR_WS_CONNECTION_BROKEN]: broken,
      [S.ATTR_WS_CONNECTION_DURATION_MS]: Math.round(durationMs),
      [S.ATTR_WS_MESSAGES_IN]: state.messagesIn,
      [S.ATTR_WS_MESSAGES_OUT]: state.messagesOut,
      [S.ATTR_WS_BYTES_IN]: state.bytesIn,
      [S.ATTR_WS_BYTES_OUT]: state.bytesOut,
    };
    const op = core.adapter.start({
      name: state.info.closeName,
      role: 'close',
      kind: 'internal',
      side: state.side,
      parent: state.parent,
      links: state.links,
      attributes: core.summaryAttributes(state, attributes),
      startTime: state.closeBy !== undefined ? state.closeStartedAt : undefined,
      route: state.info.route,
      serverAddress: state.serverAddress,
      serverPort: state.serverPort,
      handshakeTraceId: state.handshakeTraceId,
    });
    return runAndEnd(core, op, emit, ws, args, attributes);
  }
}
