/**
 * Every way the README starts ws-apm, on a small CommonJS app and a small ESM app
 * ("type": "module", `import { WebSocketServer, WebSocket } from 'ws'`), from this
 * repository's build, with the console backend: the server's handshake is accepted and
 * its messages, sends and close are recorded, whatever the start form.
 */
import { isStartupLine, startupBackend } from '../helpers/stderr';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, test } from 'node:test';
import { preloadedModules } from '../../src/adapters/preloads';
import { mainIsEsm } from '../../src/esm-hook';
import { cleanEnv, FIXTURES } from '../helpers/child';
import { agentEnv, startIntake } from '../helpers/elastic-intake';

const ROOT = path.resolve(__dirname, '..', '..');
const REGISTER_CJS = path.join(ROOT, 'dist', 'register.js');
const REGISTER_ESM = pathToFileURL(path.join(ROOT, 'register.mjs')).href;
const APPS = path.join(FIXTURES, 'start-forms');

interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

async function runApp(dir: string, args: string[], env: Record<string, string>): Promise<Ran> {
  const proc = spawn(process.execPath, args, { cwd: path.join(APPS, dir), env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(proc, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

/** Start forms: node arguments and NODE_OPTIONS. */
const FORMS: { name: string; args: string[]; nodeOptions?: string }[] = [
  { name: '-r', args: ['-r', REGISTER_CJS] },
  { name: '--import', args: ['--import', REGISTER_ESM] },
  { name: 'NODE_OPTIONS="-r ..."', args: [], nodeOptions: `-r ${REGISTER_CJS}` },
  { name: 'NODE_OPTIONS="--import ..."', args: [], nodeOptions: `--import ${REGISTER_ESM}` },
];

function assertRecorded(ran: Ran): void {
  assert.equal(ran.code, 0, ran.stderr);
  assert.match(ran.stdout, /GOT echo hello\nDONE/);
  // The console backend writes its lines to stderr; nothing else may be there.
  const other = ran.stderr.split('\n').filter((l) => l !== '' && !isStartupLine(l) && !/^\d\d:\d\d:\d\d\.\d{3} WS |^metrics /.test(l));
  assert.equal(startupBackend(ran.stderr), 'console', ran.stderr);
  assert.deepEqual(other, [], ran.stderr);
  const connect = ran.stderr.split('\n').filter((l) => / WS CONNECT \/chat /.test(l));
  assert.equal(connect.length, 1, ran.stdout);
  assert.match(connect[0], / ok status=101/);
  assert.match(ran.stderr, / WS RECEIVE \/chat .* ok type="text"/);
  assert.match(ran.stderr, / WS SEND \/chat .* ok type="text"/);
  assert.match(ran.stderr, / WS CLOSE \/chat .* ok code=1000 reason="done"/);
  assert.match(ran.stderr, /websocket\.server\.connections\{\/chat,accepted\}=1/);
  assert.doesNotMatch(ran.stderr, /rejected/);
}

describe('start forms (console backend)', () => {
  for (const app of ['cjs', 'esm']) {
    for (const form of FORMS) {
      test(`${app.toUpperCase()} app started with ${form.name}`, async () => {
        const env: Record<string, string> = { WS_APM_BACKEND: 'console' };
        if (form.nodeOptions) env.NODE_OPTIONS = form.nodeOptions;
        assertRecorded(await runApp(app, [...form.args, 'app.js'], env));
      });
    }
  }

  test('ESM app started with -r while another loader hook is registered: instrumented once, in the main thread', async () => {
    const hook = 'data:text/javascript,export async function resolve(s, c, next) { return next(s, c) }';
    const loader = `data:text/javascript,import { register } from 'node:module'; register(${JSON.stringify(hook)}, import.meta.url)`;
    const ran = await runApp('esm', ['-r', REGISTER_CJS, '--import', loader, 'app.js'], { WS_APM_BACKEND: 'console', WS_APM_LOG_LEVEL: 'debug' });
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stderr.match(/instrumenting ws with the console backend/g)?.length, 1, ran.stderr);
    assert.doesNotMatch(ran.stderr, /already been initialized/);
    assert.match(ran.stderr, / WS RECEIVE \/chat /);
  });

  test('a 101 written by a ws copy ws-apm never patched is an accepted handshake, and said once', async () => {
    const ran = await runApp('esm', ['instrument-in-code.js'], {});
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stderr, / WS CONNECT \/chat .* ok status=101/);
    assert.doesNotMatch(ran.stderr, /ERROR|rejected/);
    assert.match(ran.stderr, /websocket\.server\.connections\{\/chat,accepted\}=1/);
    assert.equal(ran.stderr.match(/\[ws-apm\] warn: a WebSocket upgrade was accepted by a copy of ws that ws-apm has not instrumented/g)?.length, 1, ran.stderr);
  });
});

describe('the Elastic agent started in the app\'s own code, after -r ws-apm/register started it from the environment', () => {
  for (const [label, options, warned] of [
    ['without options: the call changes nothing', undefined, false],
    ['with options: the call is absorbed and the options it cannot apply are named once', { transactionSampleRate: 1 }, true],
  ] as const) {
    test(label, async () => {
      const intake = await startIntake();
      try {
        const env = agentEnv(intake.url, { START_OPTIONS: options ? JSON.stringify(options) : '' }) as Record<string, string>;
        const ran = await runApp('cjs', ['-r', REGISTER_CJS, 'starts-elastic.js'], env);
        assert.equal(ran.code, 0, ran.stderr);
        assert.match(ran.stdout, /STARTED true\nGOT echo hello\nDONE/);
        const warnings = ran.stderr.split('\n').filter((l) => l !== '');
        if (warned) {
          assert.equal(warnings.length, 1, ran.stderr);
          assert.match(warnings[0], /^\[ws-apm\] warn: elastic-apm-node was already started by ws-apm .*options are not applied \(transactionSampleRate\)/);
        } else {
          assert.deepEqual(warnings, []);
        }
        await intake.waitFor('WS RECEIVE and WS CLOSE', () => intake.transactions('WS RECEIVE /chat').length > 0 && intake.transactions('WS CLOSE /chat').length > 0);
        assert.equal(intake.transactions('WS CONNECT /chat')[0]?.outcome, 'success');
      } finally {
        await intake.close();
      }
    });
  }
});

describe('reading the command line', () => {
  test('preloads from the node arguments and NODE_OPTIONS, in every spelling Node accepts', () => {
    assert.deepEqual(
      preloadedModules(
        ['-r', 'ws-apm/register', '--require=elastic-apm-node/start', '--import', 'x.mjs', '--max-old-space-size=100'],
        '--import=./a.mjs -r newrelic --loader "./my loader.mjs" --inspect',
      ),
      ['./a.mjs', 'newrelic', './my loader.mjs', 'ws-apm/register', 'elastic-apm-node/start', 'x.mjs'],
    );
    assert.deepEqual(preloadedModules([], undefined), []);
  });

  test('the main module is judged ESM or CommonJS as Node loads it', () => {
    const at = (...p: string[]): string[] => ['node', path.join(APPS, ...p)];
    assert.equal(mainIsEsm(at('esm', 'app.js'), []), true, '"type": "module"');
    assert.equal(mainIsEsm(at('esm', 'app'), []), true, 'without its extension');
    assert.equal(mainIsEsm(at('cjs', 'app.js'), []), false, 'no "type", CommonJS syntax');
    assert.equal(mainIsEsm(at('typeless', 'app.js'), []), true, 'no "type", ESM syntax');
    assert.equal(mainIsEsm(at('tracing.cjs'), []), false, '.cjs');
    assert.equal(mainIsEsm(['node', path.join(FIXTURES, 'otel', 'server.mjs')], []), true, '.mjs');
    assert.equal(mainIsEsm(at('cjs', 'app.js'), ['--experimental-default-type=module']), true, 'default type module');
    assert.equal(mainIsEsm(['node'], []), false, 'no main module (-e, REPL)');
  });
});
