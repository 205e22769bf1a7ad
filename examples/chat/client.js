// The chat client (Node): joins a room, sends a message every SEND_EVERY_MS, prints what it
// receives. Reconnects with exponential backoff and full jitter after any unexpected close
// (server restart, 1006, refused handshake), and refreshes its connection every REFRESH_MS with
// a fresh token (make-before-break: the new connection is open before the old one is closed).
// No tracing code: start it with `node -r ws-apm/register client.js` to trace it too.
//
// Environment:
//   SERVER_URLS      comma-separated ws(s)://host:port (default ws://127.0.0.1:8080); client i starts
//                    on URL i mod n and moves to the next URL after each failed attempt
//   TOKEN_URL        where tokens come from (default: the server's /token)
//   ROOM (lobby), CHAT_USER (user-<pid>), CLIENTS (1; several: users CHAT_USER-1..n in this process)
//   SEND_EVERY_MS    0 = never send (default 5000); MESSAGES: stop sending after that many (0 = no limit)
//   REFRESH_MS       connection refresh period (default 3600000, one hour)
//   BACKOFF_BASE_MS (500), BACKOFF_MAX_MS (30000)
//   DURATION_MS      leave after that long (0 = run until SIGTERM/SIGINT)
'use strict';
const { WebSocket } = require('ws');

const env = process.env;
const URLS = (env.SERVER_URLS || 'ws://127.0.0.1:8080').split(',').map((u) => u.trim()).filter(Boolean);
const ROOM = env.ROOM || 'lobby';
const USER = env.CHAT_USER || `user-${process.pid}`;
const CLIENTS = Number(env.CLIENTS || 1);
const SEND_EVERY_MS = Number(env.SEND_EVERY_MS ?? 5000);
const MESSAGES = Number(env.MESSAGES || 0);
const REFRESH_MS = Number(env.REFRESH_MS || 3600000);
const BACKOFF_BASE_MS = Number(env.BACKOFF_BASE_MS || 500);
const BACKOFF_MAX_MS = Number(env.BACKOFF_MAX_MS || 30000);
const DURATION_MS = Number(env.DURATION_MS || 0);

/** Exponential backoff with full jitter: a random delay in [cap/2, cap], cap = base * 2^attempt. */
function backoff(/** @type {number} */ attempt) {
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return Math.round(cap / 2 + Math.random() * (cap / 2));
}

/** A fresh token for `user` from the token endpoint. */
async function fetchToken(/** @type {string} */ serverUrl, /** @type {string} */ user) {
  const url = new URL(env.TOKEN_URL || serverUrl.replace(/^ws/, 'http'));
  if (!env.TOKEN_URL) url.pathname = '/token';
  url.searchParams.set('user', user);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`token endpoint answered ${res.status}`);
  const body = /** @type {{ token: string }} */ (await res.json());
  return body.token;
}

class ChatClient {
  constructor(/** @type {string} */ user, /** @type {number} */ index) {
    this.user = user;
    this.urlIndex = index % URLS.length;
    /** @type {WebSocket | null} the connection in use */
    this.ws = null;
    this.attempt = 0;
    this.connections = 0;
    this.sent = 0;
    this.stopped = false;
    /** @type {NodeJS.Timeout | undefined} */ this.retryTimer = undefined;
    /** @type {NodeJS.Timeout | undefined} */ this.refreshTimer = undefined;
    /** @type {NodeJS.Timeout | undefined} */ this.sendTimer = undefined;
  }

  start() {
    void this.connect(false);
    if (SEND_EVERY_MS > 0) this.sendTimer = setInterval(() => this.say(), SEND_EVERY_MS);
  }

  say() {
    if (MESSAGES > 0 && this.sent >= MESSAGES) return clearInterval(this.sendTimer);
    if (this.ws?.readyState !== WebSocket.OPEN) return;
    this.sent += 1;
    this.ws.send(JSON.stringify({ type: 'chat', text: `${this.user} says #${this.sent}` }));
  }

  /** Open a connection; `refresh` = the current one stays in use until the new one is welcomed. */
  async connect(/** @type {boolean} */ refresh) {
    if (this.stopped) return;
    const url = `${URLS[this.urlIndex]}/rooms/${ROOM}`;
    let token;
    try {
      token = await fetchToken(URLS[this.urlIndex], this.user);
    } catch (err) {
      return this.failed(refresh, `token: ${/** @type {Error} */ (err).message}`);
    }
    if (this.stopped) return;
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
    let welcomed = false;
    ws.on('message', (data) => {
      const m = JSON.parse(String(data));
      if (m.type === 'welcome') {
        welcomed = true;
        this.opened(ws, m.instance, refresh);
      } else if (m.type === 'chat') {
        console.log(`GOT ${this.user} from=${m.from} origin=${m.origin} via=${m.via} text=${JSON.stringify(m.text)}`);
      }
    });
    ws.on('error', (err) => console.log(`ERROR ${this.user} ${err.message}`));
    ws.on('close', (code) => {
      if (ws !== this.ws) {
        // A refresh attempt that never became current.
        if (!welcomed && !this.stopped) this.failed(refresh, `closed ${code}`);
        return;
      }
      this.ws = null;
      clearTimeout(this.refreshTimer);
      console.log(`CLOSED ${this.user} ${code}`);
      if (!this.stopped) this.failed(false, `closed ${code}`);
    });
  }

  opened(/** @type {WebSocket} */ ws, /** @type {string} */ instance, /** @type {boolean} */ refresh) {
    const previous = this.ws;
    this.ws = ws;
    this.attempt = 0;
    this.connections += 1;
    console.log(`OPEN ${this.user} instance=${instance} connection=${this.connections}`);
    if (refresh && previous) {
      previous.close(1000, 'refresh');
      console.log(`REFRESHED ${this.user} instance=${instance}`);
    }
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => void this.connect(true), REFRESH_MS);
  }

  /** An attempt failed: back off, then try again (the next URL), or retry the refresh later. */
  failed(/** @type {boolean} */ refresh, /** @type {string} */ why) {
    if (this.stopped) return;
    const delay = backoff(this.attempt);
    this.attempt += 1;
    this.urlIndex = (this.urlIndex + 1) % URLS.length;
    const current = this.ws?.readyState === WebSocket.OPEN;
    console.log(`RECONNECT ${this.user} attempt=${this.attempt} in=${delay}ms (${why})`);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.connect(refresh && current), delay);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.refreshTimer);
    clearInterval(this.sendTimer);
    this.ws?.close(1000, 'bye');
  }
}

const clients = Array.from({ length: CLIENTS }, (_, i) => new ChatClient(CLIENTS > 1 ? `${USER}-${i + 1}` : USER, i));
for (const c of clients) c.start();

const stop = () => {
  for (const c of clients) c.stop();
  // Nothing left to run once the sockets are closed: the process ends (after ws-apm's flush).
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (DURATION_MS > 0) setTimeout(stop, DURATION_MS);
