// `npm run example`: the chat example on this machine — two server instances and a few clients,
// every process started with `-r ws-apm/register`, for DURATION_MS (default: until Ctrl-C).
// With REDIS_URL set: two server processes sharing rooms through Redis. Without: one process
// with two instances sharing the in-process broker. The backend comes from the environment as
// usual (WS_APM_BACKEND, OTEL_*, ELASTIC_APM_*); with nothing set it prints to the console.
'use strict';
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const env = { ...process.env };
if (!env.WS_APM_BACKEND && !env.OTEL_EXPORTER_OTLP_ENDPOINT && !env.ELASTIC_APM_SERVER_URL) env.WS_APM_BACKEND = 'console';
env.JWT_SECRET ||= 'local-example-secret-change-me';
env.WS_APM_ROUTES ||= '/rooms/:room';
env.WS_APM_MESSAGE_NAME ||= 'type';
env.WS_APM_MESSAGE_CONTEXT ||= 'trace';
// The browser page puts a traceparent on the WebSocket URL (a browser cannot set headers).
env.WS_APM_PROPAGATION_QUERY_PARAM ||= 'traceparent';
const PORT = Number(env.PORT || 8080);
const DURATION_MS = Number(env.DURATION_MS || 0);
const here = __dirname;
const root = path.resolve(here, '..', '..');

/** @type {import('node:child_process').ChildProcess[]} */
const procs = [];
function start(/** @type {string} */ label, /** @type {string} */ script, /** @type {Record<string, string>} */ extra) {
  const proc = spawn(process.execPath, ['-r', 'ws-apm/register', path.join(here, script)], {
    cwd: root,
    env: { ...env, ...extra },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [proc.stdout, proc.stderr]) {
    readline.createInterface({ input: stream }).on('line', (line) => console.log(`${label.padEnd(8)} | ${line}`));
  }
  proc.on('exit', (code, signal) => console.log(`${label.padEnd(8)} | exited ${signal ?? code}`));
  procs.push(proc);
  return proc;
}

const urls = [`ws://127.0.0.1:${PORT}`, `ws://127.0.0.1:${PORT + 1}`];
if (env.REDIS_URL) {
  start('chat-a', 'server.js', { PORTS: String(PORT), INSTANCE: 'chat-a', OTEL_SERVICE_NAME: env.OTEL_SERVICE_NAME || 'chat-server' });
  start('chat-b', 'server.js', { PORTS: String(PORT + 1), INSTANCE: 'chat-b', OTEL_SERVICE_NAME: env.OTEL_SERVICE_NAME || 'chat-server' });
} else {
  start('chat', 'server.js', { PORTS: `${PORT},${PORT + 1}`, INSTANCE: 'chat', OTEL_SERVICE_NAME: env.OTEL_SERVICE_NAME || 'chat-server' });
}
// Give the servers a moment; the clients retry with backoff anyway if they are not up yet.
setTimeout(() => {
  start('alice', 'client.js', { CHAT_USER: 'alice', SERVER_URLS: urls[0], SEND_EVERY_MS: '2000', REFRESH_MS: env.REFRESH_MS || '15000', OTEL_SERVICE_NAME: 'chat-client' });
  start('bob', 'client.js', { CHAT_USER: 'bob', SERVER_URLS: urls[1], SEND_EVERY_MS: '3000', REFRESH_MS: env.REFRESH_MS || '15000', OTEL_SERVICE_NAME: 'chat-client' });
  console.log(`\nbrowser: http://127.0.0.1:${PORT}/?user=ann&room=lobby  (and :${PORT + 1}, the other instance)`);
  console.log(DURATION_MS > 0 ? `running for ${DURATION_MS / 1000} s\n` : 'running until Ctrl-C\n');
}, 500);

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  // Clients first (they would otherwise reconnect), then the servers.
  for (const p of procs.slice(env.REDIS_URL ? 2 : 1)) p.kill('SIGTERM');
  setTimeout(() => { for (const p of procs) p.kill('SIGTERM'); }, 300);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
if (DURATION_MS > 0) setTimeout(stop, DURATION_MS);
