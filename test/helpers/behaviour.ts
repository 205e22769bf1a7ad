/**
 * Behaviour suites (ws, undici) run the same checks with and without ws-apm; this compares
 * the two runs: the same checks, in the same order, with identical outcomes.
 */
import assert from 'node:assert/strict';

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: unknown;
}

export function assertSameOutcomes(results: readonly CheckResult[], bare: readonly CheckResult[]): void {
  assert.deepEqual(results.map((r) => r.name), bare.map((r) => r.name));
  const differing = results
    .map((r, i) => [r, bare[i]] as const)
    .filter(([r, b]) => JSON.stringify(r) !== JSON.stringify(b))
    .map(([r, b]) => `- ${r.name}\n    without: ${JSON.stringify(b.ok ? b.value : b.error)}\n    with:    ${JSON.stringify(r.ok ? r.value : r.error)}`);
  assert.equal(differing.length, 0, `${differing.length} check(s) differ with ws-apm:\n${differing.join('\n')}`);
}
