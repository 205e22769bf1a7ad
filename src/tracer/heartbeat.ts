/**
 * Heartbeats: the ping → pong round trip of a tracked socket as a histogram, and (opt-in,
 * `WS_APM_TRACE_HEARTBEAT`) as a `WS PING {route}` operation with its real start time.
 */
import { performance } from 'node:perf_hooks';
import * as S from '../semconv';
import { now, type TracerCore } from './core';

export class Heartbeats {
  constructor(private readonly core: TracerCore) {}

  ping(ws: object): void {
    const state = this.core.sockets.get(ws);
    if (state !== undefined && state.pingAt === 0) state.pingAt = performance.now();
  }

  pong(ws: object): void {
    const core = this.core;
    const state = core.sockets.get(ws);
    if (state === undefined || state.pingAt === 0) return;
    const rtt = performance.now() - state.pingAt;
    state.pingAt = 0;
    state.info.metrics.heartbeat.record(rtt / 1000);
    if (!core.config.traceHeartbeat || state.ignored) return;
    const op = core.adapter.start({
      name: state.info.pingName,
      role: 'heartbeat',
      kind: 'internal',
      side: state.side,
      parent: state.parent,
      links: state.links,
      attributes: core.summaryAttributes(state, { [S.ATTR_WS_HEARTBEAT_RTT_MS]: rtt }),
      startTime: now() - rtt,
      route: state.info.route,
      serverAddress: state.serverAddress,
      serverPort: state.serverPort,
      handshakeTraceId: state.handshakeTraceId,
    });
    core.adapter.end(op, {});
  }
}
