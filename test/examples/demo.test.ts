/**
 * `npm run demo` as a user runs it (demo/run.js: a chat server and clients under
 * `-r ws-apm/register`, on the console backend): its processes end with it, however it ends,
 * and a process whose output is a closed pipe (`npm run demo | head`) ends instead of spinning.
 *
 * run.js's children are not this process's children: they are found in /proc (Linux) and
 * watched there until they are gone, within a deadline.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { after, describe, test } from 'node:test';
import WebSocket from 'ws';
import { cleanEnv } from '../helpers/child';

const ROOT = path.resolve(__dirname, '..', '..');
const DEMO = path.join(ROOT, 'demo');
const started: number[] = [];

after(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** The state letter and parent pid of `pid` from /proc, or undefined once it is gone. */
function procStat(pid: number): { state: string; ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state, ppid: Number(ppid) };
  } catch {
    return undefined;
  }
}

function childrenOf(pid: number): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((p) => procStat(p)?.ppid === pid);
}

/** Resolve once none of `pids` runs (gone, or a zombie nobody reaped); fail after `ms`. */
async function allEnd(pids: number[], ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  const running = (): number[] => pids.filter((p) => {
    const s = procStat(p);
    return s !== undefined && s.state !== 'Z';
  });
  while (running().length > 0) {
    assert.ok(Date.now() < deadline, `still running ${ms} ms later: ${running().map((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')).join('; ')}`);
    await delay(25);
  }
}

/** `node demo/run.js`, its output read line by line; resolves once its server and clients have both reported. */
async function startDemo(): Promise<{ run: ChildProcess; children: number[] }> {
  // Clients that would chat for ten minutes: only their parent's end can end them in time.
  const run = spawn(process.execPath, [path.join(DEMO, 'run.js')], { env: cleanEnv({ DURATION_MS: '600000' }), stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(run.pid!);
  const seen = new Set<string>();
  await new Promise<void>((resolve, reject) => {
    run.once('exit', () => reject(new Error('run.js ended before its server and clients reported')));
    readline.createInterface({ input: run.stdout! }).on('line', (line) => {
      if (/^\[server\] +PORT \d+$/.test(line)) seen.add('server');
      if (/^\[clients\] .*WS CONNECT /.test(line)) seen.add('clients');
      if (seen.size === 2) resolve();
    });
  });
  const children = childrenOf(run.pid!);
  started.push(...children);
  assert.equal(children.length, 2, 'run.js started a server and a clients process');
  return { run, children };
}

describe('npm run demo', { skip: process.platform !== 'linux' && 'finds and watches processes in /proc (Linux only)' }, () => {
  test('its server and clients end when run.js is killed (SIGKILL: no chance to clean up)', { timeout: 30_000 }, async () => {
    const { run, children } = await startDemo();
    const exited = once(run, 'exit');
    run.kill('SIGKILL');
    await exited;
    await allEnd(children);
  });

  test('`npm run demo | head`: when its output closes, run.js ends and so do its server and clients', { timeout: 30_000 }, async () => {
    const { run, children } = await startDemo();
    const exited = once(run, 'exit');
    run.stdout!.destroy();
    assert.deepEqual(await exited, [0, null]);
    await allEnd(children);
  });

  test('run to its end: a legend first, values rounded, every connection closed, active_connections back to 0', { timeout: 60_000 }, async () => {
    const run = spawn(process.execPath, [path.join(DEMO, 'run.js')], { env: cleanEnv({}), stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(run.pid!);
    const lines: string[] = [];
    readline.createInterface({ input: run.stdout! }).on('line', (line) => lines.push(line));
    run.stderr!.resume();
    assert.deepEqual(await once(run, 'exit'), [0, null]);
    assert.equal(lines.at(-1), 'demo done');
    // The legend comes before any operation line, and names what each kind of line is.
    const firstOperation = lines.findIndex((l) => /^\[(server|clients)\]/.test(l));
    assert.ok(firstOperation > 0, 'output from the server and clients, after the legend');
    const legend = lines.slice(0, firstOperation).join('\n');
    for (const kind of ['WS CONNECT', 'WS RECEIVE', 'WS PING', 'WS CLOSE', 'metrics']) assert.match(legend, new RegExp(`^  ${kind} `, 'm'), kind);
    // Values read at a glance: at most two decimals (rtt_ms=1.64, not 1.6382399999997688).
    const pings = lines.filter((l) => /\] .* WS PING /.test(l));
    assert.ok(pings.length > 0, 'the heartbeat is traced');
    for (const l of pings) assert.match(l, / rtt_ms=\d+(\.\d{1,2})? /, l);
    for (const l of lines) assert.doesNotMatch(l, /=\d+\.\d{3,}/, l);
    // The server accepted four connections and summarized four closes, the crashed one included
    // (ws never emits its close: ws-apm records it when the heartbeat's terminate ends its socket).
    const server = lines.filter((l) => l.startsWith('[server]'));
    assert.equal(server.filter((l) => / WS CONNECT .* status=101/.test(l)).length, 4, server.join('\n'));
    assert.equal(server.filter((l) => / WS CLOSE /.test(l)).length, 4, server.join('\n'));
    const metrics = server.filter((l) => / metrics /.test(l));
    assert.equal(new Set(metrics).size, metrics.length, 'no metrics line printed twice (the same line again says nothing new)');
    assert.match(metrics.at(-1)!, /websocket\.server\.active_connections\{\/rooms\/:room\}=0 /);
    assert.match(metrics.at(-1)!, /websocket\.server\.connections\{\/rooms\/:room,accepted\}=4 /);
  });

  test('a chat server whose stdout is a closed pipe exits at its next write instead of looping on EPIPE', { timeout: 30_000 }, async () => {
    const server = spawn(process.execPath, ['-r', path.join(ROOT, 'dist', 'register.js'), path.join(DEMO, 'chat-server.js')], {
      env: cleanEnv({ WS_APM_BACKEND: 'console' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.push(server.pid!);
    server.stderr!.resume();
    const exited = once(server, 'exit');
    const [first] = (await once(readline.createInterface({ input: server.stdout! }), 'line')) as [string];
    const port = /^PORT (\d+)$/.exec(first)?.[1];
    assert.ok(port, first);
    server.stdout!.destroy();
    // The demo's deliberate handler bug: the server reports it on stdout, which is now a closed pipe.
    const ws = new WebSocket(`ws://127.0.0.1:${port}/rooms/lobby`);
    await once(ws, 'open');
    ws.on('error', () => undefined);
    ws.send(JSON.stringify({ type: 'crash' }));
    assert.deepEqual(await exited, [0, null]);
    ws.terminate();
  });
});
