'use strict';
// In-process CPU per message of the server's JavaScript path, without the network: a real ws (or
// socket.io) server and a connected client, then the server socket's 'message' emitted directly, the
// app's reply written into a socket that swallows it. What ws-apm adds to a message, free of syscall
// and batching noise (the load-generator benchmark, run.js, is the figure a user pays; this is where the
// µs go). Each configuration runs in its own process: 7 rounds of N messages in batches of 32 per
// macrotask, median CPU µs per message (user + system, GC included).
//
//   node bench/micro.js [--messages N] [--socketio]     (npm run build first: ws-apm loads from dist/)
//   node bench/micro.js --backends otel,elastic,newrelic [--names] [--cpu-prof DIR]
//
// Configurations: bare; the OTel floor (bench/preload/otel-floor.js); ws-apm with the OTel SDK at its
// defaults, and with every message traced; the SDK exports OTLP to a local sink (bench/sinks.js).
// --backends: per backend, the backend alone (run.js's variants 13-15) next to ws-apm on it at its defaults (for
// OTel also ws-apm on the app's own SDK, variant 18),
// each to its local sink: what ws-apm's path adds on top of what the user pays anyway, in process. --names:
// JSON messages `{"type":"chat","text":"xx…"}` (64 B) and WS_APM_MESSAGE_NAME=type in every configuration.
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');
const { defineVariants } = require('./variants');

const BENCH = __dirname;
const ROOT = path.resolve(BENCH, '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);

if (args[0] === '--child') {
  child(args[1], Number(args[2]));
} else {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

/** A local sink of `kind` (bench/sinks.js): its process, port and (New Relic) certificate file. */
function startSink(kind) {
  // stdin stays open: a sink stops when it closes (with this process).
  const proc = spawn(process.execPath, [path.join(BENCH, 'sinks.js'), kind], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /BENCH (\{"type":"listening".*\})/.exec(out);
      if (m) resolve({ proc, ...JSON.parse(m[1]) });
    });
    proc.on('exit', () => reject(new Error(`sink ${kind} exited`)));
  });
}

async function main() {
  const socketio = args.includes('--socketio');
  const names = args.includes('--names');
  const backends = opt('--backends', null)?.split(',');
  const messages = Number(opt('--messages', socketio ? 32000 : 64000));
  const kinds = backends === undefined ? ['otlp'] : backends.map((b) => (b === 'otel' ? 'otlp' : b));
  const sinks = {};
  for (const kind of kinds) sinks[kind] = await startSink(kind);
  const register = path.join(ROOT, 'dist', 'register.js');
  const quiet = { WS_APM_LOG_LEVEL: 'warn', OTEL_NODE_RESOURCE_DETECTORS: 'env,host,os,process', ...(names ? { WS_APM_MESSAGE_NAME: 'type' } : {}) };
  let configs;
  if (backends === undefined) {
    const port = sinks.otlp.port;
    const otel = {
      OTEL_SERVICE_NAME: 'ws-apm-micro', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_METRICS_EXPORTER: 'otlp', OTEL_LOGS_EXPORTER: 'none', ...quiet,
    };
    configs = [
      { label: 'bare', preload: [], env: quiet },
      ...(socketio ? [] : [{ label: 'OTel floor (every message)', preload: [path.join(BENCH, 'preload', 'otel-floor.js')], env: otel }]),
      { label: 'ws-apm + OTel SDK, defaults', preload: [register], env: { ...otel, WS_APM_BACKEND: 'otel' } },
      { label: 'ws-apm + OTel SDK, every message', preload: [register], env: { ...otel, WS_APM_BACKEND: 'otel', WS_APM_MESSAGE_RATE_LIMIT: '0' } },
    ];
  } else {
    // The benchmark's own variants, so that "alone" is started exactly as run.js starts it.
    const variants = defineVariants({ quick: false, otlpProtocol: 'http/protobuf', newrelicDir: opt('--newrelic', null) });
    const pick = (key) => variants.find((v) => v.key === key);
    configs = [{ label: 'bare', preload: [], env: quiet }];
    for (const b of backends) {
      const keys = b === 'otel' ? ['otel-sdk-alone', 'otel-defaults', 'otel-app-sdk'] : [`${b}-alone`, `${b}-defaults`];
      for (const key of keys) {
        const v = pick(key);
        if (v === undefined || v.preload.some((p) => p == null)) throw new Error(`no variant ${key} (is its package installed?)`);
        configs.push({ label: v.short ?? v.label, preload: v.preload, env: { ...v.env(sinks), ...quiet }, alone: key.endsWith('alone') });
      }
    }
  }
  const payload = names ? 'JSON {"type":…} 64 B, WS_APM_MESSAGE_NAME=type' : '64 B text';
  console.log(`${socketio ? 'socket.io echo event' : `ws echo, ${payload}`}: in-process CPU µs per message, median of 7 rounds of ${messages} (min–max); Node ${process.version}`);
  const prof = opt('--cpu-prof', null);
  let bare;
  let alone;
  for (const c of configs) {
    const preload = c.preload.flatMap((p) => ['-r', p]);
    const env = { PATH: process.env.PATH, ...c.env };
    const profile = prof === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${path.resolve(prof)}`, `--cpu-prof-name=${c.label.replace(/[^a-z0-9]+/gi, '-')}.cpuprofile`];
    const out = spawnSync(process.execPath, [...profile, ...preload, __filename, '--child', socketio ? 'sio' : names ? 'names' : 'ws', String(messages)], { env, encoding: 'utf8', cwd: ROOT });
    const m = /^RESULT (.*)$/m.exec(out.stdout);
    if (!m) {
      console.log(`  ${c.label}: failed\n${out.stderr}`);
      continue;
    }
    const r = JSON.parse(m[1]);
    bare ??= r.median;
    let over = `+${(r.median - bare).toFixed(3)} µs over bare`;
    if (c.alone) alone = r.median;
    else if (backends !== undefined && alone !== undefined) over += `, +${(r.median - alone).toFixed(3)} µs over the backend alone`;
    console.log(`  ${c.label.padEnd(34)} ${r.median.toFixed(3)} (${r.min.toFixed(3)}–${r.max.toFixed(3)})  ${over}`);
  }
  for (const sink of Object.values(sinks)) sink.proc.kill();
}

function child(mode, n) {
  const http = require('node:http');
  const { WebSocket, WebSocketServer } = require('ws');
  const swallow = { cork() {}, uncork() {}, write(d, cb) { if (typeof cb === 'function') cb(); return true; } };
  const server = http.createServer();
  server.listen(0, '127.0.0.1', async () => {
    const port = server.address().port;
    let serverWs;
    await new Promise((resolve) => {
      if (mode !== 'sio') {
        new WebSocketServer({ server }).on('connection', (ws) => {
          ws.on('message', (d, binary) => ws.send(d, { binary }));
          resolve((serverWs = ws));
        });
        new WebSocket(`ws://127.0.0.1:${port}/`);
      } else {
        const { Server } = require('socket.io');
        const io = new Server(server, { transports: ['websocket'] });
        io.on('connection', (s) => {
          s.on('echo', (d) => s.emit('echo', d));
          serverWs = s.conn.transport.socket;
          resolve();
        });
        const c = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
        c.on('message', (d) => {
          const s = String(d);
          if (s[0] === '0') c.send('40');
          else if (s === '2') c.send('3');
        });
      }
    });
    serverWs._sender._socket = swallow;
    const text = mode === 'ws' ? 'x'.repeat(64) : mode === 'names' ? `{"type":"chat","text":"${'x'.repeat(41)}"}` : `42["echo","${'x'.repeat(50)}"]`;
    const buf = Buffer.from(text);
    await agentConnected();
    const batch = (k) => { for (let i = 0; i < k; i++) serverWs.emit('message', buf, false); };
    const round = () => new Promise((resolve) => {
      const c0 = process.cpuUsage();
      let left = n;
      const step = () => {
        if (left > 0) {
          batch(32);
          left -= 32;
          setImmediate(step);
          return;
        }
        const c = process.cpuUsage(c0);
        resolve((c.user + c.system) / n);
      };
      step();
    });
    await round(); // warm-up
    const rs = [];
    for (let i = 0; i < 7; i++) rs.push(await round());
    if (!alive()) throw new Error('the New Relic agent is not connected: its figure would measure an agent that records nothing');
    rs.sort((a, b) => a - b);
    console.log(`RESULT ${JSON.stringify({ median: rs[3], min: rs[0], max: rs[6] })}`);
    process.exit(0);
  });
}

/** Under the New Relic agent: wait until it has connected to the (local) collector, as run.js does. */
async function agentConnected() {
  const t0 = Date.now();
  while (!alive() && Date.now() - t0 < 30000) await new Promise((r) => setTimeout(r, 100));
}

function alive() {
  if (process.env.NEW_RELIC_HOST === undefined) return true;
  // The preloaded copy (node_modules/newrelic, or the one --newrelic named).
  const key = Object.keys(require.cache).find((k) => /[\\/]newrelic[\\/]index\.js$/.test(k));
  return require.cache[key]?.exports?.agent?._state === 'started';
}
