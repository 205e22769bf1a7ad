'use strict';
// Writes the summary of full benchmark runs into docs/performance.md, between
//   <!-- bench:summary:start --> and <!-- bench:summary:end -->
// Usage: node bench/readme.js [results.json ...]   (default bench/results/latest.json)
//   Several files (e.g. a Node 20 and a Node 24 run): the target table gets one column pair per file; the
//   detail tables come from the first file. --print writes the block to stdout instead of docs/performance.md.
const fs = require('node:fs');
const path = require('node:path');
const { cell, fmt, fmtInt, ours, paired, pairedTable, socketioTargets } = require('./report');

const ROOT = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const PRINT = args.includes('--print');
const files = args.filter((a) => !a.startsWith('--'));
if (!files.length) files.push(path.join(__dirname, 'results', 'latest.json'));
const reports = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));

const START = '<!-- bench:summary:start -->';
const END = '<!-- bench:summary:end -->';

const mark = (sp, max) => (sp ? `${cell(sp)} ${sp.median <= max ? '✓' : '✗'}` : 'not run');
const nodeOf = (r) => `Node ${r.machine.node.replace(/^v/, '').split('.')[0]}`;

function block() {
  const L = [];
  const r0 = reports[0];
  for (const r of reports) {
    const m = r.machine;
    const passes = Object.values(r.passes).map((p) => `${p.key} ×${p.roundsRun}`).join(', ');
    L.push(`- ${nodeOf(r)}: \`${r.command}\` on ${r.date.slice(0, 16).replace('T', ' ')} UTC, Node ${m.node}, ${m.cpu} ${m.cores} cores; `
      + `rounds ${passes}; wall time ${Math.round(r.durationS / 60)} min; load average ${m.loadStart[0].toFixed(1)} at start, ${m.loadEnd[0].toFixed(1)} at end. `
      + `Versions: ${Object.entries(m.versions).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  }
  L.push('');
  L.push('Issue 12\'s targets — server CPU µs per message × bare ws in the same round, 64 B, median (min–max); ✓ met, ✗ missed:');
  L.push('');
  const head = ['variant', 'target'];
  for (const r of reports) head.push(`${nodeOf(r)}, names off`, `${nodeOf(r)}, names on`);
  L.push(`| ${head.join(' | ')} |`);
  L.push(`|${head.map(() => '---').join('|')}|`);
  const rows = r0.targets.map((t, i) => {
    const cells = [t.label, `≤ ${fmt(t.max)}`];
    for (const r of reports) {
      const x = r.targets[i];
      cells.push(mark(x.namesOff, x.max), x.onApplies ? mark(x.namesOn, x.max) : 'n/a');
    }
    return `| ${cells.join(' | ')} |`;
  });
  L.push(...rows);
  L.push('');

  // issue 20: what is ours (÷ the backend alone, ÷ the floor), per Node
  const sizeLabel = (size) => (size >= 1024 ? `${size / 1024} KiB` : `${size} B`);
  for (const r of reports) {
    const o = ours(r);
    if (!o.cols.length || !o.rows.some((row) => row.cells.some((c) => c.r))) continue;
    L.push(`Issue 20's ratios, ${nodeOf(r)} — server CPU µs per message, ratio per round, median (min–max); ✓ met, ✗ missed:`);
    L.push('');
    L.push(`| ratio | ${o.cols.map((c) => `${c.names ? 'names on' : 'names off'}, ${sizeLabel(c.size)}`).join(' | ')} |`);
    L.push(`|---|${o.cols.map(() => '---').join('|')}|`);
    for (const row of o.rows) {
      const cells = row.cells.map((c) => (c.r ? `${cell(c.r)}${c.max != null ? ` (≤ ${fmt(c.max)}) ${c.met ? '✓' : '✗'}` : ''}` : '–'));
      L.push(`| ${row.label} | ${cells.join(' | ')} |`);
    }
    L.push('');
  }

  // issue 20's ratios again, from the paired pass (alternating windows), per Node
  for (const r of reports) {
    if (!paired(r).length) continue;
    const c = r.paired.config;
    L.push(`The same ratios from the paired pass, ${nodeOf(r)} — the two servers side by side, one loaded at a time, ${c.blocks} blocks of four `
      + `${fmtInt(c.windowMs)} ms windows (A B B A); median of the blocks' ratios (min–max), µs per message A → B (system part):`);
    L.push('');
    L.push(...pairedTable(r, true));
    L.push('');
  }

  // issue 19: socket.io, per Node
  const sio = reports.map((r) => ({ r, t: socketioTargets(r) })).filter(({ t }) => t.passes.length && t.rows.some((row) => row.cells.some((c) => c.r)));
  if (sio.length) {
    L.push('Issue 19\'s socket.io ratios — server CPU µs per incoming message, ratio per round, median (min–max):');
    L.push('');
    const cols = sio.flatMap(({ r, t }) => t.passes.map((k, i) => ({ r, t, i, label: `${nodeOf(r)}, ${k === 'socketio-echo' ? 'echo' : 'room broadcast 1 → 1,000'}` })));
    L.push(`| ratio | target | ${cols.map((c) => c.label).join(' | ')} |`);
    L.push(`|---|---|${cols.map(() => '---').join('|')}|`);
    for (const [j, row] of sio[0].t.rows.entries()) {
      const target = row.max == null ? '–' : `${row.strict ? '<' : '≤'} ${fmt(row.max)}`;
      const cells = cols.map((c) => {
        const x = c.t.rows[j].cells[c.i];
        return x && x.r ? `${cell(x.r)}${row.max != null ? (x.met ? ' ✓' : ' ✗') : ''}` : '–';
      });
      if (cells.every((x) => x === '–')) continue;
      L.push(`| ${row.label} | ${target} | ${cells.join(' | ')} |`);
    }
    L.push('');
  }

  // memory: ws-apm's heap per idle connection and after churn, per backend (the first report that measured it)
  const withMem = reports.find((r) => r.memory && r.memory.bare);
  if (withMem) {
    const m = withMem.memory;
    const bare = m.bare.idle.heapPerConn;
    L.push(`Memory, ${nodeOf(withMem)} — ${fmtInt(withMem.config.idleConns || 10000)} idle connections, then connect/close cycles; heap after GC (target ≤ 300 B per idle connection):`);
    L.push('');
    L.push('| variant | extra heap per idle connection | heap growth per churn cycle |');
    L.push('|---|---|---|');
    for (const v of withMem.variants) {
      const x = m[v.key];
      if (!x || v.key === 'bare' || !x.idle) continue;
      const extra = x.idle.heapPerConn - bare;
      L.push(`| ${v.label} | ${fmtInt(extra)} B${['otel-defaults', 'elastic-defaults', 'newrelic-defaults', 'wsapm-api', 'otel-every'].includes(v.key) ? (extra <= 300 ? ' ✓' : ' ✗') : ''} `
        + `| ${x.churn && x.churn.cycles ? `${fmt(x.churn.heapGrowth / x.churn.cycles, 1)} B` : '–'} |`);
    }
    L.push('');
    // heapUsed counts the code the JIT compiles as the run goes on; the test counts from snapshots.
    L.push('These figures are `heapUsed` after GC, which also counts the code the JIT compiles as the run goes on: the churn');
    L.push('column moves by tens of bytes per cycle with and without ws-apm. `test/system/memory.test.ts` counts what the');
    L.push('program keeps from heap snapshots instead (docs/reliability.md): within ±1 B per cycle on every backend.');
    L.push('');
  }

  // detail: echo 64 B, names off and on, memory
  const echo = r0.passes.echo;
  const names = r0.passes.names;
  const mem = r0.memory || {};
  const bareHeap = mem.bare && mem.bare.idle.heapPerConn;
  if (echo) {
    L.push(`${nodeOf(r0)}, echo, 64 B:`);
    L.push('');
    L.push('| variant | server CPU µs/msg (× bare) | names on: µs/msg (× bare) | throughput × bare | p99 × bare | telemetry/msg | extra heap per idle connection |');
    L.push('|---|---|---|---|---|---|---|');
    for (const key of echo.variantKeys) {
      const v = r0.variants.find((x) => x.key === key);
      if (!v) continue;
      if (v.skipped) { L.push(`| ${v.label} | ${v.skipped} | | | | | |`); continue; }
      const s = echo.summary[key] && echo.summary[key][64];
      const n = names && names.summary[key] && names.summary[key][64];
      const cpu = (x) => (x && x.cpuUsPerMsg.abs ? `${fmt(x.cpuUsPerMsg.abs.median, 1)} (${fmt(x.cpuUsPerMsg.ratio && x.cpuUsPerMsg.ratio.median)})` : '–');
      const heap = mem[key] && bareHeap != null ? (key === 'bare' ? '–' : `${fmtInt(mem[key].idle.heapPerConn - bareHeap)} B`) : '–';
      L.push(`| ${v.label} | ${cpu(s)} | ${cpu(n)} | ${s ? fmt(s.msgPerSec.ratio && s.msgPerSec.ratio.median) : '–'} | ${s ? fmt(s.p99Ms.ratio && s.p99Ms.ratio.median) : '–'} `
        + `| ${s && s.exportedPerMsg.abs ? fmt(s.exportedPerMsg.abs.median) : '–'} | ${heap} |`);
    }
    L.push('');
  }
  const bc = r0.passes.broadcast;
  if (bc) {
    L.push(`${nodeOf(r0)}, broadcast 1 → ${r0.config.broadcast.conns.toLocaleString('en-US')} (64 B):`);
    L.push('');
    L.push('| variant | server CPU µs per incoming message (× bare) | µs per delivered message | broadcasts/s × bare |');
    L.push('|---|---|---|---|');
    for (const key of bc.variantKeys) {
      const v = r0.variants.find((x) => x.key === key);
      if (!v) continue;
      if (v.skipped) { L.push(`| ${v.label} | ${v.skipped} | | |`); continue; }
      const s = bc.summary[key] && bc.summary[key][64];
      if (!s || !s.cpuUsPerMsg.abs) { L.push(`| ${v.label} | failed | | |`); continue; }
      L.push(`| ${v.label} | ${fmtInt(s.cpuUsPerMsg.abs.median)} (${fmt(s.cpuUsPerMsg.ratio && s.cpuUsPerMsg.ratio.median)}) | ${fmt(s.cpuUsPerDelivered.abs.median)} `
        + `| ${fmt(s.msgPerSec.ratio && s.msgPerSec.ratio.median)} |`);
    }
    L.push('');
  }
  return L.join('\n');
}

const text = block();
if (PRINT) {
  process.stdout.write(`${text}\n`);
} else {
  const file = path.join(ROOT, 'docs', 'performance.md');
  const readme = fs.readFileSync(file, 'utf8');
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) {
    process.stderr.write(`docs/performance.md has no ${START} … ${END} block\n`);
    process.exit(1);
  }
  fs.writeFileSync(file, `${readme.slice(0, a + START.length)}\n${text}\n${readme.slice(b)}`);
  process.stderr.write(`docs/performance.md: summary of ${files.map((f) => path.relative(ROOT, f)).join(', ')} written\n`);
}
