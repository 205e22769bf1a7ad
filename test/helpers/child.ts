/**
 * Child-process fixtures: an app started the way a user starts it (node -r / --import),
 * with its stdout read line by line and its exit awaited.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import readline from 'node:readline';

export const FIXTURES = path.resolve(__dirname, '..', 'fixtures');

export interface Child {
  readonly proc: ChildProcess;
  stderr(): string;
  stdout(): string;
  /** Resolve with the first stdout line matching `pattern`. */
  line(pattern: RegExp): Promise<RegExpMatchArray>;
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Environment without the parent's WS_APM_* / OTEL_* / NODE_OPTIONS settings. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(WS_APM_|OTEL_|ELASTIC_APM_|NEW_RELIC_|NODE_OPTIONS$|NODE_ENV$)/.test(k)) env[k] = v;
  }
  return { ...env, ...extra };
}

/** Start `node ...args` in test/fixtures/<dir>. */
export function run(args: string[], env: Record<string, string>, dir = 'otel'): Child {
  const cwd = path.join(FIXTURES, dir);
  const proc = spawn(process.execPath, args, { cwd, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
    out += `${line}\n`;
    lines.push(line);
    for (const w of waiters.splice(0)) {
      const m = line.match(w.pattern);
      if (m) w.resolve(m);
      else waiters.push(w);
    }
  });
  const exit = once(proc, 'exit').then(([code, signal]) => ({ code, signal }));
  return {
    proc,
    stderr: () => err,
    stdout: () => out,
    line(pattern) {
      for (const l of lines) {
        const m = l.match(pattern);
        if (m) return Promise.resolve(m);
      }
      return new Promise((resolve, reject) => {
        waiters.push({ pattern, resolve });
        exit.then(() => reject(new Error(`exited before printing ${pattern}; stderr:\n${err}`)));
      });
    },
    exited: () => exit,
  };
}
