/**
 * The start-up line: one `info` line (shown at the default log level) saying which backend
 * and why, and which ws copies are instrumented, written once it is true (after the main
 * module's synchronous part); a copy patched later gets one line of its own.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { run } from '../helpers/child';

const BUILT = existsSync(path.resolve(__dirname, '..', '..', 'dist', 'register.js'));
const WS_VERSION = (JSON.parse(readFileSync(require.resolve('ws/package.json'), 'utf8')) as { version: string }).version;
const V = WS_VERSION.replace(/\./g, '\\.');

async function start(args: string[], env: Record<string, string>): Promise<string[]> {
  const app = run(args, env, 'startup');
  assert.deepEqual(await app.exited(), { code: 0, signal: null }, app.stderr());
  assert.match(app.stdout(), /^ECHO hi$/m);
  const ours = app.stderr().split('\n').filter((l) => l.startsWith('[ws-apm]'));
  assert.deepEqual(ours.filter((l) => !l.startsWith('[ws-apm] info:')), [], app.stderr());
  return ours;
}

describe('the start-up line', { skip: !BUILT && 'dist/ not built (npm test builds it)' }, () => {
  test('-r, CommonJS app: one line with the configured backend and the ws copy the app loaded', async () => {
    const lines = await start(['-r', 'ws-apm/register', 'echo.js'], { WS_APM_BACKEND: 'console' });
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, new RegExp(`^\\[ws-apm\\] info: ws-apm \\S+ reporting to console \\(configured: WS_APM_BACKEND=console\\); instrumented ws ${V} \\(CommonJS\\)$`));
  });

  test('a backend detected from its environment says so', async () => {
    const lines = await start(['-r', 'ws-apm/register', 'echo.js'], { NODE_ENV: 'development' });
    assert.match(lines[0]!, /reporting to console \(detected: NODE_ENV=development\); instrumented ws/);
  });

  test('ws loaded after start-up, and a second copy handed over later: one line each, when it happens', async () => {
    const lines = await start(['-r', 'ws-apm/register', 'echo.js'], { WS_APM_BACKEND: 'console', LOAD_LATER: '1', SECOND_COPY: '1' });
    assert.deepEqual(lines.map((l) => l.replace(/ws-apm \d+\.\d+\.\d+\S*/, 'ws-apm X')), [
      '[ws-apm] info: ws-apm X reporting to console (configured: WS_APM_BACKEND=console); no ws loaded yet (instrumented when the app loads it)',
      `[ws-apm] info: instrumented ws ${WS_VERSION} (CommonJS)`,
      '[ws-apm] info: instrumented ws (passed to ws-apm)',
    ]);
  });

  test('--import, ESM app: the copy is reported once, as imported', async () => {
    const lines = await start(['--import', 'ws-apm/register', 'echo.mjs'], { WS_APM_BACKEND: 'console' });
    const copies = lines.join('\n').match(new RegExp(`ws ${V} \\((CommonJS|ESM)\\)`, 'g'));
    assert.deepEqual(copies, [`ws ${WS_VERSION} (ESM)`], lines.join('\n'));
  });

  test('nothing instrumented: why, and what to set', async () => {
    assert.deepEqual(await start(['-r', 'ws-apm/register', 'echo.js'], {}), [
      '[ws-apm] info: ws-apm ' + require('../../package.json').version +
        ' is not instrumenting ws: no backend detected: set WS_APM_BACKEND=otel|elastic|newrelic|console, or OTEL_EXPORTER_OTLP_ENDPOINT, ELASTIC_APM_SERVER_URL or NEW_RELIC_LICENSE_KEY',
    ]);
    const disabled = await start(['-r', 'ws-apm/register', 'echo.js'], { WS_APM_ENABLED: 'false', WS_APM_BACKEND: 'console' });
    assert.match(disabled.join('\n'), /^\[ws-apm\] info: ws-apm \S+ is not instrumenting ws: WS_APM_ENABLED=false$/);
    const none = await start(['-r', 'ws-apm/register', 'echo.js'], { WS_APM_BACKEND: 'none' });
    assert.match(none.join('\n'), /^\[ws-apm\] info: ws-apm \S+ is not instrumenting ws: WS_APM_BACKEND=none$/);
  });

  test('WS_APM_LOG_LEVEL=warn: no start-up line', async () => {
    assert.deepEqual(await start(['-r', 'ws-apm/register', 'echo.js'], { WS_APM_BACKEND: 'console', WS_APM_LOG_LEVEL: 'warn' }), []);
  });
});
