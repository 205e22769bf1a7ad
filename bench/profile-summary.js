'use strict';
// Summarize a V8 .cpuprofile (from `node bench/run.js --cpu-prof`): top functions by self time, and
// the self time spent in each package (ws-apm dist/, ws, @opentelemetry/*, dd-trace, node internals).
// Usage: node bench/profile-summary.js file.cpuprofile [topN] [inclusive-filter-regexp]
// With a filter (e.g. 'dist/|async_hooks'), also lists the matching functions by inclusive (total) time.
const fs = require('node:fs');
const path = require('node:path');

const file = process.argv[2];
const top = Number(process.argv[3] || 25);
const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const dt = new Map();
// sample i lasted timeDeltas[i + 1]
for (let i = 0; i < prof.samples.length; i++) {
  const d = prof.timeDeltas[i + 1] || 0;
  dt.set(prof.samples[i], (dt.get(prof.samples[i]) || 0) + d);
}
let total = 0;
for (const v of dt.values()) total += v;

function bucket(url) {
  if (!url) return '(native/vm)';
  if (url.startsWith('node:')) return 'node internals';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.includes('/dist/')) return 'ws-apm (dist)';
  if (url.includes('/bench/')) return 'bench app';
  return path.basename(url);
}

const fnSelf = new Map();
const pkgSelf = new Map();
for (const [id, t] of dt) {
  const n = byId.get(id);
  const cf = n.callFrame;
  const key = `${cf.functionName || '(anonymous)'} ${cf.url ? `${cf.url.replace(/^.*?(node_modules\/|dist\/|bench\/)/, '$1')}:${cf.lineNumber + 1}` : ''}`;
  fnSelf.set(key, (fnSelf.get(key) || 0) + t);
  const b = bucket(cf.url);
  pkgSelf.set(b, (pkgSelf.get(b) || 0) + t);
}
const pct = (t) => `${((t / total) * 100).toFixed(1).padStart(5)} %`;
console.log(`${path.basename(file)}: ${(total / 1000).toFixed(0)} ms sampled`);
console.log('\nself time by package:');
for (const [k, t] of [...pkgSelf].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${pct(t)}  ${k}`);
console.log(`\ntop ${top} functions by self time:`);
for (const [k, t] of [...fnSelf].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(t)}  ${k}`);

const filter = process.argv[4] ? new RegExp(process.argv[4]) : null;
if (filter) {
  const keyOf = (n) => {
    const cf = n.callFrame;
    return `${cf.functionName || '(anonymous)'} ${cf.url ? `${cf.url.replace(/^.*?(node_modules\/|dist\/|bench\/)/, '$1')}:${cf.lineNumber + 1}` : ''}`;
  };
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children || []) parent.set(c, n.id);
  const incl = new Map();
  for (const [id, t] of dt) {
    const seen = new Set();
    for (let cur = id; cur != null; cur = parent.get(cur)) {
      const k = keyOf(byId.get(cur));
      if (seen.has(k)) continue;
      seen.add(k);
      if (filter.test(k)) incl.set(k, (incl.get(k) || 0) + t);
    }
  }
  console.log(`\ntop ${top} functions matching ${filter} by inclusive time:`);
  for (const [k, t] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(t)}  ${k}`);
}
