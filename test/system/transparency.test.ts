/**
 * Transparency: an independent ws behaviour suite (test/fixtures/transparency/
 * suite.js: server, client, events, listener APIs, close codes, ping/pong,
 * permessage-deflate, protocol errors) runs in a child process without ws-apm, then with
 * `-r ws-apm/register` (console backend, and otel with the SDK started and no exporter),
 * on ws 8 and ws 7. Every check must have the same outcome and the same observed value.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { cleanEnv, FIXTURES } from '../helpers/child';
import { assertSameOutcomes } from '../helpers/behaviour';

const DIR = path.join(FIXTURES, 'transparency');
const BUILT = fs.existsSync(path.resolve(__dirname, '..', '..', 'dist', 'register.js'));

interface Result {
  name: string;
  ok: boolean;
  value?: unknown;
  error?: string;
}

async function runSuite(preload: boolean, env: Record<string, string>): Promise<{ results: Result[]; stderr: string }> {
  const args = preload ? ['-r', 'ws-apm/register', 'suite.js'] : ['suite.js'];
  const proc = spawn(process.execPath, args, { cwd: DIR, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (c: Buffer) => (out += c));
  proc.stderr.on('data', (c: Buffer) => (err += c));
  const [code] = await once(proc, 'exit');
  assert.equal(code, 0, `suite exited with ${code}; stderr:\n${err.slice(-4000)}`);
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Result & { done?: number });
  const done = lines.pop();
  assert.ok(done?.done !== undefined, 'the suite ran to its end');
  assert.equal(lines.length, done.done);
  return { results: lines, stderr: err };
}

const MODES: Array<[string, Record<string, string>, (stderr: string) => void]> = [
  [
    'console backend',
    { WS_APM_BACKEND: 'console' },
    (stderr) => assert.match(stderr, /WS RECEIVE/, 'ws-apm was really instrumenting'),
  ],
  [
    'otel backend (SDK started, no exporter)',
    { WS_APM_BACKEND: 'otel', OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none', WS_APM_LOG_LEVEL: 'debug' },
    (stderr) => assert.match(stderr, /instrumenting ws with the otel backend/),
  ],
];

for (const wsModule of ['ws', 'ws7']) {
  describe(`transparency on ${wsModule === 'ws' ? 'ws 8' : 'ws 7'}`, { skip: !BUILT && 'dist/ not built (npm test builds it)' }, () => {
    // The run without ws-apm, made once by whichever test needs it first: each test stands alone.
    let baseline: Promise<Result[]> | undefined;
    const bareResults = (): Promise<Result[]> => (baseline ??= runSuite(false, { WS_MODULE: wsModule }).then((r) => r.results));

    test('the suite passes without ws-apm', async (t) => {
      const bare = await bareResults();
      const failed = bare.filter((r) => !r.ok);
      assert.deepEqual(failed, [], 'the suite itself is sound');
      assert.ok(bare.length >= 40, `${bare.length} checks`);
      t.diagnostic(`${bare.length} checks`);
    });

    for (const [label, env, instrumented] of MODES) {
      test(`with -r ws-apm/register (${label}): no new failure, identical outcomes`, async () => {
        const bare = await bareResults();
        const { results, stderr } = await runSuite(true, { WS_MODULE: wsModule, ...env });
        instrumented(stderr);
        assert.doesNotMatch(stderr, /\[ws-apm\] error/, 'no internal fault reported');
        assertSameOutcomes(results, bare);
      });
    }
  });
}
