/**
 * A throwaway redis-server for the example's Redis variant: a free port probed on 127.0.0.1
 * (Redis cannot bind port 0), no persistence, stopped by the test. A missing `redis-server`
 * is a failure with an explanation, not a skip (CI installs Debian's redis-server).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import readline from 'node:readline';

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

export async function startRedis(): Promise<RedisServer> {
  const which = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (which.error || which.status !== 0) {
    throw new Error(
      'redis-server is not installed: the example\'s Redis test needs it on PATH ' +
        '(Debian/Ubuntu: apt-get install -y redis-server; CI installs it in .ci/run)',
    );
  }
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
