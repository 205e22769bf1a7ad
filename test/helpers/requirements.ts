/**
 * Tests that need something the repository cannot bring (a system binary such as
 * redis-server or chromium, a separate install such as test/matrix/otel-sdk-3) follow one rule:
 *
 * - Outside CI (`CI` is not `true`), a missing requirement skips the test with the node:test
 *   skip. Its reason, what is missing and how to install it, is what the reporter prints
 *   (`# SKIP <reason>` in TAP, `﹣ <test> # <reason>` in spec). A fresh clone passes `npm test`.
 * - With `CI=true` it fails the test with the same reason. CI installs everything (.ci/run),
 *   so it can never skip a test silently.
 *
 * Call it first in the test body, and return when it says the test was skipped:
 *
 *     test('needs Redis', async (t) => {
 *       if (requireOrSkip(t, missingCommand('redis-server', ['--version'], 'apt-get install redis-server'))) return;
 *       ...
 *     });
 *
 * Start what the requirement is for inside the test (not in a `before` hook), so that a skip
 * skips all of it.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';

/**
 * `missing`: undefined when the requirement is met, else why not and how to install it.
 * Returns true when the test was skipped (the caller returns); throws under CI=true.
 */
export function requireOrSkip(t: TestContext, missing: string | undefined): boolean {
  if (missing === undefined) return false;
  if (process.env.CI === 'true') throw new Error(`${missing} [CI=true: required, not skipped]`);
  t.skip(missing);
  return true;
}

/** Why `command args...` cannot run here (not on PATH, or exits non-zero), with `install`; undefined when it runs. */
export function missingCommand(command: string, args: readonly string[], install: string): string | undefined {
  const result = spawnSync(command, args, { stdio: 'ignore', timeout: 30_000 });
  if (result.error === undefined && result.status === 0) return undefined;
  const why = (result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT' ? 'is not installed (not on PATH)' : 'does not run';
  return `${command} ${why}: ${install}`;
}

/** Why `file` is not an executable file here, with `install`; undefined when it is. */
export function missingExecutable(file: string, install: string): string | undefined {
  try {
    accessSync(file, constants.X_OK);
    if (statSync(file).isFile()) return undefined;
  } catch {
    // not there, or not executable
  }
  return `${file} is not installed: ${install}`;
}

/**
 * Why package `name` is not installed in the separate install at `dir` (a folder with its own
 * package.json, such as test/matrix/otel-sdk-3), with `install`; undefined when it is. Only
 * `dir`'s own node_modules counts: the repository's copy (another major) is not the one wanted.
 */
export function missingInstall(dir: string, name: string, install: string): string | undefined {
  if (existsSync(path.join(dir, 'node_modules', name, 'package.json'))) return undefined;
  return `${name} is not installed in ${path.relative(path.join(__dirname, '..', '..'), dir)}: ${install}`;
}

/**
 * The same rule for a whole suite (`describe(name, { skip: suiteSkip(missing) })`): the
 * reason to skip outside CI (also printed), and `false` under CI=true, where the suite runs
 * and fails on what is missing.
 */
export function suiteSkip(missing: string | undefined): string | false {
  if (missing === undefined || process.env.CI === 'true') return false;
  console.log(`skipping: ${missing}`);
  return missing;
}
