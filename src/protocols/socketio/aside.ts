/**
 * Coexistence with OpenTelemetry's `@opentelemetry/instrumentation-socket.io` (on by default in
 * auto-instrumentations-node): it records the same events by wrapping socket.io's `on` and `emit`
 * (and so every listener). ws-apm makes it stand aside: its shimmer wrappers come off socket.io's
 * prototypes before ws-apm patches them, so each event is recorded once, whichever loaded first
 * (its hooks on socket.io's internal files always run before ws-apm's hook on the entry).
 */
import { log } from '../../logger';
import { isWrapped } from '../../patch/wrap';

let told = false;

/** Remove another instrumentation's shimmer wrapper of `target[name]` (never ws-apm's own). */
export function standAside(target: Record<string, unknown>, name: string): void {
  const fn = target[name];
  if (typeof fn !== 'function' || isWrapped(fn)) return;
  const shim = fn as unknown as { __wrapped?: unknown; __unwrap?: unknown };
  if (shim.__wrapped !== true || typeof shim.__unwrap !== 'function') return;
  (shim.__unwrap as () => void)();
  if (!told) {
    told = true;
    log.info('socket.io events are recorded by ws-apm: the socket.io instrumentation loaded before it stands aside');
  }
}
