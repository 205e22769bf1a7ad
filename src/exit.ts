/**
 * Delivering telemetry on the way out, without changing how the process exits.
 * - beforeExit: the final delivery (`final`), once.
 * - SIGTERM/SIGINT that only ws-apm listens to: the final delivery, then the signal is
 *   re-raised, so the process dies of it exactly as without ws-apm.
 * - SIGTERM/SIGINT the app handles too: only a flush; the app decides whether and when
 *   to exit, and what its graceful shutdown produces is delivered at beforeExit.
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
  const onSignal = (signal: NodeJS.Signals): void => {
    if (process.listenerCount(signal) > 1) {
      void flush().catch((err) => log.fault('ws-apm flush', err));
      return;
    }
    void finalOnce().then(() => {
      uninstall();
      process.kill(process.pid, signal);
    });
  };

  process.on('beforeExit', onBeforeExit);
  for (const signal of SIGNALS) process.on(signal, onSignal);

  function uninstall(): void {
    process.removeListener('beforeExit', onBeforeExit);
    for (const signal of SIGNALS) process.removeListener(signal, onSignal);
  }
  return uninstall;
}
