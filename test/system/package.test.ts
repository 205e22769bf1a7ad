/**
 * What `npm pack` / `npm publish` ship: the entry points and all they load, the licence, and
 * nothing else (no sources, maps, tests, fixtures, benchmarks, examples).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { type Packed, ROOT, pack } from '../helpers/packed';

const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  license: string;
  main: string;
  types: string;
  exports: unknown;
};

/** Every file path named by `main`, `types` and the `exports` map (all its conditions). */
function entryPoints(): string[] {
  const out = new Set<string>([pkg.main, pkg.types]);
  const walk = (value: unknown): void => {
    if (typeof value === 'string') out.add(value);
    else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) walk(v);
  };
  walk(pkg.exports);
  return [...out].map((p) => path.posix.normalize(p));
}

/** Relative specifiers a file loads: require('./x'), from './x', import('./x'), createRequire(...)('./x'). */
function relativeLoads(source: string): string[] {
  const pattern = /(?:\brequire\s*\(|\bfrom\s+|\bimport\s*\(|\)\s*\(|^\s*import\s+)\s*['"](\.{1,2}\/[^'"]+)['"]/gm;
  return [...source.matchAll(pattern)].map((m) => m[1]);
}

/** How Node (for .js/.mjs) or TypeScript (for .d.ts) finds `specifier` among the shipped files. */
function resolves(from: string, specifier: string, shipped: ReadonlySet<string>): boolean {
  const base = path.posix.join(path.posix.dirname(from), specifier);
  const candidates = from.endsWith('.d.ts')
    ? [`${base}.d.ts`, base.replace(/\.js$/, '.d.ts'), `${base}/index.d.ts`]
    : [base, `${base}.js`, `${base}/index.js`];
  return candidates.some((c) => shipped.has(c));
}

const ALLOWED = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICENSE$/,
  /^register\.mjs$/,
  /^dist\/.+\.js$/,
  /^dist\/.+\.d\.ts$/,
];

describe('the published package (npm pack)', () => {
  let packed: Packed;
  let shipped: Set<string>;

  before(() => {
    packed = pack();
    shipped = new Set(packed.files.map((f) => f.path));
  });

  test('holds every entry point of package.json (main, types, each export), the README and the LICENSE', () => {
    for (const file of [...entryPoints(), 'package.json', 'README.md', 'LICENSE']) {
      assert.ok(shipped.has(file), `${file} is not in the package`);
    }
  });

  test('every module a shipped file loads by a relative path is shipped too', () => {
    let checked = 0;
    for (const file of shipped) {
      if (!/\.(js|mjs|d\.ts)$/.test(file)) continue;
      for (const specifier of relativeLoads(readFileSync(path.join(ROOT, file), 'utf8'))) {
        assert.ok(resolves(file, specifier, shipped), `${file} loads ${specifier}, which is not in the package`);
        checked++;
      }
    }
    // The check read real imports (dist/index.js alone loads several).
    assert.ok(checked > 20, `only ${checked} relative loads found`);
  });

  test('holds nothing else: no TypeScript sources, source maps, tests, fixtures, benchmarks, examples or demo', () => {
    const unexpected = [...shipped].filter((file) => !ALLOWED.some((re) => re.test(file)));
    assert.deepEqual(unexpected, [], `not meant to be published: ${unexpected.join(', ')}`);
    for (const file of shipped) {
      assert.doesNotMatch(file, /\.map$|^(src|test|bench|examples|demo|docs|\.ci)\/|(?<!\.d)\.ts$/, file);
    }
  });

  test('every shipped module is built from a current source (no stale file of an older build)', () => {
    for (const file of shipped) {
      const m = /^dist\/(.+?)(\.d\.ts|\.js)$/.exec(file);
      if (m === null) continue;
      assert.ok(existsSync(path.join(ROOT, 'src', `${m[1]}.ts`)), `${file} has no src/${m[1]}.ts: a stale build (npm run build cleans dist/)`);
    }
  });

  test('the LICENSE is the Apache License 2.0 that package.json names', () => {
    assert.equal(pkg.license, 'Apache-2.0');
    const text = readFileSync(path.join(ROOT, 'LICENSE'), 'utf8');
    assert.match(text, /^\s*Apache License\s+Version 2\.0, January 2004\s+http:\/\/www\.apache\.org\/licenses\/\s/);
    assert.match(text, /END OF TERMS AND CONDITIONS/);
    assert.match(text, /APPENDIX: How to apply the Apache License to your work\./);
  });
});
