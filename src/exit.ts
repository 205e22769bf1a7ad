/**
 * Flushing on the way out, without changing how the process exits: telemetry is
 * flushed (within a bound) on beforeExit, SIGTERM and SIGINT. A signal ws-apm is the
 * only listener of is re-raised after the flush, so the default exit (and its code)
 * stays exactly as without ws-apm; if the app listens too, the app decides.
 */
import { log } from './logger';

const SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

export function installExitFlush(flush: () => Promise<void>): () => void {
  let flushed: Promise<void> | undefined;
  const flushOnce = (): Promise<void> => {
    flushed ??= flush().catch((err) => log.fault('ws-apm flush', err));
    return flushed;
  };

  const onBeforeExit = (): void => {
    // beforeExit fires again once the flush's own I/O is done; flushOnce makes that a no-op.
    void flushOnce();
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    const alone = process.listenerCount(signal) === 1;
    void flushOnce().then(() => {
      if (!alone) return;
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
