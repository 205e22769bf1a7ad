/**
 * Load and soak, in child processes with a bounded size and time:
 * - N concurrent connections (10,000 by default, TEST_SOAK_CONNECTIONS overrides; capped
 *   by the file-descriptor limit the child can get) with a heartbeat and steady traffic:
 *   no error, the active-connections gauge equal to wss.clients.size at every sample,
 *   heap flat after GC, and 0 / nothing retained at the end.
 * - Connect/close cycles (100,000 or as many as fit in TEST_SOAK_CYCLE_MS, 60 s by
 *   default; TEST_SOAK_CYCLES overrides): opened = closed, gauge 0, and every server
 *   socket garbage-collected (FinalizationRegistry), so no per-socket state is retained.
 * Figures are printed as test diagnostics (and quoted in docs/reliability.md).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { after, test } from 'node:test';
import { cleanEnv, FIXTURES } from '../helpers/child';

const DIR = path.join(FIXTURES, 'reliability');
const WANT_CONNECTIONS = Number(process.env.TEST_SOAK_CONNECTIONS || 10_000);
const SOAK_ROUNDS = Number(process.env.TEST_SOAK_ROUNDS || 3);
const TRAFFIC_MS = 5000; // each connection sends one message per TRAFFIC_MS; the server pings each as often
const WANT_CYCLES = Number(process.env.TEST_SOAK_CYCLES || 100_000);
const CYCLE_MS = Number(process.env.TEST_SOAK_CYCLE_MS || 60_000);
const MiB = 1024 * 1024;
const RAISE = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true';

/** The descriptor limit a child gets after trying to raise it (CI runs as root). */
const FD_LIMIT = (() => {
  try {
    const v = execFileSync('bash', ['-c', `${RAISE}; ulimit -n`]).toString().trim();
    return v === 'unlimited' ? 1_000_000 : Number(v);
  } catch {
    return 1024;
  }
})();

interface Proc {
  readonly proc: ChildProcess;
  next(): Promise<Record<string, unknown>>;
  stderr(): string;
}

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

function start(args: string[], env: Record<string, string>): Proc {
  const proc = spawn('bash', ['-c', `${RAISE}; exec "$0" "$@"`, process.execPath, ...args], {
    cwd: DIR,
    env: cleanEnv(env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(proc);
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c));
  const lines: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
    const w = waiters.shift();
    if (w) w(line);
    else lines.push(line);
  });
  const exited = once(proc, 'exit');
  return {
    proc,
    stderr: () => err,
    next() {
      const line = lines.shift();
      if (line !== undefined) return Promise.resolve(JSON.parse(line));
      return new Promise((resolve, reject) => {
        waiters.push((l) => resolve(JSON.parse(l)));
        void exited.then(() => reject(new Error(`child exited early; stderr:\n${err}`)));
      });
    },
  };
}

interface Stats {
  connections: number;
  closes: number;
  errors: number;
  messages: number;
  pongs: number;
  created: number;
  finalized: number;
  clients: number;
  gauge: number;
  accepted: number;
  durations: number;
  openOps: number;
  heap: number;
  rss: number;
}

function stats(port: number, gc = false): Promise<Stats> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: gc ? '/stats?gc=1' : '/stats', agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve(JSON.parse(body)));
      })
      .on('error', reject);
  });
}

async function startServer(env: Record<string, string> = {}): Promise<{ server: Proc; port: number }> {
  const server = start(['--import', 'tsx', '--expose-gc', '--max-old-space-size=2048', 'soak-server.js'], env);
  const { port } = (await server.next()) as { port: number };
  return { server, port };
}

const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

test(`concurrent connections with heartbeat and traffic: gauge exact at every sample, heap flat, 0 at the end`, { timeout: 240_000 }, async (t) => {
  const n = Math.max(100, Math.min(WANT_CONNECTIONS, FD_LIMIT - 512));
  if (n < WANT_CONNECTIONS) t.diagnostic(`descriptor limit ${FD_LIMIT}: holding ${n} connections instead of ${WANT_CONNECTIONS}`);
  const { server, port } = await startServer({ HEARTBEAT_MS: String(TRAFFIC_MS) });
  const baseline = await stats(port, true);
  const t0 = Date.now();
  const clients = start(['soak-clients.js'], {
    MODE: 'hold',
    URL: `ws://127.0.0.1:${port}`,
    CONNECTIONS: String(n),
    TRAFFIC_MS: String(TRAFFIC_MS),
    OPEN_CONCURRENCY: '200',
  });
  const opened = clients.next();
  let rampSamples = 0;
  let done = false;
  void opened.then(() => (done = true), () => (done = true));
  while (!done) {
    // Sampled while connections pour in: the gauge is wss.clients.size, exactly.
    const s = await stats(port);
    assert.equal(s.gauge, s.clients, `gauge ${s.gauge} vs ${s.clients} open sockets during ramp-up`);
    rampSamples++;
    await new Promise((r) => setTimeout(r, 200));
  }
  const open = (await opened) as { open: number; ms: number; errors: number; firstErrors: string[] };
  assert.equal(open.open, n, `all connections opened: ${JSON.stringify(open)}`);
  assert.equal(open.errors, 0, JSON.stringify(open.firstErrors));
  const held = await stats(port, true);
  assert.equal(held.gauge, n);
  assert.equal(held.clients, n);

  // Steady traffic and heartbeats for SOAK_ROUNDS rounds (each client sends once per TRAFFIC_MS).
  let samples = 0;
  let mid: Stats | undefined;
  const startMessages = held.messages;
  const startPongs = held.pongs;
  for (;;) {
    const s = await stats(port);
    samples++;
    assert.equal(s.gauge, n, 'gauge exact while holding');
    assert.equal(s.clients, n);
    assert.equal(s.errors, 0);
    const rounds = (s.messages - startMessages) / n;
    if (mid === undefined && rounds >= SOAK_ROUNDS / 2) mid = await stats(port, true);
    if (rounds >= SOAK_ROUNDS && s.pongs - startPongs >= n * 2) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const end = await stats(port, true);
  assert.ok(mid);
  assert.equal(end.gauge, n);
  const soakGrowth = end.heap - mid.heap;
  clients.proc.stdin!.write('close\n');
  const closedLine = (await clients.next()) as { closed: number; errors: number; echoes: number; pings: number; unexpectedCloses: number };
  assert.equal(closedLine.closed, n);
  assert.equal(closedLine.errors, 0);
  assert.equal(closedLine.unexpectedCloses, 0);
  const final = await stats(port, true);
  const elapsed = Date.now() - t0;
  assert.equal(final.gauge, 0, 'gauge back to 0');
  assert.equal(final.clients, 0);
  assert.equal(final.connections, n);
  assert.equal(final.closes, n, 'opened = closed');
  assert.equal(final.accepted, n);
  assert.equal(final.durations, n);
  assert.equal(final.openOps, 0, 'no operation left open');
  assert.equal(final.errors, 0);
  assert.equal(final.finalized, final.created, 'every server socket was garbage-collected');
  const figures =
    `${n} connections opened in ${open.ms} ms; ${SOAK_ROUNDS} traffic rounds of one message per connection per ${TRAFFIC_MS} ms: ${end.messages} messages echoed, ${end.pongs} heartbeat pongs; ` +
    `${rampSamples} ramp-up + ${samples} holding gauge samples, all exact; heap after GC: baseline ${mib(baseline.heap)}, ` +
    `holding ${mib(held.heap)} (rss ${mib(held.rss)}), mid-soak ${mib(mid.heap)}, end of soak ${mib(end.heap)} (growth ${mib(soakGrowth)}), ` +
    `after close ${mib(final.heap)}; ${final.finalized}/${final.created} server sockets collected; ${elapsed} ms total`;
  t.diagnostic(figures);
  assert.ok(soakGrowth < 32 * MiB, `heap flat while holding ${n} connections (${mib(soakGrowth)})`);
  assert.ok(final.heap - baseline.heap < 16 * MiB, `heap back near baseline after close (${mib(final.heap - baseline.heap)})`);
  server.proc.stdin!.end();
  await once(server.proc, 'exit');
});

test(`connect/close cycles: opened = closed, gauge 0, every server socket collected`, { timeout: 240_000 }, async (t) => {
  const { server, port } = await startServer();
  const baseline = await stats(port, true);
  const clients = start(['soak-clients.js'], {
    MODE: 'cycles',
    URL: `ws://127.0.0.1:${port}`,
    CYCLES: String(WANT_CYCLES),
    CONCURRENCY: '32',
    DEADLINE_MS: String(CYCLE_MS),
  });
  const result = (await clients.next()) as { cycles: number; ms: number; errors: number; firstErrors: string[] };
  assert.equal(result.errors, 0, JSON.stringify(result.firstErrors));
  assert.ok(result.cycles >= Math.min(WANT_CYCLES, 1000), `ran ${result.cycles} cycles`);
  const final = await stats(port, true);
  assert.equal(final.connections, result.cycles, 'every connection the server accepted completed its cycle');
  assert.equal(final.closes, final.connections, 'opened = closed');
  assert.equal(final.accepted, final.connections, 'ws-apm counted every accept');
  assert.equal(final.durations, final.connections, 'ws-apm recorded every close');
  assert.equal(final.gauge, 0);
  assert.equal(final.clients, 0);
  assert.equal(final.openOps, 0);
  assert.equal(final.messages, result.cycles);
  assert.equal(final.finalized, final.created, 'zero retained server sockets (FinalizationRegistry)');
  const growth = final.heap - baseline.heap;
  t.diagnostic(
    `${result.cycles} connect/message/close cycles in ${result.ms} ms (${Math.round((result.cycles * 1000) / result.ms)}/s, 32 in flight); ` +
      `${final.finalized}/${final.created} server sockets collected; heap after GC ${mib(baseline.heap)} → ${mib(final.heap)} (growth ${mib(growth)})`,
  );
  assert.ok(growth < 16 * MiB, `bounded heap growth (${mib(growth)})`);
  server.proc.stdin!.end();
  await once(server.proc, 'exit');
});
