/**
 * The start-form matrix on ws-apm as users install it: a packed tarball installed with ws
 * and the backends' packages into a fresh directory. One small CommonJS app and one ESM app
 * (test/fixtures/start-forms) are started every way the README documents (`-r`, `--import`,
 * `NODE_OPTIONS="-r ..."`, `NODE_OPTIONS="--import ..."`), with each backend under `auto`
 * detection (OpenTelemetry to a local OTLP receiver, Elastic to a local intake, New Relic to a
 * local collector) or `console`, with the agent or the app's SDK preloaded before and after
 * ws-apm, and the agents' settings in the environment or in their config file. Each run must
 * exit cleanly, print nothing unexpected, and deliver the server's WS CONNECT (accepted),
 * WS RECEIVE, WS SEND and WS CLOSE.
 */
import { isStartupLine, startupBackend } from '../helpers/stderr';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cleanEnv, FIXTURES } from '../helpers/child';
import { type Intake, startIntake } from '../helpers/elastic-intake';
import { FakeCollector, type NrEvent } from '../helpers/newrelic-collector';
import { OtlpReceiver, SERVER } from '../helpers/otlp-receiver';
import { type PackedInstall, packedInstall, repoVersion } from '../helpers/packed';

type Backend = 'otel' | 'otel-app-sdk' | 'elastic' | 'newrelic' | 'console';
type Settings = 'env' | 'file';

interface Case {
  readonly id: string;
  readonly app: 'cjs' | 'esm';
  readonly backend: Backend;
  /** How ws-apm is preloaded, and where (node arguments or NODE_OPTIONS). */
  readonly form: '-r' | '--import';
  readonly via: 'argv' | 'NODE_OPTIONS';
  /** The agent's (or app SDK's) `-r` preload comes before ws-apm's, or after. */
  readonly agentFirst: boolean;
  readonly settings: Settings;
}

function cases(): Case[] {
  const out: Case[] = [];
  let n = 0;
  const add = (c: Omit<Case, 'id'>): void => {
    out.push({ ...c, id: `c${++n}-${c.app}-${c.backend}` });
  };
  for (const app of ['cjs', 'esm'] as const) {
    for (const via of ['argv', 'NODE_OPTIONS'] as const) {
      for (const form of ['-r', '--import'] as const) {
        for (const backend of ['console', 'otel'] as const) add({ app, backend, form, via, agentFirst: true, settings: 'env' });
        // A `-r` preload always runs before an `--import` one: order only matters between two `-r`.
        for (const agentFirst of form === '-r' ? [true, false] : [true]) {
          add({ app, backend: 'otel-app-sdk', form, via, agentFirst, settings: 'env' });
          for (const backend of ['elastic', 'newrelic'] as const) {
            for (const settings of ['env', 'file'] as const) add({ app, backend, form, via, agentFirst, settings });
          }
        }
      }
    }
  }
  return out;
}

const CASES = cases();
const CONCURRENCY = 2;

let install: PackedInstall;
let receiver: OtlpReceiver;
let collector: FakeCollector;

before(async () => {
  const packages = ['ws', 'elastic-apm-node', 'newrelic', '@opentelemetry/api', '@opentelemetry/sdk-node'].map(repoVersion);
  [install, receiver, collector] = await Promise.all([packedInstall(packages), new OtlpReceiver().start(), FakeCollector.start()]);
  for (const app of ['cjs', 'esm']) {
    mkdirSync(path.join(install.dir, app));
    copyFileSync(path.join(FIXTURES, 'start-forms', app, 'app.js'), path.join(install.dir, app, 'app.js'));
  }
  writeFileSync(path.join(install.dir, 'esm', 'package.json'), '{ "type": "module" }\n');
  copyFileSync(path.join(FIXTURES, 'start-forms', 'tracing.cjs'), path.join(install.dir, 'tracing.cjs'));
  writeFileSync(path.join(install.dir, 'collector.pem'), collector.certPem);
});

after(async () => {
  await Promise.all([receiver?.stop(), collector?.close()]);
  install?.remove();
});

/** The agent's or app SDK's preload, as a `-r` argument. */
function agentPreload(c: Case): string | undefined {
  if (c.backend === 'elastic') return 'elastic-apm-node/start';
  if (c.backend === 'newrelic') return 'newrelic';
  if (c.backend === 'otel-app-sdk') return path.join(install.dir, 'tracing.cjs');
  return undefined;
}

function elasticSettings(url: string, service: string): Record<string, string> {
  return {
    serverUrl: url,
    serviceName: service,
    centralConfig: 'false',
    cloudProvider: 'none',
    metricsInterval: '0s',
    apiRequestTime: '1s',
    captureExceptions: 'false',
    logLevel: 'warn',
  };
}

function newrelicConfig(service: string, dir: string): Record<string, unknown> {
  return {
    app_name: [service],
    license_key: '0123456789abcdef0123456789abcdef01234567',
    host: '127.0.0.1',
    port: collector.port,
    certificates: [collector.certPem],
    logging: { level: 'info', filepath: path.join(dir, 'newrelic_agent.log') },
    distributed_tracing: { enabled: true, sampler: { root: 'always_on' } },
    application_logging: { enabled: false },
    utilization: {
      detect_aws: false, detect_azure: false, detect_gcp: false, detect_pcf: false, detect_docker: false, detect_kubernetes: false,
    },
  };
}

/** Environment variables and config files for the case's backend, written into `dir` (the app's cwd). */
function backendSetup(c: Case, dir: string, intake: Intake | undefined): Record<string, string> {
  switch (c.backend) {
    case 'console':
      return { WS_APM_BACKEND: 'console' };
    case 'otel':
    case 'otel-app-sdk':
      return {
        OTEL_SERVICE_NAME: c.id,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_NODE_RESOURCE_DETECTORS: 'env,host,os,process',
        OTEL_METRIC_EXPORT_INTERVAL: '60000',
      };
    case 'elastic': {
      const settings = elasticSettings(intake!.url, c.id);
      if (c.settings === 'file') {
        writeFileSync(path.join(dir, 'elastic-apm-node.js'), `module.exports = ${JSON.stringify(settings, null, 2)};\n`);
        return {};
      }
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(settings)) env[`ELASTIC_APM_${k.replace(/[A-Z]/g, (m) => `_${m}`).toUpperCase()}`] = v;
      return env;
    }
    case 'newrelic': {
      if (c.settings === 'file') {
        writeFileSync(path.join(dir, 'newrelic.js'), `'use strict';\nexports.config = ${JSON.stringify(newrelicConfig(c.id, dir), null, 2)};\n`);
        return {};
      }
      return {
        NEW_RELIC_NO_CONFIG_FILE: 'true',
        NEW_RELIC_APP_NAME: c.id,
        NEW_RELIC_LICENSE_KEY: '0123456789abcdef0123456789abcdef01234567',
        NEW_RELIC_HOST: '127.0.0.1',
        NEW_RELIC_PORT: String(collector.port),
        NODE_EXTRA_CA_CERTS: path.join(install.dir, 'collector.pem'),
        NEW_RELIC_LOG: path.join(dir, 'newrelic_agent.log'),
        NEW_RELIC_DISTRIBUTED_TRACING_SAMPLER_ROOT: 'always_on',
        NEW_RELIC_APPLICATION_LOGGING_ENABLED: 'false',
        NEW_RELIC_UTILIZATION_DETECT_AWS: 'false',
        NEW_RELIC_UTILIZATION_DETECT_AZURE: 'false',
        NEW_RELIC_UTILIZATION_DETECT_GCP: 'false',
        NEW_RELIC_UTILIZATION_DETECT_PCF: 'false',
        NEW_RELIC_UTILIZATION_DETECT_DOCKER: 'false',
        NEW_RELIC_UTILIZATION_DETECT_KUBERNETES: 'false',
      };
    }
  }
}

interface Outcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

async function start(c: Case, intake: Intake | undefined): Promise<Outcome> {
  const cwd = install.subdir(path.join('cases', c.id));
  const register = c.form === '-r' ? ['-r', 'ws-apm/register'] : ['--import', 'ws-apm/register'];
  const agent = agentPreload(c);
  const preloads = agent === undefined ? register : c.agentFirst ? ['-r', agent, ...register] : [...register, '-r', agent];
  const env = backendSetup(c, cwd, intake);
  const app = path.join(install.dir, c.app, 'app.js');
  const args = c.via === 'argv' ? [...preloads, app] : [app];
  if (c.via === 'NODE_OPTIONS') env.NODE_OPTIONS = preloads.join(' ');
  const proc = spawn(process.execPath, args, { cwd, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  proc.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(proc, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

/** What the backend received from the case's server side, as `name → ok` (ok: not an error). */
async function delivered(c: Case, out: Outcome, intake: Intake | undefined): Promise<Map<string, boolean>> {
  const seen = new Map<string, boolean>();
  const want = ['WS CONNECT /chat', 'WS RECEIVE /chat', 'WS SEND /chat', 'WS CLOSE /chat'];
  const complete = (): boolean => want.every((n) => seen.has(n));
  switch (c.backend) {
    case 'console':
      for (const line of out.stderr.split('\n')) {
        const m = /^\S+ (WS \S+ \/chat) \S+ .* (ok|ERROR)/.exec(line);
        if (m) seen.set(m[1], m[2] === 'ok' && !(m[1] === 'WS CONNECT /chat' && !/status=101/.test(line)));
      }
      return seen;
    case 'otel':
    case 'otel-app-sdk': {
      const read = (): boolean => {
        for (const s of receiver.spansOf(c.id)) {
          if (s.name === 'WS CONNECT /chat' && s.kind !== SERVER) continue;
          seen.set(s.name, s.status.code !== 2 && (s.name !== 'WS CONNECT /chat' || s.attributes['http.response.status_code'] === 101));
        }
        return complete();
      };
      await receiver.waitFor(`${c.id} spans`, read, 10_000).catch(() => undefined);
      read();
      return seen;
    }
    case 'elastic': {
      const read = (): boolean => {
        for (const t of intake!.of('transaction')) seen.set(t.name, t.outcome !== 'failure' && (t.name !== 'WS CONNECT /chat' || t.result === 'HTTP 1xx'));
        for (const s of intake!.of('span')) seen.set(s.name, s.outcome !== 'failure');
        return complete();
      };
      await intake!.waitFor(`${c.id} events`, read, 10_000).catch(() => undefined);
      read();
      return seen;
    }
    case 'newrelic': {
      const name = (e: NrEvent): string => String(e.intrinsics.name).replace(/^(WebTransaction\/Custom|OtherTransaction\/WebSocket)\//, '');
      const read = (): boolean => {
        for (const t of collector.transactionsOf(c.id)) seen.set(name(t), t.intrinsics.error !== true);
        for (const s of collector.spans.filter((e) => e.app === c.id)) {
          if (name(s) === 'WS SEND /chat') seen.set('WS SEND /chat', s.intrinsics.error !== true);
        }
        return complete();
      };
      await collector.waitFor(read, `${c.id} events`, 10_000).catch(() => undefined);
      read();
      return seen;
    }
  }
}

function describeCase(c: Case): string {
  const agent = c.backend === 'console' || c.backend === 'otel' ? '' : c.agentFirst ? ', agent preloaded first' : ', agent preloaded after ws-apm';
  const where = c.via === 'NODE_OPTIONS' ? `NODE_OPTIONS="${c.form} ws-apm/register"` : `${c.form} ws-apm/register`;
  const settings = c.backend === 'elastic' || c.backend === 'newrelic' ? `, settings in ${c.settings === 'env' ? 'the environment' : 'the config file'}` : '';
  const backend = c.backend === 'otel-app-sdk' ? "otel with the app's own SDK" : c.backend;
  return `${c.app.toUpperCase()} app, ${where}, ${backend}${agent.replace('agent', c.backend === 'otel-app-sdk' ? 'SDK' : 'agent')}${settings}`;
}

/** Stdout lines an app may print besides its own (agents' start-up logs at info level). */
function unexpectedOutput(c: Case, out: Outcome): string[] {
  const stdout = out.stdout.split('\n').filter((l) => l !== '' && !/^(GOT echo hello|DONE)$/.test(l));
  // The start-up report is expected (checked by the caller); the console backend's lines too.
  const stderr = out.stderr.split('\n').filter((l) => l !== '' && !isStartupLine(l) && !(c.backend === 'console' && /^\d\d:\d\d:\d\d\.\d{3} WS |^metrics /.test(l)));
  return [...stdout.map((l) => `stdout: ${l}`), ...stderr.map((l) => `stderr: ${l}`)];
}

describe('start-form matrix on the packed package', () => {
  const results = new Map<string, Promise<{ out: Outcome; seen: Map<string, boolean> }>>();
  let queue: Promise<void>[] | undefined;

  /** Runs every case once, CONCURRENCY at a time, the first time any test asks. */
  function resultOf(c: Case): Promise<{ out: Outcome; seen: Map<string, boolean> }> {
    if (queue === undefined) {
      const pending = [...CASES];
      const settle = new Map<string, (r: { out: Outcome; seen: Map<string, boolean> }) => void>();
      const fail = new Map<string, (e: unknown) => void>();
      for (const k of CASES) {
        results.set(k.id, new Promise((resolve, reject) => {
          settle.set(k.id, resolve);
          fail.set(k.id, reject);
        }));
        results.get(k.id)!.catch(() => undefined);
      }
      queue = Array.from({ length: CONCURRENCY }, async () => {
        for (let k = pending.shift(); k !== undefined; k = pending.shift()) {
          const intake = k.backend === 'elastic' ? await startIntake() : undefined;
          try {
            const out = await start(k, intake);
            settle.get(k.id)!({ out, seen: await delivered(k, out, intake) });
          } catch (err) {
            fail.get(k.id)!(err);
          } finally {
            await intake?.close();
          }
        }
      });
    }
    return results.get(c.id)!;
  }

  for (const c of CASES) {
    test(describeCase(c), async () => {
      const { out, seen } = await resultOf(c);
      assert.equal(out.code, 0, `exit code; stderr:\n${out.stderr}`);
      assert.match(out.stdout, /GOT echo hello\nDONE/);
      assert.equal(startupBackend(out.stderr), c.backend === 'otel-app-sdk' ? 'otel' : c.backend, `the start-up line names the backend:\n${out.stderr}`);
      assert.deepEqual(unexpectedOutput(c, out), [], 'no other output');
      assert.deepEqual(
        Object.fromEntries([...seen].filter(([name]) => /^WS (CONNECT|RECEIVE|SEND|CLOSE) \/chat$/.test(name))),
        { 'WS CONNECT /chat': true, 'WS RECEIVE /chat': true, 'WS SEND /chat': true, 'WS CLOSE /chat': true },
        `${c.backend} received`,
      );
    });
  }
});
