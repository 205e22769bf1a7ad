'use strict';
// ws-apm benchmark orchestrator.
//
//   node bench/run.js            full run (several interleaved rounds, 10,000 idle connections, 50,000 churn cycles)
//   node bench/run.js --quick    seconds-long smoke run for CI: proves the harness works and that every variant
//                                exercised its instrumentation; exits non-zero if not. Never asserts timings.
// Options: --rounds N, --no-pin, --variants 1,4,8 (subset by number), --no-memory, --no-throughput,
//          --otlp-protocol http/protobuf|http/json, --out DIR, --cpu-prof (profile variant servers, see README)
//
// Every process is a child of this one: telemetry sinks (bench/sinks.js), one echo server per variant run
// (bench/server.js, started fresh, with the variant's preload flags and environment), and an
// uninstrumented load generator (bench/load.js). Results: bench/results/latest.json and latest.md
// (quick mode: quick.json and quick.md, so that CI never overwrites the full run's table).
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const https = require('node:https');
const { fingerprint, diff } = require('./fingerprint');

const ROOT = path.resolve(__dirname, '..');
const BENCH = __dirname;
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
    conns: 8,
    inflight: 32,
    sizes: [64, 4096],
    warmupMs: 300,
    durationMs: 1000,
    idleConns: 300,
    churnCycles: 500,
    churnConcurrency: 32,
    settleMs: 200,
    // export sooner so that the short run can verify what reached the sinks
    flushEnv: { OTEL_BSP_SCHEDULE_DELAY: '500', DD_TRACE_FLUSH_INTERVAL: '500', ELASTIC_APM_API_REQUEST_TIME: '1s' },
  }
  : {
    name: 'full',
    rounds: 5,
    conns: 8,
    inflight: 32,
    sizes: [64, 4096],
    warmupMs: 700,
    durationMs: 2000,
    idleConns: 10000,
    churnCycles: 50000,
    churnConcurrency: 64,
    // longer than the OTel BatchSpanProcessor's 5 s schedule, so queued spans are not counted as per-connection heap
    settleMs: 5500,
    flushEnv: {},
  };
MODE.rounds = Number(opt('--rounds', MODE.rounds));
const ONLY = opt('--variants', null);
const DO_MEMORY = !flag('--no-memory');
const DO_THROUGHPUT = !flag('--no-throughput');
const OTLP_PROTOCOL = opt('--otlp-protocol', 'http/protobuf');
const OUT_DIR = path.resolve(opt('--out', path.join(BENCH, 'results')));
const CPU_PROF = flag('--cpu-prof');
// Server pinned to CPU 0 and load generator to CPU 1 (taskset; sinks unpinned). Unpinned, the scheduler's
// wake-affinity often puts both ends of the loopback ping-pong on one CPU, and the run locks into a mode at
// about half the throughput (each process ~50 % busy). --no-pin turns this off.
const PIN = !flag('--no-pin') && os.cpus().length >= 2 && fs.existsSync('/usr/bin/taskset');

const REGISTER = path.join(ROOT, 'dist', 'register.js');
const has = (p) => fs.existsSync(path.join(ROOT, p));

// ---------------------------------------------------------------------------------------------
// variants
// ---------------------------------------------------------------------------------------------
function otelEnv(sink) {
  return {
    OTEL_SERVICE_NAME: 'ws-apm-bench',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sink.port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: OTLP_PROTOCOL,
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_LOGS_EXPORTER: 'none',
    OTEL_TRACES_SAMPLER: 'always_on',
  };
}

const spanNames = (d) => Object.keys(d.names || {});
const count = (d, re) => Object.entries(d.names || {}).filter(([n]) => re.test(n)).reduce((a, [, c]) => a + c, 0);

const VARIANTS = [
  {
    id: 1, key: 'bare', label: 'bare ws 8',
    preload: [], env: () => ({}), patched: false,
  },
  {
    id: 2, key: 'wsapm-off', label: 'ws-apm, WS_APM_ENABLED=false',
    requires: ['dist/register.js'],
    preload: [REGISTER], env: () => ({ WS_APM_ENABLED: 'false' }), patched: false,
  },
  {
    id: 3, key: 'wsapm-api', label: 'ws-apm + @opentelemetry/api, no SDK',
    requires: ['dist/register.js'],
    preload: [REGISTER], env: () => ({ WS_APM_BACKEND: 'otel', OTEL_SDK_DISABLED: 'true' }), patched: true,
  },
  {
    id: 4, key: 'wsapm-otel', label: 'ws-apm + OTel SDK, 100 % sampled, OTLP/HTTP',
    requires: ['dist/register.js'], sink: 'otlp',
    preload: [REGISTER],
    env: (s) => ({ WS_APM_BACKEND: 'otel', WS_APM_MESSAGE_SAMPLE_RATE: '1', ...otelEnv(s.otlp) }),
    patched: true,
    check: (d) => (count(d, /^span .*receive/i) > 0 ? null
      : `OTLP sink received no message (RECEIVE) span; span names: ${spanNames(d).join(', ') || 'none'}`),
  },
  {
    id: 5, key: 'wsapm-otel-1pct', label: 'ws-apm + OTel SDK, WS_APM_MESSAGE_SAMPLE_RATE=0.01',
    requires: ['dist/register.js'], sink: 'otlp',
    preload: [REGISTER],
    env: (s) => ({ WS_APM_BACKEND: 'otel', WS_APM_MESSAGE_SAMPLE_RATE: '0.01', ...otelEnv(s.otlp) }),
    patched: true,
    check: (d, msgs) => {
      const recv = count(d, /^span .*receive/i);
      if (recv === 0) return `OTLP sink received no message (RECEIVE) span; span names: ${spanNames(d).join(', ') || 'none'}`;
      if (msgs >= 10000 && recv > 0.05 * msgs) return `${recv} RECEIVE spans for ${msgs} messages: sampling at 0.01 not applied`;
      return null;
    },
  },
  {
    id: 6, key: 'wsapm-elastic', label: 'ws-apm + elastic-apm-node',
    requires: ['dist/register.js', 'dist/adapters/elastic.js'], sink: 'elastic',
    preload: [require.resolve('elastic-apm-node/start', { paths: [ROOT] }), REGISTER],
    env: (s) => ({
      WS_APM_BACKEND: 'elastic',
      ELASTIC_APM_SERVER_URL: `http://127.0.0.1:${s.elastic.port}`,
      ELASTIC_APM_SERVICE_NAME: 'ws-apm-bench',
      ELASTIC_APM_CENTRAL_CONFIG: 'false',
      ELASTIC_APM_CLOUD_PROVIDER: 'none',
      ELASTIC_APM_LOG_LEVEL: 'warning',
      ELASTIC_APM_TRANSACTION_SAMPLE_RATE: '1',
    }),
    patched: true,
    drainMinMs: 1500,
    check: (d) => (count(d, /^transaction /) > 0 ? null
      : `Elastic intake sink received no ws-apm transaction; events: ${JSON.stringify(d.events || {})}; names: ${spanNames(d).join(', ') || 'none'}`),
  },
  {
    id: 7, key: 'wsapm-newrelic', label: 'ws-apm + newrelic',
    requires: ['dist/register.js', 'dist/adapters/newrelic.js'], sink: 'newrelic',
    preload: [require.resolve('newrelic', { paths: [ROOT] }), REGISTER],
    env: (s) => ({
      WS_APM_BACKEND: 'newrelic',
      NEW_RELIC_APP_NAME: 'ws-apm-bench',
      NEW_RELIC_LICENSE_KEY: '0123456789abcdef0123456789abcdef0123NRAL',
      NEW_RELIC_HOST: '127.0.0.1',
      NEW_RELIC_PORT: String(s.newrelic.port),
      NEW_RELIC_NO_CONFIG_FILE: 'true',
      NEW_RELIC_LOG_ENABLED: 'false',
      NEW_RELIC_LOG_LEVEL: 'error',
      NEW_RELIC_DISTRIBUTED_TRACING_ENABLED: 'true',
      NEW_RELIC_UTILIZATION_DETECT_AWS: 'false',
      NEW_RELIC_UTILIZATION_DETECT_AZURE: 'false',
      NEW_RELIC_UTILIZATION_DETECT_GCP: 'false',
      NEW_RELIC_UTILIZATION_DETECT_PCF: 'false',
      NEW_RELIC_UTILIZATION_DETECT_DOCKER: 'false',
      NEW_RELIC_UTILIZATION_DETECT_KUBERNETES: 'false',
      NODE_EXTRA_CA_CERTS: s.newrelic.certFile,
    }),
    patched: true,
    // the agent harvests events at the period the fake collector hands out on connect (quick mode: 1 s)
    drainMinMs: QUICK ? 2500 : 6500,
    check: (d) => {
      if (!(d.paths && d.paths.connect > 0)) return `New Relic fake collector saw no connect; calls: ${JSON.stringify(d.paths || {})}`;
      const ev = ((d.events && d.events.analytic_event_data) || 0) + ((d.events && d.events.span_event_data) || 0);
      return ev > 0 ? null : `New Relic fake collector received no transaction/span event; calls: ${JSON.stringify(d.paths)}`;
    },
  },
  {
    id: 8, key: 'dd-trace', label: 'dd-trace 5 ws plugin',
    sink: 'dd',
    preload: ['dd-trace/init'],
    env: (s) => ({
      DD_TRACE_AGENT_URL: `http://127.0.0.1:${s.dd.port}`,
      DD_SERVICE: 'ws-apm-bench',
      DD_REMOTE_CONFIGURATION_ENABLED: 'false',
      DD_TELEMETRY_ENABLED: 'false',
      DD_INSTRUMENTATION_TELEMETRY_ENABLED: 'false',
      DD_TRACE_STARTUP_LOGS: 'false',
      DD_RUNTIME_METRICS_ENABLED: 'false',
      DD_PROFILING_ENABLED: 'false',
      DD_TRACE_WEBSOCKET_MESSAGES_ENABLED: 'true',
      DD_TRACE_SAMPLE_RATE: '1',
    }),
    patched: true,
    check: (d, msgs) => (d.traces >= Math.min(100, msgs / 10) ? null
      : `dummy Datadog agent received ${d.traces} traces for ${msgs} messages (message traces missing)`),
  },
  {
    id: 9, key: 'otel-ws-community', label: 'opentelemetry-instrumentation-ws 0.5 + OTel SDK',
    sink: 'otlp',
    preload: [path.join(BENCH, 'preload', 'otel-ws-community.js')],
    env: (s) => otelEnv(s.otlp),
    patched: true,
    note: 'server-side sockets are not traced by this instrumentation (it subclasses the exported WebSocket; '
      + 'ws servers construct the original class): only handshake spans, no message/send spans',
    check: (d) => (d.spans > 0 ? null : 'OTLP sink received no span'),
  },
];

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
  return { ...env, ...extra };
}

// 10,000 idle connections need that many descriptors in the server and in the load generator: when the soft
// limit is lower, children are started through `sh -c 'ulimit -n N'` (up to the hard limit).
const FD_NEED = MODE.idleConns + 1024;
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
async function startServer(variant, sinks) {
  const args = ['--expose-gc'];
  if (CPU_PROF) {
    const dir = path.join(OUT_DIR, 'profiles');
    fs.mkdirSync(dir, { recursive: true });
    args.push('--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${variant.key}-${++profSeq}.cpuprofile`);
  }
  for (const p of variant.preload) args.push('-r', p);
  args.push(path.join(BENCH, 'server.js'));
  const env = cleanEnv({ ...variant.env(sinks), ...MODE.flushEnv });
  const c = new Child(`server:${variant.key}`, args, env, PIN ? 0 : null);
  const msg = await c.waitFor('listening', 60000);
  c.port = msg.port;
  return c;
}

function runLoad(options) {
  return new Child('load', [path.join(BENCH, 'load.js'), JSON.stringify(options)], cleanEnv({}), PIN ? 1 : null);
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
async function throughputRun(server, sink, size) {
  const load = runLoad({ mode: 'throughput', port: server.port, conns: MODE.conns, inflight: MODE.inflight, size, warmupMs: MODE.warmupMs, durationMs: MODE.durationMs });
  await load.waitFor('measure-start', 60000);
  const [s0, k0] = await Promise.all([server.request('stats'), sink ? sinkStats(sink) : null]);
  await load.waitFor('measure-end', MODE.durationMs + 60000);
  const [s1, k1] = await Promise.all([server.request('stats'), sink ? sinkStats(sink) : null]);
  const r = await load.waitFor('result', 60000);
  await load.exitPromise;
  const serverMsgs = s1.messages - s0.messages;
  const sd = delta(k0, k1);
  const exported = sd ? sd.spans + sd.traces : null;
  return {
    size,
    msgPerSec: r.msgPerSec,
    cpuUsPerMsg: serverMsgs > 0 ? (s1.cpuUs - s0.cpuUs) / serverMsgs : null,
    serverCpuPct: ((s1.cpuUs - s0.cpuUs) / 1000 / (s1.t - s0.t)) * 100,
    loadCpuPct: (r.loadCpuUs / 1000 / r.elapsedMs) * 100,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    maxMs: r.maxMs,
    messages: r.messages,
    serverMessages: serverMsgs,
    errors: r.errors,
    exportedPerMsg: exported != null && serverMsgs > 0 ? exported / serverMsgs : null,
  };
}

async function memoryRun(variant, sinks) {
  const server = await startServer(variant, sinks);
  try {
    // warm up: JIT, lazily created instruments and caches, one of each path
    let load = runLoad({ mode: 'throughput', port: server.port, conns: 4, inflight: 4, size: 64, warmupMs: 200, durationMs: 300 });
    await load.waitFor('result', 60000);
    await load.exitPromise;
    load = runLoad({ mode: 'churn', port: server.port, cycles: 200, concurrency: 10 });
    await load.waitFor('churn-done', 60000);
    await load.exitPromise;
    await sleep(MODE.settleMs);
    const base = await server.request('mem');

    load = runLoad({ mode: 'idle', port: server.port, conns: MODE.idleConns, concurrency: 100 });
    const open = await load.waitFor('idle-open', 300000);
    await sleep(MODE.settleMs);
    const withIdle = await server.request('mem');
    const closeP = load.waitFor('idle-closed', 300000);
    load.send('close');
    await closeP;
    await load.exitPromise;
    await sleep(MODE.settleMs);
    const afterIdle = await server.request('mem');

    load = runLoad({ mode: 'churn', port: server.port, cycles: MODE.churnCycles, concurrency: MODE.churnConcurrency });
    const churn = await load.waitFor('churn-done', 600000);
    await load.exitPromise;
    await sleep(MODE.settleMs);
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
// statistics and report
// ---------------------------------------------------------------------------------------------
function median(xs) {
  const v = xs.filter((x) => x != null && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
function spread(xs) {
  const v = xs.filter((x) => x != null && Number.isFinite(x));
  if (!v.length) return null;
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

const METRICS = ['msgPerSec', 'cpuUsPerMsg', 'p50Ms', 'p99Ms', 'exportedPerMsg'];

function summarize(rounds, variants) {
  // rounds[r][variantKey][size] = result
  const out = {};
  for (const v of variants) {
    out[v.key] = {};
    for (const size of MODE.sizes) {
      const s = {};
      for (const m of METRICS) {
        const abs = [];
        const ratio = [];
        for (const round of rounds) {
          const x = round[v.key] && round[v.key][size];
          const b = round.bare && round.bare[size];
          if (!x || x[m] == null) continue;
          abs.push(x[m]);
          if (b && b[m]) ratio.push(x[m] / b[m]);
        }
        s[m] = { abs: spread(abs), ratio: spread(ratio) };
      }
      out[v.key][size] = s;
    }
  }
  return out;
}

const fmt = (x, d = 2) => (x == null ? '–' : Number(x).toFixed(d));
const fmtInt = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'));
function cell(sp, f = fmt) {
  if (!sp) return '–';
  if (sp.n === 1 || sp.min === sp.max) return f(sp.median);
  return `${f(sp.median)} (${f(sp.min)}–${f(sp.max)})`;
}

function machine() {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = (/model name\s*:\s*(.*)/.exec(cpuinfo) || [])[1] || os.cpus()[0]?.model || 'unknown';
  const pkg = (name) => {
    try { return JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version; } catch { return null; }
  };
  return {
    cpu: model.trim(),
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    versions: {
      ws: pkg('ws'), 'ws-apm': pkg('..') || JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version,
      '@opentelemetry/sdk-node': pkg('@opentelemetry/sdk-node'), 'dd-trace': pkg('dd-trace'),
      'opentelemetry-instrumentation-ws': pkg('opentelemetry-instrumentation-ws'),
      'elastic-apm-node': pkg('elastic-apm-node'), newrelic: pkg('newrelic'),
    },
  };
}

function targets(summary, memory) {
  const r = (key, size, m) => summary[key] && summary[key][size] && summary[key][size][m].ratio;
  // throughput implied by server CPU per message (bare µs/msg ÷ variant µs/msg, per round): steadier than msg/s
  // on a shared machine, and not bounded by the load generator
  const cpuEq = (key) => {
    const c = r(key, 64, 'cpuUsPerMsg');
    return c ? { median: 1 / c.median, min: 1 / c.max, max: 1 / c.min, n: c.n } : null;
  };
  const list = [];
  const add = (what, sp, ok, cpu) => list.push({
    target: what, value: sp || null, met: sp ? ok(sp) : null, cpuBased: cpu || null, cpuMet: cpu ? ok(cpu) : null,
  });
  const thr = (k) => r(k, 64, 'msgPerSec');
  add('variant 2 ≥ 0.99 × bare throughput (64 B)', thr('wsapm-off'), (s) => s.median >= 0.99, cpuEq('wsapm-off'));
  add('variant 3 ≥ 0.95 × bare throughput (64 B)', thr('wsapm-api'), (s) => s.median >= 0.95, cpuEq('wsapm-api'));
  add('variant 4 ≥ 0.50 × bare throughput (64 B)', thr('wsapm-otel'), (s) => s.median >= 0.5, cpuEq('wsapm-otel'));
  const v4 = thr('wsapm-otel');
  const dd = thr('dd-trace');
  const c4 = cpuEq('wsapm-otel');
  const cdd = cpuEq('dd-trace');
  add('variant 4 ≥ 2 × dd-trace throughput (64 B)', v4 && dd ? { median: v4.median / dd.median, n: 1 } : null, (s) => s.median >= 2,
    c4 && cdd ? { median: c4.median / cdd.median, n: 1 } : null);
  add('variant 4 p99 latency ≤ 2 × bare (64 B)', r('wsapm-otel', 64, 'p99Ms'), (s) => s.median <= 2);
  add('variant 5 ≥ 0.90 × bare throughput (64 B)', thr('wsapm-otel-1pct'), (s) => s.median >= 0.9, cpuEq('wsapm-otel-1pct'));
  const bareHeap = memory.bare && memory.bare.idle.heapPerConn;
  for (const k of ['wsapm-api', 'wsapm-otel', 'wsapm-otel-1pct']) {
    const m = memory[k];
    const extra = m && bareHeap != null ? m.idle.heapPerConn - bareHeap : null;
    add(`${k}: ≤ 300 B extra heap per idle connection`, extra == null ? null : { median: extra, n: 1, unit: 'B' }, (s) => s.median <= 300);
  }
  for (const k of ['wsapm-api', 'wsapm-otel', 'wsapm-otel-1pct']) {
    const m = memory[k];
    if (!m || m.churn.cycles < 10000) continue; // too few cycles to tell growth from GC noise
    // "nothing retained": the smallest retained object is 16+ bytes; heap-after-GC noise is about ±5 B per cycle here
    add(`${k}: nothing retained after ${m.churn.cycles} churn cycles (growth < 16 B/cycle)`, { median: m.churn.heapGrowth, n: 1, unit: 'B' },
      (s) => s.median < 16 * m.churn.cycles);
  }
  return list;
}

function markdown(report) {
  const L = [];
  const m = report.machine;
  L.push(`# ws-apm benchmark (${report.mode} mode)`);
  L.push('');
  L.push(`- Date: ${report.date}`);
  L.push(`- Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node}`);
  L.push(`- Versions: ${Object.entries(m.versions).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  L.push(`- Command: \`${report.command}\``);
  L.push(`- Echo workload: ${MODE.conns} connections × ${MODE.inflight} messages in flight, text messages, ${MODE.warmupMs} ms warm-up then ${MODE.durationMs} ms measured; `
    + `${report.rounds} interleaved round(s) (each variant's server started fresh in every round, order ${report.variants.filter((v) => !v.skipped).map((v) => v.id).join(' ')}).`);
  L.push('- Cells: median over rounds (min–max). "× bare" = ratio to bare ws measured in the same round; server CPU is the server process\'s '
    + 'user+system time over the measured window divided by the messages it echoed. Telemetry/msg = spans (OTLP, Elastic, New Relic) or traces (Datadog) '
    + 'that reached the local sink during the window, per echoed message (exporters drop what their queues cannot hold).');
  L.push(`- OTLP: ${OTLP_PROTOCOL}, BatchSpanProcessor defaults${Object.keys(MODE.flushEnv).length ? `, ${Object.entries(MODE.flushEnv).map(([k, v]) => `${k}=${v}`).join(', ')}` : ''}.`);
  L.push(`- ${report.config.pinned ? 'Server pinned to CPU 0, load generator to CPU 1 (taskset); sinks unpinned' : 'Processes not pinned'}. The machine is shared and noisy: compare ratios within a round, not absolute figures across runs.`);
  L.push('');
  for (const size of report.rounds ? MODE.sizes : []) {
    L.push(`## Echo throughput, ${size >= 1024 ? `${size / 1024} KiB` : `${size} B`} messages`);
    L.push('');
    L.push('| # | variant | msg/s | × bare | server CPU µs/msg | × bare | p50 ms | p99 ms | p99 × bare | telemetry/msg |');
    L.push('|---|---|---|---|---|---|---|---|---|---|');
    for (const v of report.variants) {
      if (v.skipped) {
        L.push(`| ${v.id} | ${v.label} | ${v.skipped} | | | | | | | |`);
        continue;
      }
      const s = report.summary[v.key] && report.summary[v.key][size];
      if (!s || !s.msgPerSec.abs) {
        L.push(`| ${v.id} | ${v.label} | failed: ${v.error || 'no result'} | | | | | | | |`);
        continue;
      }
      L.push(`| ${v.id} | ${v.label} | ${cell(s.msgPerSec.abs, fmtInt)} | ${cell(s.msgPerSec.ratio)} | ${cell(s.cpuUsPerMsg.abs, (x) => fmt(x, 1))} | ${cell(s.cpuUsPerMsg.ratio)} `
        + `| ${cell(s.p50Ms.abs)} | ${cell(s.p99Ms.abs)} | ${cell(s.p99Ms.ratio)} | ${cell(s.exportedPerMsg.abs)} |`);
    }
    L.push('');
  }
  if (report.memory && Object.keys(report.memory).length) {
    L.push(`## Memory: ${MODE.idleConns.toLocaleString('en-US')} idle connections, then ${MODE.churnCycles.toLocaleString('en-US')} connect/close cycles`);
    L.push('');
    L.push(`Server memory after \`global.gc()\`, ${MODE.settleMs} ms after each phase. Per connection = (with idle connections − baseline after warm-up) / connections. `
      + 'Churn growth = heap after the churn − heap before it (after the idle connections closed). One run per variant.');
    L.push('');
    L.push('| # | variant | RSS/conn | heap/conn | extra heap/conn vs bare | churn: heap growth | churn: per cycle | cycles/s |');
    L.push('|---|---|---|---|---|---|---|---|');
    const bare = report.memory.bare;
    for (const v of report.variants) {
      const mm = report.memory[v.key];
      if (v.skipped) { L.push(`| ${v.id} | ${v.label} | ${v.skipped} | | | | | |`); continue; }
      if (!mm) { L.push(`| ${v.id} | ${v.label} | ${v.memoryError ? `failed: ${v.memoryError}` : 'not run'} | | | | | |`); continue; }
      const extra = bare ? mm.idle.heapPerConn - bare.idle.heapPerConn : null;
      const failed = mm.idle.failed || mm.churn.failed ? ` (failed connects: idle ${mm.idle.failed}, churn ${mm.churn.failed})` : '';
      L.push(`| ${v.id} | ${v.label}${failed} | ${fmtInt(mm.idle.rssPerConn)} B | ${fmtInt(mm.idle.heapPerConn)} B | ${v.key === 'bare' ? '–' : `${fmtInt(extra)} B`} `
        + `| ${fmtInt(mm.churn.heapGrowth / 1024)} KiB | ${fmt(mm.churn.heapGrowth / mm.churn.cycles, 1)} B | ${fmtInt(mm.churn.perSec)} |`);
    }
    L.push('');
  }
  if (report.targets && report.targets.length) {
    L.push('## Targets (reported, not asserted)');
    L.push('');
    L.push('Throughput targets are given twice: from msg/s, and from server CPU per message (bare µs/msg ÷ variant µs/msg), '
      + 'which is steadier on a shared machine and not bounded by the load generator.');
    L.push('');
    L.push('| target | measured (median) | met | from CPU µs/msg | met |');
    L.push('|---|---|---|---|---|');
    const v = (x) => (x == null ? 'not measured' : x.unit === 'B' ? `${fmtInt(x.median)} B` : fmt(x.median));
    const yn = (m) => (m == null ? '–' : m ? 'yes' : '**no**');
    for (const t of report.targets) {
      L.push(`| ${t.target} | ${v(t.value)} | ${yn(t.met)} | ${t.cpuBased ? fmt(t.cpuBased.median) : '–'} | ${t.cpuBased ? yn(t.cpuMet) : '–'} |`);
    }
    L.push('');
  }
  L.push('## Instrumentation check');
  L.push('');
  L.push('| # | variant | patched ws/http functions | telemetry received by the sink (whole server lifetime) | check |');
  L.push('|---|---|---|---|---|');
  for (const v of report.variants) {
    if (v.skipped) { L.push(`| ${v.id} | ${v.label} | – | – | ${v.skipped} |`); continue; }
    const c = v.verification || {};
    const tel = c.sink ? summarizeSink(c.sink) : '–';
    L.push(`| ${v.id} | ${v.label} | ${c.patched ? (c.patched.length ? c.patched.length : 'none') : '–'} | ${tel} | ${c.ok == null ? '–' : c.ok ? 'ok' : `**FAILED**: ${c.problems.join('; ')}`} |`);
  }
  L.push('');
  const notes = report.variants.filter((v) => v.note);
  if (notes.length) {
    L.push('Notes:');
    for (const v of notes) L.push(`- variant ${v.id}: ${v.note}`);
    L.push('');
  }
  return `${L.join('\n')}\n`;
}

function summarizeSink(d) {
  const parts = [];
  if (d.spans) parts.push(`${d.spans} spans`);
  if (d.traces) parts.push(`${d.traces} traces`);
  if (d.metrics) parts.push(`${d.metrics} metric points`);
  for (const [k, c] of Object.entries(d.events || {})) parts.push(`${c} ${k}`);
  const top = Object.entries(d.names || {}).sort((a, b) => b[1] - a[1]).slice(0, 4).map(([n, c]) => `${n} ×${c}`);
  if (top.length) parts.push(`top: ${top.join(', ')}`);
  return parts.join('; ') || 'nothing';
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------
function log(...a) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${a.join(' ')}\n`);
}

async function main() {
  const t0 = Date.now();
  const pristine = fingerprint(require('ws'));
  const variants = VARIANTS.filter((v) => !ONLY || ONLY.split(',').map(Number).includes(v.id)).map((v) => ({ ...v }));
  if (!variants.some((v) => v.key === 'bare')) variants.unshift({ ...VARIANTS[0] });
  for (const v of variants) {
    const missing = (v.requires || []).filter((p) => !has(p));
    if (missing.length) {
      v.skipped = missing.some((p) => p.includes('adapters/')) ? 'not run yet: adapter not landed' : `not run: ${missing.join(', ')} missing (npm run build?)`;
    }
  }
  const active = variants.filter((v) => !v.skipped);
  log(`mode ${MODE.name}; variants ${active.map((v) => v.id).join(',')}; skipped ${variants.filter((v) => v.skipped).map((v) => `${v.id} (${v.skipped})`).join(', ') || 'none'}`);

  const sinks = {};
  for (const kind of new Set(active.map((v) => v.sink).filter(Boolean))) sinks[kind] = await startSink(kind);

  const rounds = [];
  const verification = {};
  for (const v of active) verification[v.key] = { problems: [], messages: 0, sink: null, patched: null };

  if (DO_THROUGHPUT) {
    for (let r = 0; r < MODE.rounds; r++) {
      const round = {};
      rounds.push(round);
      for (const v of active) {
        if (v.skipped) continue;
        const sink = v.sink ? sinks[v.sink] : null;
        const ver = verification[v.key];
        let server;
        try {
          const sinkBefore = sink ? await sinkStats(sink) : null;
          server = await startServer(v, sinks);
          if (r === 0) {
            const fp = await server.request('fingerprint');
            ver.patched = diff(pristine, fp.fingerprint);
          }
          round[v.key] = {};
          for (const size of MODE.sizes) {
            const res = await throughputRun(server, sink, size);
            round[v.key][size] = res;
            ver.messages += res.serverMessages;
            if (res.errors) ver.problems.push(`${res.errors} connections closed during the ${size} B run`);
            log(`round ${r + 1}/${MODE.rounds} v${v.id} ${v.key} ${size} B: ${fmtInt(res.msgPerSec)} msg/s, ${fmt(res.cpuUsPerMsg, 1)} µs/msg, p50 ${fmt(res.p50Ms)} p99 ${fmt(res.p99Ms)} ms`
              + `${res.exportedPerMsg != null ? `, telemetry/msg ${fmt(res.exportedPerMsg, 3)}` : ''}`);
          }
          if (sink && (QUICK || r === MODE.rounds - 1)) {
            // let the exporter's scheduled flush reach the sink before the server goes away (verification only)
            const after = QUICK ? await waitSinkQuiet(sink, { minMs: v.drainMinMs || 800, quietMs: 1200, maxMs: (v.drainMinMs || 0) + 8000 }) : await sinkStats(sink);
            const d = delta(sinkBefore, after);
            if (!ver.sink) ver.sink = d;
            else for (const k of ['requests', 'bytes', 'spans', 'traces', 'metrics']) ver.sink[k] += d[k];
            if (ver.sink !== d) for (const f of ['events', 'names', 'paths']) for (const [k, c] of Object.entries(d[f])) ver.sink[f][k] = (ver.sink[f][k] || 0) + c;
          }
        } catch (err) {
          v.error = String(err.message || err).split('\n')[0].slice(0, 300);
          ver.problems.push(`throughput run failed: ${String(err.message || err).slice(0, 1500)}`);
          log(`v${v.id} ${v.key} FAILED: ${err.message}`);
        } finally {
          if (server) {
            await server.stop();
            const na = /the (\w+) backend is not available[^\n]*/.exec(server.stderr);
            if (na && (v.requires || []).some((p) => p.includes('adapters/'))) {
              v.skipped = `not run yet: adapter not landed (dist/${v.requires.find((p) => p.includes('adapters/')).replace(/^dist\//, '')} exists, but ws-apm says "${na[0].trim()}")`;
            }
            const unexpected = server.stderr.trim();
            if (unexpected && r === 0) log(`v${v.id} server stderr: ${unexpected.slice(0, 600)}`);
          }
        }
      }
    }
  }

  for (let i = active.length - 1; i >= 0; i--) if (active[i].skipped) active.splice(i, 1);
  for (const round of rounds) for (const k of Object.keys(round)) if (!active.some((v) => v.key === k)) delete round[k];

  const memory = {};
  if (DO_MEMORY) {
    for (const v of active) {
      try {
        memory[v.key] = await memoryRun(v, sinks);
        const mm = memory[v.key];
        log(`memory v${v.id} ${v.key}: ${fmtInt(mm.idle.heapPerConn)} B heap/conn, ${fmtInt(mm.idle.rssPerConn)} B RSS/conn (${mm.idle.opened} open, ${mm.idle.failed} failed); `
          + `churn ${mm.churn.cycles} cycles (${mm.churn.failed} failed) at ${fmtInt(mm.churn.perSec)}/s, heap growth ${fmtInt(mm.churn.heapGrowth)} B`);
        if (mm.idle.failed) verification[v.key].problems.push(`${mm.idle.failed} idle connections failed: ${mm.idle.firstError}`);
        if (mm.churn.failed) verification[v.key].problems.push(`${mm.churn.failed} churn connections failed: ${mm.churn.firstError}`);
      } catch (err) {
        v.memoryError = String(err.message || err).split('\n')[0].slice(0, 300);
        verification[v.key].problems.push(`memory run failed: ${String(err.message || err).slice(0, 1500)}`);
        log(`memory v${v.id} ${v.key} FAILED: ${err.message}`);
      }
    }
  }

  // verification: did every variant exercise its instrumentation?
  for (const v of active) {
    const ver = verification[v.key];
    if (DO_THROUGHPUT) {
      if (ver.messages === 0) ver.problems.push('no message was echoed');
      if (ver.patched) {
        const wsPatched = ver.patched.filter((k) => !k.startsWith('http.'));
        if (v.patched && wsPatched.length === 0) ver.problems.push(`nothing in ws was patched${ver.patched.length ? ` (only ${ver.patched.join(', ')})` : ''}`);
        if (!v.patched && ver.patched.length > 0) ver.problems.push(`expected no patching, but changed: ${ver.patched.join(', ')}`);
      }
      if (v.check) {
        if (!ver.sink) ver.problems.push('sink not read');
        else {
          const p = v.check(ver.sink, ver.messages);
          if (p) ver.problems.push(p);
        }
      }
    }
    ver.ok = ver.problems.length === 0;
    v.verification = ver;
  }

  for (const s of Object.values(sinks)) await s.stop(2000);

  const summary = summarize(rounds, active);
  const report = {
    mode: MODE.name,
    date: new Date().toISOString(),
    command: `node bench/run.js ${argv.join(' ')}`.trim(),
    durationS: Math.round((Date.now() - t0) / 1000),
    machine: machine(),
    config: { ...MODE, otlpProtocol: OTLP_PROTOCOL, pinned: PIN },
    rounds: rounds.length,
    variants: variants.map((v) => ({
      id: v.id, key: v.key, label: v.label, skipped: v.skipped || null, error: v.error || null, memoryError: v.memoryError || null,
      note: v.note || null, preload: v.preload.map((p) => path.relative(ROOT, p) || p), verification: v.verification || null,
    })),
    summary,
    memory,
    targets: targets(summary, memory),
    raw: rounds,
  };
  fs.mkdirSync(OUT_DIR, { recursive: true });
  // quick (CI) runs write quick.*, so they never overwrite the full run's table that the README includes
  const base = QUICK ? 'quick' : 'latest';
  fs.writeFileSync(path.join(OUT_DIR, `${base}.json`), `${JSON.stringify(report, null, 2)}\n`);
  const md = markdown(report);
  fs.writeFileSync(path.join(OUT_DIR, `${base}.md`), md);
  process.stdout.write(md);
  log(`done in ${report.durationS} s; wrote ${path.relative(ROOT, path.join(OUT_DIR, `${base}.json`))} and ${base}.md`);

  const failed = report.variants.filter((v) => v.verification && !v.verification.ok);
  if (failed.length) {
    log(`instrumentation check FAILED for: ${failed.map((v) => `${v.id} ${v.key}: ${v.verification.problems.join('; ')}`).join(' | ')}`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  log(`fatal: ${err.stack || err}`);
  killAll();
  process.exit(2);
});
