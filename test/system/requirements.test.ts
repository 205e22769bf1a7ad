/**
 * The rule for tests that need something outside the repository (helpers/requirements.ts),
 * proved on a real one: the example's Redis test, run by the test runner as `npm test` runs it,
 * on a PATH where redis-server cannot be found.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';

const ROOT = path.resolve(__dirname, '..', '..');
/** An empty directory as the whole PATH: nothing is found on it (node itself runs by its absolute path). */
const EMPTY_PATH = mkdtempSync(path.join(os.tmpdir(), 'ws-apm-no-redis-'));

after(() => rmSync(EMPTY_PATH, { recursive: true, force: true }));

/** `node --test` on one file and name pattern, TAP output; `ci` sets CI=true or leaves CI unset. */
async function runTests(file: string, pattern: string, ci: boolean): Promise<{ code: number | null; out: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: EMPTY_PATH };
  // This file runs under the test runner: its child must be a runner of its own, not a child of this one.
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  delete env.CI;
  if (ci) env.CI = 'true';
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=tap', `--test-name-pattern=${pattern}`, file],
    { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const [code] = (await once(proc, 'exit')) as [number | null];
  return { code, out };
}

describe('a test whose requirement is missing (redis-server not on PATH)', { timeout: 120_000 }, () => {
  /** The TAP result line of the Redis test (`ok N - name # SKIP reason` or `not ok N - name`). */
  const resultLine = (out: string): string =>
    out.split('\n').find((l) => /^\s*(not )?ok \d+ - client → instance A → Redis → instance B → client is one trace/.test(l)) ?? '';

  test('outside CI it is skipped with the reason and the install hint printed, and the run passes', async () => {
    const { code, out } = await runTests('test/examples/example.test.ts', 'with Redis', false);
    assert.match(resultLine(out), /^\s*ok \d+ - .* # SKIP redis-server is not installed \(not on PATH\): Debian\/Ubuntu: apt-get install -y redis-server/, out);
    assert.equal(code, 0, out);
  });

  test('with CI=true it fails, with the same reason: CI never skips it', async () => {
    const { code, out } = await runTests('test/examples/example.test.ts', 'with Redis', true);
    assert.match(resultLine(out), /^\s*not ok \d+ - /, out);
    assert.match(out, /redis-server is not installed \(not on PATH\): Debian\/Ubuntu: apt-get install -y redis-server .*\[CI=true: required, not skipped\]/);
    assert.equal(code, 1, out);
  });
});
