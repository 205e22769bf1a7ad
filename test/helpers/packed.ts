/**
 * The package as npm publishes it: `npm pack` of this repository, the files it holds, and its
 * tarball unpacked where an app's `node_modules/ws-apm` would be.
 *
 * Packs with `--ignore-scripts`: the test command has just built dist/ (`npm test` runs the
 * build first), and `prepare` would rebuild it (clean, then tsc) for nothing. So what is checked
 * is exactly what `npm pack` / `npm publish` put in the tarball from this tree.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';

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
