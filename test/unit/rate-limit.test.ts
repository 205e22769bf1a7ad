import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultBurst, RateLimit } from '../../src/tracer/sampler';

/** A steady stream of `perSecond` events for `seconds`, on an injected clock: the times that passed. */
function stream(limit: RateLimit, perSecond: number, seconds: number, startMs = 5_000): number[] {
  const passed: number[] = [];
  const step = 1000 / perSecond;
  for (let k = 0; k < perSecond * seconds; k++) {
    const now = startMs + k * step;
    if (limit.allow(now)) passed.push(now);
  }
  return passed;
}

test('a steady flood is sampled across the whole second, not in its first milliseconds', () => {
  const limit = 100;
  // 10,000 messages per second for 3 s: the first second starts with the burst, then one per 10 ms.
  const passed = stream(new RateLimit(limit), 10_000, 3);
  for (let second = 1; second < 3; second++) {
    const inSecond = passed.filter((t) => t >= 5_000 + second * 1000 && t < 5_000 + (second + 1) * 1000);
    assert.ok(Math.abs(inSecond.length - limit) <= 1, `second ${second}: ${inSecond.length} traced, limit ${limit}`);
    // Every tenth of the second has its share (10 each), so a traced message represents its whole second.
    for (let tenth = 0; tenth < 10; tenth++) {
      const from = 5_000 + second * 1000 + tenth * 100;
      const share = inSecond.filter((t) => t >= from && t < from + 100).length;
      assert.ok(share >= 9 && share <= 11, `second ${second}, tenth ${tenth}: ${share} traced`);
    }
  }
});

test('over any stretch at most the burst plus the limit times its length pass', () => {
  const limit = 100;
  const rate = new RateLimit(limit);
  assert.equal(rate.burst, defaultBurst(limit));
  const passed = stream(rate, 7_919, 4, 0);
  for (let i = 0; i < passed.length; i += 7) {
    for (let j = i; j < passed.length; j += 13) {
      const seconds = (passed[j] - passed[i]) / 1000;
      assert.ok(j - i + 1 <= rate.burst + limit * seconds + 1e-9, `${j - i + 1} passed in ${seconds} s`);
    }
  }
  assert.ok(passed.length >= limit * 4, `${passed.length} passed in 4 s`);
});

test('after a quiet spell a burst passes at once, then the rate holds', () => {
  const rate = new RateLimit(50, 5);
  let passed = 0;
  for (let k = 0; k < 100; k++) if (rate.allow(60_000)) passed++;
  assert.equal(passed, 5);
  assert.equal(rate.allow(60_010), false, 'half a token after 10 ms');
  assert.equal(rate.allow(60_020), true, 'one token after 20 ms at 50/s');
});

test('a slow stream under the limit passes whole; 0 means no limit', () => {
  assert.equal(stream(new RateLimit(100), 50, 2).length, 100);
  assert.equal(stream(new RateLimit(0), 100_000, 0.1).length, 10_000);
});
