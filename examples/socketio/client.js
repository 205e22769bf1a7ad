// The socket.io chat client (Node): joins a room of the `/chat` namespace, sends a message every
// SEND_EVERY_MS and waits for its ack, prints what it receives. Reconnection is socket.io-client's
// own (exponential backoff with jitter); each attempt fetches a fresh token (the `auth` callback
// runs on every connect). A connect the server refused (`connect_error` from its middleware) is
// not retried by socket.io-client: this client retries it itself, with the same backoff.
// No tracing code: start it with `node -r ws-apm/register client.js` to trace it too.
//
// Environment:
//   SERVER_URL       http(s)://host:port of an instance (default http://127.0.0.1:8080)
//   TOKEN_URL        where tokens come from (default: the server's /token)
//   ROOM (lobby), CHAT_USER (user-<pid>)
//   SEND_EVERY_MS    0 = never send (default 5000); MESSAGES: stop sending after that many (0 = no limit)
//   BACKOFF_BASE_MS (500), BACKOFF_MAX_MS (30000)
//   DURATION_MS      leave after that long (0 = run until SIGTERM/SIGINT)
'use strict';
const { io } = require('socket.io-client');

const env = process.env;
const SERVER_URL = env.SERVER_URL || 'http://127.0.0.1:8080';
const ROOM = env.ROOM || 'lobby';
const USER = env.CHAT_USER || `user-${process.pid}`;
const SEND_EVERY_MS = Number(env.SEND_EVERY_MS ?? 5000);
const MESSAGES = Number(env.MESSAGES || 0);
const BACKOFF_BASE_MS = Number(env.BACKOFF_BASE_MS || 500);
const BACKOFF_MAX_MS = Number(env.BACKOFF_MAX_MS || 30000);
const DURATION_MS = Number(env.DURATION_MS || 0);

/** A fresh token for USER from the token endpoint. */
async function fetchToken() {
  const url = new URL(env.TOKEN_URL || `${SERVER_URL.replace(/\/$/, '')}/token`);
  url.searchParams.set('user', USER);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`token endpoint answered ${res.status}`);
  return /** @type {{ token: string }} */ (await res.json()).token;
}

const socket = io(`${SERVER_URL.replace(/\/$/, '')}/chat`, {
  // WebSocket only: scaled out behind a load balancer, long-polling would need sticky sessions.
  transports: ['websocket'],
  auth: (cb) => {
    fetchToken().then(
      (token) => cb({ token, room: ROOM }),
      (err) => {
        console.log(`ERROR ${USER} token: ${err.message}`);
        cb({ room: ROOM });
      },
    );
  },
  reconnectionDelay: BACKOFF_BASE_MS,
  reconnectionDelayMax: BACKOFF_MAX_MS,
});

let instance = '?';
let connections = 0;
let sent = 0;
let refusals = 0;
let stopped = false;
/** @type {NodeJS.Timeout | undefined} */ let retryTimer;

socket.on('welcome', (/** @type {{ instance: string }} */ m) => {
  instance = m.instance;
  connections += 1;
  refusals = 0;
  console.log(`OPEN ${USER} instance=${instance} connection=${connections}`);
});
socket.on('chat message', (/** @type {{ from: string, origin: string, text: string }} */ m) => {
  console.log(`GOT ${USER} from=${m.from} origin=${m.origin} via=${instance} text=${JSON.stringify(m.text)}`);
});
socket.on('connect_error', (err) => {
  if (socket.active) {
    // A transport failure: socket.io-client retries by itself.
    console.log(`RECONNECT ${USER} (${err.message})`);
    return;
  }
  // Refused by the server's middleware: socket.io-client does not retry that; retry with a new token.
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** refusals++);
  const delay = Math.round(cap / 2 + Math.random() * (cap / 2));
  console.log(`REFUSED ${USER} ${err.message} (retry in ${delay}ms)`);
  if (!stopped) retryTimer = setTimeout(() => socket.connect(), delay);
});
socket.on('disconnect', (reason) => {
  console.log(`CLOSED ${USER} ${reason}`);
  // Disconnected by the server on purpose: socket.io-client does not reconnect by itself then.
  if (reason === 'io server disconnect' && !stopped) socket.connect();
});
socket.io.on('reconnect_attempt', (attempt) => console.log(`RECONNECT ${USER} attempt=${attempt}`));

async function say() {
  if (MESSAGES > 0 && sent >= MESSAGES) return clearInterval(sendTimer);
  if (!socket.connected) return;
  sent += 1;
  const text = `${USER} says #${sent}`;
  try {
    const ack = await socket.timeout(5000).emitWithAck('chat message', text);
    console.log(ack.ok ? `ACKED ${USER} id=${ack.id}` : `NACKED ${USER} ${ack.error}`);
  } catch {
    console.log(`UNACKED ${USER} ${JSON.stringify(text)}`);
  }
}
const sendTimer = SEND_EVERY_MS > 0 ? setInterval(() => void say(), SEND_EVERY_MS) : undefined;

const stop = () => {
  stopped = true;
  clearTimeout(retryTimer);
  clearInterval(sendTimer);
  socket.disconnect();
  // Nothing left to run: the process ends (after ws-apm's flush).
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (DURATION_MS > 0) setTimeout(stop, DURATION_MS);
