'use strict';
// In-process CPU per message of the server's JavaScript path, without the network: a real ws (or
// socket.io) server and a connected client, then the server socket's 'message' emitted directly, the
// app's reply written into a socket that swallows it. What ws-apm adds to a message, free of syscall
// and batching noise (the load-generator benchmark, run.js, is the figure a user pays; this is where the
// µs go). Each configuration runs in its own process: 7 rounds of N messages in batches of 32 per
// macrotask, median CPU µs per message (user + system, GC included).
//
//   node bench/micro.js [--messages N] [--socketio]     (npm run build first: ws-apm loads from dist/)
//
// Configurations: bare; the OTel floor (bench/preload/otel-floor.js); ws-apm with the OTel SDK at its
// defaults, and with every message traced; the SDK exports OTLP to a local sink (bench/sinks.js).
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');

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

async function main() {
  const socketio = args.includes('--socketio');
  const messages = Number(opt('--messages', socketio ? 32000 : 64000));
  const sink = spawn(process.execPath, [path.join(BENCH, 'sinks.js'), 'otlp'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    sink.stdout.on('data', (d) => {
      const m = /"port":(\d+)/.exec(String(d));
      if (m) resolve(Number(m[1]));
    });
    sink.on('exit', () => reject(new Error('sink exited')));
  });
  const otel = {
    OTEL_SERVICE_NAME: 'ws-apm-micro', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_METRICS_EXPORTER: 'otlp', OTEL_LOGS_EXPORTER: 'none', OTEL_NODE_RESOURCE_DETECTORS: 'env,host,os,process', WS_APM_LOG_LEVEL: 'warn',
  };
  const register = path.join(ROOT, 'dist', 'register.js');
  const configs = [
    { label: 'bare', preload: [], env: {} },
    ...(socketio ? [] : [{ label: 'OTel floor (every message)', preload: [path.join(BENCH, 'preload', 'otel-floor.js')], env: otel }]),
    { label: 'ws-apm + OTel SDK, defaults', preload: [register], env: { ...otel, WS_APM_BACKEND: 'otel' } },
    { label: 'ws-apm + OTel SDK, every message', preload: [register], env: { ...otel, WS_APM_BACKEND: 'otel', WS_APM_MESSAGE_RATE_LIMIT: '0' } },
  ];
  console.log(`${socketio ? 'socket.io echo event' : 'ws echo, 64 B text'}: in-process CPU µs per message, median of 7 rounds of ${messages} (min–max); Node ${process.version}`);
  let bare;
  for (const c of configs) {
    const preload = c.preload.flatMap((p) => ['-r', p]);
    const env = { PATH: process.env.PATH, ...c.env };
    const out = spawnSync(process.execPath, [...preload, __filename, '--child', socketio ? 'sio' : 'ws', String(messages)], { env, encoding: 'utf8', cwd: ROOT });
    const m = /^RESULT (.*)$/m.exec(out.stdout);
    if (!m) {
      console.log(`  ${c.label}: failed\n${out.stderr}`);
      continue;
    }
    const r = JSON.parse(m[1]);
    bare ??= r.median;
    console.log(`  ${c.label.padEnd(34)} ${r.median.toFixed(3)} (${r.min.toFixed(3)}–${r.max.toFixed(3)})  +${(r.median - bare).toFixed(3)} µs over bare`);
  }
  sink.kill();
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
      if (mode === 'ws') {
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
    const buf = Buffer.from(mode === 'ws' ? 'x'.repeat(64) : `42["echo","${'x'.repeat(50)}"]`);
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
    rs.sort((a, b) => a - b);
    console.log(`RESULT ${JSON.stringify({ median: rs[3], min: rs[0], max: rs[6] })}`);
    process.exit(0);
  });
}
