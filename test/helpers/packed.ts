/**
 * ws-apm as a user installs it: `npm pack` of this repository's build, installed with `ws`
 * and a backend's package into a fresh temporary directory (its own node_modules, nothing
 * of this repository's reachable). One pack and one install per test file; versions of the
 * other packages are the ones this repository has installed, so npm's cache usually serves them.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const REPO = path.resolve(__dirname, '..', '..');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** `name@version` of a package as installed in this repository (its devDependencies). */
export function repoVersion(name: string): string {
  const manifest = JSON.parse(readFileSync(path.join(REPO, 'node_modules', name, 'package.json'), 'utf8')) as { version: string };
  return `${name}@${manifest.version}`;
}

export interface PackedInstall {
  /** The directory holding package.json and node_modules. */
  readonly dir: string;
  /** A fresh directory under `dir` (so `-r ws-apm/register` resolves from it). */
  subdir(name: string): string;
  remove(): void;
}

/**
 * Pack the built repository (`npm run build` ran before: `npm test` does) and install the
 * tarball with `packages` (`name@version`) into a new temporary directory.
 */
export async function packedInstall(packages: readonly string[]): Promise<PackedInstall> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ws-apm-packed-'));
  const env: NodeJS.ProcessEnv = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
  delete env.NODE_OPTIONS;
  try {
    // --ignore-scripts: the build is already there; a `prepare` would only rebuild it.
    const { stdout } = await run(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: REPO, env });
    const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'ws-apm-packed-test', version: '1.0.0', private: true }));
    await run(NPM, ['install', '--prefer-offline', '--no-package-lock', path.join(dir, filename), ...packages], {
      cwd: dir, env, maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    subdir(name) {
      const sub = path.join(dir, name);
      mkdirSync(sub, { recursive: true });
      return sub;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
