/**
 * A throwaway redis-server for the example's Redis variant: a free port probed on 127.0.0.1
 * (Redis cannot bind port 0), no persistence, stopped by the test. Without `redis-server` the
 * test is skipped outside CI and fails under CI=true (see requirements.ts; .ci/run installs it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import readline from 'node:readline';
import { missingCommand } from './requirements';

export interface RedisServer {
  readonly url: string;
  stop(): Promise<void>;
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** Why redis-server cannot run here, with the install hint (for requireOrSkip); undefined when it can. */
export function redisServerMissing(): string | undefined {
  return missingCommand('redis-server', ['--version'], 'Debian/Ubuntu: apt-get install -y redis-server (.ci/run installs it)');
}

export async function startRedis(): Promise<RedisServer> {
  const missing = redisServerMissing();
  if (missing !== undefined) throw new Error(missing);
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const proc: ChildProcess = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'notice'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    const ready = new Promise<boolean>((resolve) => {
      readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
        log += `${line}\n`;
        if (/Ready to accept connections/.test(line)) resolve(true);
      });
      proc.stderr!.on('data', (c: Buffer) => (log += c.toString()));
      proc.once('exit', () => resolve(false));
    });
    if (await ready) {
      return {
        url: `redis://127.0.0.1:${port}`,
        async stop() {
          if (proc.exitCode !== null || proc.signalCode !== null) return;
          const exited = once(proc, 'exit');
          proc.kill('SIGTERM');
          await exited;
        },
      };
    }
    // Lost the port to someone else between probe and bind: try another one.
    if (attempt >= 2) throw new Error(`redis-server did not start:\n${log}`);
  }
}
