'use strict';
// What runs in the server process (variants), which workloads run them (passes), and the checks that
// prove a variant exercised its instrumentation with the sampling it was given.
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const BENCH = __dirname;
const REGISTER = path.join(ROOT, 'dist', 'register.js');

// ws-apm's defaults, read from the build so the checks' bounds follow them (fallbacks: issue 12's values)
function wsApmDefaults() {
  try {
    const c = require(path.join(ROOT, 'dist', 'config.js')).loadConfig({}, {});
    return { rateLimit: c.messageRateLimit, keepRateLimit: c.keepRateLimit, maxSendSpans: c.maxSendSpans, sampleRate: c.messageSampleRate };
  } catch {
    return { rateLimit: 100, keepRateLimit: 10, maxSendSpans: 10, sampleRate: 1 };
  }
}

// Message sampling of the ws-apm variants. Defaults: no WS_APM_* sampling variable at all.
// 1 %: the rate limit is switched off too, so that 1 % of messages really are traced (issue 12's 1 % figure
// is about the sample rate; with the default limit, 1 % of a fast echo is above 100 msg/s and would be capped).
const SAMPLING = {
  defaults: {},
  '1pct': { WS_APM_MESSAGE_SAMPLE_RATE: '0.01', WS_APM_MESSAGE_RATE_LIMIT: '0' },
  every: { WS_APM_MESSAGE_RATE_LIMIT: '0' },
};

// Message names of the names pass (bench/load.js sends {"type":<one of these>,...}).
const MESSAGE_NAMES = ['chat', 'typing', 'presence', 'ack'];

function defineVariants({ quick, otlpProtocol, newrelicDir }) {
  const otelEnv = (sink) => ({
    OTEL_SERVICE_NAME: 'ws-apm-bench',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sink.port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: otlpProtocol,
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_LOGS_EXPORTER: 'none',
    OTEL_TRACES_SAMPLER: 'always_on',
  });
  const elasticEnv = (s) => ({
    WS_APM_BACKEND: 'elastic',
    ELASTIC_APM_SERVER_URL: `http://127.0.0.1:${s.elastic.port}`,
    ELASTIC_APM_SERVICE_NAME: 'ws-apm-bench',
    ELASTIC_APM_CENTRAL_CONFIG: 'false',
    ELASTIC_APM_CLOUD_PROVIDER: 'none',
    ELASTIC_APM_LOG_LEVEL: 'warning',
    ELASTIC_APM_TRANSACTION_SAMPLE_RATE: '1',
  });
  const newrelicEnv = (s) => ({
    WS_APM_BACKEND: 'newrelic',
    NEW_RELIC_APP_NAME: 'ws-apm-bench',
    NEW_RELIC_LICENSE_KEY: '0123456789abcdef0123456789abcdef0123NRAL',
    NEW_RELIC_HOST: '127.0.0.1',
    NEW_RELIC_PORT: String(s.newrelic.port),
    NEW_RELIC_NO_CONFIG_FILE: 'true',
    NEW_RELIC_LOG_ENABLED: 'false',
    NEW_RELIC_LOG_LEVEL: 'error',
    NEW_RELIC_DISTRIBUTED_TRACING_ENABLED: 'true',
    NEW_RELIC_UTILIZATION_DETECT_AWS: 'false',
    NEW_RELIC_UTILIZATION_DETECT_AZURE: 'false',
    NEW_RELIC_UTILIZATION_DETECT_GCP: 'false',
    NEW_RELIC_UTILIZATION_DETECT_PCF: 'false',
    NEW_RELIC_UTILIZATION_DETECT_DOCKER: 'false',
    NEW_RELIC_UTILIZATION_DETECT_KUBERNETES: 'false',
    NODE_EXTRA_CA_CERTS: s.newrelic.certFile,
  });
  const resolve = (id) => {
    try { return require.resolve(id, { paths: [ROOT] }); } catch { return null; }
  };
  const newrelicMain = newrelicDir ? path.join(path.resolve(newrelicDir), 'index.js') : resolve('newrelic');
  const elasticStart = resolve('elastic-apm-node/start');
  const wsApm = ['dist/register.js'];

  const otel = (id, key, sampling, label) => ({
    id, key, label, backend: 'otel', sampling, sink: 'otlp', requires: wsApm, preload: [REGISTER], patched: true,
    env: (s) => ({ WS_APM_BACKEND: 'otel', ...SAMPLING[sampling], ...otelEnv(s.otlp) }),
  });
  const elastic = (id, key, sampling, label) => ({
    id, key, label, backend: 'elastic', sampling, sink: 'elastic', requires: [...wsApm, 'dist/adapters/elastic/index.js'],
    preload: [elasticStart, REGISTER], patched: true, drainMinMs: 1000, drainQuietMs: 1000,
    env: (s) => ({ ...elasticEnv(s), ...SAMPLING[sampling] }),
  });
  const newrelic = (id, key, sampling, label) => ({
    id, key, label, backend: 'newrelic', sampling, sink: 'newrelic', requires: [...wsApm, 'dist/adapters/newrelic/index.js'],
    preload: [newrelicMain, REGISTER], patched: true,
    // the agent harvests events at the period the fake collector hands out on connect (quick mode: 1 s)
    drainMinMs: quick ? 2200 : 6500,
    env: (s) => ({ ...newrelicEnv(s), ...SAMPLING[sampling] }),
  });

  return [
    { id: 1, key: 'bare', label: 'bare ws 8', short: 'bare ws', preload: [], env: () => ({}), patched: false },
    {
      id: 2, key: 'wsapm-off', label: 'ws-apm loaded, WS_APM_ENABLED=false', short: 'ws-apm off',
      requires: wsApm, preload: [REGISTER], env: () => ({ WS_APM_ENABLED: 'false' }), patched: false,
    },
    {
      id: 3, key: 'wsapm-api', label: 'ws-apm + @opentelemetry/api, no SDK (defaults)', short: 'OTel API only',
      requires: wsApm, preload: [REGISTER], env: () => ({ WS_APM_BACKEND: 'otel', OTEL_SDK_DISABLED: 'true' }), patched: true,
    },
    { ...otel(4, 'otel-defaults', 'defaults', 'ws-apm + OTel SDK, defaults (≤ 100 traced msg/s)'), short: 'OTel, defaults' },
    { ...otel(5, 'otel-1pct', '1pct', 'ws-apm + OTel SDK, 1 % (SAMPLE_RATE=0.01, RATE_LIMIT=0)'), short: 'OTel, 1 %' },
    { ...otel(6, 'otel-every', 'every', 'ws-apm + OTel SDK, every message (RATE_LIMIT=0)'), short: 'OTel, every message' },
    { ...elastic(7, 'elastic-defaults', 'defaults', 'ws-apm + elastic-apm-node, defaults'), short: 'Elastic, defaults' },
    { ...elastic(8, 'elastic-every', 'every', 'ws-apm + elastic-apm-node, every message (RATE_LIMIT=0)'), short: 'Elastic, every message' },
    { ...newrelic(9, 'newrelic-defaults', 'defaults', 'ws-apm + newrelic, defaults'), short: 'New Relic, defaults' },
    { ...newrelic(10, 'newrelic-every', 'every', 'ws-apm + newrelic, every message (RATE_LIMIT=0)'), short: 'New Relic, every message' },
    {
      id: 11, key: 'dd-trace', label: 'dd-trace 5 ws plugin', short: 'dd-trace', backend: 'dd',
      sink: 'dd', preload: ['dd-trace/init'], patched: true,
      env: (s) => ({
        DD_TRACE_AGENT_URL: `http://127.0.0.1:${s.dd.port}`,
        DD_SERVICE: 'ws-apm-bench',
        DD_REMOTE_CONFIGURATION_ENABLED: 'false',
        DD_TELEMETRY_ENABLED: 'false',
        DD_INSTRUMENTATION_TELEMETRY_ENABLED: 'false',
        DD_TRACE_STARTUP_LOGS: 'false',
        DD_RUNTIME_METRICS_ENABLED: 'false',
        DD_PROFILING_ENABLED: 'false',
        DD_TRACE_WEBSOCKET_MESSAGES_ENABLED: 'true',
        DD_TRACE_SAMPLE_RATE: '1',
      }),
    },
    {
      id: 12, key: 'otel-ws-community', label: 'opentelemetry-instrumentation-ws 0.5 + OTel SDK', short: 'community OTel ws',
      backend: 'community', sink: 'otlp', preload: [path.join(BENCH, 'preload', 'otel-ws-community.js')], patched: true,
      env: (s) => otelEnv(s.otlp),
      note: 'server-side sockets are not traced by this instrumentation (it subclasses the exported WebSocket; '
        + 'ws servers construct the original class): only handshake spans, no message/send spans',
    },
    // What ws-apm owns (issue 20): each backend alone, as an app runs it without ws-apm, and the OTel floor.
    {
      id: 13, key: 'otel-sdk-alone', label: 'OTel SDK alone (started as an app does, no instrumentation)', short: 'OTel SDK alone',
      backend: 'alone', sink: 'otlp', preload: [path.join(BENCH, 'preload', 'otel-sdk-alone.js')], env: (s) => otelEnv(s.otlp),
    },
    {
      id: 14, key: 'elastic-alone', label: 'elastic-apm-node alone (elastic-apm-node/start)', short: 'Elastic agent alone',
      backend: 'alone', sink: 'elastic', preload: [elasticStart], drainMinMs: 1000, drainQuietMs: 1000, env: (s) => elasticEnv(s),
    },
    {
      id: 15, key: 'newrelic-alone', label: 'newrelic alone (-r newrelic)', short: 'New Relic agent alone',
      backend: 'alone', agent: 'newrelic', sink: 'newrelic', preload: [newrelicMain], drainMinMs: quick ? 2200 : 6500,
      env: (s) => newrelicEnv(s),
    },
    {
      id: 16, key: 'otel-floor', label: 'OTel floor (bench/preload/otel-floor.js: SDK + WS RECEIVE and WS SEND, nothing else)',
      short: 'OTel floor', backend: 'floor', sink: 'otlp', preload: [path.join(BENCH, 'preload', 'otel-floor.js')], patched: true,
      env: (s) => otelEnv(s.otlp),
    },
    // socket.io passes only: OpenTelemetry's socket.io instrumentation (it patches socket.io, not ws).
    {
      id: 17, key: 'otel-socketio', label: '@opentelemetry/instrumentation-socket.io + OTel SDK', short: 'OTel socket.io instrumentation',
      backend: 'otel-socketio', sink: 'otlp', preload: [path.join(BENCH, 'preload', 'otel-socketio.js')], onlyPasses: ['socketio-echo', 'socketio-broadcast'],
      env: (s) => otelEnv(s.otlp),
    },
    // The OTel user's usual set-up: the app's own SDK started first (as auto-instrumentations-node's register
    // does), then ws-apm on it, no metricProducer() passed: what a user who already runs the SDK pays.
    {
      ...otel(18, 'otel-app-sdk', 'defaults', "ws-apm on the app's OTel SDK (NodeSDK started first, no metricProducer()), defaults"),
      short: "OTel, app's SDK, defaults", preload: [path.join(BENCH, 'preload', 'otel-sdk-alone.js'), REGISTER],
    },
  ].map((v) => ({ requires: [], ...v }));
}

// bare socket.io, ws-apm at defaults and every event, OpenTelemetry's socket.io instrumentation, and the SDK alone
// (what any OTel instrumentation starts from)
const SOCKETIO_VARIANTS = ['bare', 'otel-defaults', 'otel-every', 'otel-socketio', 'otel-sdk-alone'];

// Workloads. Every pass starts each of its variants' servers fresh in every round; ratios are to bare ws in
// the same round and pass (the names pass's bare ws gets the same JSON messages).
function definePasses(mode) {
  return [
    {
      key: 'echo', title: 'Echo, names off', workload: 'echo', names: false, sizes: mode.sizes, rounds: mode.rounds,
      variants: null, // all
    },
    {
      key: 'names', title: 'Echo, names on (`WS_APM_MESSAGE_NAME=type`, JSON messages)', workload: 'echo', names: true,
      sizes: mode.namesSizes, rounds: mode.namesRounds,
      variants: ['bare', 'wsapm-off', 'wsapm-api', 'otel-defaults', 'otel-1pct', 'otel-every', 'elastic-defaults', 'newrelic-defaults', 'dd-trace',
        'otel-sdk-alone', 'elastic-alone', 'newrelic-alone', 'otel-floor', 'otel-app-sdk'],
    },
    {
      key: 'broadcast', title: `Broadcast 1 → ${mode.broadcast.conns.toLocaleString('en-US')}`, workload: 'broadcast', names: false,
      sizes: [mode.broadcast.size], rounds: mode.broadcastRounds,
      variants: ['bare', 'wsapm-off', 'otel-defaults', 'otel-every', 'elastic-defaults', 'newrelic-defaults', 'dd-trace'],
    },
    // socket.io 4 on ws (websocket transport): the same two workloads as events (server.js --socketio); bare is bare
    // socket.io. `--passes socketio` selects both.
    {
      key: 'socketio-echo', title: 'socket.io echo (`socket.emit` back, websocket transport)', workload: 'echo', server: 'socketio', names: false,
      sizes: [64], rounds: mode.socketioRounds, variants: mode.name === 'quick' ? SOCKETIO_VARIANTS.filter((k) => k !== 'otel-sdk-alone') : SOCKETIO_VARIANTS,
    },
    {
      key: 'socketio-broadcast', title: `socket.io room broadcast 1 → ${mode.broadcast.conns.toLocaleString('en-US')} (\`io.to(room).emit\`)`, workload: 'broadcast',
      server: 'socketio', names: false, sizes: [mode.broadcast.size], rounds: mode.socketioRounds,
      // quick (CI): enough to prove the broadcast path is instrumented
      variants: mode.name === 'quick' ? ['bare', 'otel-defaults'] : SOCKETIO_VARIANTS,
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// checks (sink deltas over whole server lifetimes; `info`: { pass, messages, lifetimeS, windows, drained })
// ---------------------------------------------------------------------------------------------
const count = (d, re) => Object.entries(d.names || {}).filter(([n]) => re.test(n)).reduce((a, [, c]) => a + c, 0);
const spanNames = (d) => Object.keys(d.names || {}).join(', ') || 'none';

// Message (WS RECEIVE) operations and send spans as each sink names them
const RECEIVE = { otel: /^span WS RECEIVE /, elastic: /^transaction WS RECEIVE /, newrelic: /^analytic_event_data .*WS RECEIVE / };
const SEND = { otel: /^span WS SEND /, elastic: /^span WS SEND / }; // New Relic span events are sampled by the agent
// @opentelemetry/instrumentation-socket.io names its spans `receive /`, `send /` (operation, namespace)
const OTEL_SOCKETIO = /^span (receive|send) \//;
const NAMED = new RegExp(`WS RECEIVE \\S+ (${MESSAGE_NAMES.join('|')})$`);

/**
 * Most traced messages the default rate limits allow a server (plus kept slow/failed ones, which have their own
 * limit): per whole-second window in which messages arrived (`windows`, counted by the orchestrator from how long
 * each load generator ran), else over the server's whole lifetime.
 */
function rateBound(info, dflt) {
  const windows = info.windows || Math.ceil(info.lifetimeS) + 1;
  return (dflt.rateLimit + dflt.keepRateLimit) * windows + 10;
}

/**
 * Problems (strings) for one variant in one pass; [] when it exercised its instrumentation as configured.
 * Lower bounds ("received some", "every message") need a drained sink: quick mode waits for it; full runs stop
 * each server right after its load (agents export every 5-10 s), so they check only the upper bounds of what
 * did arrive.
 */
function check(v, d, info, dflt) {
  const problems = [];
  const msgs = info.messages;
  const drained = info.drained;
  if (v.backend === 'dd') {
    if (drained && !(d.traces >= Math.min(100, msgs / 10))) problems.push(`dummy Datadog agent received ${d.traces} traces for ${msgs} messages (message traces missing)`);
    return problems;
  }
  if (v.backend === 'floor') {
    if (drained && !(count(d, /^span WS RECEIVE /) > 0 && count(d, /^span WS SEND /) > 0)) problems.push(`OTLP sink received no floor span; names: ${spanNames(d)}`);
    return problems;
  }
  if (v.backend === 'alone') return problems;
  if (v.backend === 'otel-socketio') {
    if (drained && !(count(d, OTEL_SOCKETIO) > 0)) problems.push(`OTLP sink received no socket.io span; names: ${spanNames(d)}`);
    return problems;
  }
  if (v.backend === 'community') {
    if (drained && !(d.spans > 0)) problems.push('OTLP sink received no span');
    return problems;
  }
  if (v.backend === 'newrelic' && !(d.paths && d.paths.connect > 0)) {
    problems.push(`New Relic fake collector saw no connect; calls: ${JSON.stringify(d.paths || {})}`);
    return problems;
  }
  const re = RECEIVE[v.backend];
  if (!re) return problems;
  const recv = count(d, re);
  const bound = rateBound(info, dflt);
  const what = `${recv} WS RECEIVE operations for ${msgs} messages`;
  if (recv === 0) {
    if (drained) problems.push(`sink received no WS RECEIVE operation; names: ${spanNames(d)}`);
    return problems;
  }
  if (v.sampling === 'defaults' && recv > bound) problems.push(`${what}: above the default rate limit's ${bound}`);
  if (v.sampling === '1pct' && recv > 0.05 * msgs + 20) problems.push(`${what}: more than 5 %, WS_APM_MESSAGE_SAMPLE_RATE=0.01 not applied`);
  // every message: at least 90 % of them reached the sink, or (queues drop at full speed) more than the default rate
  // limit could have let through. Needs a drained sink (quick mode). Not for Elastic: its agent drops whatever its
  // intake stream cannot take (a queue of 1,024 events), and on a busy machine that is most of them.
  if (v.sampling === 'every' && info.drained && v.backend !== 'elastic' && recv < 0.9 * msgs && !(recv > bound)) {
    problems.push(`${what}: neither ≥ 90 % of messages nor above the default rate limit's ${bound}`);
  }
  if (info.pass.names && !(count(d, NAMED) > 0)) problems.push(`names pass: no WS RECEIVE operation named by message type; names: ${spanNames(d)}`);
  // socket.io: operations are the app's events (`WS RECEIVE / echo`), never engine.io's frames
  if (info.pass.server === 'socketio') {
    if (!(count(d, /WS RECEIVE \/ (echo|bcast)$/) > 0)) problems.push(`socket.io pass: no WS RECEIVE operation named by event; names: ${spanNames(d)}`);
    const frames = count(d, /WS RECEIVE \/socket\.io\//);
    if (frames > 0) problems.push(`socket.io pass: ${frames} engine.io frames recorded as operations (WS RECEIVE /socket.io/)`);
  }
  const sre = SEND[v.backend];
  if (sre) {
    const sends = count(d, sre);
    if (sends === 0 && drained) problems.push(`sink received no WS SEND span; names: ${spanNames(d)}`);
    // at most WS_APM_MAX_SEND_SPANS send spans per operation (the broadcast is where it shows)
    const maxSends = dflt.maxSendSpans * recv + 20;
    if (sends > maxSends) problems.push(`${sends} WS SEND spans for ${recv} messages: more than ${dflt.maxSendSpans} per operation`);
  }
  return problems;
}

function checkSummary(v, d, info, dflt) {
  if (!d) return null;
  if (!info.drained && !d.requests && !d.spans && !d.traces) return 'nothing exported before the server stopped (full runs do not wait: quick mode checks)';
  if (!RECEIVE[v.backend]) return null;
  const recv = count(d, RECEIVE[v.backend]);
  const sends = SEND[v.backend] ? count(d, SEND[v.backend]) : null;
  const parts = [`${recv} WS RECEIVE for ${info.messages} msgs`];
  if (v.sampling === 'defaults') parts.push(`rate-limit bound ${rateBound(info, dflt)}`);
  if (sends != null) parts.push(`${sends} WS SEND`);
  return parts.join(', ');
}

const has = (p) => fs.existsSync(path.join(ROOT, p));

module.exports = { defineVariants, definePasses, check, checkSummary, wsApmDefaults, has, count, MESSAGE_NAMES, SAMPLING, OTEL_SOCKETIO, ROOT, BENCH, REGISTER };
