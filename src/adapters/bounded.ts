/**
 * Time bounds for backend I/O (flush, shutdown): resolve when the work is done or the
 * time is up, whichever comes first; never reject; never keep the process alive.
 */
import { log } from '../logger';

/** Resolve once `work` calls `done`, or after `timeoutMs`. A throw from `work` is logged under `faultKey`. */
export function bounded(timeoutMs: number, work: (done: () => void) => void, faultKey: string): Promise<void> {
  return new Promise<void>((resolve) => {
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(finish, Math.max(0, timeoutMs));
    timer.unref();
    try {
      work(finish);
    } catch (err) {
      log.fault(faultKey, err);
      finish();
    }
  });
}

/** Resolve after `promise` settles or `timeoutMs` passes, whichever first; never rejects. */
export function withTimeout(promise: Promise<unknown>, timeoutMs: number): Promise<void> {
  return bounded(timeoutMs, (done) => void promise.then(done, done), 'ws-apm flush');
}
