/**
 * Real ws servers and clients on 127.0.0.1 port 0, and small event helpers; every
 * wait is on an event, never a timer.
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type WsModule = typeof import('ws');

/** The WebSocket class: ws 8 exports it by name, ws 7 only as the module itself. */
export function socketClass(ws: WsModule): typeof import('ws').WebSocket {
  return ((ws as unknown as { WebSocket?: typeof import('ws').WebSocket }).WebSocket ?? ws) as typeof import('ws').WebSocket;
}

// ws 7 is installed under the alias `ws7`; both expose the same API we use.
export const WS_VERSIONS: ReadonlyArray<readonly [string, () => WsModule]> = [
  ['ws 8', () => require('ws') as WsModule],
  ['ws 7', () => require('ws7') as WsModule],
];

export interface Server {
  readonly wss: import('ws').WebSocketServer;
  readonly port: number;
  readonly url: string;
  readonly http: http.Server;
  close(): Promise<void>;
}

/** An http server with a WebSocketServer attached (options passed through). */
export async function startServer(ws: WsModule, options: Record<string, unknown> = {}): Promise<Server> {
  const server = http.createServer((_req, res) => res.end('ok'));
  const WSS = (ws.WebSocketServer ?? (ws as unknown as { Server: typeof ws.WebSocketServer }).Server);
  const wss = new WSS(options.noServer ? options : { server, ...options });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    wss,
    port,
    url: `ws://127.0.0.1:${port}`,
    http: server,
    async close() {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Open a client and wait for `open`. */
export async function connect(ws: WsModule, url: string, options?: Record<string, unknown>): Promise<import('ws').WebSocket> {
  const client = new (socketClass(ws))(url, options);
  await once(client, 'open');
  return client;
}

/** Wait for the next server-side connection. */
export async function nextConnection(server: Server): Promise<import('ws').WebSocket> {
  const [socket] = await once(server.wss, 'connection');
  return socket;
}

export async function closed(socket: import('ws').WebSocket): Promise<[number, unknown]> {
  if (socket.readyState === 3) return [0, ''];
  const [code, reason] = await once(socket, 'close');
  return [code, reason];
}

/** A raw upgrade request with chosen headers; resolves with the status (101 or the rejection). */
export function rawUpgrade(port: number, path: string, headers: Record<string, string | string[]> = {}): Promise<{ status: number; destroy(): void }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
        ...headers,
      },
    });
    req.on('upgrade', (res, socket) => resolve({ status: res.statusCode ?? 0, destroy: () => socket.destroy() }));
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, destroy: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}
