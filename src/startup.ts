/**
 * The start-up line: which backend and why, and which ws copies are instrumented. ws copies are
 * patched when the app loads ws, usually after `-r ws-apm/register` ran, so the line is written
 * once the main module's synchronous part is done (what it says is then true), listing the copies
 * patched so far; a copy patched later gets one line of its own.
 */
import { log } from './logger';
import { VERSION } from './version';

export class StartupReport {
  private readonly copies: string[] = [];
  private written = false;

  /** `backend`: e.g. `otel (detected: OTEL_EXPORTER_OTLP_ENDPOINT is set)`. */
  constructor(private readonly backend: string) {}

  /** Write the line after the current synchronous run (the main module's, under `-r`). */
  schedule(): void {
    setImmediate(() => this.write()).unref();
  }

  copyPatched(copy: string): void {
    if (this.written) log.info(`instrumented ${copy}`);
    else this.copies.push(copy);
  }

  private write(): void {
    if (this.written) return;
    this.written = true;
    const copies = this.copies.length > 0 ? `instrumented ${this.copies.join(', ')}` : 'no ws loaded yet (instrumented when the app loads it)';
    log.info(`ws-apm ${VERSION} reporting to ${this.backend}; ${copies}`);
  }
}

/** Nothing is instrumented: say why, and what to set, right away (it is already true). */
export function reportNotInstrumented(reason: string): void {
  log.info(`ws-apm ${VERSION} is not instrumenting ws: ${reason}`);
}
