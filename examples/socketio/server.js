// The socket.io chat server: a `/chat` namespace with JWT authentication in its connect
// middleware (`io.use`), rooms, acknowledgements, instances scaled out through Redis with
// `@socket.io/redis-adapter`, and graceful shutdown. It contains no tracing code at all: start it
// with `node -r ws-apm/register server.js` (ws-apm also carries a broadcast's trace through Redis).
//
// Environment:
//   JWT_SECRET   HS256 secret (required)
//   PORT         listening port (default 8080; 0 = any free port)
//   HOST         bind address (default 127.0.0.1: this machine only; 0.0.0.0 for every interface,
//                as the Docker image sets)
//   INSTANCE     instance name (default the host name)
//   REDIS_URL    redis://host:6379 to share rooms with every instance on that Redis; unset = this
//                instance alone (socket.io's in-memory adapter)
//   TOKEN_TTL_S  lifetime of tokens issued by GET /token (7200)
//   DEMO_LOGIN   `false` disables GET /token (a stand-in for a real identity provider)
'use strict';
const http = require('node:http');
const os = require('node:os');
const { Server } = require('socket.io');
const { jwtVerify } = require('jose');
const { issueToken } = require('../chat/auth');

const env = process.env;
const SECRET = env.JWT_SECRET || '';
if (!SECRET) {
  console.error('JWT_SECRET is required');
  process.exit(2);
}
const HOST = env.HOST || '127.0.0.1';
const PORT = Number(env.PORT ?? 8080);
const NAME = env.INSTANCE || os.hostname();
const TOKEN_TTL_S = Number(env.TOKEN_TTL_S || 7200);
const DEMO_LOGIN = env.DEMO_LOGIN !== 'false';
const USER_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const ROOM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_TEXT = 1000;

/** Why a token was refused, in words a user can act on (jose's error codes). @param {any} err */
function rejection(err) {
  switch (err && err.code) {
    case 'ERR_JWT_EXPIRED': return 'token expired';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED': return 'token signed with another key';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': return `token claim ${err.claim} invalid`;
    default: return 'token invalid';
  }
}

/** The verified user (JWT `sub`) of a token; throws an Error whose message says why not. @param {unknown} token */
async function verify(token) {
  if (typeof token !== 'string' || token === '') throw new Error('no token');
  let payload;
  try {
    ({ payload } = await jwtVerify(token, new TextEncoder().encode(SECRET), { algorithms: ['HS256'] }));
  } catch (err) {
    throw new Error(rejection(err));
  }
  if (typeof payload.sub !== 'string' || payload.sub === '') throw new Error('token without sub');
  return payload.sub;
}

/** @param {http.ServerResponse} res @param {number} status @param {unknown} body */
function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url || '/', 'http://x');
  if (req.method === 'GET' && url.pathname === '/health') {
    sendJson(res, 200, { status: 'ok', instance: NAME, connections: chat.sockets.size });
  } else if (req.method === 'GET' && url.pathname === '/token' && DEMO_LOGIN) {
    const user = url.searchParams.get('user') || '';
    if (!USER_NAME.test(user)) return sendJson(res, 400, { error: 'user name must be 1-64 letters, digits, _ or -' });
    issueToken(SECRET, user, TOKEN_TTL_S).then((token) => sendJson(res, 200, { token, expiresIn: TOKEN_TTL_S }));
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  }
});

/** @type {import('ioredis').Redis[]} */
const redisClients = [];
/** @type {Partial<import('socket.io').ServerOptions>} */
const options = { serveClient: false };
if (env.REDIS_URL) {
  const { Redis } = require('ioredis');
  const { createAdapter } = require('@socket.io/redis-adapter');
  const pub = new Redis(env.REDIS_URL, { maxRetriesPerRequest: 3 });
  const sub = pub.duplicate();
  for (const c of [pub, sub]) {
    c.on('error', (/** @type {Error} */ err) => console.error(`redis: ${err.message}`));
    redisClients.push(c);
  }
  options.adapter = createAdapter(pub, sub);
}
const io = new Server(server, options);
const chat = io.of('/chat');

// The connect middleware: the token and the room come in the CONNECT packet's `auth` payload
// (socket.io-client's `auth` option). `next(err)` refuses the connect; the client gets
// `connect_error` with err.message.
chat.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  verify(auth.token).then(
    (user) => {
      const room = typeof auth.room === 'string' && ROOM_NAME.test(auth.room) ? auth.room : undefined;
      if (room === undefined) return next(new Error('room must be 1-64 letters, digits, _ or -'));
      socket.data.user = user;
      socket.data.room = room;
      next();
    },
    (/** @type {Error} */ err) => {
      console.log(`REFUSED ${NAME} ${err.message}`);
      next(err);
    },
  );
});

let sequence = 0;
chat.on('connection', (socket) => {
  const { user, room } = socket.data;
  socket.join(room);
  socket.emit('welcome', { instance: NAME, room, user });
  console.log(`JOINED ${NAME} ${user} ${room}`);
  // A chat message goes to the room's other members (on every instance, through the adapter);
  // the sender's ack says it was accepted, with the message's id.
  socket.on('chat message', (text, ack) => {
    const reply = typeof ack === 'function' ? ack : () => undefined;
    if (typeof text !== 'string' || text.length === 0 || text.length > MAX_TEXT) {
      return reply({ ok: false, error: `text must be 1-${MAX_TEXT} characters` });
    }
    const id = `${NAME}-${++sequence}`;
    socket.to(room).emit('chat message', { id, from: user, origin: NAME, text });
    reply({ ok: true, id });
  });
  socket.on('disconnect', (reason) => console.log(`LEFT ${NAME} ${user} ${reason}`));
});

async function main() {
  if (redisClients.length > 0) {
    // The adapter subscribes without waiting: once a command sent after its subscriptions is
    // answered, the subscriptions are in place and broadcasts from other instances arrive.
    await redisClients[1].ping();
  }
  await new Promise((resolve) => server.listen(PORT, HOST, () => resolve(undefined)));
  const { address, port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  console.log(`LISTENING ${NAME} ${port}`);
  console.log(`${NAME}: listening on ${address}:${port}${address === '127.0.0.1' ? ' (this machine only; HOST=0.0.0.0 for other machines)' : ''}`);
  console.log(`READY ${redisClients.length > 0 ? 'redis' : 'memory'}`);

  let stopping = false;
  const shutdown = (/** @type {string} */ signal) => {
    if (stopping) return;
    stopping = true;
    console.log(`SHUTDOWN ${signal}`);
    // Should anything hang, still exit (unref'd: never keeps the process alive by itself).
    setTimeout(() => process.exit(1), 10000).unref();
    // Closes every client connection (clients reconnect, to another instance if there is one),
    // the adapter's subscriptions and the HTTP server.
    io.close(() => {
      Promise.allSettled(redisClients.map((c) => c.quit())).then(() => undefined);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
