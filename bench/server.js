'use strict';
// Server under test. Identical app code for every variant: instrumentation comes only from
// preload flags (-r ...) and environment variables set by bench/run.js.
//   node server.js               echo: every message is sent back to its sender
//   node server.js --broadcast   broadcast: every message is sent to every open socket (the sender too)
//   node server.js --socketio [--broadcast]   the same two over socket.io 4 (websocket transport): echo is
//                                `socket.on('echo', (d) => socket.emit('echo', d))`; broadcast: every socket joins
//                                room `all`, `socket.on('bcast', (d) => io.to('all').emit('bcast', d))`
//
// Protocol with the orchestrator: prints `BENCH {"type":"listening","port":N}` on stdout, then answers
// one line per command read from stdin: `stats` (CPU time, message/connection counters),
// `mem` (memoryUsage after global.gc()), `fingerprint`, `exit`. Exits when stdin closes.
const http = require('node:http');
const readline = require('node:readline');
const { WebSocketServer } = require('ws');

const BROADCAST = process.argv.includes('--broadcast');
const SOCKETIO = process.argv.includes('--socketio');

let messages = 0;
let sent = 0;
let bytes = 0;
let opened = 0;
let closed = 0;

const server = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
// socket.io: engine.io runs its own ws server (`clients` below counts engine.io's clients)
const io = SOCKETIO ? new (require('socket.io').Server)(server, { transports: ['websocket'], serveClient: false }) : null;
const wss = SOCKETIO ? { clients: { get size() { return io.engine.clientsCount; } } } : new WebSocketServer({ server });

if (io && BROADCAST) {
  io.on('connection', (socket) => {
    opened++;
    socket.join('all');
    socket.on('bcast', (data) => {
      messages++;
      bytes += data.length;
      io.to('all').emit('bcast', data);
      sent += io.sockets.adapter.rooms.get('all').size;
    });
    socket.on('disconnect', () => {
      closed++;
    });
  });
} else if (io) {
  io.on('connection', (socket) => {
    opened++;
    socket.on('echo', (data) => {
      messages++;
      bytes += data.length;
      socket.emit('echo', data);
      sent++;
    });
    socket.on('disconnect', () => {
      closed++;
    });
  });
}

if (!io) wss.on('connection', (ws) => {
  opened++;
  if (BROADCAST) {
    ws.on('message', (data, isBinary) => {
      messages++;
      bytes += data.length;
      for (const c of wss.clients) {
        c.send(data, { binary: isBinary });
        sent++;
      }
    });
  } else {
    ws.on('message', (data, isBinary) => {
      messages++;
      bytes += data.length;
      ws.send(data, { binary: isBinary });
      sent++;
    });
  }
  ws.on('close', () => {
    closed++;
  });
  ws.on('error', () => {});
});

function reply(obj) {
  process.stdout.write(`BENCH ${JSON.stringify(obj)}\n`);
}

function gc() {
  if (typeof global.gc === 'function') {
    global.gc();
    global.gc();
  }
}

const commands = {
  stats() {
    const cpu = process.cpuUsage();
    reply({ type: 'stats', t: Number(process.hrtime.bigint()) / 1e6, cpuUs: cpu.user + cpu.system, sysUs: cpu.system, messages, sent, bytes, opened, closed, clients: wss.clients.size });
  },
  mem() {
    gc();
    // a second pass after pending finalizers/weak callbacks ran
    setImmediate(() => {
      gc();
      const m = process.memoryUsage();
      reply({ type: 'mem', rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, clients: wss.clients.size, opened, closed });
    });
  },
  fingerprint() {
    const { fingerprint } = require('./fingerprint');
    reply({ type: 'fingerprint', fingerprint: fingerprint(require('ws')), modules: Object.keys(require.cache).length });
  },
  exit() {
    shutdown();
  },
};

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  if (io) io.engine.close();
  else {
    for (const ws of wss.clients) ws.terminate();
    wss.close();
  }
  server.close(() => {
    reply({ type: 'closed' });
    // Instrumentations may keep timers (exporters, harvest cycles): do not wait for them.
    setTimeout(() => process.exit(0), 200).unref();
    process.exit(0);
  });
  setTimeout(() => process.exit(0), 2000).unref();
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = commands[line.trim()];
  if (cmd) cmd();
}).on('close', shutdown);

server.listen(0, '127.0.0.1', () => {
  reply({ type: 'listening', port: server.address().port, pid: process.pid, node: process.version, mode: `${SOCKETIO ? 'socketio ' : ''}${BROADCAST ? 'broadcast' : 'echo'}` });
});
