/**
 * ws-apm as each backend's users install it: the packed tarball installed into a fresh
 * directory with the backend's documented install line (plus the app's own ws). What each
 * set-up weighs, that only the OpenTelemetry set-up brings the OpenTelemetry SDK and gRPC, and
 * that an app started with `-r ws-apm/register` runs whatever optional package is missing.
 *
 * Agent versions are the ones in this repository's lock file, so npm finds them in its cache.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { cleanEnv } from '../helpers/child';
import { startIntake } from '../helpers/elastic-intake';
import { OtlpReceiver, otlpEnv } from '../helpers/otlp-receiver';
import { pack, ROOT } from '../helpers/packed';

const exec = promisify(execFile);
const BUILT = existsSync(path.join(ROOT, 'dist', 'register.js'));

/** The packages each backend's README install line adds to `npm install ws-apm`. */
const SETUPS: Record<string, readonly string[]> = {
  console: [],
  elastic: ['elastic-apm-node'],
  newrelic: ['newrelic'],
  otel: ['@opentelemetry/api', '@opentelemetry/sdk-node'],
  // An OpenTelemetry user who forgot the SDK (or meant to register one and did not).
  'otel, no SDK': ['@opentelemetry/api'],
};

const APP_CJS = `
const { WebSocketServer, WebSocket } = require('ws');
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 }, () => {
  const client = new WebSocket('ws://127.0.0.1:' + wss.address().port + '/chat');
  client.on('open', () => client.send('hi'));
  client.on('message', (data) => {
    console.log('ECHO ' + data);
    client.close();
    wss.close();
  });
});
wss.on('connection', (socket) => socket.on('message', (data) => socket.send(String(data))));
`;

const APP_ESM = APP_CJS.replace("const { WebSocketServer, WebSocket } = require('ws');", "import { WebSocketServer, WebSocket } from 'ws';");

function lockedVersion(name: string): string {
  return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

/** npm without the test runner's loader or any ws-apm/agent settings. */
function npmEnv(): NodeJS.ProcessEnv {
  return cleanEnv({ npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' });
}

interface LockEntry {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

interface Setup {
  readonly dir: string;
  /** Lock-file paths of every installed package (`node_modules/a/node_modules/b`), the app's ws excepted. */
  readonly packages: readonly string[];
  readonly bytes: number;
  /** What ws-apm itself brings: its package and the closure of its dependencies. */
  readonly own: { readonly packages: readonly string[]; readonly bytes: number };
  /** What the backend's own packages bring (the same closure from each of them). */
  readonly backend: readonly string[];
}

function nameOf(lockPath: string): string {
  return lockPath.slice(lockPath.lastIndexOf('node_modules/') + 'node_modules/'.length);
}

/** Apparent size of the files under `dir`, skipping `skip` (nested node_modules, counted as their own packages). */
function sizeOf(dir: string, skip: (p: string) => boolean = () => false): number {
  let total = 0;
  for (const entry of readdirSync(dir)) {
    const p = path.join(dir, entry);
    if (skip(p)) continue;
    const st = lstatSync(p);
    total += st.isDirectory() ? sizeOf(p, skip) : st.size;
  }
  return total;
}

/** Where node resolves `dep` from the package at `from` (both lock-file paths). */
function resolveIn(lock: Record<string, LockEntry>, from: string, dep: string): string | undefined {
  let base = from;
  for (;;) {
    const candidate = `${base}/node_modules/${dep}`;
    if (lock[candidate] !== undefined) return candidate;
    const up = base.lastIndexOf('/node_modules/');
    if (up < 0) return lock[`node_modules/${dep}`] !== undefined ? `node_modules/${dep}` : undefined;
    base = base.slice(0, up);
  }
}

async function install(tarball: string, extra: readonly string[]): Promise<Setup> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ws-apm-install-'));
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  const specs = [tarball, `ws@${lockedVersion('ws')}`, ...extra.map((name) => `${name}@${lockedVersion(name)}`)];
  // --ignore-scripts: no native builds (their downloads or compilers) in a test; sizes are of what npm unpacks.
  await exec('npm', ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', ...specs], {
    cwd: dir,
    env: npmEnv(),
    maxBuffer: 16 * 1024 * 1024,
  });
  const lock = (JSON.parse(readFileSync(path.join(dir, 'node_modules', '.package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> }).packages;
  const packages = Object.keys(lock).filter((p) => p.startsWith('node_modules/') && p !== 'node_modules/ws');
  const nested = (p: string): boolean => path.basename(p) === 'node_modules';
  const dirSize = (p: string): number => sizeOf(path.join(dir, p), nested);
  // What npm installs for a package: its dependencies and the peers it does not mark optional.
  const closure = (roots: string[]): Set<string> => {
    const seen = new Set<string>();
    const visit = (p: string): void => {
      if (seen.has(p)) return;
      seen.add(p);
      const entry = lock[p]!;
      const peers = Object.keys(entry.peerDependencies ?? {}).filter((n) => entry.peerDependenciesMeta?.[n]?.optional !== true);
      for (const dep of [...Object.keys({ ...entry.dependencies, ...entry.optionalDependencies }), ...peers]) {
        const found = resolveIn(lock, p, dep);
        if (found !== undefined) visit(found);
      }
    };
    roots.forEach(visit);
    return seen;
  };
  const own = closure(['node_modules/ws-apm']);
  return {
    dir,
    packages,
    bytes: packages.reduce((sum, p) => sum + dirSize(p), 0),
    own: { packages: [...own], bytes: [...own].reduce((sum, p) => sum + dirSize(p), 0) },
    backend: [...closure(extra.map((name) => `node_modules/${name}`))],
  };
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node ...args` in the set-up's directory, as the user's app. */
async function runApp(setup: Setup, args: string[], env: Record<string, string>): Promise<Ran> {
  try {
    const { stdout, stderr } = await exec(process.execPath, args, { cwd: setup.dir, env: cleanEnv(env), timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : null, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
const ourLines = (stderr: string, level: string): string[] => stderr.split('\n').filter((l) => l.startsWith(`[ws-apm] ${level}:`));

describe('installed from the packed tarball, one set-up per backend', { skip: !BUILT && 'dist/ not built (npm test builds it)' }, () => {
  let packDir: string;
  const setups = new Map<string, Setup>();

  before(async () => {
    packDir = mkdtempSync(path.join(os.tmpdir(), 'ws-apm-pack-'));
    const tarball = pack(packDir).tarball!;
    // One at a time: npm installs share its cache, and the host is shared.
    for (const [backend, extra] of Object.entries(SETUPS)) setups.set(backend, await install(tarball, extra));
  });

  after(() => {
    for (const setup of setups.values()) rmSync(setup.dir, { recursive: true, force: true });
    if (packDir) rmSync(packDir, { recursive: true, force: true });
  });

  test('what each set-up installs: ws-apm brings 9 small packages, only the OTel set-up the OpenTelemetry SDK', (t) => {
    const rows = [...setups].map(([backend, s]) =>
      `${backend.padEnd(8)} ${String(s.packages.length).padStart(4)} packages ${mb(s.bytes).padStart(9)}   ws-apm's own: ${s.own.packages.length} packages ${mb(s.own.bytes)}`,
    );
    t.diagnostic(`set-up sizes (besides the app's ws), Node ${process.versions.node}: ${rows.join(' | ')}`);
    const names = (list: readonly string[]): string[] => list.map(nameOf);
    const otelOrGrpc = (list: readonly string[]): string[] => names(list).filter((n) => /^@(opentelemetry|grpc)\//.test(n));
    for (const [backend, s] of setups) {
      // What ws-apm itself brings is the same small set everywhere, and nothing of OpenTelemetry or gRPC.
      assert.deepEqual(otelOrGrpc(s.own.packages), [], backend);
      assert.deepEqual(names(s.own.packages).sort(), names(setups.get('console')!.own.packages).sort(), backend);
      // Everything else in the set-up is what the backend's own packages bring.
      const theirs = new Set([...s.own.packages, ...s.backend]);
      assert.deepEqual(s.packages.filter((p) => !theirs.has(p)), [], `${backend}: every package comes from ws-apm or the backend's packages`);
      if (backend !== 'otel') assert.ok(!names(s.packages).includes('@opentelemetry/sdk-node'), `${backend} set-up installs no OpenTelemetry SDK`);
    }
    assert.deepEqual(otelOrGrpc(setups.get('console')!.packages), [], 'console set-up: nothing of OpenTelemetry or gRPC');
    assert.deepEqual(otelOrGrpc(setups.get('elastic')!.packages).filter((n) => n.startsWith('@grpc/') || n.includes('exporter')), [], 'elastic set-up: no gRPC, no OTLP exporter');
    assert.ok(names(setups.get('otel')!.packages).includes('@opentelemetry/sdk-node'), 'otel set-up: the SDK');
  });

  describe('an app started with -r ws-apm/register where @opentelemetry/api is not installed', () => {
    const cases: Array<[string, Record<string, string>]> = [
      ['WS_APM_BACKEND=console', { WS_APM_BACKEND: 'console' }],
      ['WS_APM_BACKEND=none', { WS_APM_BACKEND: 'none' }],
      ['WS_APM_ENABLED=false', { WS_APM_ENABLED: 'false' }],
      ['no backend configured or detected', {}],
    ];
    for (const [label, env] of cases) {
      test(`${label}: the app runs, with no warning`, async () => {
        const setup = setups.get('console')!;
        assert.ok(!existsSync(path.join(setup.dir, 'node_modules', '@opentelemetry', 'api')), '@opentelemetry/api is not installed');
        writeFileSync(path.join(setup.dir, 'app.js'), APP_CJS);
        const ran = await runApp(setup, ['-r', 'ws-apm/register', 'app.js'], env);
        assert.equal(ran.code, 0, ran.stderr);
        assert.match(ran.stdout, /^ECHO hi$/m);
        assert.deepEqual([...ourLines(ran.stderr, 'warn'), ...ourLines(ran.stderr, 'error')], [], ran.stderr);
        assert.equal(ourLines(ran.stderr, 'info').length, 1, ran.stderr);
      });
    }

    test('WS_APM_BACKEND=console with --import (ESM app): the app runs and is instrumented', async () => {
      const setup = setups.get('console')!;
      writeFileSync(path.join(setup.dir, 'app.mjs'), APP_ESM);
      const ran = await runApp(setup, ['--import', 'ws-apm/register', 'app.mjs'], { WS_APM_BACKEND: 'console' });
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stdout, /^ECHO hi$/m);
      assert.match(ran.stderr, /WS RECEIVE \/chat/);
    });

    test('WS_APM_BACKEND=otel: the app runs, with one warning naming the package and the install command', async () => {
      const setup = setups.get('console')!;
      writeFileSync(path.join(setup.dir, 'app.js'), APP_CJS);
      const ran = await runApp(setup, ['-r', 'ws-apm/register', 'app.js'], { WS_APM_BACKEND: 'otel' });
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stdout, /^ECHO hi$/m);
      assert.deepEqual(ourLines(ran.stderr, 'warn'), [
        '[ws-apm] warn: backend otel: @opentelemetry/api is not installed (npm install @opentelemetry/api @opentelemetry/sdk-node); ws traffic is not instrumented',
      ]);
      assert.deepEqual(ourLines(ran.stderr, 'error'), []);
    });
  });

  test('@opentelemetry/api without an SDK, none registered: the app runs, with one warning naming the SDK package and the install command', async () => {
    const setup = setups.get('otel, no SDK')!;
    writeFileSync(path.join(setup.dir, 'app.js'), APP_CJS);
    const ran = await runApp(setup, ['-r', 'ws-apm/register', 'app.js'], { WS_APM_BACKEND: 'otel' });
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout, /^ECHO hi$/m);
    assert.deepEqual(ourLines(ran.stderr, 'warn'), [
      '[ws-apm] warn: backend otel: @opentelemetry/sdk-node is not installed (npm install @opentelemetry/sdk-node); ' +
        'no OpenTelemetry SDK is registered, so spans and metrics go nowhere (or register your own SDK)',
    ]);
    assert.deepEqual(ourLines(ran.stderr, 'error'), []);
  });

  test('Elastic set-up (no OpenTelemetry packages): detected from ELASTIC_APM_SERVER_URL, transactions reach the APM server', async () => {
    const intake = await startIntake();
    try {
      const setup = setups.get('elastic')!;
      writeFileSync(path.join(setup.dir, 'app.js'), APP_CJS);
      const ran = await runApp(setup, ['-r', 'ws-apm/register', 'app.js'], {
        ELASTIC_APM_SERVER_URL: intake.url,
        ELASTIC_APM_SERVICE_NAME: 'install-test',
        ELASTIC_APM_CENTRAL_CONFIG: 'false',
        ELASTIC_APM_CLOUD_PROVIDER: 'none',
        ELASTIC_APM_METRICS_INTERVAL: '0s',
      });
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stdout, /^ECHO hi$/m);
      assert.match(ran.stderr, /^\[ws-apm\] info: .* reporting to elastic \(detected: ELASTIC_APM_SERVER_URL is set\); instrumented ws \d+\.\d+\.\d+ \(CommonJS\)$/m);
      assert.deepEqual(ourLines(ran.stderr, 'warn'), [], ran.stderr);
      await intake.waitFor('WS RECEIVE /chat', () => intake.transactions('WS RECEIVE /chat').length > 0);
    } finally {
      await intake.close();
    }
  });

  test('OpenTelemetry set-up: ws-apm starts the SDK installed next to it, spans reach the collector', async () => {
    const receiver = await new OtlpReceiver().start();
    try {
      const setup = setups.get('otel')!;
      writeFileSync(path.join(setup.dir, 'app.js'), APP_CJS);
      const ran = await runApp(setup, ['-r', 'ws-apm/register', 'app.js'], otlpEnv(receiver.url, 'install-test', { OTEL_METRICS_EXPORTER: 'none' }));
      assert.equal(ran.code, 0, ran.stderr);
      assert.deepEqual(ourLines(ran.stderr, 'warn'), [], ran.stderr);
      await receiver.waitFor('WS RECEIVE /chat', () => receiver.spansOf('install-test', 'WS RECEIVE /chat').length > 0);
    } finally {
      await receiver.stop();
    }
  });
});
