'use strict';
// ws-apm benchmark orchestrator.
//
//   node bench/run.js            full run: three passes (echo names off, echo names on, broadcast 1 → 1,000),
//                                interleaved rounds, then memory (10,000 idle connections, 10,000 churn cycles)
//   node bench/run.js --quick    short run for CI: proves the harness works and that every variant exercised its
//                                instrumentation with the sampling it was given; exits 1 if not. Never asserts timings.
// Options: --rounds N (every pass), --names-rounds N, --broadcast-rounds N, --sizes 64,16384 (echo and names passes),
//          --passes echo,names,broadcast,socketio,paired (socketio = socketio-echo,socketio-broadcast; paired: the
//          "what is ours" ratios from alternating windows, see pairedRun), --socketio-rounds N, --no-socketio,
//          --names (only the names-on pass), --no-names, --no-broadcast, --variants 1,4,11 (by number; bare is
//          always added), --no-memory, --no-throughput (memory only), --no-pin, --otlp-protocol http/protobuf|http/json,
//          --newrelic DIR (a newrelic package directory to preload instead of node_modules/newrelic, e.g. 14.x for
//          Node >= 22), --out DIR, --cpu-prof (a V8 profile per server run, see bench/README.md)
//
// Every process is a child of this one: telemetry sinks (bench/sinks.js), one server per variant, pass and round
// (bench/server.js, started fresh, with the variant's preload flags and environment), and an uninstrumented load
// generator (bench/load.js). Variants and passes: bench/variants.js; tables: bench/report.js. Results:
// bench/results/latest.json and latest.md (quick mode: quick.json and quick.md, so CI never overwrites the full run).
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const https = require('node:https');
const { fingerprint, diff } = require('./fingerprint');
const { defineVariants, definePasses, check, checkSummary, wsApmDefaults, has, ROOT, BENCH } = require('./variants');
const { summarize, targets, memoryTargets, markdown, fmt, fmtInt, spread, pairCell, PAIRED } = require('./report');

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};

const QUICK = flag('--quick');
const MODE = QUICK
  ? {
    name: 'quick',
    rounds: 1,
    namesRounds: 1,
    broadcastRounds: 1,
    socketioRounds: 1,
    conns: 8,
    inflight: 32,
    // timings are not asserted in quick mode: one size, short windows
    sizes: [64],
    namesSizes: [64],
    warmupMs: 200,
    durationMs: 600,
    broadcast: { conns: 250, window: 4, size: 64, warmupMs: 200, durationMs: 600, minMessages: 10, maxDurationMs: 3000 },
    idleConns: 200,
    churnCycles: 300,
    churnConcurrency: 32,
    settleMs: 200,
    // export sooner so that the short run can verify what reached the sinks (New Relic: the fake collector asks for 1 s)
    flushEnv: { OTEL_BSP_SCHEDULE_DELAY: '200', DD_TRACE_FLUSH_INTERVAL: '200', ELASTIC_APM_API_REQUEST_TIME: '500ms' },
    drainQuietMs: 700,
    paired: { size: 64, blocks: 1, windowMs: 300, rampMs: 50, warmupMs: 300, names: false },
  }
  : {
    name: 'full',
    // 3 rounds of every pass keep the full run under ~15 min on 2 cores (see bench/README.md)
    rounds: 3,
    namesRounds: 3,
    broadcastRounds: 3,
    socketioRounds: 3,
    conns: 8,
    inflight: 32,
    // 64 B (the targets' size) and 16 KiB (where reading a message name costs most), names off and on
    sizes: [64, 16384],
    namesSizes: [64, 16384],
    // 3 s of warm-up: the first OTLP export (its encoder compiled on first use) falls before the measured
    // window. With 0.7 s it fell inside it, a one-off start-up cost charged to every variant that exports
    // (not to the backend-alone ones, which export nothing).
    warmupMs: 3000,
    durationMs: 2000,
    // measured for 2 s, longer (up to 10 s) until 100 broadcasts completed: slow variants on a loaded machine
    broadcast: { conns: 1000, window: 4, size: 64, warmupMs: 700, durationMs: 2000, minMessages: 100, maxDurationMs: 10000 },
    idleConns: 10000,
    churnCycles: 10000,
    churnConcurrency: 64,
    // memory: after each phase, wait until telemetry it queued was exported (OTel, Elastic and dd-trace asked to
    // export every second in memory runs; New Relic harvests events every 5 s), so queued spans are not counted as heap
    settleMs: 2000,
    flushEnv: {},
    // the paired pass: per pair and names setting, 3 s of warm-up per server, then 8 blocks of four 1 s windows
    // (about 45 s)
    paired: { size: 64, blocks: 8, windowMs: 1000, rampMs: 200, warmupMs: 3000, names: true },
  };
if (opt('--rounds', null) != null) MODE.rounds = MODE.namesRounds = MODE.broadcastRounds = MODE.socketioRounds = Number(opt('--rounds'));
MODE.socketioRounds = Number(opt('--socketio-rounds', MODE.socketioRounds));
MODE.warmupMs = Number(opt('--warmup-ms', MODE.warmupMs));
MODE.durationMs = Number(opt('--duration-ms', MODE.durationMs));
MODE.namesRounds = Number(opt('--names-rounds', MODE.namesRounds));
MODE.broadcastRounds = Number(opt('--broadcast-rounds', MODE.broadcastRounds));
if (opt('--sizes', null) != null) MODE.sizes = MODE.namesSizes = opt('--sizes').split(',').map(Number);
const ONLY = opt('--variants', null);
const DO_MEMORY = !flag('--no-memory');
const DO_THROUGHPUT = !flag('--no-throughput');
// `socketio` = both socket.io passes (socketio-echo, socketio-broadcast)
let PASS_KEYS = (opt('--passes', 'echo,names,broadcast,socketio,paired')).split(',').flatMap((k) => (k === 'socketio' ? ['socketio-echo', 'socketio-broadcast'] : [k]));
if (flag('--names')) PASS_KEYS = ['names'];
if (flag('--no-names')) PASS_KEYS = PASS_KEYS.filter((k) => k !== 'names');
if (flag('--no-broadcast')) PASS_KEYS = PASS_KEYS.filter((k) => k !== 'broadcast');
if (flag('--no-socketio')) PASS_KEYS = PASS_KEYS.filter((k) => !k.startsWith('socketio'));
const OTLP_PROTOCOL = opt('--otlp-protocol', 'http/protobuf');
const OUT_DIR = path.resolve(opt('--out', path.join(BENCH, 'results')));
const CPU_PROF = flag('--cpu-prof');
const NEWRELIC_DIR = opt('--newrelic', null);
// Server pinned to CPU 0 and load generator to CPU 1 (taskset; sinks unpinned). Unpinned, the scheduler's
// wake-affinity often puts both ends of the loopback ping-pong on one CPU, and the run locks into a mode at
// about half the throughput (each process ~50 % busy). --no-pin turns this off.
const PIN = !flag('--no-pin') && os.cpus().length >= 2 && fs.existsSync('/usr/bin/taskset');
// In memory runs, export telemetry every second, so that a short settle sees it gone from the heap.
const MEMORY_FLUSH_ENV = { OTEL_BSP_SCHEDULE_DELAY: '1000', ELASTIC_APM_API_REQUEST_TIME: '1s', DD_TRACE_FLUSH_INTERVAL: '1000' };
// Variants whose memory is measured (sampling does not change per-connection state: one OTel "every message" is enough).
const MEMORY_KEYS = ['bare', 'wsapm-off', 'wsapm-api', 'otel-defaults', 'otel-every', 'elastic-defaults', 'newrelic-defaults', 'dd-trace', 'otel-ws-community'];

// ---------------------------------------------------------------------------------------------
// processes
// ---------------------------------------------------------------------------------------------
const children = new Set();

function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(NODE_OPTIONS|OTEL_|DD_|ELASTIC_APM_|NEW_RELIC_|WS_APM_|NODE_EXTRA_CA_CERTS)/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra, ...(process.env.BENCH_SERVER_ENV ? JSON.parse(process.env.BENCH_SERVER_ENV) : {}) };
}

// 10,000 idle connections need that many descriptors in the server and in the load generator: when the soft
// limit is lower, children are started through `sh -c 'ulimit -n N'` (up to the hard limit).
const FD_NEED = Math.max(MODE.idleConns, MODE.broadcast.conns) + 1024;
let FD_RAISE = null;
try {
  const soft = Number(require('node:child_process').execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
  if (Number.isFinite(soft) && soft < FD_NEED) FD_RAISE = FD_NEED;
} catch { /* unlimited or no sh: leave as is */ }

function command(args, cpu) {
  let cmd = [process.execPath, ...args];
  if (cpu != null) cmd = ['taskset', '-c', String(cpu), ...cmd];
  if (FD_RAISE) cmd = ['sh', '-c', `ulimit -n ${FD_RAISE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`, 'sh', ...cmd];
  return cmd;
}

class Child {
  constructor(name, args, env, cpu) {
    this.name = name;
    this.messages = [];
    this.waiters = [];
    this.stderr = '';
    this.other = '';
    this.exited = null;
    const [file, ...rest] = command(args, cpu);
    this.proc = spawn(file, rest, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(this);
    let buf = '';
    this.proc.stdout.on('data', (c) => {
      buf += c;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('BENCH ')) this.onMessage(JSON.parse(line.slice(6)));
        else if (this.other.length < 4000) this.other += `${line}\n`;
      }
    });
    this.proc.stderr.on('data', (c) => {
      this.stderr = (this.stderr + c).slice(-4000);
    });
    this.proc.stdin.on('error', () => {});
    this.exitPromise = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exited = { code, signal };
        children.delete(this);
        for (const w of this.waiters.splice(0)) w.reject(new Error(`${this.name} exited (${code ?? signal}) while waiting for ${w.type}; stderr: ${this.stderr.slice(-1500)}`));
        resolve(this.exited);
      });
    });
  }

  get pid() { return this.proc.pid; }

  onMessage(msg) {
    const i = this.waiters.findIndex((w) => w.type === msg.type);
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w.timer);
      w.resolve(msg);
    } else {
      this.messages.push(msg);
    }
  }

  waitFor(type, timeoutMs = 30000) {
    const i = this.messages.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(this.messages.splice(i, 1)[0]);
    if (this.exited) return Promise.reject(new Error(`${this.name} already exited; stderr: ${this.stderr.slice(-1500)}`));
    return new Promise((resolve, reject) => {
      const w = { type, resolve, reject };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${type}; stderr: ${this.stderr.slice(-1500)}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  send(line) {
    if (!this.exited) this.proc.stdin.write(`${line}\n`);
  }

  async request(cmd, type = cmd, timeoutMs = 30000) {
    const p = this.waitFor(type, timeoutMs);
    this.send(cmd);
    return p;
  }

  async stop(timeoutMs = 5000) {
    if (this.exited) return this.exited;
    this.send('exit');
    this.proc.stdin.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const r = await this.exitPromise;
    clearTimeout(t);
    return r;
  }
}

function killAll() {
  for (const c of children) {
    try { c.proc.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAll(); process.exit(130); });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startSink(kind) {
  const c = new Child(`sink:${kind}`, [path.join(BENCH, 'sinks.js'), kind], cleanEnv({ BENCH_NR_HARVEST_MS: QUICK ? '1000' : '5000' }));
  const msg = await c.waitFor('listening', 60000);
  c.port = msg.port;
  c.certFile = msg.certFile;
  return c;
}

function sinkStats(sink) {
  const mod = sink.certFile ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.get({ host: '127.0.0.1', port: sink.port, path: '/__bench/stats', rejectUnauthorized: false }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve(JSON.parse(body)));
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error('sink stats timeout')));
  });
}

function delta(a, b) {
  if (!a || !b) return null;
  const d = { requests: b.requests - a.requests, bytes: b.bytes - a.bytes, spans: b.spans - a.spans, traces: b.traces - a.traces, metrics: b.metrics - a.metrics, events: {}, names: {}, paths: {}, errors: b.errors - a.errors };
  for (const f of ['events', 'names', 'paths']) {
    for (const [k, v] of Object.entries(b[f])) {
      const x = v - ((a[f] && a[f][k]) || 0);
      if (x) d[f][k] = x;
    }
  }
  return d;
}

let profSeq = 0;
/** A fresh server for one variant; `pass` picks the mode (echo/broadcast) and names; `extraEnv` last. */
async function startServer(variant, sinks, pass, extraEnv = {}) {
  const args = ['--expose-gc'];
  if (CPU_PROF) {
    const dir = path.join(OUT_DIR, 'profiles');
    fs.mkdirSync(dir, { recursive: true });
    args.push('--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${pass ? pass.key : 'memory'}-${variant.key}-${++profSeq}.cpuprofile`);
  }
  for (const p of variant.preload) args.push('-r', p);
  args.push(path.join(BENCH, 'server.js'));
  if (pass && pass.server === 'socketio') args.push('--socketio');
  if (pass && pass.workload === 'broadcast') args.push('--broadcast');
  const env = cleanEnv({ ...variant.env(sinks), ...(pass && pass.names ? { WS_APM_MESSAGE_NAME: 'type' } : {}), ...MODE.flushEnv, ...extraEnv });
  const c = new Child(`server:${variant.key}`, args, env, PIN ? 0 : null);
  const msg = await c.waitFor('listening', 60000);
  c.port = msg.port;
  c.startedAt = Date.now();
  return c;
}

function runLoad(options) {
  const c = new Child('load', [path.join(BENCH, 'load.js'), JSON.stringify(options)], cleanEnv({}), PIN ? 1 : null);
  c.startedAt = Date.now();
  return c;
}

/**
 * A New Relic agent in production has connected long before the traffic it measures: the load
 * starts once this run's agent has (its connect, which first scans the installed packages, could
 * otherwise take longer than a whole run under a saturated event loop). At most 30 s.
 */
async function agentConnected(variant, sink, before) {
  if (variant.sink !== 'newrelic' || !sink || !before) return;
  const connects = (s) => (s.paths && s.paths.connect) || 0;
  const t0 = Date.now();
  while (Date.now() - t0 < 30000) {
    if (connects(await sinkStats(sink)) > connects(before)) return;
    await sleep(100);
  }
}

async function waitSinkQuiet(sink, { minMs = 0, quietMs = 1200, maxMs = 10000 } = {}) {
  const t0 = Date.now();
  let last = await sinkStats(sink);
  let lastChange = Date.now();
  while (Date.now() - t0 < maxMs) {
    await sleep(250);
    const s = await sinkStats(sink);
    if (s.requests !== last.requests || s.bytes !== last.bytes) lastChange = Date.now();
    last = s;
    if (Date.now() - t0 >= minMs && Date.now() - lastChange >= quietMs) break;
  }
  return last;
}

// ---------------------------------------------------------------------------------------------
// workloads
// ---------------------------------------------------------------------------------------------
// Whole-second windows the server could have received messages in (the sampler's rate limit counts per window):
// a load generator alive for d seconds touches at most ceil(d) + 1 of them.
function countWindows(server, load) {
  const d = (Date.now() - load.startedAt) / 1000;
  server.windows = (server.windows || 0) + Math.ceil(d) + 1;
}

async function measured(server, sink, load, startTimeoutMs) {
  await load.waitFor('measure-start', startTimeoutMs);
  const [s0, k0] = await Promise.all([server.request('stats'), sink ? sinkStats(sink) : null]);
  await load.waitFor('measure-end', 120000);
  const [s1, k1] = await Promise.all([server.request('stats'), sink ? sinkStats(sink) : null]);
  load.send('stop'); // traffic went on until the server's counters were read (see load.js, waitStop)
  const r = await load.waitFor('result', 60000);
  await load.exitPromise;
  countWindows(server, load);
  const serverMsgs = s1.messages - s0.messages;
  const sd = delta(k0, k1);
  // message telemetry only (WS RECEIVE / WS SEND spans, transactions, events; Datadog: traces; OTel's socket.io
  // instrumentation: `receive /`, `send /`): handshake spans exported late by a batching exporter must not count
  // against the window's messages
  const exported = sd ? sd.traces + Object.entries(sd.names).filter(([n]) => /WS (RECEIVE|SEND) |^span (receive|send) \//.test(n)).reduce((a, [, c]) => a + c, 0) : null;
  const cpuUs = s1.cpuUs - s0.cpuUs;
  return {
    r,
    res: {
      msgPerSec: r.msgPerSec,
      cpuUsPerMsg: serverMsgs > 0 ? cpuUs / serverMsgs : null,
      serverCpuPct: (cpuUs / 1000 / (s1.t - s0.t)) * 100,
      loadCpuPct: (r.loadCpuUs / 1000 / r.elapsedMs) * 100,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      maxMs: r.maxMs,
      messages: r.messages,
      serverMessages: serverMsgs,
      serverSent: s1.sent - s0.sent,
      errors: r.errors,
      exportedPerMsg: exported != null && serverMsgs > 0 ? exported / serverMsgs : null,
      cpuUs,
    },
  };
}

async function echoRun(server, sink, size, names, sio) {
  const load = runLoad({ mode: 'throughput', port: server.port, sio, conns: MODE.conns, inflight: MODE.inflight, size, names, warmupMs: MODE.warmupMs, durationMs: MODE.durationMs, waitStop: true });
  const { res } = await measured(server, sink, load, 60000);
  return { size, ...res };
}

async function broadcastRun(server, sink, size, sio) {
  const B = MODE.broadcast;
  const load = runLoad({
    mode: 'broadcast', port: server.port, sio, conns: B.conns, window: B.window, size,
    warmupMs: B.warmupMs, durationMs: B.durationMs, minMessages: B.minMessages, maxDurationMs: B.maxDurationMs, waitStop: true,
  });
  const { r, res } = await measured(server, sink, load, 180000);
  return {
    size,
    ...res,
    // per delivered message: the server's CPU over the sends it made in the window
    cpuUsPerDelivered: res.serverSent > 0 ? res.cpuUs / res.serverSent : null,
    sent: r.sent,
    undelivered: r.undelivered,
    conns: r.conns,
  };
}

/**
 * One pair's ratio B ÷ A (server CPU µs per message) from alternating windows. Both servers stay up, each with its own
 * paced load generator (load.js), and one of them runs at a time: blocks of four windows, A B B A (B A A B every other
 * block), so a load that drifts through a block weighs on both alike. The echo and names passes run each variant minutes
 * apart, and the shared machine's background moves their cells by 0.1-0.5; here A's and B's windows are a second apart.
 */
async function pairedRun(a, b, sinks, pair, names) {
  const P = MODE.paired;
  const pass = { key: 'paired', workload: 'echo', server: pair.server, names };
  const sides = [];
  try {
    for (const v of [a, b]) {
      const sink = v.sink ? sinks[v.sink] : null;
      const before = sink && v.sink === 'newrelic' ? await sinkStats(sink) : null;
      const side = { server: await startServer(v, sinks, pass), load: null };
      sides.push(side);
      await agentConnected(v, sink, before);
      side.load = runLoad({ mode: 'paced', port: side.server.port, sio: pair.server === 'socketio', conns: MODE.conns, inflight: MODE.inflight, size: P.size, names });
      await side.load.waitFor('ready', 60000);
    }
    const windowOf = async ({ server, load }, ms) => {
      await load.request('run', 'running');
      await sleep(P.rampMs);
      const s0 = await server.request('stats');
      await sleep(ms);
      const s1 = await server.request('stats');
      await load.request('pause', 'paused');
      const failed = load.messages.find((m) => m.type === 'error');
      if (failed) throw new Error(`load generator: ${failed.message}`);
      const n = s1.messages - s0.messages;
      if (n <= 0) throw new Error(`no message handled by ${server.name} in a ${ms} ms window`);
      return { us: (s1.cpuUs - s0.cpuUs) / n, sysUs: (s1.sysUs - s0.sysUs) / n };
    };
    for (const side of sides) await windowOf(side, P.warmupMs);
    const [A, B] = sides;
    const blocks = [];
    for (let i = 0; i < P.blocks; i++) {
      const sum = new Map(sides.map((side) => [side, { us: 0, sysUs: 0 }]));
      for (const side of i % 2 === 0 ? [A, B, B, A] : [B, A, A, B]) {
        const w = await windowOf(side, P.windowMs);
        sum.get(side).us += w.us / 2;
        sum.get(side).sysUs += w.sysUs / 2;
      }
      const a = sum.get(A);
      const b = sum.get(B);
      // µs per message, and the kernel's part of it (system time: the socket writes and reads)
      blocks.push({ a: a.us, b: b.us, aSys: a.sysUs, bSys: b.sysUs, ratio: b.us / a.us });
    }
    return blocks;
  } finally {
    for (const side of sides) {
      if (side.load) await side.load.stop();
      await side.server.stop();
    }
  }
}

async function memoryRun(variant, sinks) {
  const server = await startServer(variant, sinks, null, QUICK ? {} : MEMORY_FLUSH_ENV);
  const settle = () => sleep(Math.max(MODE.settleMs, QUICK ? 0 : variant.sink === 'newrelic' ? 5500 : 0));
  try {
    // warm up: JIT, lazily created instruments and caches, one of each path
    let load = runLoad({ mode: 'throughput', port: server.port, conns: 4, inflight: 4, size: 64, warmupMs: 200, durationMs: 300 });
    await load.waitFor('result', 60000);
    await load.exitPromise;
    load = runLoad({ mode: 'churn', port: server.port, cycles: QUICK ? 50 : 200, concurrency: 10 });
    await load.waitFor('churn-done', 60000);
    await load.exitPromise;
    await settle();
    const base = await server.request('mem');

    load = runLoad({ mode: 'idle', port: server.port, conns: MODE.idleConns, concurrency: 100 });
    const open = await load.waitFor('idle-open', 300000);
    await settle();
    const withIdle = await server.request('mem');
    const closeP = load.waitFor('idle-closed', 300000);
    load.send('close');
    await closeP;
    await load.exitPromise;
    await settle();
    const afterIdle = await server.request('mem');

    load = runLoad({ mode: 'churn', port: server.port, cycles: MODE.churnCycles, concurrency: MODE.churnConcurrency });
    const churn = await load.waitFor('churn-done', 600000);
    await load.exitPromise;
    await settle();
    const afterChurn = await server.request('mem');
    const n = open.opened;
    return {
      idle: {
        opened: open.opened, failed: open.failed, firstError: open.firstError, connectMs: open.ms, serverClients: withIdle.clients,
        rssPerConn: n ? (withIdle.rss - base.rss) / n : null,
        heapPerConn: n ? (withIdle.heapUsed - base.heapUsed) / n : null,
        externalPerConn: n ? (withIdle.external - base.external) / n : null,
      },
      churn: {
        cycles: churn.cycles, failed: churn.failed, firstError: churn.firstError, perSec: churn.perSec,
        heapBefore: afterIdle.heapUsed, heapAfter: afterChurn.heapUsed,
        heapGrowth: afterChurn.heapUsed - afterIdle.heapUsed,
        clientsAfter: afterChurn.clients,
      },
      mem: { base, withIdle, afterIdle, afterChurn },
    };
  } finally {
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------
function log(...a) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${a.join(' ')}\n`);
}

function pkgVersion(dir) {
  try { return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version; } catch { return null; }
}

function machine(loadStart) {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = (/model name\s*:\s*(.*)/.exec(cpuinfo) || [])[1] || os.cpus()[0]?.model || 'unknown';
  const pkg = (name) => pkgVersion(path.join(ROOT, 'node_modules', name));
  return {
    cpu: model.trim(),
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    loadStart,
    loadEnd: os.loadavg(),
    versions: {
      ws: pkg('ws'), 'ws-apm': pkgVersion(ROOT),
      '@opentelemetry/sdk-node': pkg('@opentelemetry/sdk-node'), 'dd-trace': pkg('dd-trace'),
      'opentelemetry-instrumentation-ws': pkg('opentelemetry-instrumentation-ws'),
      'socket.io': pkg('socket.io'), 'engine.io': pkg('engine.io'), '@opentelemetry/instrumentation-socket.io': pkg('@opentelemetry/instrumentation-socket.io'),
      'elastic-apm-node': pkg('elastic-apm-node'), newrelic: NEWRELIC_DIR ? pkgVersion(path.resolve(NEWRELIC_DIR)) : pkg('newrelic'),
    },
  };
}

/** Why a variant cannot run on this Node/install, from what its server printed (null: it ran). */
function notRunReason(v, stderr) {
  const na = /the (\w+) backend is not available[^\n]*/.exec(stderr);
  if (na && v.requires.some((p) => p.includes('adapters/'))) return `not run yet: adapter not landed (ws-apm says "${na[0].trim()}")`;
  const nothing = /backend (\w+): ([^\n]*?)(?:;|\.)? ?ws-apm records nothing[^\n]*/.exec(stderr) || /backend (\w+): cannot load[^\n]*/.exec(stderr);
  if (nothing) return `not run: ${nothing[0].trim().slice(0, 300)}`;
  return null;
}

async function main() {
  const t0 = Date.now();
  const loadStart = os.loadavg();
  const pristine = fingerprint(require('ws'));
  const dflt = wsApmDefaults();
  const allVariants = defineVariants({ quick: QUICK, otlpProtocol: OTLP_PROTOCOL, newrelicDir: NEWRELIC_DIR });
  const variants = allVariants.filter((v) => !ONLY || ONLY.split(',').map(Number).includes(v.id)).map((v) => ({ ...v }));
  if (!variants.some((v) => v.key === 'bare')) variants.unshift({ ...allVariants[0] });
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  for (const v of variants) {
    const missing = v.requires.filter((p) => !has(p));
    if (missing.length) {
      v.skipped = missing.some((p) => p.includes('adapters/')) ? 'not run yet: adapter not landed' : `not run: ${missing.join(', ')} missing (npm run build?)`;
    } else if (v.preload.some((p) => p == null)) {
      v.skipped = 'not run: agent not installed';
    }
    if ((v.backend === 'newrelic' || v.agent === 'newrelic') && !v.skipped) {
      const dir = path.dirname(v.preload[0]);
      const ver = pkgVersion(dir);
      if (nodeMajor >= 22 && Number(String(ver).split('.')[0]) < 14) {
        v.note = `newrelic ${ver} on Node ${process.versions.node}: ws-apm's supported line on Node >= 22 is newrelic 14 `
          + '(see bench/README.md, "Node 24")';
      }
    }
  }
  const byKey = new Map(variants.map((v) => [v.key, v]));
  const passes = definePasses(MODE).filter((p) => PASS_KEYS.includes(p.key)).map((p) => {
    const keys = (p.variants || variants.filter((v) => !v.onlyPasses).map((v) => v.key)).filter((k) => byKey.has(k));
    if (!keys.includes('bare')) keys.unshift('bare');
    return { ...p, variantKeys: keys, rounds: DO_THROUGHPUT ? p.rounds : 0, results: [], verification: {}, errors: {} };
  });
  const live = (key) => !byKey.get(key).skipped;
  log(`mode ${MODE.name}, Node ${process.version}; passes ${passes.map((p) => `${p.key} (${p.rounds} rounds: ${p.variantKeys.filter(live).map((k) => byKey.get(k).id).join(',')})`).join('; ')}; `
    + `skipped ${variants.filter((v) => v.skipped).map((v) => `${v.id} (${v.skipped})`).join(', ') || 'none'}`);

  const sinks = {};
  const sinkKinds = new Set(variants.filter((v) => !v.skipped && v.sink).map((v) => v.sink));
  for (const kind of sinkKinds) sinks[kind] = await startSink(kind);

  const maxRounds = Math.max(0, ...passes.map((p) => p.rounds));
  for (let r = 0; r < maxRounds; r++) {
    for (const pass of passes) {
      if (r >= pass.rounds) continue;
      const round = {};
      pass.results.push(round);
      for (const key of pass.variantKeys) {
        const v = byKey.get(key);
        if (v.skipped) continue;
        const sink = v.sink ? sinks[v.sink] : null;
        const verifying = QUICK || r === pass.rounds - 1;
        let server;
        try {
          const sinkBefore = sink && (verifying || v.sink === 'newrelic') ? await sinkStats(sink) : null;
          try {
            server = await startServer(v, sinks, pass);
            await agentConnected(v, sink, sinkBefore);
          } catch (err) {
            // the server process exited before listening (an agent that does not load on this Node): the variant
            // is not run (once is enough to tell); a slow start on a loaded machine only fails this run
            if (/ exited /.test(String(err.message))) {
              v.skipped = `not run: server did not start on Node ${process.versions.node} (${String(err.message).split('\n')[0].slice(0, 200)})`;
            }
            throw err;
          }
          if (!v.patchedFns) {
            const fp = await server.request('fingerprint');
            v.patchedFns = diff(pristine, fp.fingerprint);
            v.fingerprintPass = pass.key;
          }
          round[key] = {};
          for (const size of pass.sizes) {
            const sio = pass.server === 'socketio';
            const res = pass.workload === 'broadcast' ? await broadcastRun(server, sink, size, sio) : await echoRun(server, sink, size, pass.names, sio);
            round[key][size] = res;
            if (res.errors) (pass.verification[key] ||= { problems: [] }).problems.push(`${res.errors} connections closed during the ${size} B run`);
            if (res.undelivered) (pass.verification[key] ||= { problems: [] }).problems.push(`${res.undelivered} broadcast deliveries missing after the run`);
            const bc = pass.workload === 'broadcast';
            log(`round ${r + 1}/${pass.rounds} ${pass.key} v${v.id} ${key} ${size} B: ${fmtInt(res.msgPerSec)} ${bc ? 'broadcasts' : 'msg'}/s, ${fmt(res.cpuUsPerMsg, 1)} µs/msg`
              + `${bc ? ` (${fmt(res.cpuUsPerDelivered, 2)} µs per delivered)` : ''}, p50 ${fmt(res.p50Ms)} p99 ${fmt(res.p99Ms)} ms`
              + `${res.exportedPerMsg != null ? `, telemetry/msg ${fmt(res.exportedPerMsg, 3)}` : ''}`);
          }
          if (verifying) {
            // quick mode: let the exporter's scheduled flush reach the sink before the server goes away
            const after = sink ? (QUICK ? await waitSinkQuiet(sink, { minMs: v.drainMinMs || 500, quietMs: v.drainQuietMs || MODE.drainQuietMs, maxMs: (v.drainMinMs || 0) + 8000 }) : await sinkStats(sink)) : null;
            const life = await server.request('stats');
            const ver = (pass.verification[key] ||= { problems: [] });
            Object.assign(ver, { sink: delta(sinkBefore, after), messages: life.messages, sends: life.sent, lifetimeS: (Date.now() - server.startedAt) / 1000, windows: server.windows, drained: QUICK });
          }
        } catch (err) {
          pass.errors[key] = String(err.message || err).split('\n')[0].slice(0, 300);
          (pass.verification[key] ||= { problems: [] }).problems.push(`run failed: ${String(err.message || err).slice(0, 1500)}`);
          log(`${pass.key} v${v.id} ${key} FAILED: ${err.message}`);
        } finally {
          if (server) {
            await server.stop();
            const why = notRunReason(v, server.stderr);
            if (why) v.skipped = why;
            const unexpected = server.stderr.trim();
            if (unexpected && r === 0) log(`v${v.id} server stderr: ${unexpected.slice(0, 600)}`);
          }
        }
      }
    }
  }

  const paired = [];
  if (PASS_KEYS.includes('paired') && DO_THROUGHPUT) {
    for (const pair of PAIRED) {
      for (const names of [false, true]) {
        if (names && (pair.maxNames === null || !MODE.paired.names)) continue;
        const a = byKey.get(pair.vs);
        const b = byKey.get(pair.key);
        if (!a || !b || a.skipped || b.skipped) continue;
        const result = { key: pair.key, vs: pair.vs, server: pair.server, names, max: names ? pair.maxNames : pair.max };
        try {
          result.blocks = await pairedRun(a, b, sinks, pair, names);
          result.ratio = spread(result.blocks.map((x) => x.ratio));
          log(`paired ${pair.server} names ${names ? 'on' : 'off'} v${b.id} ${b.key} ÷ v${a.id} ${a.key}: ${pairCell(result, true)}; `
            + `blocks ${result.blocks.map((x) => fmt(x.ratio, 3)).join(' ')}`);
        } catch (err) {
          result.error = String(err.message || err).split('\n')[0].slice(0, 300);
          log(`paired ${pair.server} v${b.id} ${b.key} ÷ v${a.id} ${a.key} FAILED: ${err.message}`);
        }
        paired.push(result);
      }
    }
  }

  const memory = {};
  if (DO_MEMORY) {
    for (const key of MEMORY_KEYS) {
      const v = byKey.get(key);
      if (!v || v.skipped) continue;
      try {
        memory[key] = await memoryRun(v, sinks);
        const mm = memory[key];
        log(`memory v${v.id} ${key}: ${fmtInt(mm.idle.heapPerConn)} B heap/conn, ${fmtInt(mm.idle.rssPerConn)} B RSS/conn (${mm.idle.opened} open, ${mm.idle.failed} failed); `
          + `churn ${mm.churn.cycles} cycles (${mm.churn.failed} failed) at ${fmtInt(mm.churn.perSec)}/s, heap growth ${fmtInt(mm.churn.heapGrowth)} B`);
        v.memoryProblems = [];
        if (mm.idle.failed) v.memoryProblems.push(`${mm.idle.failed} idle connections failed: ${mm.idle.firstError}`);
        if (mm.churn.failed) v.memoryProblems.push(`${mm.churn.failed} churn connections failed: ${mm.churn.firstError}`);
      } catch (err) {
        v.memoryError = String(err.message || err).split('\n')[0].slice(0, 300);
        v.memoryProblems = [`memory run failed: ${String(err.message || err).slice(0, 1500)}`];
        log(`memory v${v.id} ${key} FAILED: ${err.message}`);
      }
    }
  }

  // verification: did every variant exercise its instrumentation, with the sampling it was given?
  for (const pass of passes) {
    if (!pass.rounds) continue;
    for (const key of pass.variantKeys) {
      const v = byKey.get(key);
      if (v.skipped) continue;
      const ver = (pass.verification[key] ||= { problems: [] });
      if (!ver.messages) ver.problems.push('no message was handled');
      if (v.patchedFns && v.fingerprintPass === pass.key) {
        const wsPatched = v.patchedFns.filter((k) => !k.startsWith('http.'));
        if (v.patched && wsPatched.length === 0) ver.problems.push(`nothing in ws was patched${v.patchedFns.length ? ` (only ${v.patchedFns.join(', ')})` : ''}`);
        if (v.patched === false && v.patchedFns.length > 0) ver.problems.push(`expected no patching, but changed: ${v.patchedFns.join(', ')}`);
      }
      if (v.sink) {
        if (!ver.sink) ver.problems.push('sink not read');
        else {
          const info = { pass, messages: ver.messages, lifetimeS: ver.lifetimeS, windows: ver.windows, drained: ver.drained };
          ver.problems.push(...check(v, ver.sink, info, dflt));
          ver.summary = checkSummary(v, ver.sink, info, dflt);
        }
      }
      ver.ok = ver.problems.length === 0;
    }
  }
  const memoryFailed = variants.filter((v) => v.memoryProblems && v.memoryProblems.length);

  for (const s of Object.values(sinks)) await s.stop(2000);

  const report = {
    mode: MODE.name,
    date: new Date().toISOString(),
    command: `node bench/run.js ${argv.join(' ')}`.trim(),
    durationS: Math.round((Date.now() - t0) / 1000),
    machine: machine(loadStart),
    config: { ...MODE, otlpProtocol: OTLP_PROTOCOL, pinned: PIN, wsApmDefaults: dflt },
    variants: variants.map((v) => ({
      id: v.id, key: v.key, label: v.label, short: v.short, backend: v.backend || null, sampling: v.sampling || null,
      skipped: v.skipped || null, memoryError: v.memoryError || null, memoryProblems: v.memoryProblems || null,
      note: v.note || null, preload: v.preload.map((p) => path.relative(ROOT, p) || p), patched: v.patchedFns || null,
    })),
    passes: {},
    memory,
    memoryKeys: MEMORY_KEYS,
    paired: paired.length ? { config: MODE.paired, results: paired } : null,
  };
  for (const p of passes) {
    if (!p.rounds) continue;
    for (const round of p.results) for (const k of Object.keys(round)) if (byKey.get(k).skipped) delete round[k];
    report.passes[p.key] = {
      key: p.key, title: p.title, workload: p.workload, server: p.server || 'ws', names: p.names, sizes: p.sizes, roundsRun: p.results.length,
      variantKeys: p.variantKeys, errors: p.errors,
      summary: summarize(p.results, p.variantKeys, p.sizes),
      verification: Object.fromEntries(Object.entries(p.verification).map(([k, ver]) => [k, { ...ver }])),
      rounds: p.results,
    };
  }
  report.targets = targets(report);
  report.memoryTargets = memoryTargets(memory);
  fs.mkdirSync(OUT_DIR, { recursive: true });
  // quick (CI) runs write quick.*, so they never overwrite the full run's table that the README includes
  const base = QUICK ? 'quick' : 'latest';
  fs.writeFileSync(path.join(OUT_DIR, `${base}.json`), `${JSON.stringify(report, null, 2)}\n`);
  const md = markdown(report);
  fs.writeFileSync(path.join(OUT_DIR, `${base}.md`), md);
  process.stdout.write(md);
  log(`done in ${report.durationS} s; wrote ${path.relative(ROOT, path.join(OUT_DIR, `${base}.json`))} and ${base}.md`);

  const failed = [];
  for (const p of passes) {
    for (const [k, ver] of Object.entries(p.verification)) {
      if (!byKey.get(k).skipped && ver.ok === false) failed.push(`${p.key} v${byKey.get(k).id} ${k}: ${ver.problems.join('; ')}`);
    }
  }
  for (const r of paired) if (r.error) failed.push(`paired v${byKey.get(r.key).id} ${r.key} ÷ ${r.vs} (${r.server}): ${r.error}`);
  for (const v of memoryFailed) failed.push(`memory v${v.id} ${v.key}: ${v.memoryProblems.join('; ')}`);
  if (failed.length) {
    log(`instrumentation check FAILED for: ${failed.join(' | ')}`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  log(`fatal: ${err.stack || err}`);
  killAll();
  process.exit(2);
});
