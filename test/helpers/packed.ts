/**
 * The package as npm publishes it: `npm pack` of this repository, the files it holds, its
 * tarball unpacked where an app's `node_modules/ws-apm` would be, or installed as a user
 * installs it (with `ws` and a backend's packages, into a fresh directory).
 *
 * Packs with `--ignore-scripts`: the test command has just built dist/ (`npm test` runs the
 * build first), and `prepare` would rebuild it (clean, then tsc) for nothing. So what is checked
 * is exactly what `npm pack` / `npm publish` put in the tarball from this tree.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const ROOT = path.resolve(__dirname, '..', '..');

export interface PackedFile {
  /** Relative to the package root, `/`-separated (`dist/index.js`). */
  readonly path: string;
  readonly size: number;
}

export interface Packed {
  readonly name: string;
  readonly version: string;
  readonly files: readonly PackedFile[];
  /** The tarball's path; undefined for a dry run. */
  readonly tarball: string | undefined;
}

function npm(args: readonly string[], cwd: string): string {
  const result = spawnSync('npm', args, { cwd, encoding: 'utf8', timeout: 120_000 });
  if (result.error !== undefined) throw result.error;
  if (result.status !== 0) throw new Error(`npm ${args.join(' ')} exited ${result.status}:\n${result.stderr}`);
  return result.stdout;
}

/**
 * `npm pack --json` of the repository: into `destination` when given, else a dry run (the file
 * list only). Throws when dist/ is not built, since the package would then ship without it.
 */
export function pack(destination?: string): Packed {
  if (!existsSync(path.join(ROOT, 'dist', 'index.js'))) {
    throw new Error('dist/ is not built: run `npm run build` before this test');
  }
  const args = ['pack', '--json', '--ignore-scripts'];
  if (destination === undefined) args.push('--dry-run');
  else args.push('--pack-destination', destination);
  const [info] = JSON.parse(npm(args, ROOT)) as { name: string; version: string; filename: string; files: PackedFile[] }[];
  return {
    name: info.name,
    version: info.version,
    files: info.files.map((f) => ({ path: f.path, size: f.size })),
    tarball: destination === undefined ? undefined : path.join(destination, info.filename),
  };
}

/**
 * Unpack `tarball` into `<dir>/node_modules/<name>`, as `npm install <tarball>` places it
 * (without its dependencies: enough to compile against or to read). Returns the package dir.
 */
export function unpack(tarball: string, dir: string, name = 'ws-apm'): string {
  const target = path.join(dir, 'node_modules', ...name.split('/'));
  mkdirSync(target, { recursive: true });
  // npm tarballs hold everything under `package/`.
  const result = spawnSync('tar', ['-xzf', tarball, '-C', target, '--strip-components=1'], { encoding: 'utf8' });
  if (result.error !== undefined) throw result.error;
  if (result.status !== 0) throw new Error(`tar exited ${result.status}: ${result.stderr}`);
  return target;
}

/** `name@version` of a package as installed in this repository (its devDependencies). */
export function repoVersion(name: string): string {
  const manifest = JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string };
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
 * Pack the built repository and install the tarball with `packages` (`name@version`) into a
 * new temporary directory: its own node_modules, nothing of this repository's reachable.
 * Versions are the ones this repository has installed, so npm's cache usually serves them.
 */
export async function packedInstall(packages: readonly string[]): Promise<PackedInstall> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ws-apm-packed-'));
  const env: NodeJS.ProcessEnv = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
  delete env.NODE_OPTIONS;
  try {
    const { tarball } = pack(dir);
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'ws-apm-packed-test', version: '1.0.0', private: true }));
    await run('npm', ['install', '--prefer-offline', '--no-package-lock', tarball!, ...packages], {
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
