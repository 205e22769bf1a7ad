// The chat server: plain `ws` with JWT authentication in the upgrade, rooms, a heartbeat,
// pub/sub between instances and graceful shutdown. It contains no tracing code: start it with
// `node -r ws-apm/register server.js`. The only ws-apm calls are the broker hand-off
// (`inject` when publishing, `runWithContext` when delivering) and `setUser`; without ws-apm
// loaded they do nothing.
//
// Environment:
//   JWT_SECRET        HS256 secret (required)
//   PORTS             comma-separated ports, one instance each (default 8080; 0 = any free port).
//                     Several instances in one process share the in-process broker.
//   HOST              bind address (default 127.0.0.1: this machine only; 0.0.0.0 for every
//                     interface, as the Docker image sets)
//   INSTANCE          instance name (default the host name; `<name>-<n>` when PORTS has several)
//   REDIS_URL         redis://host:6379 to fan rooms out through Redis; unset = in-process broker
//   TLS_CERT, TLS_KEY PEM files: serve HTTPS/WSS instead of HTTP/WS
//   HEARTBEAT_MS      ping interval; a socket that missed the previous pong is terminated (30000)
//   TOKEN_TTL_S       lifetime of tokens issued by GET /token (7200)
//   DEMO_LOGIN        `false` disables GET /token (a stand-in for a real identity provider)
//   CHAT_TRACE_URL    trace UI address with a `{traceId}` placeholder (Jaeger:
//                     http://localhost:16686/trace/{traceId}); the page links every message to its trace
//   SHUTDOWN_CLOSE_CODE  close code sent to clients on SIGTERM/SIGINT: 1012 (service restart,
//                     the default) or 1001 (going away)
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const { WebSocketServer, WebSocket } = require('ws');
const { inject, runWithContext, setUser } = require('ws-apm');
const { authenticate, issueToken } = require('./auth');
const { createBroker } = require('./broker');

const env = process.env;
const SECRET = env.JWT_SECRET || '';
if (!SECRET) {
  console.error('JWT_SECRET is required');
  process.exit(2);
}
const HOST = env.HOST || '127.0.0.1';
const PORTS = (env.PORTS || env.PORT || '8080').split(',').map((p) => Number(p.trim()));
const HEARTBEAT_MS = Number(env.HEARTBEAT_MS || 30000);
const TOKEN_TTL_S = Number(env.TOKEN_TTL_S || 7200);
const DEMO_LOGIN = env.DEMO_LOGIN !== 'false';
const SHUTDOWN_CLOSE_CODE = env.SHUTDOWN_CLOSE_CODE === '1001' ? 1001 : 1012;
const SHUTDOWN_GRACE_MS = Number(env.SHUTDOWN_GRACE_MS || 5000);
const ROOM_PATH = /^\/rooms\/([A-Za-z0-9_-]{1,64})$/;
const TLS = env.TLS_CERT && env.TLS_KEY ? { cert: fs.readFileSync(env.TLS_CERT), key: fs.readFileSync(env.TLS_KEY) } : undefined;
const PAGE = fs.readFileSync(path.join(__dirname, 'page.html'));
const USER_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const MESSAGE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const TRACE_URL = traceUrlTemplate(env.CHAT_TRACE_URL);

const broker = createBroker(env.REDIS_URL);

/**
 * @typedef {{ user: string, room: string, alive: boolean }} Peer
 */

/** One server instance: an HTTP(S) server, a WebSocketServer in noServer mode, its rooms. */
function startInstance(/** @type {string} */ name, /** @type {number} */ port) {
  /** @type {Map<import('ws').WebSocket, Peer>} */
  const peers = new Map();
  /** @type {Map<string, Set<import('ws').WebSocket>>} */
  const rooms = new Map();

  const onRequest = (/** @type {http.IncomingMessage} */ req, /** @type {http.ServerResponse} */ res) => {
    const url = new URL(req.url || '/', 'http://x');
    if (req.method === 'GET' && url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    } else if (req.method === 'GET' && url.pathname === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok', instance: name, connections: peers.size }));
    } else if (req.method === 'GET' && url.pathname === '/config') {
      // What the page needs to know about this deployment: where traces are shown, if anywhere.
      sendJson(res, 200, { traceUrl: TRACE_URL });
    } else if (req.method === 'GET' && url.pathname === '/token' && DEMO_LOGIN) {
      const user = url.searchParams.get('user') || '';
      if (!USER_NAME.test(user)) {
        sendJson(res, 400, { error: 'user name must be 1-64 letters, digits, _ or -' });
        return;
      }
      issueToken(SECRET, user, TOKEN_TTL_S).then((token) => sendJson(res, 200, { token, expiresIn: TOKEN_TTL_S }));
    } else if (req.method === 'GET' && url.pathname === '/whoami') {
      // The same check as the upgrade, answerable to a browser: its WebSocket API hides the 401 of a
      // refused handshake (it only sees close code 1006), so the page asks here why it was refused.
      authenticate(SECRET, req).then(
        (user) => sendJson(res, 200, { user }),
        (err) => sendJson(res, 401, { error: rejection(err) }),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  };
  const server = TLS ? https.createServer(TLS, onRequest) : http.createServer(onRequest);
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: 64 * 1024,
    // Browsers offer ['chat', 'access_token.<jwt>']: answer with the real protocol only.
    handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : false),
  });

  // Authentication happens before the upgrade: a bad token gets a plain HTTP 401, no WebSocket.
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const match = ROOM_PATH.exec(new URL(req.url || '/', 'http://x').pathname);
    if (!match) return refuse(socket, 404, 'Not Found');
    authenticate(SECRET, req).then(
      (user) => {
        if (socket.destroyed) return;
        wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req, { user, room: match[1] }));
      },
      (err) => {
        console.log(`REJECTED ${name} ${err.code || err.message}`);
        refuse(socket, 401, 'Unauthorized');
      },
    );
  });

  wss.on('connection', (/** @type {import('ws').WebSocket} */ ws, /** @type {http.IncomingMessage} */ _req, /** @type {{ user: string, room: string }} */ who) => {
    const { user, room } = who;
    setUser(ws, user);
    peers.set(ws, { user, room, alive: true });
    let members = rooms.get(room);
    if (!members) rooms.set(room, (members = new Set()));
    members.add(ws);
    console.log(`CONNECTED ${name} ${user} ${room}`);

    ws.on('pong', () => {
      const peer = peers.get(ws);
      if (peer) peer.alive = true;
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return ws.close(1003, 'text frames only');
      let msg;
      try {
        msg = JSON.parse(String(data));
      } catch {
        return ws.send(JSON.stringify({ type: 'error', error: 'invalid JSON' }));
      }
      if (msg.type === 'chat' && typeof msg.text === 'string') {
        // Fan out through the broker, every instance (this one included) delivers to its members.
        // `ctx` carries this message's trace to the instances that deliver it. `id` (optional, the
        // sender's) comes back with the delivery: the page matches it to the message it queued.
        const id = typeof msg.id === 'string' && MESSAGE_ID.test(msg.id) ? msg.id : undefined;
        broker
          .publish({ room, id, from: user, text: msg.text.slice(0, 2000), origin: name, ctx: inject({}) })
          .catch((err) => ws.send(JSON.stringify({ type: 'error', error: `not delivered: ${err.message}` })));
      } else {
        ws.send(JSON.stringify({ type: 'error', error: `unknown message type ${JSON.stringify(msg.type)}` }));
      }
    });
    ws.on('close', (code) => {
      peers.delete(ws);
      members.delete(ws);
      if (members.size === 0) rooms.delete(room);
      console.log(`DISCONNECTED ${name} ${user} ${code}`);
    });
    ws.on('error', (err) => console.log(`SOCKET_ERROR ${name} ${user} ${err.message}`));
    ws.send(JSON.stringify({ type: 'welcome', instance: name, user, room }));
  });

  // Heartbeat (the isAlive idiom): a socket that did not answer the previous ping is dead.
  const heartbeat = setInterval(() => {
    for (const [ws, peer] of peers) {
      if (!peer.alive) {
        console.log(`TERMINATED ${name} ${peer.user}`);
        ws.terminate();
        continue;
      }
      peer.alive = false;
      ws.ping();
    }
  }, HEARTBEAT_MS);

  /** Deliver a broker message to this instance's members of the room, in the publisher's trace. */
  function deliver(/** @type {import('./broker').RoomMessage} */ m) {
    const members = rooms.get(m.room);
    if (!members) return;
    // `trace` carries the publisher's context on to the receiving clients (their ws-apm reads
    // it with WS_APM_MESSAGE_CONTEXT=trace), so the last hop joins the same trace too.
    // The page shows the trace id of every message from it (and links it to CHAT_TRACE_URL).
    const out = JSON.stringify({ type: 'chat', room: m.room, id: m.id, from: m.from, text: m.text, origin: m.origin, via: name, trace: m.ctx });
    runWithContext(m.ctx || {}, () => {
      for (const ws of members) if (ws.readyState === WebSocket.OPEN) ws.send(out);
    });
  }

  /** Stop accepting, ask every client to reconnect elsewhere, wait for them (bounded). */
  async function stop() {
    clearInterval(heartbeat);
    server.close();
    server.closeIdleConnections();
    const closing = [...peers.keys()].map((ws) => new Promise((resolve) => {
      ws.once('close', resolve);
      ws.close(SHUTDOWN_CLOSE_CODE, SHUTDOWN_CLOSE_CODE === 1012 ? 'server restart' : 'server going away');
    }));
    const grace = setTimeout(() => { for (const ws of peers.keys()) ws.terminate(); }, SHUTDOWN_GRACE_MS);
    await Promise.all(closing);
    clearTimeout(grace);
    wss.close();
  }

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => {
      const { address, port: actual } = /** @type {import('node:net').AddressInfo} */ (server.address());
      console.log(`LISTENING ${name} ${actual} ${TLS ? 'wss' : 'ws'}`);
      console.log(`${name}: listening on ${address}:${actual}${address === '127.0.0.1' ? ' (this machine only; HOST=0.0.0.0 for other machines)' : ''}`);
      resolve({ name, deliver, stop });
    });
  });
}

/** @param {import('node:http').ServerResponse} res @param {number} status @param {unknown} body */
function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

/** Why a token was refused, in words a user can act on (jose's error codes). @param {any} err */
function rejection(err) {
  switch (err && err.code) {
    case 'ERR_JWT_EXPIRED': return 'token expired';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED': return 'token signed with another key';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': return `token claim ${err.claim} invalid`;
    default: return err && err.message === 'no token' ? 'no token' : 'token invalid';
  }
}

/**
 * CHAT_TRACE_URL, when it is an http(s) address with a `{traceId}` placeholder; else null (no links).
 * @param {string | undefined} raw
 */
function traceUrlTemplate(raw) {
  if (!raw) return null;
  try {
    const probe = new URL(raw.split('{traceId}').join('0'));
    if (raw.includes('{traceId}') && (probe.protocol === 'http:' || probe.protocol === 'https:')) return raw;
  } catch {
    // reported below
  }
  console.error(`CHAT_TRACE_URL ignored: expected an http(s) address containing {traceId}, got ${JSON.stringify(raw)}`);
  return null;
}

/** Answer an upgrade request with a plain HTTP error and close the socket. */
function refuse(/** @type {import('node:stream').Duplex} */ socket, /** @type {number} */ status, /** @type {string} */ text) {
  if (socket.destroyed) return;
  const body = `${status} ${text}\n`;
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n` +
      (status === 401 ? 'WWW-Authenticate: Bearer\r\n' : '') + `\r\n${body}`,
  );
}

async function main() {
  const base = env.INSTANCE || os.hostname();
  const instances = await Promise.all(PORTS.map((port, i) => startInstance(PORTS.length > 1 ? `${base}-${i + 1}` : base, port)));
  await broker.subscribe((m) => {
    for (const instance of instances) instance.deliver(m);
  });
  console.log(`READY ${env.REDIS_URL ? 'redis' : 'memory'}`);

  let stopping = false;
  const shutdown = async (/** @type {string} */ signal) => {
    if (stopping) return;
    stopping = true;
    console.log(`SHUTDOWN ${signal}`);
    // Should anything hang, still exit (unref'd: never keeps the process alive by itself).
    setTimeout(() => process.exit(1), SHUTDOWN_GRACE_MS + 5000).unref();
    await Promise.all(instances.map((i) => i.stop()));
    await broker.close();
    // Nothing left to run: the process ends by itself, after ws-apm's exit flush.
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
