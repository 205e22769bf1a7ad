/**
 * The one logger of ws-apm. Every guard that swallows a fault reports it here, and
 * `fault()` rate-limits per key so a broken backend logs once a minute, not per message.
 */

export type LogLevel = 'silent' | 'error' | 'warn' | 'info' | 'debug';

const LEVELS: Record<LogLevel, number> = { silent: 0, error: 1, warn: 2, info: 3, debug: 4 };
const FAULT_INTERVAL_MS = 60_000;

let threshold = LEVELS.warn;
const lastFault = new Map<string, { at: number; suppressed: number }>();

export function setLogLevel(level: LogLevel): void {
  threshold = LEVELS[level];
}

/** `shownFrom`: the level from which the line is shown (its own, unless it closes an earlier warning). */
function write(level: LogLevel, message: string, shownFrom: LogLevel = level): void {
  if (LEVELS[shownFrom] > threshold) return;
  try {
    process.stderr.write(`[ws-apm] ${level}: ${message}\n`);
  } catch {
    // stderr closed: nothing sensible left to do.
  }
}

export const log = {
  error: (message: string): void => write('error', message),
  warn: (message: string): void => write('warn', message),
  info: (message: string): void => write('info', message),
  debug: (message: string): void => write('debug', message),
  /** Good news that ends an earlier warning (a backend answers again): an info line shown wherever that warning was. */
  resolved: (message: string): void => write('info', message, 'warn'),

  /**
   * Report an internal fault (ours or a backend's) at most once per minute per `key`,
   * with how many repeats were suppressed in between. Never throws.
   */
  fault(key: string, error: unknown): void {
    const now = Date.now();
    const seen = lastFault.get(key);
    if (seen && now - seen.at < FAULT_INTERVAL_MS) {
      seen.suppressed++;
      return;
    }
    const repeats = seen && seen.suppressed > 0 ? ` (${seen.suppressed} more since last report)` : '';
    lastFault.set(key, { at: now, suppressed: 0 });
    write('error', `${key} failed, telemetry dropped${repeats}: ${describe(error)}`);
  },
};

function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  try {
    return String(error);
  } catch {
    return 'unprintable error';
  }
}
