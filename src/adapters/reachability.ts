/**
 * Whether a backend's endpoint can be reached, as seen from export results: the first export
 * that cannot reach it (refused, no answer in time, reset, no such host) is one warning naming
 * the backend and the address; the first export that gets through after that is one line
 * saying it answers again. Nothing in between, however many exports fail. Results are taken in
 * the order the exports started: a request that hung since before the collector came back and
 * times out afterwards says nothing about now.
 * An endpoint that answers with an error (HTTP 401, 413, ...) is reachable: that is reported as a
 * fault, once a minute at most, by the caller.
 */
import { log } from '../logger';

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

export class Reachability {
  private readonly state = new Map<string, { down: boolean; newest: number }>();
  private started = 0;

  /** `backend` names what is behind the address in messages, e.g. "the OpenTelemetry collector". */
  constructor(private readonly backend: string) {}

  /** An export to `address` starts: the ticket its result is reported with. */
  begin(): number {
    return ++this.started;
  }

  failed(address: string, ticket: number, error: unknown): void {
    const s = this.current(address, ticket);
    if (s === undefined || s.down) return;
    s.down = true;
    log.warn(`${this.backend} at ${address} ${reason(error)}: telemetry is dropped until it answers (reported again when it does)`);
  }

  succeeded(address: string, ticket: number): void {
    const s = this.current(address, ticket);
    if (s === undefined || !s.down) return;
    s.down = false;
    log.resolved(`${this.backend} at ${address} answers again: telemetry is delivered`);
  }

  /** The address's state, unless a later-started export has reported already. */
  private current(address: string, ticket: number): { down: boolean; newest: number } | undefined {
    let s = this.state.get(address);
    if (s === undefined) {
      s = { down: false, newest: 0 };
      this.state.set(address, s);
    }
    if (ticket < s.newest) return undefined;
    s.newest = ticket;
    return s;
  }
}

/** True when `error` says the endpoint was not reached at all (as opposed to an error answer). */
export function unreachable(error: unknown): boolean {
  const e = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return true;
  const message = typeof e.message === 'string' ? e.message : '';
  return /ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|socket hang up|time(d)? ?out|UNAVAILABLE|DEADLINE_EXCEEDED/i.test(message);
}

/** What went wrong, in words: refused, no answer in time, an HTTP status, or the error's own message (a string: as is). */
export function reason(error: unknown): string {
  if (typeof error === 'string') return error;
  const e = (error ?? {}) as { code?: unknown; message?: unknown };
  const message = typeof e.message === 'string' ? e.message : String(error);
  if (e.code === 'ECONNREFUSED' || /ECONNREFUSED/.test(message)) return 'refused the connection';
  if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN' || /ENOTFOUND/.test(message)) return 'could not be resolved';
  if (e.code === 'ECONNRESET' || /ECONNRESET|socket hang up/i.test(message)) return 'closed the connection';
  if (e.code === 'ETIMEDOUT' || /time(d)? ?out|DEADLINE_EXCEEDED/i.test(message)) return 'did not answer in time';
  if (typeof e.code === 'number' && e.code >= 100 && e.code < 600) return `answered HTTP ${e.code}`;
  return `failed (${message.slice(0, 200)})`;
}
