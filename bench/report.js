'use strict';
// Statistics over rounds, issue 12's target table, and the markdown of bench/results/{latest,quick}.md.

function median(xs) {
  const v = xs.filter((x) => x != null && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
function spread(xs) {
  const v = xs.filter((x) => x != null && Number.isFinite(x));
  if (!v.length) return null;
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

const METRICS = ['msgPerSec', 'cpuUsPerMsg', 'cpuUsPerDelivered', 'p50Ms', 'p99Ms', 'exportedPerMsg'];

/** rounds[r][variantKey][size] = result → summary[variantKey][size][metric] = { abs, ratio } (ratio to bare, same round) */
function summarize(rounds, keys, sizes) {
  const out = {};
  for (const key of keys) {
    out[key] = {};
    for (const size of sizes) {
      const s = {};
      for (const m of METRICS) {
        const abs = [];
        const ratio = [];
        for (const round of rounds) {
          const x = round[key] && round[key][size];
          const b = round.bare && round.bare[size];
          if (!x || x[m] == null) continue;
          abs.push(x[m]);
          if (b && b[m]) ratio.push(x[m] / b[m]);
        }
        s[m] = { abs: spread(abs), ratio: spread(ratio) };
      }
      out[key][size] = s;
    }
  }
  return out;
}

/** Per-round ratio of two variants' server CPU per message (e.g. OTel every message ÷ dd-trace). */
function crossRatio(rounds, a, b, size) {
  const xs = [];
  for (const round of rounds) {
    const x = round[a] && round[a][size];
    const y = round[b] && round[b][size];
    if (x && y && x.cpuUsPerMsg && y.cpuUsPerMsg) xs.push(x.cpuUsPerMsg / y.cpuUsPerMsg);
  }
  return spread(xs);
}

const fmt = (x, d = 2) => (x == null ? '–' : Number(x).toFixed(d));
const fmtInt = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'));
function cell(sp, f = fmt) {
  if (!sp) return '–';
  if (sp.n === 1 || sp.min === sp.max) return f(sp.median);
  return `${f(sp.median)} (${f(sp.min)}–${f(sp.max)})`;
}

// Issue 12 ("Nearly free by default"): server CPU µs per message × bare, medians, 64 B.
const TARGETS = [
  { label: 'ws-apm off', key: 'wsapm-off', max: 1.02, now: '0.99' },
  { label: 'OTel, defaults', key: 'otel-defaults', max: 1.15, now: '—' },
  { label: 'OTel, 1 %', key: 'otel-1pct', max: 1.10, now: '1.64' },
  { label: 'OTel, every message', key: 'otel-every', max: 2.5, now: '4.13' },
  { label: 'OTel, every message ÷ dd-trace (CPU µs/msg)', key: 'otel-every', vs: 'dd-trace', max: 0.4, now: '0.71' },
  { label: 'Elastic, defaults', key: 'elastic-defaults', max: 1.3, now: '13.67 (every message)' },
  { label: 'New Relic, defaults', key: 'newrelic-defaults', max: 1.3, now: '15.32 (every message)' },
  { label: 'broadcast 1 → 1,000, defaults: OTel', key: 'otel-defaults', pass: 'broadcast', max: 1.2, now: '—' },
  { label: 'broadcast 1 → 1,000, defaults: Elastic', key: 'elastic-defaults', pass: 'broadcast', max: 1.2, now: '—' },
  { label: 'broadcast 1 → 1,000, defaults: New Relic', key: 'newrelic-defaults', pass: 'broadcast', max: 1.2, now: '—' },
];

function targets(report) {
  const value = (passKey, t) => {
    const p = report.passes[passKey];
    if (!p || !p.summary) return null;
    const size = p.sizes[0];
    if (t.vs) return crossRatio(p.rounds, t.key, t.vs, size);
    const s = p.summary[t.key] && p.summary[t.key][size];
    return s ? s.cpuUsPerMsg.ratio : null;
  };
  const fanOut = report.config.broadcast.conns.toLocaleString('en-US');
  return TARGETS.map((t) => {
    const label = t.pass === 'broadcast' ? t.label.replace('1,000', fanOut) : t.label;
    const cols = t.pass ? { off: value(t.pass, t), on: null, onApplies: false } : { off: value('echo', t), on: value('names', t), onApplies: true };
    return {
      ...t,
      label,
      namesOff: cols.off, metOff: cols.off ? cols.off.median <= t.max : null,
      namesOn: cols.on, metOn: cols.on ? cols.on.median <= t.max : null, onApplies: cols.onApplies,
    };
  });
}

// Issue 19 (socket.io): ws-apm at its defaults ≤ 1.10 × bare socket.io, and cheaper than OpenTelemetry's socket.io
// instrumentation (both with the same OTel SDK); server CPU µs per (incoming) message, per-round ratios, medians.
const SOCKETIO_TARGETS = [
  { label: 'ws-apm + OTel SDK, defaults ÷ bare socket.io', key: 'otel-defaults', vs: 'bare', max: 1.10 },
  { label: 'ws-apm + OTel SDK, defaults ÷ OTel socket.io instrumentation', key: 'otel-defaults', vs: 'otel-socketio', max: 1.00, strict: true },
  { label: 'ws-apm + OTel SDK, every event ÷ OTel socket.io instrumentation', key: 'otel-every', vs: 'otel-socketio', max: null },
  { label: 'OTel socket.io instrumentation ÷ bare socket.io', key: 'otel-socketio', vs: 'bare', max: null },
  { label: 'OTel SDK alone ÷ bare socket.io', key: 'otel-sdk-alone', vs: 'bare', max: null },
];

function socketioTargets(report) {
  const passes = ['socketio-echo', 'socketio-broadcast'].map((k) => report.passes[k]).filter((p) => p && p.rounds && p.rounds.length);
  return {
    passes: passes.map((p) => p.key),
    rows: SOCKETIO_TARGETS.map((t) => ({
      ...t,
      cells: passes.map((p) => {
        const r = crossRatio(p.rounds, t.key, t.vs, p.sizes[0]);
        return { r, met: r && t.max != null ? (t.strict ? r.median < t.max : r.median <= t.max) : null };
      }),
    })),
  };
}

function memoryTargets(memory) {
  const list = [];
  const bareHeap = memory.bare && memory.bare.idle.heapPerConn;
  for (const k of ['wsapm-api', 'otel-defaults', 'otel-every']) {
    const m = memory[k];
    const extra = m && bareHeap != null ? m.idle.heapPerConn - bareHeap : null;
    list.push({ target: `${k}: ≤ 300 B extra heap per idle connection`, value: extra == null ? null : `${fmtInt(extra)} B`, met: extra == null ? null : extra <= 300 });
  }
  for (const k of ['wsapm-api', 'otel-defaults', 'otel-every']) {
    const m = memory[k];
    if (!m || m.churn.cycles < 10000) continue; // too few cycles to tell growth from GC noise
    // "nothing retained": the smallest retained object is 16+ bytes; heap-after-GC noise is about ±5 B per cycle here
    list.push({ target: `${k}: nothing retained after ${fmtInt(m.churn.cycles)} churn cycles (growth < 16 B/cycle)`,
      value: `${fmt(m.churn.heapGrowth / m.churn.cycles, 1)} B/cycle`, met: m.churn.heapGrowth < 16 * m.churn.cycles });
  }
  return list;
}

// Issue 20 ("what is ours"): ws-apm ÷ the backend alone, and every message ÷ the least code that makes the same spans.
const OURS = [
  { label: 'ws-apm off ÷ bare ws', key: 'wsapm-off', vs: 'bare', max: 1.02 },
  { label: 'OTel, defaults ÷ OTel SDK alone', key: 'otel-defaults', vs: 'otel-sdk-alone', max: 1.05, maxNames: 1.08 },
  { label: "OTel on the app's SDK, defaults ÷ OTel SDK alone", key: 'otel-app-sdk', vs: 'otel-sdk-alone', max: 1.05, maxNames: 1.08 },
  { label: 'Elastic, defaults ÷ agent alone', key: 'elastic-defaults', vs: 'elastic-alone', max: 1.05, maxNames: 1.08 },
  { label: 'New Relic, defaults ÷ agent alone', key: 'newrelic-defaults', vs: 'newrelic-alone', max: 1.05, maxNames: 1.08 },
  { label: 'OTel, every message ÷ OTel floor', key: 'otel-every', vs: 'otel-floor', max: 1.10, maxNames: null },
  { label: 'OTel floor ÷ OTel SDK alone (what two spans per echo cost)', key: 'otel-floor', vs: 'otel-sdk-alone', max: null, maxNames: null },
];

/**
 * The paired pass (run.js): the same ratios from alternating short windows of two servers that both stay up. Names on
 * only where the names-on target exists; socket.io's echo target (issue 19) too.
 */
const PAIRED = [
  ...OURS.filter((o) => o.max != null).map((o) => ({ label: o.label, key: o.key, vs: o.vs, server: 'ws', max: o.max, maxNames: o.maxNames === undefined ? o.max : o.maxNames })),
  { label: 'socket.io echo: ws-apm + OTel SDK, defaults ÷ bare socket.io', key: 'otel-defaults', vs: 'bare', server: 'socketio', max: 1.10, maxNames: null },
];

/** The paired pass's results, one row per PAIRED entry that ran: `off` and `on` (names), either may be undefined. */
function paired(report) {
  const results = (report.paired && report.paired.results) || [];
  const find = (p, names) => results.find((r) => r.key === p.key && r.vs === p.vs && r.server === p.server && r.names === names);
  return PAIRED.map((p) => ({ ...p, off: find(p, false), on: find(p, true) })).filter((row) => row.off || row.on);
}

/** One paired result: ratio, target (met/missed, or ✓/✗ when `short`), µs per message A → B and their system part. */
function pairCell(r, short) {
  if (!r) return '–';
  if (r.error) return `failed: ${r.error}`;
  const us = (k) => fmt(median(r.blocks.map((b) => b[k])), 2);
  const met = r.ratio.median <= r.max;
  const target = r.max == null ? '' : short ? ` (≤ ${fmt(r.max)}) ${met ? '✓' : '✗'}` : ` (≤ ${fmt(r.max)}: ${yn(met)})`;
  return `${cell(r.ratio)}${target}; ${us('a')} → ${us('b')} µs (system ${us('aSys')} → ${us('bSys')})`;
}

/** The paired pass's table (heading row, rule, one row per pair), cells as `pairCell(…, short)` makes them. */
function pairedTable(report, short) {
  return ['| ratio | names off | names on |', '|---|---|---|',
    ...paired(report).map((row) => `| ${row.label} | ${pairCell(row.off, short)} | ${pairCell(row.on, short)} |`)];
}

/** Rows of the "what is ours" table: per-round ratios (server CPU µs per message), medians, per pass and size. */
function ours(report) {
  const cols = [];
  for (const passKey of ['echo', 'names']) {
    const p = report.passes[passKey];
    if (!p || !p.rounds) continue;
    for (const size of p.sizes) cols.push({ passKey, size, names: passKey === 'names', rounds: p.rounds });
  }
  const rows = OURS.map((o) => ({
    label: o.label,
    cells: cols.map((c) => {
      const r = crossRatio(c.rounds, o.key, o.vs, c.size);
      const max = c.names ? (o.maxNames === undefined ? o.max : o.maxNames) : o.max;
      return { r, max, met: r && max != null ? r.median <= max : null };
    }),
  }));
  return { cols, rows };
}

const yn = (m) => (m == null ? '–' : m ? 'met' : '**missed**');
const sizeLabel = (size) => (size >= 1024 ? `${size / 1024} KiB` : `${size} B`);

function markdown(report) {
  const L = [];
  const m = report.machine;
  const cfg = report.config;
  L.push(`# ws-apm benchmark (${report.mode} mode)`);
  L.push('');
  L.push(`- Date: ${report.date}; wall time ${Math.floor(report.durationS / 60)} min ${report.durationS % 60} s`);
  L.push(`- Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node}; load average at start ${m.loadStart.map((x) => x.toFixed(2)).join(' ')}, at end ${m.loadEnd.map((x) => x.toFixed(2)).join(' ')}`);
  L.push(`- Versions: ${Object.entries(m.versions).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  L.push(`- Command: \`${report.command}\``);
  L.push(`- Echo: ${cfg.conns} connections × ${cfg.inflight} messages in flight, text messages, ${cfg.warmupMs} ms warm-up then ${cfg.durationMs} ms measured. `
    + `Names on: the same, with JSON messages \`{"type":"chat","text":"xx…"}\` (four types in turn) of the same byte size, and \`WS_APM_MESSAGE_NAME=type\` in every server (bare ws gets the same messages).`);
  L.push(`- Broadcast: ${cfg.broadcast.conns.toLocaleString('en-US')} connections; one of them sends ${cfg.broadcast.size} B messages, the server sends each to every open socket `
    + `(\`for (const c of wss.clients) c.send(...)\`), at most ${cfg.broadcast.window} broadcasts not yet delivered everywhere; ${cfg.broadcast.warmupMs} ms warm-up then ${cfg.broadcast.durationMs} ms measured `
    + `(longer, up to ${cfg.broadcast.maxDurationMs} ms, until ${cfg.broadcast.minMessages} broadcasts completed). `
    + 'Server CPU per incoming message, and per delivered message (÷ sends).');
  if (Object.values(report.passes).some((p) => p.server === 'socketio')) {
    L.push('- socket.io passes: socket.io 4 on the same http server (`transports: [\'websocket\']`); the load generator speaks socket.io\'s protocol over a plain ws '
      + 'client. Echo: the same connections and messages in flight as the ws echo, events `42["echo","xx…"]` of the message size, the server does '
      + '`socket.on(\'echo\', (d) => socket.emit(\'echo\', d))`. Room broadcast: the same connections as the ws broadcast, every socket in one room, '
      + '`socket.on(\'bcast\', (d) => io.to(\'all\').emit(\'bcast\', d))`. "bare" in these passes is bare socket.io.');
  }
  const order = Object.values(report.passes).map((p) => `${p.key} ×${p.roundsRun}`).join(', ');
  L.push(`- Rounds: ${order}, interleaved (round 1 of every pass, then round 2, …); every variant's server started fresh for each pass and round, `
    + 'variants in numeric order.');
  L.push('- Cells: median over rounds (min–max). "× bare" = ratio to bare ws measured in the same round and pass. Server CPU = the server process\'s '
    + 'user+system time over the measured window ÷ messages it handled. Telemetry/msg = message telemetry (`WS RECEIVE`/`WS SEND` spans, transactions, '
    + 'New Relic transaction events; Datadog: traces) that reached the local sink during the window, per message (exporters drop what their queues cannot hold; '
    + 'New Relic span events are sampled by the agent).');
  L.push(`- OTLP: ${cfg.otlpProtocol}, BatchSpanProcessor defaults${Object.keys(cfg.flushEnv).length ? `, ${Object.entries(cfg.flushEnv).map(([k, v]) => `${k}=${v}`).join(', ')}` : ''}.`);
  L.push(`- ${cfg.pinned ? 'Server pinned to CPU 0, load generator to CPU 1 (taskset); sinks unpinned' : 'Processes not pinned'}. Compare ratios within a run, not absolute figures across runs.`);
  L.push('');

  // ---- targets
  const tg = report.targets;
  if (tg && tg.some((t) => t.namesOff || t.namesOn)) {
    L.push('## Targets (issue 12: server CPU µs per message × bare, 64 B, medians)');
    L.push('');
    L.push('| variant | first build | target | names off | | names on | |');
    L.push('|---|---|---|---|---|---|---|');
    for (const t of tg) {
      const on = t.onApplies ? `| ${t.namesOn ? cell(t.namesOn) : 'not run'} | ${yn(t.metOn)} ` : '| n/a | ';
      L.push(`| ${t.label} | ${t.now} | ≤ ${fmt(t.max)} | ${t.namesOff ? cell(t.namesOff) : 'not run'} | ${yn(t.metOff)} ${on}|`);
    }
    L.push('');
  }

  // ---- what is ours
  const o = ours(report);
  if (o.cols.length && o.rows.some((r) => r.cells.some((c) => c.r))) {
    L.push('## What is ours (issue 20: server CPU µs per message, ratios per round, medians)');
    L.push('');
    L.push(`| ratio | ${o.cols.map((c) => `${c.names ? 'names on' : 'names off'}, ${sizeLabel(c.size)}`).join(' | ')} |`);
    L.push(`|---|${o.cols.map(() => '---').join('|')}|`);
    for (const row of o.rows) {
      const cells = row.cells.map((c) => (c.r ? `${cell(c.r)}${c.max != null ? ` (≤ ${fmt(c.max)}: ${yn(c.met)})` : ''}` : '–'));
      L.push(`| ${row.label} | ${cells.join(' | ')} |`);
    }
    L.push('');
  }

  // ---- paired windows
  if (paired(report).length) {
    const c = report.paired.config;
    L.push(`## What is ours, paired windows (server CPU µs per message, ${sizeLabel(c.size)} echo; B ÷ A per block, medians)`);
    L.push('');
    L.push(`A (the backend alone) and B (ws-apm on it) run side by side, each with its own load generator; one runs at a time, in ${c.blocks} blocks of `
      + `four ${fmtInt(c.windowMs)} ms windows (A B B A, then B A A B), after ${fmtInt(c.warmupMs)} ms of warm-up each. The cell is the median of the `
      + 'blocks\' ratios (min–max), then the two servers\' µs per message and, in brackets, its system (kernel) part.');
    L.push('');
    L.push(...pairedTable(report, false));
    L.push('');
  }

  // ---- socket.io targets
  const st = socketioTargets(report);
  if (st.passes.length && st.rows.some((r) => r.cells.some((c) => c.r))) {
    L.push('## socket.io (issue 19: server CPU µs per incoming message, ratios per round, medians)');
    L.push('');
    L.push(`| ratio | target | ${st.passes.map((k) => (k === 'socketio-echo' ? 'echo' : 'room broadcast')).join(' | ')} |`);
    L.push(`|---|---|${st.passes.map(() => '---').join('|')}|`);
    for (const row of st.rows) {
      if (!row.cells.some((c) => c.r)) continue;
      const target = row.max == null ? '–' : `${row.strict ? '<' : '≤'} ${fmt(row.max)}`;
      L.push(`| ${row.label} | ${target} | ${row.cells.map((c) => (c.r ? `${cell(c.r)}${row.max != null ? ` ${yn(c.met)}` : ''}` : '–')).join(' | ')} |`);
    }
    L.push('');
  }

  // ---- pass tables
  for (const p of Object.values(report.passes)) {
    if (!p.summary) continue;
    for (const size of p.sizes) {
      const bc = p.workload === 'broadcast';
      L.push(`## ${p.title}, ${sizeLabel(size)} messages`);
      L.push('');
      if (bc) {
        L.push('| # | variant | broadcasts/s | × bare | server CPU µs per incoming msg | × bare | µs per delivered msg | p50 ms (all delivered) | p99 ms | telemetry per broadcast |');
        L.push('|---|---|---|---|---|---|---|---|---|---|');
      } else {
        L.push('| # | variant | msg/s | × bare | server CPU µs/msg | × bare | p50 ms | p99 ms | p99 × bare | telemetry/msg |');
        L.push('|---|---|---|---|---|---|---|---|---|---|');
      }
      for (const key of p.variantKeys) {
        const found = report.variants.find((x) => x.key === key);
        if (!found) continue;
        // in the socket.io passes, the bare server is bare socket.io (on ws)
        const v = p.server === 'socketio' && key === 'bare' ? { ...found, label: 'bare socket.io 4 (on ws 8)' } : found;
        if (v.skipped) { L.push(`| ${v.id} | ${v.label} | ${v.skipped} |${' |'.repeat(7)}`); continue; }
        const s = p.summary[key] && p.summary[key][size];
        if (!s || !s.msgPerSec.abs) { L.push(`| ${v.id} | ${v.label} | failed: ${(p.errors && p.errors[key]) || 'no result'} |${' |'.repeat(7)}`); continue; }
        if (bc) {
          L.push(`| ${v.id} | ${v.label} | ${cell(s.msgPerSec.abs, fmtInt)} | ${cell(s.msgPerSec.ratio)} | ${cell(s.cpuUsPerMsg.abs, fmtInt)} | ${cell(s.cpuUsPerMsg.ratio)} `
            + `| ${cell(s.cpuUsPerDelivered.abs)} | ${cell(s.p50Ms.abs)} | ${cell(s.p99Ms.abs)} | ${cell(s.exportedPerMsg.abs)} |`);
        } else {
          L.push(`| ${v.id} | ${v.label} | ${cell(s.msgPerSec.abs, fmtInt)} | ${cell(s.msgPerSec.ratio)} | ${cell(s.cpuUsPerMsg.abs, (x) => fmt(x, 1))} | ${cell(s.cpuUsPerMsg.ratio)} `
            + `| ${cell(s.p50Ms.abs)} | ${cell(s.p99Ms.abs)} | ${cell(s.p99Ms.ratio)} | ${cell(s.exportedPerMsg.abs)} |`);
        }
      }
      L.push('');
    }
  }

  // ---- memory
  const mem = report.memory;
  if (mem && Object.keys(mem).length) {
    L.push(`## Memory: ${cfg.idleConns.toLocaleString('en-US')} idle connections, then ${cfg.churnCycles.toLocaleString('en-US')} connect/close cycles`);
    L.push('');
    L.push('Server memory after `global.gc()`, once telemetry queued by the phase was exported. Per connection = (with idle connections − baseline after warm-up) / connections. '
      + 'Churn growth = heap after the churn − heap before it (after the idle connections closed). One run per variant.');
    L.push('');
    L.push('| # | variant | RSS/conn | heap/conn | extra heap/conn vs bare | churn: heap growth | churn: per cycle | cycles/s |');
    L.push('|---|---|---|---|---|---|---|---|');
    const bare = mem.bare;
    for (const v of report.variants) {
      if (!report.memoryKeys.includes(v.key)) continue;
      const mm = mem[v.key];
      if (v.skipped) { L.push(`| ${v.id} | ${v.label} | ${v.skipped} | | | | | |`); continue; }
      if (!mm) { L.push(`| ${v.id} | ${v.label} | ${v.memoryError ? `failed: ${v.memoryError}` : 'not run'} | | | | | |`); continue; }
      const extra = bare ? mm.idle.heapPerConn - bare.idle.heapPerConn : null;
      const failed = mm.idle.failed || mm.churn.failed ? ` (failed connects: idle ${mm.idle.failed}, churn ${mm.churn.failed})` : '';
      L.push(`| ${v.id} | ${v.label}${failed} | ${fmtInt(mm.idle.rssPerConn)} B | ${fmtInt(mm.idle.heapPerConn)} B | ${v.key === 'bare' ? '–' : `${fmtInt(extra)} B`} `
        + `| ${fmtInt(mm.churn.heapGrowth / 1024)} KiB | ${fmt(mm.churn.heapGrowth / mm.churn.cycles, 1)} B | ${fmtInt(mm.churn.perSec)} |`);
    }
    L.push('');
    const mt = report.memoryTargets || [];
    if (mt.length) {
      L.push('| memory target | measured | |');
      L.push('|---|---|---|');
      for (const t of mt) L.push(`| ${t.target} | ${t.value || 'not measured'} | ${yn(t.met)} |`);
      L.push('');
    }
  }

  // ---- verification
  L.push('## Instrumentation check');
  L.push('');
  L.push('| pass | # | variant | patched ws/http functions | telemetry received by the sink (whole server lifetime) | check |');
  L.push('|---|---|---|---|---|---|');
  for (const p of Object.values(report.passes)) {
    for (const key of p.variantKeys) {
      const found = report.variants.find((x) => x.key === key);
      if (!found) continue;
      const v = p.server === 'socketio' && key === 'bare' ? { ...found, label: 'bare socket.io 4 (on ws 8)' } : found;
      if (v.skipped) { L.push(`| ${p.key} | ${v.id} | ${v.label} | – | – | ${v.skipped} |`); continue; }
      const c = (p.verification && p.verification[key]) || {};
      const tel = [c.summary, c.sink ? summarizeSink(c.sink) : null].filter(Boolean).join('; ') || '–';
      L.push(`| ${p.key} | ${v.id} | ${v.label} | ${v.patched ? (v.patched.length ? v.patched.length : 'none') : '–'} | ${tel} | ${c.ok == null ? '–' : c.ok ? 'ok' : `**FAILED**: ${c.problems.join('; ')}`} |`);
    }
  }
  L.push('');
  const notes = report.variants.filter((v) => v.note);
  if (notes.length) {
    L.push('Notes:');
    for (const v of notes) L.push(`- variant ${v.id}: ${v.note}`);
    L.push('');
  }
  return `${L.join('\n')}\n`;
}

function summarizeSink(d) {
  const parts = [];
  if (d.spans) parts.push(`${d.spans} spans`);
  if (d.traces) parts.push(`${d.traces} traces`);
  for (const [k, c] of Object.entries(d.events || {})) parts.push(`${c} ${k}`);
  const top = Object.entries(d.names || {}).filter(([n]) => !n.startsWith('metric ')).sort((a, b) => b[1] - a[1]).slice(0, 4).map(([n, c]) => `${n} ×${c}`);
  if (top.length) parts.push(`top: ${top.join(', ')}`);
  return parts.join('; ') || 'nothing';
}

module.exports = { summarize, targets, memoryTargets, ours, paired, pairCell, pairedTable, socketioTargets, markdown, fmt, fmtInt, cell, median, spread, TARGETS, OURS, PAIRED };
