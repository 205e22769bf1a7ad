/**
 * A server child (test/fixtures/memory/app.js) whose heap is read after GC while this process
 * holds idle connections to it or cycles connections through it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import WebSocket from 'ws';
import { cleanEnv, FIXTURES } from './child';

export interface HeapReport {
  readonly heap: number;
  readonly clients: number;
}

export class MemoryServer {
  private readonly waiting: ((answer: Record<string, unknown>) => void)[] = [];
  private stderr = '';

  private constructor(private readonly proc: ChildProcess, readonly port: number) {}

  static async start(nodeArgs: string[], env: Record<string, string>): Promise<MemoryServer> {
    const proc = spawn(process.execPath, ['--expose-gc', ...nodeArgs, 'app.js'], {
      cwd: path.join(FIXTURES, 'memory'), env: cleanEnv(env), stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const lines = readline.createInterface({ input: proc.stdout! });
    const listening = new Promise<number>((resolve, reject) => {
      lines.once('line', (line) => {
        try {
          resolve((JSON.parse(line) as { port: number }).port);
        } catch {
          reject(new Error(`unexpected first line ${line}; stderr:\n${stderr}`));
        }
      });
      proc.once('exit', () => reject(new Error(`server exited before listening; stderr:\n${stderr}`)));
    });
    const server = new MemoryServer(proc, await listening);
    server.stderr = stderr;
    proc.stderr!.on('data', (c: Buffer) => (server.stderr += c.toString()));
    lines.on('line', (line) => {
      if (!line.startsWith('{"event":')) return;
      const answer = JSON.parse(line) as Record<string, unknown>;
      server.waiting.shift()?.(answer);
    });
    proc.once('exit', () => {
      for (const w of server.waiting.splice(0)) w({ event: 'exit', stderr: server.stderr });
    });
    return server;
  }

  /** One command, one answer line (the server answers in order). */
  private async ask(command: string): Promise<Record<string, unknown>> {
    const answer = new Promise<Record<string, unknown>>((resolve) => this.waiting.push(resolve));
    this.proc.stdin!.write(`${command}\n`);
    const a = await answer;
    if (a.event === 'exit') throw new Error(`server exited: ${String(a.stderr)}`);
    return a;
  }

  /** Heap after GC, once wss.clients.size is `clients` (the server has seen every open and close). */
  async heap(clients: number): Promise<HeapReport> {
    for (;;) {
      const r = (await this.ask('mem')) as unknown as HeapReport;
      if (r.clients === clients) return r;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  async snapshot(file: string): Promise<void> {
    await this.ask(`snap ${file}`);
  }

  /**
   * What the program keeps, from a heap snapshot taken once the server has seen `clients` open
   * connections and telemetry is exported: the bytes of every node but V8's compiled code and its
   * bookkeeping (snapshot node types `code` and `hidden`: optimised code, deoptimisation data,
   * dependent-code lists). Those grow while the JIT tiers up functions the traffic keeps hot (measured
   * 140-320 KB per 1,000 connect/close cycles, on Node 22, with and without ws-apm) and are bounded by
   * the program's size; anything kept per connection (objects, closures, strings, a map's table) is
   * counted.
   */
  async retained(clients: number): Promise<number> {
    await this.heap(clients);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-apm-heap-'));
    try {
      const file = path.join(dir, 'heap.heapsnapshot');
      await this.snapshot(file);
      return programBytes(JSON.parse(fs.readFileSync(file, 'utf8')) as HeapSnapshot);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = once(this.proc, 'exit');
    this.proc.stdin!.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

interface HeapSnapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: string[]; readonly node_types: [string[], ...unknown[]] } };
  readonly nodes: number[];
}

const JIT_NODE_TYPES = new Set(['code', 'hidden']);

function programBytes(heap: HeapSnapshot): number {
  const fields = heap.snapshot.meta.node_fields;
  const types = heap.snapshot.meta.node_types[0];
  const type = fields.indexOf('type');
  const size = fields.indexOf('self_size');
  let bytes = 0;
  for (let i = 0; i < heap.nodes.length; i += fields.length) {
    if (!JIT_NODE_TYPES.has(types[heap.nodes[i + type]!]!)) bytes += heap.nodes[i + size]!;
  }
  return bytes;
}

function connect(port: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/feed`);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Open `n` connections, `concurrency` at a time. */
export async function openIdle(port: number, n: number, concurrency = 50): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      sockets.push(await connect(port));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return sockets;
}

export async function closeAll(sockets: WebSocket[]): Promise<void> {
  await Promise.all(
    sockets.map((ws) => {
      const closed = once(ws, 'close');
      ws.close();
      return closed;
    }),
  );
}

/** `cycles` connections opened, sent one message, answered, and closed, `concurrency` at a time. */
export async function churn(port: number, cycles: number, concurrency = 20): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < cycles) {
      next++;
      const ws = await connect(port);
      const echoed = once(ws, 'message');
      ws.send('{"type":"hello"}');
      await echoed;
      const closed = once(ws, 'close');
      ws.close();
      await closed;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
