/**
 * Which messages are traced: the ratio (`WS_APM_MESSAGE_SAMPLE_RATE`), then a per-process
 * rate limit (`WS_APM_MESSAGE_RATE_LIMIT` traced messages per second). A decision is a
 * couple of comparisons on a clock value the caller already read; nothing is allocated.
 */
import { HEADER_TRACEPARENT } from '../semconv';
import type { Carrier } from './adapter';

/** At most `limit` events per second (0 = no limit), in whole-second windows. */
export class RateLimit {
  private window = -1;
  private count = 0;

  constructor(private readonly limit: number) {}

  /** `nowMs`: a monotonic clock in milliseconds (performance.now()). */
  allow(nowMs: number): boolean {
    if (this.limit === 0) return true;
    const window = Math.floor(nowMs / 1000);
    if (window !== this.window) {
      this.window = window;
      this.count = 0;
    }
    if (this.count >= this.limit) return false;
    this.count++;
    return true;
  }
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
