/**
 * Server handshakes: `WS CONNECT {route}` continues the caller's trace (W3C headers, or
 * the opt-in query parameter for browsers), holds the app's upgrade listeners and its
 * connection callback, and ends accepted (101) or rejected (the status the app or ws
 * wrote, or the socket closing first). The patch layer reports each step with plain values.
 */
import * as S from '../semconv';
import type { Attributes, Carrier } from './adapter';
import { RunMode } from './boundary';
import { connectionAttributes, OperationRun, ROOT, type TracerCore } from './core';
import { queryParam } from './naming';
import { first, sanitizeCarrier } from './propagation';
import type { Endpoints, RouteInfo } from './socket-state';

/** The upgrade request, as plain values. */
export interface UpgradeRequest {
  readonly url: string;
  readonly headers: Carrier;
  readonly peerAddress: string | undefined;
  readonly peerPort: number | undefined;
  readonly encrypted: boolean;
}

/** A server handshake in progress (an upgrade request the server is answering). */
export interface ServerHandshake extends Endpoints {
  readonly op: unknown;
  readonly info: RouteInfo;
  readonly ignored: boolean;
  settled: boolean;
}

export class Handshakes {
  constructor(private readonly core: TracerCore) {}

  /** An upgrade request reached the server: start `WS CONNECT {route}`. */
  begin(req: UpgradeRequest): ServerHandshake {
    const core = this.core;
    const url = req.url;
    const route = core.routes.route(url);
    const info = core.routeInfo(route, 'server');
    const ignored = core.routes.isIgnored(route, url);
    const q = url.indexOf('?');
    const urlPath = q === -1 ? url : url.slice(0, q);
    const host = first(req.headers.host);
    const ends: Endpoints = {
      peerAddress: req.peerAddress,
      peerPort: req.peerPort,
      // From the Host header: socket.localPort would make Node cache a sockname object on
      // every socket for as long as it lives.
      serverAddress: host?.replace(/:\d+$/, ''),
      serverPort: hostPort(host, req.encrypted),
    };
    let op: unknown;
    if (!ignored) {
      const attributes: Attributes = {
        ...connectionAttributes('server', route, ends),
        [S.ATTR_URL_PATH]: urlPath,
        [S.ATTR_URL_QUERY]: q === -1 ? undefined : core.redactor.redact(url.slice(q)).slice(1),
        [S.ATTR_URL_SCHEME]: req.encrypted ? 'wss' : 'ws',
        [S.ATTR_SERVER_ADDRESS]: ends.serverAddress,
        [S.ATTR_SERVER_PORT]: ends.serverPort,
        [S.ATTR_CLIENT_ADDRESS]: req.peerAddress,
        [S.ATTR_USER_AGENT_ORIGINAL]: first(req.headers['user-agent']),
        [S.ATTR_WS_ROUTE]: route,
      };
      const param = core.config.propagationQueryParam;
      const fromQuery = param ? queryParam(url, param) : undefined;
      const carrier = sanitizeCarrier(req.headers, core.adapter.propagationHeaders, fromQuery);
      op = core.adapter.start({
        name: `${S.OP_CONNECT} ${route}`,
        role: 'connect',
        kind: 'server',
        side: 'server',
        parent: carrier ? { type: 'remote', carrier } : ROOT,
        attributes,
        route,
        serverAddress: ends.serverAddress,
        serverPort: ends.serverPort,
        urlPath,
      });
    }
    return { op, info, ignored, ...ends, settled: false };
  }

  /**
   * ws completed the upgrade: from here on `ws` is tracked, and the connection callback
   * runs inside WS CONNECT (the returned run), which ends when the callback returns.
   */
  accept(hs: ServerHandshake, ws: object): OperationRun | undefined {
    if (hs.settled) return undefined;
    hs.settled = true;
    const core = this.core;
    const state = core.track(ws, 'server', hs.info, hs.ignored, hs, core.adapter.ref(hs.op));
    state.counted = true;
    hs.info.metrics.accepted.value++;
    hs.info.metrics.active.value++;
    return hs.op === undefined ? undefined : new OperationRun(core.adapter, hs.op, RunMode.Active, ACCEPTED);
  }

  /**
   * A 101 was written but no instrumented ws took the socket (a copy of ws ws-apm never saw,
   * or another WebSocket library): accepted, though its messages and close are not tracked.
   */
  acceptedUntracked(hs: ServerHandshake): void {
    if (hs.settled) return;
    hs.settled = true;
    hs.info.metrics.accepted.value++;
    this.core.adapter.end(hs.op, { attributes: ACCEPTED });
  }

  /** The app or ws answered with a status other than 101, or the socket closed first. */
  rejected(hs: ServerHandshake, status: number | undefined): void {
    if (hs.settled) return;
    hs.settled = true;
    hs.info.metrics.rejected.value++;
    this.core.adapter.end(hs.op, {
      failed: true,
      attributes: {
        [S.ATTR_HTTP_RESPONSE_STATUS_CODE]: status,
        [S.ATTR_WS_CONNECTION_OUTCOME]: 'rejected',
        [S.ATTR_ERROR_TYPE]: status !== undefined ? String(status) : 'connection_closed',
      },
    });
  }
}

const ACCEPTED: Attributes = Object.freeze({ [S.ATTR_HTTP_RESPONSE_STATUS_CODE]: 101 });


/** The port of a Host header (`h:8080`, `[::1]:8080`), else the scheme's default. */
function hostPort(host: string | undefined, encrypted: boolean): number {
  const m = typeof host === 'string' ? /:(\d+)$/.exec(host) : null;
  return m ? Number(m[1]) : encrypted ? 443 : 80;
}
