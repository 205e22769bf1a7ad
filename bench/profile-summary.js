'use strict';
// Summarize a V8 .cpuprofile (from `node bench/run.js --cpu-prof`): top functions by self time, and
// the self time spent in each package (ws-apm dist/, ws, @opentelemetry/*, dd-trace, node internals).
// Usage: node bench/profile-summary.js [--busy] file.cpuprofile [topN] [inclusive-filter-regexp]
// With a filter (e.g. 'dist/|async_hooks'), also lists the matching functions by inclusive (total) time.
// --busy: shares of the busy time only: leaves out (idle) and start-up (samples under module loading), so that
// a server's profile shows where its message path goes.
const fs = require('node:fs');
const path = require('node:path');

const BUSY = process.argv.includes('--busy');
const argv = process.argv.slice(2).filter((a) => a !== '--busy');
const file = argv[0];
const top = Number(argv[1] || 25);
const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parentOf = new Map();
for (const n of prof.nodes) for (const c of n.children || []) parentOf.set(c, n.id);
const LOADING = /^(Module\._load|compileForInternalLoader|wrapSafe|loadESM|moduleStrategy)$/;
const startup = new Map();
function isStartup(id) {
  if (startup.has(id)) return startup.get(id);
  const n = byId.get(id);
  const p = parentOf.get(id);
  const r = LOADING.test(n.callFrame.functionName) || (p != null && isStartup(p));
  startup.set(id, r);
  return r;
}
const dt = new Map();
// sample i lasted timeDeltas[i + 1]
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i];
  if (BUSY && (byId.get(id).callFrame.functionName === '(idle)' || isStartup(id))) continue;
  const d = prof.timeDeltas[i + 1] || 0;
  dt.set(id, (dt.get(id) || 0) + d);
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
console.log(`${path.basename(file)}: ${(total / 1000).toFixed(0)} ms sampled${BUSY ? ' (busy: idle and module loading left out)' : ''}`);
console.log('\nself time by package:');
for (const [k, t] of [...pkgSelf].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${pct(t)}  ${k}`);
console.log(`\ntop ${top} functions by self time:`);
for (const [k, t] of [...fnSelf].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(t)}  ${k}`);

const filter = argv[2] ? new RegExp(argv[2]) : null;
if (filter) {
  const keyOf = (n) => {
    const cf = n.callFrame;
    return `${cf.functionName || '(anonymous)'} ${cf.url ? `${cf.url.replace(/^.*?(node_modules\/|dist\/|bench\/)/, '$1')}:${cf.lineNumber + 1}` : ''}`;
  };
  const parent = parentOf;
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
