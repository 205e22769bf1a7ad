/**
 * ws-apm's programmatic API. `instrument()` is what `ws-apm/register` calls from the
 * environment; apps and tests may call it directly with overrides.
 */
import { type Backend, type ConcreteBackend, type Config, type ConfigOptions, loadConfig } from './config';
import { installExitFlush } from './exit';
import { log, setLogLevel } from './logger';
import { adapterSetup, createBackend, resolveBackend } from './adapters/select';
import { PatchLayer } from './patch/patch-layer';
import { reportNotInstrumented, StartupReport } from './startup';
import type { Adapter, Carrier } from './tracer/adapter';
import { Tracer } from './tracer/tracer';
import { VERSION } from './version';

export type { Adapter, Backend, Carrier, ConcreteBackend, Config, ConfigOptions };
export { VERSION };
// producer.ts loads nothing from OpenTelemetry: importing ws-apm never needs @opentelemetry/api.
export { metricProducer, type MetricProducerOptions, type WsApmMetricProducer } from './adapters/otel/producer';

export interface InstrumentOptions extends ConfigOptions {
  /** A custom adapter (tests, or a backend of your own); overrides `backend`. */
  adapter?: Adapter;
  /** The ws module to patch now, e.g. when ws is bundled and require hooks never fire. */
  ws?: unknown;
  /** For the otel backend: start @opentelemetry/sdk-node when no SDK is registered (default true). */
  startSdk?: boolean;
  /** Flush on beforeExit/SIGTERM/SIGINT (default true). */
  flushOnExit?: boolean;
}

export interface Instrumentation {
  readonly backend: ConcreteBackend | 'custom';
  readonly config: Config;
  /** The tracer, or undefined when nothing is instrumented (backend none / disabled). */
  readonly tracer: Tracer | undefined;
  /** Patch a ws module object explicitly (bundlers, copies loaded in odd ways). */
  patch(wsModule: unknown): boolean;
  /** Export pending telemetry within the flush timeout; never rejects. */
  flush(): Promise<void>;
  /** Undo every patch and release what ws-apm started; ws behaves as if never instrumented. */
  uninstrument(): Promise<void>;
}

const CURRENT = Symbol.for('ws-apm.instrumentation');
type Global = typeof globalThis & { [CURRENT]?: Instrumentation };

function current(): Instrumentation | undefined {
  return (globalThis as Global)[CURRENT];
}

/**
 * Instrument ws in this process. Idempotent across copies of ws-apm: while one
 * instrumentation is active, later calls warn and return it unchanged.
 */
export function instrument(options: InstrumentOptions = {}): Instrumentation {
  const existing = current();
  if (existing !== undefined) {
    log.warn('ws-apm is already instrumenting this process; this instrument() call changes nothing');
    return existing;
  }
  const { adapter: custom, ws, startSdk, flushOnExit, ...settings } = options;
  const config = loadConfig(settings);
  setLogLevel(config.logLevel);

  const resolved = custom ? { backend: 'custom' as const, reason: 'a custom adapter' } : resolveBackend(config);
  let backend: ConcreteBackend | 'custom' = resolved.backend;
  let setup: ReturnType<typeof createBackend>;
  if (custom) {
    setup = adapterSetup(custom);
  } else {
    try {
      setup = createBackend(backend as ConcreteBackend, config, { startSdk });
    } catch (err) {
      log.warn(`${(err as Error).message}; ws traffic is not instrumented`);
      setup = undefined;
      backend = 'none';
    }
  }
  if (setup === undefined || !config.enabled) {
    // A backend whose packages are missing has said so in its own warning.
    if (resolved.backend === 'none') reportNotInstrumented(resolved.reason);
    return notInstrumented(backend === 'custom' ? 'none' : (backend as ConcreteBackend), config);
  }

  const { adapter } = setup;
  const tracer = new Tracer(config, adapter);
  const report = new StartupReport(`${backend === 'custom' ? adapter.name : backend} (${resolved.reason})`);
  const patches = new PatchLayer(tracer, (copy) => report.copyPatched(copy));
  patches.enable(ws);
  report.schedule();
  const flush = async (): Promise<void> => {
    try {
      await adapter.flush(config.flushTimeoutMs);
    } catch (err) {
      // Counted against the same fault budget as every other fault of ws-apm's.
      tracer.boundary.fault(`${adapter.name} flush`, err);
    }
  };
  const uninstallExit =
    flushOnExit === false ? () => undefined : installExitFlush(flush, () => setup!.exit(config.flushTimeoutMs));
  const handle: Instrumentation = {
    backend,
    config,
    tracer,
    patch: (mod) => patches.patchWs(mod),
    flush,
    async uninstrument() {
      if (current() === handle) delete (globalThis as Global)[CURRENT];
      patches.disable();
      uninstallExit();
      try {
        if (setup!.releaseDelivers !== true) await flush();
        await setup!.release(config.flushTimeoutMs);
      } catch (err) {
        log.fault(`${adapter.name} shutdown`, err);
      }
    },
  };
  (globalThis as Global)[CURRENT] = handle;
  log.debug(`instrumenting ws with the ${backend} backend (ws-apm ${VERSION})`);
  return handle;
}

/** Nothing patched at all (backend none, or WS_APM_ENABLED=false): ws runs untouched, at zero cost. */
function notInstrumented(backend: ConcreteBackend, config: Config): Instrumentation {
  return {
    backend,
    config,
    tracer: undefined,
    patch: () => false,
    flush: async () => undefined,
    uninstrument: async () => undefined,
  };
}

/** The active instrumentation, if any. */
export function getInstrumentation(): Instrumentation | undefined {
  return current();
}

/** Write the active trace context into `carrier` (e.g. a Redis message's metadata) and return it. */
export function inject<T extends Record<string, string>>(carrier: T): T {
  current()?.tracer?.handoff.inject(carrier);
  return carrier;
}

/** The remote context in `carrier`, in the active backend's own form (or undefined). */
export function extract(carrier: Carrier): unknown {
  return current()?.tracer?.handoff.extract(carrier);
}

/** Run `fn` with the trace context carried in `carrier` active; operations inside continue that trace. */
export function runWithContext<R>(carrier: Carrier, fn: () => R): R {
  const tracer = current()?.tracer;
  return tracer === undefined ? fn() : tracer.handoff.runWithContext(carrier, fn);
}

/** Record `id` as `enduser.id` on this socket's later operations. */
export function setUser(ws: object, id: string | undefined): void {
  current()?.tracer?.handoff.setUser(ws, id);
}
