// `npm run example:socketio`: the socket.io example on this machine — two server instances
// sharing rooms through Redis and a client on each, every process started with
// `-r ws-apm/register`, for DURATION_MS (default: until Ctrl-C). Redis: REDIS_URL, else a
// throwaway `redis-server` on 127.0.0.1 when one is installed, else one instance alone (said so).
// The backend comes from the environment as usual (WS_APM_BACKEND, OTEL_*, ELASTIC_APM_*); with
// nothing set it prints to the console.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');

const env = { ...process.env };
if (!env.WS_APM_BACKEND && !env.OTEL_EXPORTER_OTLP_ENDPOINT && !env.ELASTIC_APM_SERVER_URL) env.WS_APM_BACKEND = 'console';
env.JWT_SECRET ||= 'local-example-secret-change-me';
const PORT = Number(env.PORT || 8080);
const DURATION_MS = Number(env.DURATION_MS || 0);
const here = __dirname;
const root = path.resolve(here, '..', '..');

/** @type {import('node:child_process').ChildProcess[]} */
const procs = [];
/** @type {import('node:child_process').ChildProcess | undefined} */
let redis;

function pipe(/** @type {string} */ label, /** @type {import('node:child_process').ChildProcess} */ proc) {
  for (const stream of [proc.stdout, proc.stderr]) {
    if (stream) readline.createInterface({ input: stream }).on('line', (line) => console.log(`${label.padEnd(8)} | ${line}`));
  }
  proc.on('exit', (code, signal) => console.log(`${label.padEnd(8)} | exited ${signal ?? code}`));
}

function start(/** @type {string} */ label, /** @type {string} */ script, /** @type {Record<string, string>} */ extra) {
  const proc = spawn(process.execPath, ['-r', 'ws-apm/register', path.join(here, script)], {
    cwd: root,
    env: { ...env, ...extra },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  pipe(label, proc);
  procs.push(proc);
  return proc;
}

/** A port that was free a moment ago on 127.0.0.1 (redis-server cannot bind port 0). */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (probe.address());
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

/** REDIS_URL, or a throwaway redis-server's URL, or undefined when there is none. */
async function redisUrl() {
  if (env.REDIS_URL) return env.REDIS_URL;
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) return undefined;
  const port = await freePort();
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  pipe('redis', redis);
  await new Promise((resolve, reject) => {
    readline.createInterface({ input: /** @type {import('node:stream').Readable} */ (redis?.stdout) }).on('line', (line) => {
      if (/Ready to accept connections/.test(line)) resolve(undefined);
    });
    redis?.once('exit', () => reject(new Error('redis-server did not start')));
  });
  return `redis://127.0.0.1:${port}`;
}

async function main() {
  const url = await redisUrl();
  const service = env.OTEL_SERVICE_NAME || 'socketio-server';
  if (url) {
    start('sio-a', 'server.js', { PORT: String(PORT), INSTANCE: 'sio-a', REDIS_URL: url, OTEL_SERVICE_NAME: service });
    start('sio-b', 'server.js', { PORT: String(PORT + 1), INSTANCE: 'sio-b', REDIS_URL: url, OTEL_SERVICE_NAME: service });
  } else {
    console.log('no REDIS_URL and no redis-server installed: one instance alone (apt-get install redis-server, or REDIS_URL=redis://...)');
    start('sio-a', 'server.js', { PORT: String(PORT), INSTANCE: 'sio-a', OTEL_SERVICE_NAME: service });
  }
  // Give the servers a moment; the clients retry with backoff anyway if they are not up yet.
  setTimeout(() => {
    const second = url ? PORT + 1 : PORT;
    start('alice', 'client.js', { CHAT_USER: 'alice', SERVER_URL: `http://127.0.0.1:${PORT}`, SEND_EVERY_MS: '2000', OTEL_SERVICE_NAME: 'socketio-client' });
    start('bob', 'client.js', { CHAT_USER: 'bob', SERVER_URL: `http://127.0.0.1:${second}`, SEND_EVERY_MS: '3000', OTEL_SERVICE_NAME: 'socketio-client' });
    console.log(DURATION_MS > 0 ? `\nrunning for ${DURATION_MS / 1000} s\n` : '\nrunning until Ctrl-C\n');
  }, 500);
}

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  // Clients first (they would otherwise reconnect), then the servers, then Redis.
  for (const p of procs.filter((p) => !/server\.js$/.test(String(p.spawnargs.at(-1))))) p.kill('SIGTERM');
  setTimeout(() => {
    for (const p of procs) p.kill('SIGTERM');
    Promise.all(procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((r) => p.once('exit', r))))).then(() => redis?.kill('SIGTERM'));
  }, 300);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
if (DURATION_MS > 0) setTimeout(stop, DURATION_MS);

main().catch((err) => {
  console.error(err);
  stop();
  process.exitCode = 1;
});
