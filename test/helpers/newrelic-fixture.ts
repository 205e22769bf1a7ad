/**
 * Runs a New Relic fixture in a child process (agents are process singletons) with the agent
 * preloaded (`-r newrelic`, or the copy named by TEST_NEWRELIC_PACKAGE) and tsx for the sources.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';

export const FIXTURES = path.join(__dirname, '..', 'fixtures', 'newrelic');

/** The agent the fixtures preload: `newrelic` as installed (13 on Node 20, 14 on Node 22 in CI). */
export function newrelicPath(): string {
  return process.env.TEST_NEWRELIC_PACKAGE || require.resolve('newrelic');
}

export interface FixtureResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Every JSON line the fixture reported. */
  readonly reports: Record<string, unknown>[];
}

export interface FixtureOptions {
  /** Preload the agent with `-r` (default true). */
  readonly preload?: boolean;
  /** Extra node flags after `--import tsx` (e.g. `--import <src/register.ts>`). */
  readonly execArgv?: string[];
  readonly args?: string[];
}

export interface RunningFixture {
  readonly done: Promise<FixtureResult>;
  /** Resolves with the first report matching `predicate`. */
  report(predicate: (r: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>>;
  /** Resolves with the first stderr line matching `pattern`. */
  stderrLine(pattern: RegExp, what: string): Promise<string>;
  /** Send `signal` (default SIGKILL) unless the child already exited. */
  kill(signal?: NodeJS.Signals): void;
}

export function startFixture(
  file: string, env: NodeJS.ProcessEnv, options: FixtureOptions = {},
): RunningFixture {
  const execArgv = options.preload === false ? [] : ['-r', newrelicPath()];
  execArgv.push('--import', 'tsx', ...(options.execArgv ?? []));
  const child = spawn(process.execPath, [...execArgv, path.join(FIXTURES, file), ...(options.args ?? [])], {
    env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const reports: Record<string, unknown>[] = [];
  const listeners = new Set<() => void>();
  let pending = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (line.startsWith('{')) {
        try {
          reports.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not ours
        }
      }
    }
    for (const l of [...listeners]) l();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    for (const l of [...listeners]) l();
  });
  const done = new Promise<FixtureResult>((resolve) => {
    child.on('close', (code, signal) => {
      for (const l of [...listeners]) l();
      resolve({ code, signal, stdout, stderr, reports });
    });
  });
  let exited = false;
  void done.then(() => {
    exited = true;
  });
  return {
    done,
    kill: (signal = 'SIGKILL') => {
      if (!exited) child.kill(signal);
    },
    stderrLine(pattern, what) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const found = stderr.split('\n').find((line) => pattern.test(line));
          if (found !== undefined) {
            listeners.delete(check);
            resolve(found);
          } else if (exited || child.exitCode !== null) {
            listeners.delete(check);
            reject(new Error(`fixture ${file} exited without writing ${what}\nstderr: ${stderr}`));
          }
        };
        listeners.add(check);
        check();
      });
    },
    report(predicate, what) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const found = reports.find(predicate);
          if (found) {
            listeners.delete(check);
            resolve(found);
          } else if (exited || child.exitCode !== null) {
            listeners.delete(check);
            reject(new Error(`fixture ${file} exited without reporting ${what}\nstderr: ${stderr}`));
          }
        };
        listeners.add(check);
        check();
      });
    },
  };
}

export async function runFixture(file: string, env: NodeJS.ProcessEnv, options?: FixtureOptions): Promise<FixtureResult> {
  return startFixture(file, env, options).done;
}
