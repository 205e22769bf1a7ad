/**
 * The published types, as a TypeScript app sees them: a consumer project compiled with the repo's
 * `tsc` against the packed package (CommonJS and ESM, `module: nodenext`, and a classic CommonJS
 * set-up), with no `@types/node` and no other package installed. Correct usage compiles; a
 * mistaken option value does not.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, pack, unpack } from '../helpers/packed';

const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

/** Everything a user writes with the programmatic API, with options of each kind. */
const CORRECT = `import {
  VERSION, extract, getInstrumentation, inject, instrument, metricProducer, runWithContext, setUser,
  type Backend, type ConfigOptions, type InstrumentOptions, type Instrumentation,
} from 'ws-apm';

const settings: ConfigOptions = {
  enabled: true, backend: 'otel', messageName: 'meta.action', messageContext: ['trace'],
  routes: ['/rooms/:id'], ignoreRoutes: '/health,/internal/*', messageParent: 'handshake',
  messageSampleRate: 0.5, messageRateLimit: 100, keepErrors: true, keepSlowMs: 250,
  captureBody: 'all', captureBodyMaxBytes: 512, logLevel: 'info', flushTimeoutMs: 2000,
};
const options: InstrumentOptions = { ...settings, startSdk: false, flushOnExit: false, ws: {} };
const handle: Instrumentation = instrument(options);
const backends: Backend[] = ['auto', 'otel', 'elastic', 'newrelic', 'console', 'none'];
const carrier = inject<Record<string, string>>({});
runWithContext(carrier, () => setUser({}, 'user-1'));
const remote: unknown = extract(carrier);
const active: string | undefined = getInstrumentation()?.config.backend;
const producer = metricProducer({ temporality: 'delta' });
const version: string = VERSION;
void producer.collect().then(() => handle.flush()).then(() => handle.uninstrument());
export { active, backends, remote, version };
`;

/** One mistake per line, each with the diagnostic it must produce. */
const MISTAKES: readonly { readonly code: string; readonly line: string; readonly message: RegExp }[] = [
  { code: `instrument({ backend: 'nope' });`, line: 'backend', message: /'"nope"' is not assignable to type 'Backend/ },
  { code: `instrument({ messageSampleRate: '0.5' });`, line: 'number', message: /'string' is not assignable to type 'number/ },
  { code: `instrument({ maxRoutes: '100' });`, line: 'number', message: /'string' is not assignable to type 'number/ },
  { code: `instrument({ traceHeartbeat: 'true' });`, line: 'boolean', message: /'string' is not assignable to type 'boolean/ },
  { code: `instrument({ captureBody: 'everything' });`, line: 'enum', message: /'"everything"' is not assignable/ },
  { code: `instrument({ backnd: 'otel' });`, line: 'unknown option', message: /'backnd' does not exist .*Did you mean to write 'backend'/ },
];

/**
 * With `exports` honoured (nodenext), `import 'ws-apm/register'` must resolve (checked under
 * noUncheckedSideEffectImports); classic resolution ignores `exports` and has no such entry.
 */
const NODENEXT = { module: 'nodenext', moduleResolution: 'nodenext', noUncheckedSideEffectImports: true };
const MODES = [
  { name: 'CommonJS, module nodenext', type: 'commonjs', compilerOptions: NODENEXT, register: true },
  { name: 'ESM, module nodenext', type: 'module', compilerOptions: NODENEXT, register: true },
  {
    name: 'CommonJS, module commonjs (classic node resolution)',
    type: 'commonjs',
    compilerOptions: { module: 'commonjs', moduleResolution: 'node10' },
    register: false,
  },
] as const;

interface Diagnostic {
  readonly file: string;
  readonly line: number;
  readonly code: string;
  readonly message: string;
}

/** Compile the consumer project in `dir`: its diagnostics and the files tsc read. */
function compile(dir: string): { diagnostics: Diagnostic[]; files: string[]; output: string } {
  const result = spawnSync(process.execPath, [TSC, '-p', '.', '--pretty', 'false', '--listFiles'], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (result.error !== undefined) throw result.error;
  const diagnostics: Diagnostic[] = [];
  const files: string[] = [];
  for (const line of result.stdout.split('\n')) {
    const m = /^(.+?)\((\d+),\d+\): error (TS\d+): (.*)$/.exec(line);
    if (m !== null) diagnostics.push({ file: m[1], line: Number(m[2]), code: m[3], message: m[4] });
    else if (path.isAbsolute(line.trim())) files.push(line.trim());
  }
  return { diagnostics, files, output: result.stdout + result.stderr };
}

describe('the published types, compiled by a TypeScript app without @types/node', () => {
  let tmp: string;
  let tarball: string;

  before(() => {
    // Under the system temp dir: no node_modules/@types of this repository above the consumer.
    tmp = mkdtempSync(path.join(os.tmpdir(), 'ws-apm-types-'));
    tarball = pack(tmp).tarball!;
  });

  after(() => rmSync(tmp, { recursive: true, force: true }));

  for (const mode of MODES) {
    test(`${mode.name}: correct usage compiles, and each mistaken option is an error on its line`, () => {
      const dir = path.join(tmp, mode.type + '-' + mode.compilerOptions.module);
      mkdirSync(dir);
      unpack(tarball, dir);
      writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: mode.type }));
      writeFileSync(
        path.join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: { ...mode.compilerOptions, target: 'ES2022', strict: true, noEmit: true, types: [], skipLibCheck: false },
          files: ['correct.ts', 'mistakes.ts'],
        }),
      );
      writeFileSync(path.join(dir, 'correct.ts'), (mode.register ? `import 'ws-apm/register';\n` : '') + CORRECT);
      writeFileSync(
        path.join(dir, 'mistakes.ts'),
        [`import { instrument } from 'ws-apm';`, ...MISTAKES.map((m) => m.code), 'export {};', ''].join('\n'),
      );

      const { diagnostics, files, output } = compile(dir);
      assert.ok(
        files.some((f) => f.endsWith('/node_modules/ws-apm/dist/index.d.ts')),
        `tsc did not read ws-apm's declarations:\n${output}`,
      );
      const foreign = files.filter((f) => f.includes('/node_modules/') && !/\/node_modules\/(ws-apm|typescript)\//.test(f));
      assert.deepEqual(foreign, [], 'the declarations need no other package (no @types/node, no backend package)');

      const elsewhere = diagnostics.filter((d) => d.file !== 'mistakes.ts');
      assert.deepEqual(elsewhere, [], `correct usage and ws-apm's own declarations compile:\n${output}`);
      const mistakes = diagnostics.filter((d) => d.file === 'mistakes.ts');
      MISTAKES.forEach((mistake, i) => {
        const onLine = mistakes.filter((d) => d.line === i + 2);
        assert.equal(onLine.length, 1, `one error for \`${mistake.code}\` (${mistake.line}):\n${output}`);
        assert.match(onLine[0].message, mistake.message, mistake.code);
      });
      assert.equal(mistakes.length, MISTAKES.length, output);
    });
  }
});
