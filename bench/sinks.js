'use strict';
// Local telemetry sinks, one kind per process: node sinks.js otlp|dd|elastic|newrelic
// Prints `BENCH {"type":"listening","port":N}`; GET /__bench/stats returns counters as JSON.
//   otlp     OTLP/HTTP receiver (POST /v1/traces, /v1/metrics, /v1/logs; protobuf or JSON) counting spans
//            and span names (a minimal protobuf walker: resource_spans > scope_spans > spans > name).
//   dd       Datadog agent stand-in (PUT/POST /v0.4|/v0.5/traces), counts X-Datadog-Trace-Count.
//   elastic  Elastic APM intake (POST /intake/v2/events → 202), counts ndjson events by type.
//   newrelic New Relic collector stand-in over HTTPS (self-signed; cert path printed), counts events.
const http = require('node:http');
const https = require('node:https');
const zlib = require('node:zlib');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const kind = process.argv[2];
const stats = { kind, requests: 0, bytes: 0, spans: 0, traces: 0, metrics: 0, events: {}, names: {}, paths: {}, errors: 0 };

function countName(name) {
  if (Object.keys(stats.names).length < 200 || name in stats.names) stats.names[name] = (stats.names[name] || 0) + 1;
}

function readBody(req, cb) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let body = Buffer.concat(chunks);
    stats.bytes += body.length;
    const enc = req.headers['content-encoding'];
    try {
      if (enc === 'gzip') body = zlib.gunzipSync(body);
      else if (enc === 'deflate') body = zlib.inflateSync(body);
    } catch {
      stats.errors++;
    }
    cb(body);
  });
}

// ---- protobuf walking (only what is needed to count spans / metrics and read names) ----
function varint(buf, p) {
  let v = 0;
  let mul = 1;
  for (;;) {
    const b = buf[p++];
    v += (b & 0x7f) * mul;
    if (b < 0x80) return [v, p];
    mul *= 128;
  }
}

function eachField(buf, start, end, fn) {
  let p = start;
  while (p < end) {
    let tag;
    [tag, p] = varint(buf, p);
    const field = Math.floor(tag / 8);
    const wt = tag & 7;
    if (wt === 0) {
      [, p] = varint(buf, p);
    } else if (wt === 1) {
      p += 8;
    } else if (wt === 5) {
      p += 4;
    } else if (wt === 2) {
      let len;
      [len, p] = varint(buf, p);
      fn(field, p, p + len);
      p += len;
    } else {
      throw new Error(`wire type ${wt}`);
    }
  }
}

// ExportTraceServiceRequest{1: ResourceSpans{2: ScopeSpans{2: Span{5: name}}}}
// ExportMetricsServiceRequest{1: ResourceMetrics{2: ScopeMetrics{2: Metric{1: name}}}}
function walkProto(buf, leafNameField, onLeaf) {
  eachField(buf, 0, buf.length, (f1, s1, e1) => {
    if (f1 !== 1) return;
    eachField(buf, s1, e1, (f2, s2, e2) => {
      if (f2 !== 2) return;
      eachField(buf, s2, e2, (f3, s3, e3) => {
        if (f3 !== 2) return;
        let name = '';
        eachField(buf, s3, e3, (f4, s4, e4) => {
          if (f4 === leafNameField) name = buf.toString('utf8', s4, e4);
        });
        onLeaf(name);
      });
    });
  });
}

function otlp(req, res) {
  readBody(req, (body) => {
    const json = String(req.headers['content-type'] || '').includes('json');
    const isTraces = req.url.startsWith('/v1/traces');
    const isMetrics = req.url.startsWith('/v1/metrics');
    try {
      if (json) {
        const doc = JSON.parse(body.toString('utf8') || '{}');
        if (isTraces) {
          for (const rs of doc.resourceSpans || []) for (const ss of rs.scopeSpans || []) for (const s of ss.spans || []) {
            stats.spans++;
            countName(`span ${s.name}`);
          }
        } else if (isMetrics) {
          for (const rm of doc.resourceMetrics || []) for (const sm of rm.scopeMetrics || []) for (const m of sm.metrics || []) {
            stats.metrics++;
            countName(`metric ${m.name}`);
          }
        }
      } else if (isTraces) {
        walkProto(body, 5, (name) => {
          stats.spans++;
          countName(`span ${name}`);
        });
      } else if (isMetrics) {
        walkProto(body, 1, (name) => {
          stats.metrics++;
          countName(`metric ${name}`);
        });
      }
    } catch {
      stats.errors++;
    }
    if (json) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    } else {
      res.writeHead(200, { 'content-type': 'application/x-protobuf' });
      res.end();
    }
  });
}

function dd(req, res) {
  readBody(req, () => {
    if (/^\/v0\.[45]\/traces/.test(req.url)) {
      stats.traces += Number(req.headers['x-datadog-trace-count'] || 0);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"rate_by_service":{"service:,env:":1}}');
    } else if (req.url === '/info') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ version: '7.60.0', endpoints: ['/v0.4/traces', '/v0.5/traces'], client_drop_p0s: false }));
    } else {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    }
  });
}

function elastic(req, res) {
  if (req.method === 'POST' && req.url.startsWith('/intake/v2/events')) {
    // ndjson, usually gzip-compressed and streamed over one long request
    const source = req.headers['content-encoding'] === 'gzip' ? req.pipe(zlib.createGunzip()) : req;
    let rest = '';
    const onLine = (line) => {
      const m = /^\{"(\w+)"/.exec(line);
      if (!m) return;
      stats.events[m[1]] = (stats.events[m[1]] || 0) + 1;
      if (m[1] === 'transaction' || m[1] === 'span') {
        stats.spans++;
        const n = /"name":"((?:[^"\\]|\\.)*)"/.exec(line);
        if (n) countName(`${m[1]} ${n[1]}`);
      }
    };
    req.on('data', (c) => { stats.bytes += c.length; });
    source.on('data', (c) => {
      const parts = (rest + c.toString('utf8')).split('\n');
      rest = parts.pop();
      for (const l of parts) onLine(l);
    });
    source.on('error', () => { stats.errors++; });
    source.on('end', () => {
      if (rest) onLine(rest);
      res.writeHead(202);
      res.end();
    });
    return;
  }
  readBody(req, () => {
    if (req.url === '/' || req.url.startsWith('/?')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ build_date: '2024-01-01T00:00:00Z', build_sha: 'bench', publish_ready: true, version: '8.15.0' }));
    } else if (req.url.startsWith('/config/v1/agents')) {
      res.writeHead(200, { 'content-type': 'application/json', etag: '"bench"', 'cache-control': 'max-age=300' });
      res.end('{}');
    } else {
      res.writeHead(404);
      res.end();
    }
  });
}

let nrPort = 0;
// event harvest period handed to the agent on connect (the real collector says 5 s; quick mode asks for less)
const nrHarvestMs = Number(process.env.BENCH_NR_HARVEST_MS || 5000);
function newrelic(req, res) {
  readBody(req, (body) => {
    const u = new URL(req.url, 'https://x');
    const method = u.searchParams.get('method') || '';
    stats.paths[method] = (stats.paths[method] || 0) + 1;
    let ret = null;
    if (method === 'preconnect') ret = { redirect_host: `127.0.0.1:${nrPort}`, security_policies: {} };
    else if (method === 'connect') {
      ret = {
        agent_run_id: 'bench-run-1',
        collect_traces: true,
        collect_errors: true,
        collect_analytics_events: true,
        collect_custom_events: true,
        collect_span_events: true,
        data_report_period: 60,
        request_headers_map: {},
        event_harvest_config: { report_period_ms: nrHarvestMs, harvest_limits: { analytic_event_data: 10000, custom_event_data: 10000, error_event_data: 100, span_event_data: 10000, log_event_data: 10000 } },
        span_event_harvest_config: { report_period_ms: nrHarvestMs, harvest_limit: 10000 },
      };
    } else {
      try {
        const doc = JSON.parse(body.toString('utf8') || 'null');
        if (Array.isArray(doc) && Array.isArray(doc[2]) && /event_data$/.test(method)) {
          stats.events[method] = (stats.events[method] || 0) + doc[2].length;
          for (const ev of doc[2]) {
            if (method === 'span_event_data') stats.spans++;
            const intrinsics = Array.isArray(ev) ? ev[0] : ev;
            if (intrinsics && intrinsics.name) countName(`${method} ${intrinsics.name}`);
          }
        }
      } catch {
        stats.errors++;
      }
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ return_value: ret }));
  });
}

const handlers = { otlp, dd, elastic, newrelic };
const handler = handlers[kind];
if (!handler) {
  console.error(`unknown sink ${kind}`);
  process.exit(2);
}

function route(req, res) {
  if (req.url === '/__bench/stats') {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(stats));
    return;
  }
  stats.requests++;
  handler(req, res);
}

async function main() {
  let server;
  let extra = {};
  if (kind === 'newrelic') {
    const selfsigned = require('selfsigned');
    let pems = selfsigned.generate([{ name: 'commonName', value: '127.0.0.1' }], {
      days: 2, keySize: 2048,
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }] }],
    });
    if (pems && typeof pems.then === 'function') pems = await pems;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ws-apm-bench-nr-'));
    const certFile = path.join(dir, 'cert.pem');
    fs.writeFileSync(certFile, pems.cert);
    extra = { certFile };
    server = https.createServer({ key: pems.private, cert: pems.cert }, route);
  } else {
    server = http.createServer(route);
  }
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => {
    nrPort = server.address().port;
    process.stdout.write(`BENCH ${JSON.stringify({ type: 'listening', port: nrPort, ...extra })}\n`);
  });
  // stop with the orchestrator
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
}

main();
