/**
 * Client connects: `WS CONNECT {host}{route}` (CLIENT) as a child of the active operation,
 * injected into the upgrade request so the server's handshake is its child; it ends when
 * the server answers (101, another status), the request fails, or the socket closes
 * first. Once upgraded, the socket is tracked like a server socket (`websocket.side=client`).
 */
import * as S from '../semconv';
import type { Attributes } from './adapter';
import { ACTIVE, connectionAttributes, type TracerCore } from './core';
import type { Endpoints, RouteInfo } from './socket-state';

/** Where a client connects to, as plain values. */
export interface ConnectTarget {
  readonly secure: boolean;
  readonly hostname: string;
  readonly port: number;
  /** Path and query of the request. */
  readonly path: string;
}

/** A client connect between the upgrade request and the socket being opened. */
export interface PendingConnect extends Endpoints {
  readonly op: unknown;
  readonly info: RouteInfo;
  readonly ignored: boolean;
  readonly ref: unknown;
  settled: boolean;
}

/** How the upgrade request ended. */
export type ConnectResult =
  | { readonly upgraded: true; readonly status: number }
  | { readonly upgraded: false; readonly status?: number; readonly error?: unknown };


export class Clients {
  constructor(private readonly core: TracerCore) {}

  begin(target: ConnectTarget): PendingConnect {
    const core = this.core;
    const { secure, hostname, port, path } = target;
    const route = core.routes.route(path);
    const info = core.routeInfo(route, 'client');
    const ignored = core.routes.isIgnored(route, path);
    const host = `${hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname}:${port}`;
    const ends: Endpoints = { peerAddress: hostname, peerPort: port, serverAddress: hostname, serverPort: port };
    const urlPath = path.split('?')[0];
    let op: unknown;
    if (!ignored) {
      const attributes: Attributes = {
        ...connectionAttributes('client', route, ends),
        [S.ATTR_URL_FULL]: core.redactor.redact(`${secure ? 'wss' : 'ws'}://${host}${path}`),
        [S.ATTR_URL_SCHEME]: secure ? 'wss' : 'ws',
        [S.ATTR_URL_PATH]: urlPath,
        [S.ATTR_WS_ROUTE]: route,
      };
      op = core.adapter.start({
        name: `${S.OP_CONNECT} ${host}${route}`,
        role: 'client-connect',
        kind: 'client',
        side: 'client',
        parent: ACTIVE,
        attributes,
        route,
        serverAddress: hostname,
        serverPort: port,
        urlPath,
      });
    }
    return { op, info, ignored, ...ends, ref: core.adapter.ref(op), settled: false };
  }

  /** Trace context of the connect, for the upgrade request's headers (empty when not traced). */
  headers(pending: PendingConnect): Record<string, string> {
    const carrier: Record<string, string> = {};
    if (pending.op !== undefined) this.core.adapter.inject(pending.op, carrier);
    return carrier;
  }

  /** The upgrade request ended; first result wins. */
  settled(pending: PendingConnect, result: ConnectResult): void {
    if (pending.settled) return;
    pending.settled = true;
    const adapter = this.core.adapter;
    if (result.upgraded) {
      adapter.end(pending.op, { attributes: { [S.ATTR_HTTP_RESPONSE_STATUS_CODE]: result.status } });
    } else if (result.error !== undefined) {
      const error = result.error;
      adapter.end(pending.op, { error, attributes: { [S.ATTR_ERROR_TYPE]: error instanceof Error ? error.name : 'error' } });
    } else if (result.status !== undefined) {
      adapter.end(pending.op, {
        failed: true,
        attributes: { [S.ATTR_HTTP_RESPONSE_STATUS_CODE]: result.status, [S.ATTR_ERROR_TYPE]: String(result.status) },
      });
    } else {
      adapter.end(pending.op, { failed: true, attributes: { [S.ATTR_ERROR_TYPE]: 'connection_closed' } });
    }
  }

  /** The socket is open: track it like a server socket. */
  opened(ws: object, pending: PendingConnect): void {
    if (this.core.sockets.has(ws)) return;
    this.core.track(ws, 'client', pending.info, pending.ignored, pending, pending.ref);
  }
}
