/**
 * Which messages are traced: the ratio (`WS_APM_MESSAGE_SAMPLE_RATE`), then a per-process
 * rate limit (`WS_APM_MESSAGE_RATE_LIMIT` traced messages per second). A decision is a
 * couple of comparisons on a clock value the caller already read; nothing is allocated.
 */
import { HEADER_TRACEPARENT } from '../semconv';
import type { Carrier } from './adapter';

/**
 * At most `limit` events per second (0 = no limit), spread over the second: a token bucket
 * refilled continuously from the clock the caller already read, holding at most `burst`
 * tokens. Under a steady flood one event passes every 1/limit s, so what is traced
 * represents the whole second, not its first milliseconds; over any interval of t seconds
 * at most `burst + limit × t` pass.
 */
export class RateLimit {
  private readonly perMs: number;
  private tokens: number;
  private last = 0;

  /** `burst`: how many may pass at once after a quiet spell; by default a second's worth. */
  constructor(private readonly limit: number, readonly burst = defaultBurst(limit)) {
    this.perMs = limit / 1000;
    this.tokens = burst;
  }

  /** `nowMs`: a monotonic clock in milliseconds (performance.now()). */
  allow(nowMs: number): boolean {
    if (this.limit === 0) return true;
    let tokens = this.tokens;
    if (nowMs > this.last) {
      tokens += (nowMs - this.last) * this.perMs;
      if (tokens > this.burst) tokens = this.burst;
      this.last = nowMs;
    }
    if (tokens < 1) {
      this.tokens = tokens;
      return false;
    }
    this.tokens = tokens - 1;
    return true;
  }
}

/**
 * A second's budget: what a quiet second would have allowed at once (a burst of replies, a
 * reconnect storm) still passes whole, as it did with whole-second windows; a sustained flood
 * empties the bucket within its first second and is then sampled evenly.
 *
 * @internal exported for its unit test.
 */
export function defaultBurst(limit: number): number {
  return Math.max(1, limit);
}

export class Sampler {
  private readonly limit: RateLimit;

  constructor(private readonly rate: number, limit: number) {
    this.limit = new RateLimit(limit);
  }

  sample(nowMs: number): boolean {
    if (this.rate < 1 && !(Math.random() < this.rate)) return false;
    return this.limit.allow(nowMs);
  }
}

/**
 * The sampling decision an upstream trace context carries (the W3C `sampled` flag), or
 * undefined when the carrier has no traceparent (only vendor headers): then ws-apm decides.
 */
export function upstreamSampled(carrier: Carrier): boolean | undefined {
  const traceparent = carrier[HEADER_TRACEPARENT];
  if (typeof traceparent !== 'string' || traceparent.length < 55) return undefined;
  return (parseInt(traceparent.slice(53, 55), 16) & 1) === 1;
}
