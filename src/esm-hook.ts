/**
 * The ESM loader hook for `ws` and `undici`. ws's ESM entry (`wrapper.mjs`) imports
 * `lib/websocket.js` and `lib/websocket-server.js` by path, never `ws/index.js`, so the
 * require hook misses every `import ... from 'ws'`: without this hook, an ESM app would
 * have its http upgrades instrumented but not its sockets.
 */
import fs from 'node:fs';
import module from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { isMainThread, parentPort } from 'node:worker_threads';
import * as workerThreads from 'node:worker_threads';

const INSTALLED = Symbol.for('ws-apm.esm-hook');
type Global = typeof globalThis & { [INSTALLED]?: true | string };

/**
 * Install import-in-the-middle's loader hook once per process. It must see the app's first
 * `import`, so it is installed by the preload, before the main module loads. Where Node runs
 * module hooks in-thread (`module.registerHooks`, Node 22.22.3+ / 24.11.1+) they are used:
 * the off-thread `module.register` starts a hooks thread that runs every `-r` preload of
 * the app a second time, and on Node 22 some preloads (elastic-apm-node) crash in it.
 * Returns undefined when the hook is active, else why not.
 */
export function installEsmHook(): string | undefined {
  const g = globalThis as Global;
  if (g[INSTALLED] === true) return undefined;
  if (typeof g[INSTALLED] === 'string') return g[INSTALLED];
  let reason: string | undefined;
  const options = { include: ['ws', 'undici', 'socket.io', 'socket.io-client', '@socket.io/redis-adapter'] };
  try {
    if (!registerInThread(options)) {
      const register = (module as { register?: (specifier: string, parent: string, options: object) => void }).register;
      if (typeof register !== 'function') {
        reason = `module.register is not available on Node ${process.versions.node}`;
      } else {
        register('import-in-the-middle/hook.mjs', pathToFileURL(__filename).href, { data: options });
      }
    }
  } catch (err) {
    reason = err instanceof Error ? err.message : String(err);
  }
  g[INSTALLED] = reason ?? true;
  return reason;
}

/** import-in-the-middle's in-thread hooks, when this Node runs them correctly (ESM files, loaded by require(esm)). */
function registerInThread(options: object): boolean {
  if (typeof (module as { registerHooks?: unknown }).registerHooks !== 'function') return false;
  try {
    const { supportsSyncHooks } = require('import-in-the-middle/supports-sync-hooks.mjs') as { supportsSyncHooks(): boolean };
    if (!supportsSyncHooks()) return false;
  } catch {
    return false; // no require(esm) here
  }
  const { register } = require('import-in-the-middle/register-hooks.mjs') as { register(options: object): void };
  register(options);
  return true;
}

/**
 * True in Node's module-hooks thread. Node runs every `-r` preload there as well as in the
 * main thread once any loader hook is registered; ws-apm must not instrument (or start an
 * SDK or agent) in it. App worker threads have a parentPort; the hooks thread has none.
 */
export function isLoaderHooksThread(): boolean {
  const internal = (workerThreads as { isInternalThread?: boolean }).isInternalThread;
  if (typeof internal === 'boolean') return internal;
  return !isMainThread && parentPort === null;
}

const ESM_SYNTAX = /^\s*(?:import\s*[\w{*'"]|export\s+(?:default|const|let|var|function|class|async|\{|\*))/m;

/**
 * Whether the process's main module will load as ESM, judged as Node does from the file:
 * `.mjs`/`.mts`; `.js`/`.ts`/no extension under a `"type": "module"` package.json; or
 * (Node's syntax detection) a `.js` with no `type` that has top-level import/export.
 * Under `-r`, only an ESM main needs the loader hook, and on Node versions without
 * in-thread hooks the hook costs a thread that re-runs every `-r` preload of the app.
 */
export function mainIsEsm(argv: readonly string[] = process.argv, execArgv: readonly string[] = process.execArgv): boolean {
  const options = [...execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  if (options.some((o) => /^--(?:experimental-)?default-type=module$/.test(o))) return true;
  const entry = argv[1];
  if (typeof entry !== 'string' || entry === '') return false;
  let file: string;
  try {
    file = require.resolve(path.resolve(entry));
  } catch {
    file = path.resolve(entry);
  }
  const ext = path.extname(file);
  if (ext === '.mjs' || ext === '.mts') return true;
  if (ext === '.cjs' || ext === '.cts' || ext === '.json' || ext === '.node') return false;
  const type = packageType(path.dirname(file));
  if (type !== undefined) return type === 'module';
  try {
    return ESM_SYNTAX.test(fs.readFileSync(file, 'utf8'));
  } catch {
    return false;
  }
}

/** The `type` of the nearest package.json above `dir`, undefined when it sets none. */
function packageType(dir: string): string | undefined {
  for (let d = dir; ; d = path.dirname(d)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(d, 'package.json'), 'utf8')) as { type?: unknown };
      return typeof pkg.type === 'string' ? pkg.type : undefined;
    } catch {
      // No (readable) package.json here: look further up.
    }
    if (path.dirname(d) === d) return undefined;
  }
}
