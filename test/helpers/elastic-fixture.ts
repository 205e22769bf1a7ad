/**
 * Runs a fixture of test/fixtures/elastic/ in its own process (agents are process
 * singletons) and speaks its protocol: JSON-line events on stdout, command words on stdin.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export const FIXTURES = path.resolve(__dirname, '../fixtures/elastic');

export type FixtureEvent = { event: string } & Record<string, any>;

export class Fixture {
  readonly events: FixtureEvent[] = [];
  stderr = '';
  private stdoutRest = '';
  private readonly child: ChildProcess;
  private readonly exited: Promise<number | null>;
  private readonly waiters = new Set<() => void>();
  private readonly consumed = new Set<FixtureEvent>();
  exitCode: number | null | undefined;
  exitSignal: NodeJS.Signals | null = null;

  constructor(file: string, env: NodeJS.ProcessEnv, nodeArgs: string[] = [], args: string[] = []) {
    this.child = spawn(process.execPath, [...nodeArgs, path.join(FIXTURES, file), ...args], {
      cwd: path.resolve(__dirname, '../..'),
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => {
      this.stdoutRest += chunk;
      let nl: number;
      while ((nl = this.stdoutRest.indexOf('\n')) >= 0) {
        const line = this.stdoutRest.slice(0, nl);
        this.stdoutRest = this.stdoutRest.slice(nl + 1);
        try {
          this.events.push(JSON.parse(line) as FixtureEvent);
        } catch {
          this.stderr += `[stdout] ${line}\n`;
        }
        this.notify();
      }
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.child.stdin!.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        this.notify();
        resolve(code);
      });
    });
  }

  /**
   * The next event named `name` not returned before (waits for it); fails fast if the
   * process dies first.
   */
  next(name: string, timeoutMs = 20_000): Promise<FixtureEvent> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.events.find((e) => e.event === name && !this.consumed.has(e));
        if (found) this.consumed.add(found);
        const crash = this.events.find((e) => e.event === 'crash');
        if (found || crash || this.exitCode !== undefined) {
          this.waiters.delete(check);
          clearTimeout(timer);
          if (found) resolve(found);
          else reject(new Error(`fixture ended before "${name}": ${crash?.message ?? `exit ${this.exitCode}`}\n${this.stderr}`));
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`fixture: no "${name}" event within ${timeoutMs} ms\n${this.stderr}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Sends a signal to the process (as a process manager would). */
  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  send(word: string): void {
    this.child.stdin!.write(`${word}\n`);
  }

  /** Waits for a clean exit (after asking with `send('exit')` or on its own). */
  async exit(timeoutMs = 20_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`fixture did not exit\n${this.stderr}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Cleanup for `after`/`finally`: kills the process if still running. */
  async kill(): Promise<void> {
    if (this.exitCode === undefined) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }

  private notify(): void {
    for (const check of [...this.waiters]) check();
  }
}
