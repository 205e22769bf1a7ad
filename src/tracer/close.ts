/**
 * Closes: who began the close (this side, the peer, or the network), then on the socket's
 * `close` event the connection's summary (`WS CLOSE {route}`: code, reason, initiator,
 * duration, messages and bytes both ways) and its metrics; the socket is forgotten and the
 * app's close listeners run inside the summary operation.
 */
import * as S from '../semconv';
import { log } from '../logger';
import type { Attributes, Side } from './adapter';
import { RunMode } from './boundary';
import { now, OperationRun, type TracerCore } from './core';

/** The part of ws's `_socket` (its TCP socket: private, but the same in ws 7 and 8) used here. */
interface RawSocket {
  readonly destroyed?: boolean;
  once(event: 'close', listener: () => void): unknown;
}

const MAX_CLOSE_REASON = 123; // the protocol's own limit for a close reason
const NO_STATUS = 1005;
const ABNORMAL = 1006;

export class Closes {
  /** Sockets whose message listener threw: ws will never emit their `close`. */
  private readonly stalled = new WeakSet<object>();

  constructor(private readonly core: TracerCore) {}

  /**
   * A message listener of `ws` threw. ws's receiver stops at that message (the write that
   * delivered it never completes), so ws never emits this socket's `close`, even once its TCP
   * socket is gone, and keeps it in `wss.clients`. Without this, its WS CLOSE would never be
   * recorded and `active_connections` would count it forever. So its summary is made when
   * the TCP socket closes (one turn later: a `close` ws does emit, for a message the app
   * emitted itself, comes first and is the one recorded). The app's close listeners are not
   * run: ws never calls them.
   */
  listenerThrew(ws: object): void {
    try {
      if (this.stalled.has(ws) || !this.core.sockets.has(ws)) return;
      const socket = (ws as { _socket?: RawSocket })._socket;
      if (socket === undefined || socket === null || typeof socket.once !== 'function') return;
      this.stalled.add(ws);
      const gone = (): void => {
        setImmediate(() => {
          try {
            // No close listeners to run: the summary operation starts and ends here.
            const run = this.core.sockets.has(ws) ? this.closeStart(ws, ABNORMAL, undefined) : undefined;
            if (run !== undefined) run.ended(false, undefined);
          } catch (err) {
            log.fault('ws-apm close', err);
          }
        });
      };
      if (socket.destroyed === true) gone();
      else socket.once('close', gone);
    } catch (err) {
      log.fault('ws-apm close', err);
    }
  }

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

  /**
   * The socket's `close` event, with its code and reason: the connection's metrics, and its
   * summary operation for the app's close listeners to run under (undefined: none).
   */
  closeStart(ws: object, code: unknown, reason: unknown): OperationRun | undefined {
    const core = this.core;
    const state = core.sockets.get(ws);
    if (state === undefined) return undefined;
    core.sockets.delete(ws);
    const closeCode = typeof code === 'number' ? code : NO_STATUS;
    const broken = state.terminated || closeCode === ABNORMAL;
    const metrics = state.info.metrics;
    const durationMs = performance.now() - state.openedAt;
    if (state.counted) {
      state.counted = false;
      metrics.active.value--;
    }
    if (broken) metrics.broken.value++;
    metrics.duration(closeCode).record(durationMs / 1000);
    if (state.ignored) return undefined;
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
    return op === undefined ? undefined : new OperationRun(core.adapter, op, RunMode.Active, attributes);
  }
}
