/**
 * Finding ws: a require hook (CommonJS), an import hook (ESM, when the loader from
 * `ws-apm/register` is active), copies already loaded before ws-apm, and any module
 * object the app hands over. Each distinct copy of ws is patched once. The same for
 * undici's WebSocket: Node's global one, and every copy of the `undici` package. And the
 * same for every protocol over ws (src/protocols: socket.io).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { Hook as RequireHook } from 'require-in-the-middle';
import { log } from '../logger';
import { type Protocol, PROTOCOLS } from '../protocols';
import type { Boundary } from '../tracer/boundary';
import type { Tracer } from '../tracer/tracer';
import { ClientUpgrades, patchClientRequests } from './client';
import { FrameWrites } from './frames';
import { patchHttpServer, patchWebSocketServer, ServerHandshakes } from './server';
import { patchWebSocket } from './socket';
import { UndiciClients } from './undici';
import { Patches } from './wrap';

interface WsExports {
  WebSocket?: unknown;
  WebSocketServer?: unknown;
  Server?: unknown;
  default?: WsExports;
}

type Unhook = { unhook(): void };

type Ctor = { prototype: object };

function asClass(value: unknown): Ctor | undefined {
  return typeof value === 'function' && typeof (value as { prototype?: unknown }).prototype === 'object'
    ? (value as Ctor)
    : undefined;
}

/** ws's classes from its CJS exports (the WebSocket class itself) or its ESM namespace. */
function classes(mod: unknown): { socket?: Ctor; server?: Ctor } {
  if (mod === null || (typeof mod !== 'object' && typeof mod !== 'function')) return {};
  const m = mod as WsExports;
  const root = (typeof mod === 'function' ? mod : m.default ?? mod) as WsExports;
  return {
    socket: asClass(m.WebSocket) ?? asClass(root),
    server: asClass(m.WebSocketServer) ?? asClass(m.Server) ?? asClass(root.Server),
  };
}

/** How a ws copy was found: by the require hook or the require cache, the import hook, or handed over. */
type FoundBy = 'CommonJS' | 'ESM' | 'given';

/** The ws majors ws-apm is tested with; another copy is left alone (its internals may differ). */
const WS_MAJORS: readonly number[] = [7, 8];

/** The version in the package.json of the ws copy in `dir`, or undefined when unknown. */
function versionOf(dir: string | undefined): string | undefined {
  if (dir === undefined) return undefined;
  try {
    const version = (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version?: unknown }).version;
    return typeof version === 'string' && version !== '' ? version : undefined;
  } catch {
    // Unreadable manifest: the copy is patched and reported without its version.
    return undefined;
  }
}

/** `ws 8.18.3 (CommonJS)` for the start-up report. */
function describeCopy(foundBy: FoundBy, version: string | undefined): string {
  return `ws${version === undefined ? '' : ` ${version}`} (${foundBy === 'given' ? 'passed to ws-apm' : foundBy})`;
}

/** The patch layer of one instrumentation handle. */
export class PatchLayer {
  private readonly patches = new Patches();
  private readonly seen = new WeakSet<object>();
  private readonly hooks: Unhook[] = [];
  private readonly handshakes: ServerHandshakes;
  private readonly upgrades: ClientUpgrades;
  private readonly undici: UndiciClients;
  private readonly protocols: readonly Protocol[];
  private readonly boundary: Boundary;
  /** ws versions outside WS_MAJORS already warned about. */
  private readonly untested = new Set<string>();

  /** `onPatched` hears of each ws copy patched (for the start-up report). */
  constructor(
    tracer: Tracer,
    private readonly onPatched?: (copy: string) => void,
  ) {
    this.boundary = tracer.boundary;
    this.handshakes = new ServerHandshakes(this.boundary);
    this.upgrades = new ClientUpgrades(this.boundary);
    this.undici = new UndiciClients(this.boundary, this.patches);
    const frameWrites = new FrameWrites(this.boundary, this.patches);
    this.protocols = PROTOCOLS.map((create) => create({ tracer, frameWrites }));
  }

  /** Patch one protocol library's module (exports of its entry, or its ESM namespace). */
  private patchProtocol(protocol: Protocol, exports: unknown, baseDir: string | undefined): void {
    if (protocol.detect(exports)) protocol.patch(exports, baseDir);
    else log.warn(`this does not look like a version of ${protocol.name} ws-apm knows: its events are recorded as plain ws messages`);
  }

  /** Patch one ws module's classes (exports of `ws`, its ESM namespace, or the class). */
  patchWs(mod: unknown, foundBy: FoundBy = 'given', dir?: string): boolean {
    // Loading ws loads http: an http instrumentation enabled since (an SDK started after
    // `-r ws-apm/register`) has wrapped it by now. ws-apm's http wrappers go back on top.
    this.guarded(() => this.patches.keepOnTop());
    const { socket, server } = classes(mod);
    if (!socket || !server) {
      log.warn('this does not look like the ws module (no WebSocket/WebSocketServer classes): not instrumented');
      return false;
    }
    if (this.seen.has(socket.prototype)) return true;
    this.seen.add(socket.prototype);
    const version = versionOf(dir);
    if (version !== undefined && !WS_MAJORS.includes(Number.parseInt(version, 10))) {
      // dd-trace and elastic-apm-node declare the versions they patch; a future ws is not patched blindly.
      if (!this.untested.has(version)) {
        this.untested.add(version);
        log.warn(`ws ${version} (in ${dir}) is not a version ws-apm is tested with (ws ${WS_MAJORS.join(', ')}): that copy is left alone, its traffic is not recorded`);
      }
      return false;
    }
    const before = this.patches.size;
    patchWebSocket(socket.prototype, this.boundary, this.upgrades, this.patches);
    patchWebSocketServer(server.prototype, this.boundary, this.handshakes, this.patches);
    if (this.patches.size === before) {
      log.warn('ws is already instrumented by another copy of ws-apm in this process; this copy leaves it alone');
    } else if (this.onPatched !== undefined) {
      this.onPatched(describeCopy(foundBy, version));
    }
    return true;
  }

  /** Hook future loads of ws and patch the copies already loaded. */
  enable(wsModule?: unknown): void {
    patchHttpServer(http.Server.prototype, this.boundary, this.handshakes, this.patches);
    patchHttpServer(https.Server.prototype, this.boundary, this.handshakes, this.patches);
    patchClientRequests(http, this.upgrades, this.patches);
    patchClientRequests(https, this.upgrades, this.patches);
    if (wsModule !== undefined) this.patchWs(wsModule);
    this.hooks.push(
      new RequireHook(['ws'], (exports, _name, basedir) => {
        this.guarded(() => this.patchWs(exports, 'CommonJS', basedir));
        return exports;
      }) as Unhook,
    );
    this.hooks.push(
      new RequireHook(['undici'], (exports) => {
        this.guarded(() => this.undici.patchModule(exports));
        return exports;
      }) as Unhook,
    );
    for (const protocol of this.protocols) {
      this.hooks.push(
        new RequireHook([...protocol.modules], (exports, _name, baseDir) => {
          this.guarded(() => this.patchProtocol(protocol, exports, baseDir));
          return exports;
        }) as Unhook,
      );
    }
    this.hookImports();
    for (const key of Object.keys(require.cache)) {
      const protocol = this.protocols.find((p) => p.entry.test(key));
      if (protocol !== undefined) {
        this.guarded(() => this.patchProtocol(protocol, require.cache[key]?.exports, path.resolve(key, '..', '..')));
        continue;
      }
      if (/[\\/]node_modules[\\/]ws[\\/]index\.js$/.test(key)) {
        this.guarded(() => this.patchWs(require.cache[key]?.exports, 'CommonJS', path.dirname(key)));
      } else if (/[\\/]node_modules[\\/]undici[\\/]index\.js$/.test(key)) {
        this.guarded(() => this.undici.patchModule(require.cache[key]?.exports));
      }
    }
    this.guarded(() => this.undici.enableBuiltIn());
    // Once the main module's synchronous part ran (where apps start their SDK or agent).
    setImmediate(() => this.guarded(() => this.patches.keepOnTop())).unref();
  }

  private hookImports(): void {
    try {
      // The ESM loader hook only exists when ws-apm/register was --import'ed; without it
      // this Hook is inert, and ESM apps loaded through -r still get ws via require.
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded lazily: it throws where the loader hook is absent
      const { Hook } = require('import-in-the-middle') as {
        Hook: new (m: string[], cb: (exported: unknown, name: string, baseDir: string | undefined) => void) => Unhook;
      };
      this.hooks.push(new Hook(['ws'], (exported, _name, baseDir) => this.guarded(() => this.patchWs(exported, 'ESM', baseDir))));
      this.hooks.push(new Hook(['undici'], (exported) => this.guarded(() => this.undici.patchModule(exported))));
      for (const protocol of this.protocols) {
        this.hooks.push(
          new Hook([...protocol.modules], (exported: unknown, _name?: string, baseDir?: string | void) =>
            this.guarded(() => this.patchProtocol(protocol, exported, baseDir ?? undefined)),
          ),
        );
      }
    } catch (err) {
      log.debug(`ESM import hook unavailable: ${(err as Error).message}`);
    }
  }

  private guarded(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.boundary.fault('ws-apm patch', err);
    }
  }

  /** Undo every patch and stop hooking. */
  disable(): void {
    for (const hook of this.hooks.splice(0)) {
      try {
        hook.unhook();
      } catch {
        // Hook libraries without unhook support: patches below are still undone.
      }
    }
    this.undici.disable();
    for (const protocol of this.protocols) protocol.unpatch();
    this.patches.unwrapAll();
  }
}
