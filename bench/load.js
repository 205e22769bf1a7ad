'use strict';
// Uninstrumented load generator (run without any preload). Usage: node load.js '<json options>'
//   {mode:'throughput', port, conns, inflight, size, warmupMs, durationMs, names, waitStop}
//       names: send JSON messages `{"type":"chat","text":"xx…"}` (four types in turn) of exactly `size` bytes
//   {mode:'broadcast', port, conns, window, size, warmupMs, durationMs, minMessages, maxDurationMs, drainMs, waitStop}
//       conns connections; the first also sends, one 64 B message at a time with at most `window` broadcasts
//       not yet delivered to every connection; every connection (the sender too) counts what it receives.
//       The measured window lasts durationMs, longer if needed to complete minMessages broadcasts (at most
//       maxDurationMs): a slow variant on a loaded machine still gets enough messages for a stable figure.
//   sio: true (throughput and broadcast): the same over socket.io's protocol, spoken by hand on a ws client (the
//       load generator stays as cheap as for ws): engine.io open, CONNECT to `/`, then `42["echo","xx…"]` /
//       `42["bcast","xx…"]` events of exactly `size` bytes; engine.io pings are answered, only events are counted
//   {mode:'paced', port, conns, inflight, size, names, sio}    the echo of `throughput`, driven from stdin for paired
//       windows (run.js, the paired pass): `run` puts `inflight` messages in flight on every connection, `pause`
//       stops sending new ones and answers once none is in flight, `exit` ends
//   {mode:'idle', port, conns, concurrency}    then waits for `close` on stdin
//   {mode:'churn', port, cycles, concurrency}
// Progress and results are printed as `BENCH {json}` lines.
const readline = require('node:readline');
const { performance } = require('node:perf_hooks');
const WebSocket = require('ws');

const opts = JSON.parse(process.argv[2]);
const SIO = !!opts.sio;
const url = SIO ? `ws://127.0.0.1:${opts.port}/socket.io/?EIO=4&transport=websocket` : `ws://127.0.0.1:${opts.port}/bench`;
// Zero mask: ws skips the XOR on the client (server-side work is unchanged); no UTF-8 check on echoes.
const clientOptions = { perMessageDeflate: false, skipUTF8Validation: true, generateMask() {} };

function out(obj) {
  process.stdout.write(`BENCH ${JSON.stringify(obj)}\n`);
}

function connect() {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, clientOptions);
    const onError = (err) => resolve({ ws: null, err });
    ws.once('error', onError);
    ws.once('open', () => {
      if (SIO) return sioHandshake(ws, onError, resolve);
      ws.off('error', onError);
      ws.on('error', () => {});
      resolve({ ws, err: null });
    });
  });
}

// socket.io over engine.io 4, by hand: the server opens (`0{...}`), the client connects to namespace `/` (`40`),
// the server confirms (`40{"sid":...}`). Afterwards `sioFrame` answers pings and tells events from the rest.
function sioHandshake(ws, onError, resolve) {
  const onMessage = (data) => {
    const s = data.toString();
    if (s[0] === '0') ws.send('40');
    else if (s.startsWith('40')) {
      ws.off('message', onMessage);
      ws.off('error', onError);
      ws.on('error', () => {});
      ws.on('message', (d) => {
        if (d.length === 1 && d[0] === 0x32) ws.send('3'); // engine.io ping → pong
      });
      resolve({ ws, err: null });
    } else if (s.startsWith('44')) onError(new Error(`socket.io connect refused: ${s}`));
  };
  ws.on('message', onMessage);
}

/** True for a socket.io event frame (`42...`); engine.io pings are answered by sioHandshake's listener. */
const sioEvent = (data) => data.length > 1 && data[0] === 0x34 && data[1] === 0x32;

/** `42["<event>","xx…"]` of exactly `size` bytes. */
function sioPayload(event, size) {
  const head = `42["${event}","`;
  const pad = size - head.length - 2;
  if (pad < 0) throw new Error(`message size ${size} too small for a socket.io event`);
  return Buffer.from(`${head}${'x'.repeat(pad)}"]`);
}

/** `n` connections, one after the other; the first failure throws. */
async function connectEach(n) {
  const sockets = [];
  for (let i = 0; i < n; i++) {
    const { ws, err } = await connect();
    if (!ws) throw err;
    sockets.push(ws);
  }
  return sockets;
}

async function pool(total, concurrency, task) {
  let next = 0;
  const workers = [];
  for (let w = 0; w < Math.min(concurrency, total); w++) {
    workers.push((async () => {
      while (next < total) {
        const i = next++;
        await task(i);
      }
    })());
  }
  await Promise.all(workers);
}

// Resolves when `word` arrives as a line on stdin (or stdin closes, or after timeoutMs).
function stdinLine(word, timeoutMs) {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin });
    const done = () => {
      clearTimeout(t);
      rl.close();
      resolve();
    };
    const t = setTimeout(done, timeoutMs);
    rl.on('line', (l) => {
      if (l.trim() === word) done();
    }).on('close', done);
  });
}

// With waitStop, traffic goes on after measure-end until the orchestrator, having read the server's counters,
// says `stop`: the server's window (between its two counter readings) then always has traffic in it, even when a
// saturated server answers late.
const untilStop = () => (opts.waitStop ? stdinLine('stop', 120000) : Promise.resolve());

/** Rate, latency percentiles (from `sorted` round trips) and load-generator CPU of one measured window. */
function windowFigures(count, elapsedMs, sorted, cpu) {
  return {
    elapsedMs,
    msgPerSec: (count / elapsedMs) * 1000,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.length ? sorted[sorted.length - 1] : null,
    loadCpuUs: cpu.user + cpu.system,
  };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

// Message types of the names pass: a bounded set, as an app has (WS_APM_MESSAGE_NAME=type on the server).
const NAMES = ['chat', 'typing', 'presence', 'ack'];

/** `{"type":"<name>","text":"xx…"}` padded to exactly `size` bytes. */
function namedPayload(name, size) {
  const head = `{"type":"${name}","text":"`;
  const pad = size - head.length - 2;
  if (pad < 0) throw new Error(`message size ${size} too small for a named message`);
  return Buffer.from(`${head}${'x'.repeat(pad)}"}`);
}

/** The echo's messages: same byte size with names on or off, so bare ws pays the same for both. */
function echoPayloads(size, names) {
  return SIO ? [sioPayload('echo', size)] : names ? NAMES.map((n) => namedPayload(n, size)) : [Buffer.alloc(size, 'x')];
}

async function throughput() {
  const { conns, inflight, size, warmupMs, durationMs, names } = opts;
  const payloads = echoPayloads(size, names);
  const nPayloads = payloads.length;
  let seq = 0;
  const sendOpts = { binary: false };
  const sockets = await connectEach(conns);
  const MAX_SAMPLES = 4_000_000;
  const samples = new Float64Array(MAX_SAMPLES);
  let nSamples = 0;
  let measuring = false;
  let stopped = false;
  let received = 0;
  let receivedBytes = 0;
  let errors = 0;

  for (const ws of sockets) {
    // send times of the messages in flight on this connection (echo keeps order): a ring buffer
    const ring = new Float64Array(inflight);
    let head = 0;
    let tail = 0;
    ws.on('message', (data) => {
      if (SIO && !sioEvent(data)) return;
      const now = performance.now();
      const sent = ring[head];
      head = (head + 1) % inflight;
      if (measuring) {
        received++;
        receivedBytes += data.length;
        if (nSamples < MAX_SAMPLES) samples[nSamples++] = now - sent;
      }
      if (stopped) return;
      ring[tail] = performance.now();
      tail = (tail + 1) % inflight;
      ws.send(payloads[seq++ % nPayloads], sendOpts);
    });
    ws.on('close', () => {
      if (!stopped) errors++;
    });
    for (let k = 0; k < inflight; k++) {
      ring[tail] = performance.now();
      tail = (tail + 1) % inflight;
      ws.send(payloads[seq++ % nPayloads], sendOpts);
    }
  }

  await new Promise((r) => setTimeout(r, warmupMs));
  measuring = true;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  out({ type: 'measure-start' });
  await new Promise((r) => setTimeout(r, durationMs));
  measuring = false;
  const elapsedMs = performance.now() - t0;
  const cpu1 = process.cpuUsage(cpu0);
  out({ type: 'measure-end' });
  await untilStop();
  stopped = true;
  const sorted = samples.subarray(0, nSamples).sort();
  out({
    type: 'result',
    messages: received,
    bytes: receivedBytes,
    ...windowFigures(received, elapsedMs, sorted, cpu1),
    errors,
  });
  for (const ws of sockets) ws.terminate();
}

// The echo, sending only between `run` and `pause` (stdin): the orchestrator measures the server's CPU over windows
// of its choosing, alternating two servers, each with its own paced load generator (run.js, the paired pass).
async function paced() {
  const { conns, inflight, size, names } = opts;
  const payloads = echoPayloads(size, names);
  const sendOpts = { binary: false };
  const sockets = await connectEach(conns);
  let seq = 0;
  let running = false;
  let inFlight = 0;
  let exiting = false;
  const send = (ws) => {
    inFlight++;
    ws.send(payloads[seq++ % payloads.length], sendOpts);
  };
  for (const ws of sockets) {
    ws.on('message', (data) => {
      if (SIO && !sioEvent(data)) return;
      inFlight--;
      if (running) send(ws);
      else if (inFlight === 0) out({ type: 'paused' });
    });
    ws.on('close', () => {
      if (!exiting) out({ type: 'error', message: 'a connection closed during the paired run' });
    });
  }
  out({ type: 'ready' });
  await new Promise((resolve) => {
    readline.createInterface({ input: process.stdin }).on('line', (line) => {
      const cmd = line.trim();
      if (cmd === 'run' && !running) {
        running = true;
        for (const ws of sockets) for (let k = 0; k < inflight; k++) send(ws);
        out({ type: 'running' });
      } else if (cmd === 'pause' && running) {
        running = false;
        if (inFlight === 0) out({ type: 'paused' });
      } else if (cmd === 'exit') resolve();
    }).on('close', resolve);
  });
  exiting = true;
  for (const ws of sockets) ws.terminate();
}

// One sender, `conns` receivers (the sender is one of them), the server sends every incoming message to every
// open socket. Completed broadcasts are counted in aggregate (deliveries / conns): exact over a window, and a
// counter increment per delivery, so the load generator stays far cheaper than the server's 1,000 sends.
async function broadcast() {
  const { conns, window, size, warmupMs, durationMs, minMessages = 0, maxDurationMs = durationMs, drainMs = 15000 } = opts;
  const payload = SIO ? sioPayload('bcast', size) : Buffer.alloc(size, 'x');
  const sendOpts = { binary: false };
  const sockets = [];
  let failed = 0;
  let firstError = null;
  await pool(conns, 50, async () => {
    const { ws, err } = await connect();
    if (ws) sockets.push(ws);
    else {
      failed++;
      firstError = firstError || String(err && err.message);
    }
  });
  if (failed) throw new Error(`${failed} of ${conns} connections failed: ${firstError}`);
  const n = sockets.length;
  const sender = sockets[0];
  const sendTimes = new Float64Array(window);
  const MAX_SAMPLES = 1_000_000;
  const samples = new Float64Array(MAX_SAMPLES);
  let nSamples = 0;
  let sent = 0;
  let delivered = 0;
  let completed = 0;
  let measuring = false;
  let stopped = false;
  let mCompleted = 0;
  let mDelivered = 0;
  let errors = 0;
  let onDrained = null;
  let t0 = 0;
  let endMeasure = null;

  const pump = () => {
    while (!stopped && sent - completed < window) {
      sendTimes[sent % window] = performance.now();
      sent++;
      sender.send(payload, sendOpts);
    }
  };
  const onMessage = (data) => {
    if (SIO && !sioEvent(data)) return;
    delivered++;
    if (measuring) mDelivered++;
    if (delivered >= (completed + 1) * n) {
      const latency = performance.now() - sendTimes[completed % window];
      completed++;
      if (measuring) {
        mCompleted++;
        if (nSamples < MAX_SAMPLES) samples[nSamples++] = latency;
        if (endMeasure && mCompleted >= minMessages && performance.now() - t0 >= durationMs) endMeasure();
      }
      if (stopped) {
        if (onDrained && delivered >= sent * n) onDrained();
      } else pump();
    }
  };
  for (const ws of sockets) {
    ws.on('message', onMessage);
    ws.on('close', () => {
      if (!stopped) errors++;
    });
  }
  out({ type: 'broadcast-open', conns: n });
  pump();

  await new Promise((r) => setTimeout(r, warmupMs));
  measuring = true;
  t0 = performance.now();
  const cpu0 = process.cpuUsage();
  out({ type: 'measure-start' });
  // ends at durationMs if minMessages broadcasts completed by then, else at the completion that reaches it
  // (or at maxDurationMs)
  await new Promise((resolve) => {
    const hard = setTimeout(() => endMeasure(), Math.max(durationMs, maxDurationMs));
    const soft = setTimeout(() => {
      if (mCompleted >= minMessages) endMeasure();
    }, durationMs);
    endMeasure = () => {
      endMeasure = null;
      clearTimeout(hard);
      clearTimeout(soft);
      resolve();
    };
  });
  measuring = false;
  const elapsedMs = performance.now() - t0;
  const cpu1 = process.cpuUsage(cpu0);
  out({ type: 'measure-end' });
  await untilStop();
  stopped = true;
  // every broadcast sent must reach every connection (bounded wait, then report what is missing)
  if (delivered < sent * n) {
    await new Promise((resolve) => {
      const t = setTimeout(resolve, drainMs);
      onDrained = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
  const sorted = samples.subarray(0, nSamples).sort();
  out({
    type: 'result',
    messages: mCompleted,
    delivered: mDelivered,
    ...windowFigures(mCompleted, elapsedMs, sorted, cpu1),
    sent,
    undelivered: sent * n - delivered,
    conns: n,
    errors,
  });
  for (const ws of sockets) ws.terminate();
}

async function idle() {
  const { conns, concurrency } = opts;
  const sockets = [];
  let failed = 0;
  let firstError = null;
  const t0 = performance.now();
  await pool(conns, concurrency, async () => {
    const { ws, err } = await connect();
    if (ws) sockets.push(ws);
    else {
      failed++;
      firstError = firstError || String(err && err.message);
    }
  });
  out({ type: 'idle-open', opened: sockets.length, failed, firstError, ms: performance.now() - t0 });
  await stdinLine('close', 3_600_000);
  const t1 = performance.now();
  await Promise.all(sockets.map((ws) => new Promise((r) => {
    if (ws.readyState === WebSocket.CLOSED) return r();
    ws.once('close', r);
    ws.close(1000, 'bench done');
  })));
  out({ type: 'idle-closed', ms: performance.now() - t1 });
}

async function churn() {
  const { cycles, concurrency } = opts;
  let failed = 0;
  let firstError = null;
  const t0 = performance.now();
  await pool(cycles, concurrency, async () => {
    const { ws, err } = await connect();
    if (!ws) {
      failed++;
      firstError = firstError || String(err && err.message);
      return;
    }
    await new Promise((r) => {
      ws.once('close', r);
      ws.close(1000, 'churn');
    });
  });
  const ms = performance.now() - t0;
  out({ type: 'churn-done', cycles, failed, firstError, ms, perSec: (cycles / ms) * 1000 });
}

const modes = { throughput, paced, broadcast, idle, churn };
modes[opts.mode]().then(() => process.exit(0), (err) => {
  out({ type: 'error', message: String(err && err.stack || err) });
  process.exit(1);
});
