/**
 * Delivering telemetry on the way out, without changing how the process exits.
 * - beforeExit: the final delivery (`final`), once.
 * - SIGTERM/SIGINT that only ws-apm listens to: the final delivery, then the signal is
 *   re-raised, so the process dies of it exactly as without ws-apm. A second SIGTERM/SIGINT
 *   while that delivery is pending re-raises at once: the default action is never held back.
 * - SIGTERM/SIGINT the app handles too: only a flush, once the app's own listeners have run; the
 *   app decides whether and when to exit, and what its graceful shutdown produces is delivered at
 *   beforeExit. Flushing after them, not before: an app that shuts its SDK down there exports
 *   everything once, and the stopped SDK refuses ws-apm's flush (it would otherwise be a second,
 *   identical export).
 */
import { log } from './logger';

const SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

export function installExitFlush(flush: () => Promise<void>, final: () => Promise<void>): () => void {
  let delivered: Promise<void> | undefined;
  const finalOnce = (): Promise<void> => {
    delivered ??= final().catch((err) => log.fault('ws-apm exit flush', err));
    return delivered;
  };

  const onBeforeExit = (): void => {
    // beforeExit fires again once the delivery's own I/O is done; finalOnce makes that a no-op.
    void finalOnce();
  };
  let ending = false;
  const endBy = (signal: NodeJS.Signals): void => {
    uninstall();
    process.kill(process.pid, signal);
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (process.listenerCount(signal) > 1) {
      setImmediate(() => void flush().catch((err) => log.fault('ws-apm flush', err)));
      return;
    }
    if (ending) {
      // Asked again while the delivery is pending: the user means it (and the delivery may
      // never finish on a busy or stuck process). End now, with the default action.
      endBy(signal);
      return;
    }
    ending = true;
    void finalOnce().then(() => endBy(signal));
  };

  process.on('beforeExit', onBeforeExit);
  for (const signal of SIGNALS) process.on(signal, onSignal);

  function uninstall(): void {
    process.removeListener('beforeExit', onBeforeExit);
    for (const signal of SIGNALS) process.removeListener(signal, onSignal);
  }
  return uninstall;
}
