/**
 * Static checks of the example stack: docker-compose.yml against the Compose Specification's own
 * JSON schema (vendored in test/fixtures/compose-spec) plus the semantics a schema cannot see
 * (ports, health checks, named volumes, depends_on conditions, supported image lines), the
 * OpenTelemetry Collector config (pipelines, component names and keys of the current collector),
 * and the two dashboards (the shape Kibana 9's saved-objects import and New Relic's dashboard import
 * take, and only names ws-apm produces). There is no container engine, Kibana or New Relic here:
 * nothing is started; what each check rests on is said next to it and in examples/VERSIONS.md.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import Ajv from 'ajv';
import Ajv2020 from 'ajv/dist/2020';
import YAML from 'yaml';
import * as semconv from '../../src/semconv';
import { NR_CONNECTION_EVENT } from '../../src/adapters/newrelic/event';
import { metricName } from '../../src/adapters/newrelic/metrics';
import { NR_TRANSACTION_GROUP } from '../../src/adapters/newrelic/ops';

const ROOT = path.resolve(__dirname, '..', '..');
const read = (...p: string[]) => readFileSync(path.join(ROOT, ...p), 'utf8');
const SCHEMA_DIR = path.join('test', 'fixtures', 'compose-spec');

const compose = YAML.parse(read('docker-compose.yml'));
const services: Record<string, any> = compose.services;
const names = new Set(Object.keys(services));
const isExample = (svc: any) => String(svc.image).startsWith('ws-apm-chat:');

/** "1.2.3" → [1, 2, 3]; compare with cmp. */
const semver = (v: string) => {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  assert.ok(m, `${v} is an exact version`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
};
const cmp = (a: string, b: string) => {
  const [x, y] = [semver(a), semver(b)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
};
const imageOf = (name: string) => {
  const m = /^(.+):([^:/]+)$/.exec(String(services[name].image));
  assert.ok(m, `${name}: image with a tag`);
  return { repo: m[1], tag: m[2] };
};

/** Every `WS_APM_*` variable in README's configuration table. */
function readmeVariables(): Set<string> {
  const readme = read('README.md');
  const section = readme.slice(readme.indexOf('## Configuration'));
  return new Set([...section.matchAll(/^\| `(WS_APM_[A-Z_]+)` \|/gm)].map((m) => m[1]));
}

/** Every `env.NAME` the examples' processes read (the chat example and the socket.io example). */
function exampleVariables(): Set<string> {
  const vars = new Set<string>();
  const files = [...['server.js', 'client.js', 'broker.js', 'auth.js'].map((f) => ['chat', f]), ['socketio', 'server.js'], ['socketio', 'client.js']];
  for (const [dir, file] of files) {
    for (const m of read('examples', dir, file).matchAll(/\benv\.([A-Z][A-Z0-9_]*)/g)) vars.add(m[1]);
  }
  return vars;
}

const ATTRIBUTES = Object.entries(semconv).filter(([k]) => k.startsWith('ATTR_')).map(([, v]) => String(v));
const METRICS = Object.keys(semconv.METRIC_INFO);

// ---- the Compose Specification's JSON schema ------------------------------------------------

describe('docker-compose.yml against the Compose Specification JSON schema', () => {
  // Both copies come from the Compose Specification project (README beside them): the
  // compose-spec repository's (draft-07, kept "for backward compatibility") and compose-go's, the
  // original it points to (draft 2020-12). Each needs the Ajv class of its draft.
  const copies = [
    { dir: 'compose-spec-repo', draft: /^https?:\/\/json-schema\.org\/draft-07\/schema#?$/, make: () => new Ajv({ allErrors: true, strict: true, strictTypes: false, allowUnionTypes: true }) },
    { dir: 'compose-go-repo', draft: /^https:\/\/json-schema\.org\/draft\/2020-12\/schema$/, make: () => new Ajv2020({ allErrors: true, strict: true, strictTypes: false, allowUnionTypes: true }) },
  ];
  const load = (dir: string) => JSON.parse(readFileSync(path.join(ROOT, SCHEMA_DIR, dir, 'compose-spec.json'), 'utf8'));
  const compile = (copy: (typeof copies)[number]) => {
    const schema = load(copy.dir);
    const ajv = copy.make();
    // The compose-spec copy names its draft as https://json-schema.org/draft-07/schema (no "#",
    // https): register Ajv's draft-07 meta-schema under that name so the schema itself is checked.
    if (copy.dir === 'compose-spec-repo') {
      const draft07 = JSON.parse(readFileSync(require.resolve('ajv/dist/refs/json-schema-draft-07.json'), 'utf8'));
      ajv.addMetaSchema({ ...draft07, $id: schema.$schema });
    }
    assert.ok(ajv.validateSchema(schema), `${copy.dir}: the schema is valid against its meta-schema: ${ajv.errorsText()}`);
    return ajv.compile(schema);
  };

  test('the vendored schema files are the ones their README names (unmodified, with licence)', () => {
    const readme = readFileSync(path.join(ROOT, SCHEMA_DIR, 'README.md'), 'utf8');
    for (const copy of copies) {
      const file = path.join(ROOT, SCHEMA_DIR, copy.dir, 'compose-spec.json');
      const sha = createHash('sha256').update(readFileSync(file)).digest('hex');
      assert.ok(readme.includes(`${sha}  ${copy.dir}/compose-spec.json`), `${copy.dir}: sha256 ${sha} is listed in the README`);
      assert.match(String(load(copy.dir).$schema), copy.draft, `${copy.dir}: the draft its Ajv class is for`);
      assert.match(readFileSync(path.join(ROOT, SCHEMA_DIR, copy.dir, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);
      assert.ok(existsSync(path.join(ROOT, SCHEMA_DIR, copy.dir, 'NOTICE')), `${copy.dir}: NOTICE`);
    }
  });

  for (const copy of copies) {
    test(`valid against the ${copy.dir.replace(/-repo$/, '')} copy`, () => {
      const validate = compile(copy);
      assert.ok(validate(compose), `docker-compose.yml: ${JSON.stringify(validate.errors, null, 2)}`);
    });

    test(`the ${copy.dir.replace(/-repo$/, '')} copy rejects what Compose rejects (the validator is live)`, () => {
      const validate = compile(copy);
      const bad = structuredClone(compose);
      bad.services.redis.healthcheck.interval = 5; // a duration is a string
      bad.services.redis.restart_policy = 'always'; // no such service key
      bad.services.jaeger.depends_on = { redis: { condition: 'service_up' } }; // no such condition
      assert.equal(validate(bad), false);
      const where = new Set((validate.errors ?? []).map((e) => e.instancePath));
      for (const p of ['/services/redis/healthcheck/interval', '/services/redis', '/services/jaeger/depends_on/redis/condition']) {
        assert.ok(where.has(p), `an error at ${p}: ${JSON.stringify(validate.errors)}`);
      }
    });
  }
});

// ---- what the schema cannot see ----------------------------------------------------------------

describe('docker-compose.yml semantics', () => {
  test('the stack has every piece, images pinned, files it mounts or builds exist', () => {
    for (const s of ['elasticsearch', 'kibana', 'apm-server', 'otel-collector', 'jaeger', 'redis', 'chat-a', 'chat-b', 'chat-nr', 'clients', 'sio-a', 'sio-b']) {
      assert.ok(names.has(s), `service ${s}`);
    }
    const hostPorts = new Set<string>();
    for (const [name, svc] of Object.entries(services)) {
      assert.ok(typeof svc.image === 'string', `${name}: image`);
      const tag = /^(?:[^/]+\/)*[^/:]+:([^:/]+)$/.exec(svc.image)?.[1];
      assert.ok(tag && tag !== 'latest', `${name}: image ${svc.image} pinned to a version`);
      if (!isExample(svc)) assert.match(tag, /^\d+\.\d+\.\d+$/, `${name}: ${svc.image} pinned to an exact version`);
      if (svc.build) {
        assert.ok(existsSync(path.join(ROOT, svc.build.context, svc.build.dockerfile)), `${name}: Dockerfile exists`);
      }
      for (const p of svc.ports ?? []) {
        const m = /^(?:127\.0\.0\.1:)?(\d+):(\d+)$/.exec(String(p));
        assert.ok(m, `${name}: port ${p}`);
        assert.ok(String(p).startsWith('127.0.0.1:'), `${name}: port ${p} published on loopback only`);
        assert.ok(!hostPorts.has(m[1]), `${name}: host port ${m[1]} used once`);
        hostPorts.add(m[1]);
      }
      for (const v of svc.volumes ?? []) {
        const [source] = String(v).split(':');
        if (source.startsWith('.')) assert.ok(existsSync(path.join(ROOT, source)), `${name}: ${source} exists`);
        else assert.ok(source in (compose.volumes ?? {}), `${name}: named volume ${source} declared`);
      }
      for (const [dep, cond] of Object.entries<any>(svc.depends_on ?? {})) {
        assert.ok(names.has(dep), `${name}: depends on existing ${dep}`);
        assert.ok(['service_started', 'service_healthy', 'service_completed_successfully'].includes(cond.condition), `${name}: ${dep} condition`);
        if (cond.condition === 'service_healthy') assert.ok(services[dep].healthcheck, `${name}: ${dep} has a healthcheck`);
        assert.ok(!services[dep].profiles || svc.profiles, `${name}: does not depend on ${dep}, which only runs in a profile`);
      }
      // The collector image has no shell or HTTP client to probe itself with.
      if (name !== 'otel-collector') assert.ok(Array.isArray(svc.healthcheck?.test), `${name}: healthcheck`);
    }
    // Images built here must be built by some service.
    const built = new Set(Object.values(services).filter((s: any) => s.build).map((s: any) => s.image));
    for (const [name, svc] of Object.entries(services)) {
      if (isExample(svc)) assert.ok(built.has(svc.image), `${name}: ${svc.image} is built in this file`);
    }
    // Named volumes that nothing mounts are leftovers.
    const mounted = new Set(Object.values(services).flatMap((s: any) => (s.volumes ?? []).map((v: string) => v.split(':')[0])));
    for (const v of Object.keys(compose.volumes ?? {})) assert.ok(mounted.has(v), `volume ${v} is mounted`);
  });

  test('health checks: compose does not eat their $, and each probes the service on its own port', () => {
    const probes: Record<string, RegExp> = {
      elasticsearch: /localhost:9200\//,
      kibana: /localhost:5601\/api\/status/,
      'apm-server': /\/dev\/tcp\/127\.0\.0\.1\/8200/,
      jaeger: /localhost:13133\/status/, // Jaeger v2's healthcheckv2 extension (all-in-one config)
      redis: /^CMD redis-cli ping$/,
    };
    for (const [name, svc] of Object.entries(services)) {
      const cmd = (svc.healthcheck?.test ?? []).join(' ');
      // Compose interpolates ${VAR} and $VAR in the whole file; a shell variable needs $$.
      for (const m of cmd.matchAll(/\$+\{?[A-Za-z_]/g)) assert.ok(m[0].startsWith('$$'), `${name}: "${m[0]}" in the healthcheck would be interpolated by compose`);
      if (probes[name]) assert.match(cmd, probes[name], `${name}: healthcheck`);
    }
  });

  test('every image is on a line its maintainers support, and they agree with each other', () => {
    // Elastic Stack 9.x: Elasticsearch, Kibana and APM Server are released together and must match.
    const elastic = ['elasticsearch', 'kibana', 'apm-server'].map(imageOf);
    assert.deepEqual(elastic.map((i) => i.repo), [
      'docker.elastic.co/elasticsearch/elasticsearch', 'docker.elastic.co/kibana/kibana', 'docker.elastic.co/apm/apm-server',
    ]);
    assert.equal(new Set(elastic.map((i) => i.tag)).size, 1, 'one Elastic Stack version');
    assert.equal(semver(elastic[0].tag)[0], 9, 'Elastic Stack 9.x');
    // Jaeger v1 (all-in-one and the split images) reached end of life: v2 ships as jaegertracing/jaeger.
    const jaeger = imageOf('jaeger');
    assert.equal(jaeger.repo, 'jaegertracing/jaeger');
    assert.equal(semver(jaeger.tag)[0], 2, 'Jaeger v2');
    assert.equal(services.jaeger.environment, undefined, 'Jaeger v2 takes no v1 environment variables (COLLECTOR_OTLP_ENABLED, SPAN_STORAGE_TYPE)');
    // The collector config uses otlp_grpc / otlp_http, the names since 0.144.
    const collector = imageOf('otel-collector');
    assert.equal(collector.repo, 'otel/opentelemetry-collector-contrib');
    assert.ok(cmp(collector.tag, '0.144.0') >= 0, 'collector-contrib ≥ 0.144 (otlp_grpc / otlp_http exporter names)');
    const redis = imageOf('redis');
    assert.ok((redis.repo === 'redis' && semver(redis.tag)[0] >= 8) || /(^|\/)valkey$/.test(redis.repo), 'Redis 8 or Valkey');
    // The chat image runs on Node.js 24, the active LTS.
    const from = /^FROM (\S+)$/m.exec(read('examples', 'chat', 'Dockerfile'))?.[1];
    assert.match(String(from), /^node:24\.\d+\.\d+-[a-z]+-slim$/, 'chat image FROM node:24 (exact version)');
  });

  test('environment: documented ws-apm variables, variables the example reads, hosts that are services', () => {
    const documented = readmeVariables();
    assert.ok(documented.size >= 15, 'README configuration table found');
    const example = exampleVariables();
    // CHAT_TRACE_URL: the link template the chat page shows for a message's trace; the chat
    // server reads it (changed alongside, on another branch).
    const coordinated = new Set(['CHAT_TRACE_URL']);
    for (const [name, svc] of Object.entries(services)) {
      const env: Record<string, unknown> = svc.environment ?? {};
      assert.ok(!Array.isArray(env), `${name}: environment as a map`);
      for (const [key, value] of Object.entries(env)) {
        if (key.startsWith('WS_APM_')) assert.ok(documented.has(key), `${name}: ${key} is in README's configuration table`);
        else if (isExample(svc) && !/^(OTEL_|ELASTIC_APM_|NEW_RELIC_)/.test(key)) {
          assert.ok(example.has(key) || coordinated.has(key), `${name}: ${key} is read by examples/chat`);
        }
        for (const m of String(value).matchAll(/\b(?:https?|wss?|redis):\/\/([a-z][a-z0-9-]*)[:/]/g)) {
          assert.ok(names.has(m[1]) || m[1] === 'localhost', `${name}: ${key} points at service ${m[1]}`);
        }
      }
      if (isExample(svc)) {
        assert.ok(['otel', 'elastic', 'newrelic'].includes(String(env.WS_APM_BACKEND)), `${name}: backend`);
        assert.ok(env.JWT_SECRET || svc.command, `${name}: JWT_SECRET`);
      }
    }
    assert.match(String(services['chat-nr'].environment.NEW_RELIC_LICENSE_KEY), /^\$\{NEW_RELIC_LICENSE_KEY/);
    assert.deepEqual(services['chat-nr'].profiles, ['newrelic']);
    // The socket.io example runs in its own profile, its programs from examples/socketio.
    const socketio = Object.entries(services).filter(([, svc]) => svc.profiles?.includes('socketio'));
    assert.deepEqual(socketio.map(([name]) => name).sort(), ['sio-a', 'sio-b', 'sio-client-a', 'sio-client-b']);
    for (const [name, svc] of socketio) {
      assert.deepEqual(svc.profiles, ['socketio'], `${name}: only in the socketio profile`);
      const program = String(svc.command?.at(-1));
      assert.match(program, /^examples\/socketio\/(server|client)\.js$/, `${name}: runs the socket.io example`);
      assert.ok(existsSync(path.join(ROOT, program)), `${name}: ${program} exists`);
      assert.deepEqual(svc.command.slice(0, 3), ['node', '-r', 'ws-apm/register'], `${name}: started with ws-apm`);
    }
    assert.match(read('examples', 'chat', 'Dockerfile'), /^COPY examples\/socketio \.\/examples\/socketio$/m, 'the image has the socket.io example');
  });

  test('CHAT_TRACE_URL opens the trace in the UI of the backend each instance reports to', () => {
    const published = (svc: string) => (services[svc].ports ?? []).map((p: string) => String(p).split(':').at(-2));
    const expected: Record<string, { ui: string; path: RegExp }> = {
      // Kibana's APM app route /link-to/trace/{traceId} (apm_route_config.tsx) resolves a trace id.
      'chat-a': { ui: 'kibana', path: /^\/app\/apm\/link-to\/trace\/\{traceId\}(\?.*)?$/ },
      // Jaeger UI route /trace/:id.
      'chat-b': { ui: 'jaeger', path: /^\/trace\/\{traceId\}$/ },
    };
    for (const [name, { ui, path: route }] of Object.entries(expected)) {
      const template = String(services[name].environment.CHAT_TRACE_URL);
      assert.equal(template.split('{traceId}').length, 2, `${name}: one {traceId} placeholder`);
      const url = new URL(template.replace('{traceId}', '0af7651916cd43dd8448eb211c80319c'));
      assert.equal(url.hostname, 'localhost', `${name}: a URL for the user's browser`);
      assert.ok(published(ui).includes(url.port), `${name}: port ${url.port} is ${ui}'s published port`);
      const origin = `${url.protocol}//${url.host}`;
      assert.ok(template.startsWith(origin));
      assert.match(template.slice(origin.length), route, `${name}: ${ui} route`);
    }
    const elastic = services['chat-a'].environment.WS_APM_BACKEND;
    assert.equal(elastic, 'elastic');
    assert.equal(services['chat-b'].environment.WS_APM_BACKEND, 'otel');
  });

  test('Elastic settings valid for 9.x: no security locally, Kibana encryption key from the environment', () => {
    const es = services.elasticsearch.environment;
    assert.equal(es['discovery.type'], 'single-node');
    assert.equal(es['xpack.security.enabled'], 'false');
    const key = /^\$\{KIBANA_ENCRYPTION_KEY:-(.+)\}$/.exec(String(services.kibana.environment.XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY))?.[1];
    assert.ok(key && key.length >= 32, 'xpack.encryptedSavedObjects.encryptionKey: 32+ characters, overridable');
    const kibanaYml = YAML.parse(read('examples', 'elastic', 'kibana.yml'));
    assert.deepEqual(kibanaYml['elasticsearch.hosts'], ['http://elasticsearch:9200']);
    assert.ok(!('xpack.fleet.packages' in kibanaYml), 'no Fleet package preconfiguration (APM data streams come from the apm-data plugin)');
    for (const k of Object.keys(kibanaYml)) assert.ok(!/encryptionKey|password/i.test(k), `kibana.yml holds no secret (${k})`);
    // APM Server 9 standalone: writes to Elasticsearch and needs no Kibana connection.
    const apm = services['apm-server'].command.join(' ');
    assert.match(apm, /-E apm-server\.host=0\.0\.0\.0:8200/);
    assert.match(apm, /-E output\.elasticsearch\.hosts=\["http:\/\/elasticsearch:9200"\]/);
    assert.doesNotMatch(apm, /apm-server\.kibana/);
    assert.deepEqual(Object.keys(services['apm-server'].depends_on), ['elasticsearch']);
  });
});

// ---- the collector config -----------------------------------------------------------------------

describe('examples/otel-collector.yaml', () => {
  const config = YAML.parse(read('examples', 'otel-collector.yaml'));
  const kinds = ['receivers', 'processors', 'exporters', 'extensions'] as const;
  const typeOf = (id: string) => id.split('/')[0];

  test('complete, and points at services of the stack', () => {
    const collector = services['otel-collector'];
    const mount = collector.volumes.find((v: string) => v.startsWith('./examples/otel-collector.yaml:'));
    assert.ok(mount, 'collector config mounted');
    assert.ok(collector.command.includes(`--config=${mount.split(':')[1]}`), 'collector started with the mounted config');
    const used = new Set<string>();
    for (const [pipeline, p] of Object.entries<any>(config.service.pipelines)) {
      assert.ok(['traces', 'metrics', 'logs'].includes(pipeline.split('/')[0]), `pipeline ${pipeline}`);
      assert.ok(p.receivers?.length && p.exporters?.length, `${pipeline}: receivers and exporters`);
      for (const kind of ['receivers', 'processors', 'exporters'] as const) {
        for (const c of p[kind] ?? []) {
          assert.ok(c in (config[kind] ?? {}), `${pipeline}: ${kind} ${c} defined`);
          used.add(`${kind}:${c}`);
        }
      }
    }
    for (const ext of config.service.extensions ?? []) {
      assert.ok(ext in config.extensions, `extension ${ext}`);
      used.add(`extensions:${ext}`);
    }
    for (const kind of kinds) {
      for (const c of Object.keys(config[kind] ?? {})) assert.ok(used.has(`${kind}:${c}`), `${kind} ${c} is used`);
    }
    for (const [name, e] of Object.entries<any>(config.exporters)) {
      if (!e?.endpoint) continue;
      const host = /^(?:https?:\/\/)?([a-z][a-z0-9-]*):\d+/.exec(e.endpoint)?.[1];
      assert.ok(host && names.has(host), `exporter ${name}: ${e.endpoint} is a service`);
    }
  });

  test('exporters reach the ports their targets listen on', () => {
    // Jaeger v2's all-in-one config takes OTLP gRPC on 4317; APM Server listens where -E apm-server.host says.
    assert.equal(config.exporters['otlp_grpc/jaeger'].endpoint, 'jaeger:4317');
    assert.equal(config.exporters['otlp_grpc/jaeger'].tls?.insecure, true, 'plain gRPC inside the compose network');
    const apmHost = /apm-server\.host=[^:]+:(\d+)/.exec(services['apm-server'].command.join(' '))?.[1];
    assert.equal(config.exporters['otlp_http/elastic'].endpoint, `http://apm-server:${apmHost}`);
    // The SDKs in the chat services send OTLP/HTTP to the collector's 4318.
    for (const s of ['chat-b', 'clients']) assert.equal(services[s].environment.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://otel-collector:4318');
  });

  test('only component names and keys of the current collector, none of the deprecated ones', () => {
    // In otelcol-contrib's manifest, under their current names (otlp / otlphttp exporters are
    // deprecated aliases of otlp_grpc / otlp_http since 0.144; the batch processor gives way to the
    // exporters' sending_queue::batch under the collector's batching-migration RFC; the logging and
    // jaeger exporters were removed long ago).
    const known: Record<(typeof kinds)[number], string[]> = {
      receivers: ['otlp'],
      processors: ['memory_limiter'],
      exporters: ['otlp_grpc', 'otlp_http', 'debug'],
      extensions: ['health_check'],
    };
    const deprecated = ['exporters:otlp', 'exporters:otlphttp', 'exporters:logging', 'exporters:jaeger', 'processors:batch'];
    for (const kind of kinds) {
      for (const id of Object.keys(config[kind] ?? {})) {
        assert.ok(!deprecated.includes(`${kind}:${typeOf(id)}`), `${kind} ${id}: deprecated or removed`);
        assert.ok(known[kind].includes(typeOf(id)), `${kind} ${id}: a component this check knows`);
      }
    }
    // Keys as documented in each component's config schema / README (collector core).
    const allowed: Record<string, string[]> = {
      otlp_grpc: ['endpoint', 'tls', 'compression', 'headers', 'timeout', 'retry_on_failure', 'sending_queue', 'balancer_name', 'keepalive', 'auth'],
      otlp_http: ['endpoint', 'traces_endpoint', 'metrics_endpoint', 'logs_endpoint', 'tls', 'compression', 'headers', 'timeout', 'retry_on_failure', 'sending_queue', 'encoding', 'auth'],
      debug: ['verbosity', 'sampling_initial', 'sampling_thereafter', 'use_internal_logger', 'output_paths', 'sending_queue'],
      memory_limiter: ['check_interval', 'limit_mib', 'spike_limit_mib', 'limit_percentage', 'spike_limit_percentage', 'min_gc_interval_when_soft_limited', 'min_gc_interval_when_hard_limited'],
      health_check: ['endpoint', 'path', 'response_body', 'tls'],
    };
    const queue = ['enabled', 'num_consumers', 'wait_for_result', 'block_on_overflow', 'sizer', 'queue_size', 'batch', 'storage'];
    const batch = ['flush_timeout', 'min_size', 'max_size', 'sizer', 'partition'];
    for (const kind of ['processors', 'exporters', 'extensions'] as const) {
      for (const [id, c] of Object.entries<any>(config[kind] ?? {})) {
        for (const k of Object.keys(c ?? {})) assert.ok(allowed[typeOf(id)].includes(k), `${id}.${k}`);
        for (const k of Object.keys(c?.sending_queue ?? {})) assert.ok(queue.includes(k), `${id}.sending_queue.${k}`);
        for (const k of Object.keys(c?.sending_queue?.batch ?? {})) assert.ok(batch.includes(k), `${id}.sending_queue.batch.${k}`);
      }
    }
    assert.ok(['basic', 'normal', 'detailed'].includes(config.exporters.debug.verbosity));
    // Batching happens in the network exporters, not in a processor.
    for (const id of ['otlp_grpc/jaeger', 'otlp_http/elastic']) assert.ok(config.exporters[id].sending_queue?.batch, `${id}: sending_queue.batch`);
  });

  test('listeners bind all interfaces (the default is localhost since 0.104), on the published ports', () => {
    const published = new Set((services['otel-collector'].ports as string[]).map((p) => p.split(':').at(-1)));
    const endpoints = [
      ...Object.values<any>(config.receivers.otlp.protocols).map((p) => p.endpoint),
      config.extensions.health_check.endpoint,
    ];
    for (const e of endpoints) {
      assert.match(String(e), /^0\.0\.0\.0:\d+$/, `${e}: binds all interfaces`);
      assert.ok(published.has(e.split(':')[1]), `${e}: port published`);
    }
  });
});

// ---- the dashboards ------------------------------------------------------------------------------

describe('examples/dashboards', () => {
  test('generate.js is the single source: regenerating changes nothing', () => {
    // generate.js writes next to itself: run a copy in a temporary directory.
    const files = ['kibana-websocket.ndjson', 'newrelic-websocket.json'];
    const out = mkdtempSync(path.join(tmpdir(), 'ws-apm-dashboards-'));
    try {
      copyFileSync(path.join(ROOT, 'examples', 'dashboards', 'generate.js'), path.join(out, 'generate.js'));
      execFileSync(process.execPath, [path.join(out, 'generate.js')]);
      assert.deepEqual(files.map((f) => readFileSync(path.join(out, f), 'utf8')), files.map((f) => read('examples', 'dashboards', f)));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  const kibanaObjects = read('examples', 'dashboards', 'kibana-websocket.ndjson').trim().split('\n').map((l) => JSON.parse(l));

  test('Kibana: uses only fields ws-apm / Elastic APM produce', () => {
    const objects = kibanaObjects;
    const ids = new Set(objects.map((o) => `${o.type}:${o.id}`));
    const label = (a: string) => a.replace(/[.*"]/g, '_');
    const allowed = new Set<string>([
      '@timestamp', 'service.name', 'service.node.name', 'transaction.name', 'transaction.type', 'transaction.duration.us', 'transaction.result',
      ...METRICS,
      ...METRICS.filter((m) => semconv.METRIC_INFO[m].buckets).flatMap((m) => [`${m}.sum`, `${m}.count`]),
      ...ATTRIBUTES.flatMap((a) => [`labels.${label(a)}`, `numeric_labels.${label(a)}`]),
    ]);
    const fields = new Set<string>();
    const collect = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(collect);
      else if (node && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
          if (k === 'field' && typeof v === 'string') fields.add(v);
          else collect(v);
        }
      }
    };
    const dashboards = objects.filter((o) => o.type === 'dashboard');
    assert.equal(dashboards.length, 1);
    for (const o of objects) {
      for (const r of o.references) assert.ok(ids.has(`${r.type}:${r.id}`), `${o.id}: reference ${r.type}:${r.id} in the file`);
      if (o.type !== 'visualization') continue;
      collect(JSON.parse(o.attributes.visState).aggs);
      const search = JSON.parse(o.attributes.kibanaSavedObjectMeta.searchSourceJSON);
      for (const m of String(search.query.query).matchAll(/([A-Za-z_@][\w.@]*)\s*:/g)) fields.add(m[1]);
    }
    const panels = JSON.parse(dashboards[0].attributes.panelsJSON);
    assert.equal(panels.length, objects.filter((o) => o.type === 'visualization').length);
    for (const f of fields) assert.ok(allowed.has(f), `Kibana field ${f} is produced by ws-apm / Elastic APM`);
    for (const m of [semconv.METRIC_ACTIVE_CONNECTIONS, semconv.METRIC_CONNECTIONS, semconv.METRIC_MESSAGES, semconv.METRIC_CONNECTIONS_BROKEN]) {
      assert.ok(fields.has(m), `a panel shows ${m}`);
    }
  });

  test('Kibana 9 saved-objects format: migration versions, attribute keys, panels and references', () => {
    // The import API's documented compatibility: same major, or the previous major, and generated
    // objects must carry coreMigrationVersion and typeMigrationVersion. Attribute keys: the schemas
    // Kibana validates each type with (visualization: its "8.8.0" schema; dashboard: model
    // version 1 schema; index-pattern: its mappings).
    const attributes: Record<string, string[]> = {
      'index-pattern': ['title', 'name', 'timeFieldName', 'fields', 'fieldFormatMap', 'fieldAttrs', 'runtimeFieldMap', 'sourceFilters', 'type', 'typeMeta', 'allowNoIndex', 'allowHidden'],
      visualization: ['title', 'description', 'version', 'kibanaSavedObjectMeta', 'uiStateJSON', 'visState', 'savedSearchRefName'],
      dashboard: ['title', 'description', 'kibanaSavedObjectMeta', 'timeRestore', 'timeFrom', 'timeTo', 'refreshInterval', 'controlGroupInput', 'panelsJSON', 'optionsJSON', 'hits', 'version'],
    };
    // Last migration each type has (Kibana source): index-pattern 8.0.0 (multi-namespace
    // conversion), visualization 8.5.0 (last legacy migration); dashboards moved to model
    // versions, whose virtual versions are 10.<n>.0 — 10.1.0 is in every 9.x.
    const latest: Record<string, string> = { 'index-pattern': '8.0.0', visualization: '8.5.0', dashboard: '10.1.0' };
    const kibanaVersion = imageOf('kibana').tag;
    const byKey = new Map(kibanaObjects.map((o) => [`${o.type}:${o.id}`, o]));
    for (const o of kibanaObjects) {
      assert.deepEqual(Object.keys(o).sort(), ['attributes', 'coreMigrationVersion', 'id', 'managed', 'references', 'type', 'typeMigrationVersion'], `${o.id}: keys`);
      assert.ok(o.type in attributes, `${o.id}: type ${o.type}`);
      assert.match(o.id, /^[a-z0-9-]+$/);
      assert.equal(semver(o.coreMigrationVersion)[0], 9, `${o.id}: exported-by version on the 9.x line`);
      assert.ok(cmp(o.coreMigrationVersion, kibanaVersion) <= 0, `${o.id}: not newer than the Kibana of the stack`);
      assert.ok(cmp(o.typeMigrationVersion, latest[o.type]) <= 0, `${o.id}: typeMigrationVersion ${o.typeMigrationVersion} known to Kibana`);
      if (o.type === 'dashboard') assert.ok(cmp(o.typeMigrationVersion, '10.0.0') > 0, 'dashboard at a model version');
      for (const k of Object.keys(o.attributes)) assert.ok(attributes[o.type].includes(k), `${o.id}: attribute ${k}`);
      assert.equal(typeof o.attributes.title, 'string');
      for (const r of o.references) assert.deepEqual(Object.keys(r).sort(), ['id', 'name', 'type']);
    }

    // Visualizations: aggregation-based line / vertical bar / pie, the schemas those editors take.
    const single = new Set(['count', 'max', 'min', 'avg', 'sum', 'cardinality']);
    for (const o of kibanaObjects.filter((x) => x.type === 'visualization')) {
      const vis = JSON.parse(o.attributes.visState);
      assert.ok(['line', 'histogram', 'pie'].includes(vis.type), `${o.id}: vis type ${vis.type}`);
      assert.equal(vis.title, o.attributes.title);
      assert.equal(vis.params.type, vis.type, `${o.id}: params.type`);
      const aggs: any[] = vis.aggs;
      assert.deepEqual(aggs.map((a) => a.id), aggs.map((_, i) => String(i + 1)), `${o.id}: agg ids`);
      const count = (schema: string) => aggs.filter((a) => a.schema === schema).length;
      const metrics = aggs.filter((a) => a.schema === 'metric');
      const buckets = aggs.filter((a) => a.schema !== 'metric');
      if (vis.type === 'pie') {
        assert.equal(metrics.length, 1, `${o.id}: one slice-size metric`);
        assert.ok(['sum', 'count', 'cardinality', 'top_hits'].includes(metrics[0].type), `${o.id}: pie metric ${metrics[0].type}`);
        assert.ok(buckets.every((a) => ['segment', 'split'].includes(a.schema)), `${o.id}: pie buckets`);
        assert.ok(['show', 'hide'].includes(vis.params.legendDisplay), `${o.id}: legendDisplay (8.1+ pie API)`);
        assert.equal('addLegend' in vis.params, false, `${o.id}: no pre-8.1 addLegend`);
      } else {
        assert.ok(metrics.length >= 1 && count('segment') <= 1 && count('group') <= 3 && count('split') <= 1, `${o.id}: xy schemas`);
        assert.ok(buckets.every((a) => ['segment', 'group', 'split'].includes(a.schema)), `${o.id}: xy buckets`);
        for (const k of ['categoryAxes', 'valueAxes', 'seriesParams']) assert.ok(Array.isArray(vis.params[k]) && vis.params[k].length, `${o.id}: params.${k}`);
        for (const s of vis.params.seriesParams) {
          assert.ok(vis.params.valueAxes.some((v: any) => v.id === s.valueAxis), `${o.id}: series on a value axis`);
          assert.ok(metrics.some((m) => m.id === s.data.id), `${o.id}: series of a metric`);
        }
      }
      // A derivative (parent pipeline aggregation) needs a date histogram as its parent: the last
      // bucket. Terms cannot be ordered by a pipeline or multi-value metric.
      if (metrics.some((m) => m.type === 'derivative')) {
        assert.equal(buckets.at(-1).type, 'date_histogram', `${o.id}: date histogram is the last bucket under a derivative`);
        for (const m of metrics.filter((x) => x.type === 'derivative')) assert.ok(single.has(m.params.customMetric?.type), `${o.id}: derivative of a single-value metric`);
      }
      for (const t of aggs.filter((a) => a.type === 'terms')) {
        const by = t.params.orderBy;
        const target = aggs.find((a) => a.id === by);
        assert.ok(by === '_key' || by === '_count' || (target && single.has(target.type)), `${o.id}: terms ${t.params.field} ordered by ${by}`);
      }
      const search = JSON.parse(o.attributes.kibanaSavedObjectMeta.searchSourceJSON);
      assert.equal(search.query.language, 'kuery');
      const ref = o.references.find((r: any) => r.name === search.indexRefName);
      assert.ok(ref && ref.type === 'index-pattern' && byKey.has(`index-pattern:${ref.id}`), `${o.id}: data view reference`);
    }

    // The dashboard: panels by reference as Kibana stores them (panel type + panelRefName, the
    // reference named "<panelIndex>:<panelRefName>"), on the 48-column grid, not overlapping.
    const dashboard = kibanaObjects.find((o) => o.type === 'dashboard');
    const panels: any[] = JSON.parse(dashboard.attributes.panelsJSON);
    const cells = new Set<string>();
    for (const p of panels) {
      assert.equal(p.type, 'visualization', `${p.panelIndex}: panel type`);
      const g = p.gridData;
      assert.equal(g.i, p.panelIndex);
      assert.ok(g.x >= 0 && g.y >= 0 && g.w > 0 && g.h > 0 && g.x + g.w <= 48, `${p.panelIndex}: grid`);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          assert.ok(!cells.has(`${x},${y}`), `${p.panelIndex}: overlaps another panel`);
          cells.add(`${x},${y}`);
        }
      }
      const ref = dashboard.references.find((r: any) => r.name === `${p.panelIndex}:${p.panelRefName}`);
      assert.ok(ref && ref.type === p.type && byKey.has(`${ref.type}:${ref.id}`), `${p.panelIndex}: reference ${p.panelIndex}:${p.panelRefName}`);
    }
    assert.equal(new Set(panels.map((p) => p.panelIndex)).size, panels.length, 'panel indexes unique');
    assert.equal(dashboard.references.length, panels.length);
    assert.equal(typeof dashboard.attributes.refreshInterval.pause, 'boolean');
    assert.equal(typeof dashboard.attributes.refreshInterval.value, 'number');
  });

  const nr = JSON.parse(read('examples', 'dashboards', 'newrelic-websocket.json'));

  test('New Relic: uses only names ws-apm records', () => {
    const bases = new Set(METRICS.map((m) => `Custom/${metricName(m, {}).replace(/\/all$/, '')}`));
    const queries: string[] = nr.pages.flatMap((p: any) => p.widgets.flatMap((w: any) => w.rawConfiguration.nrqlQueries.map((q: any) => q.query)));
    assert.ok(queries.length >= 7);
    const closeAttrs = new Set(['code', 'reason', 'initiator', 'durationMs', 'messagesIn', 'messagesOut', 'bytesIn', 'bytesOut', 'side', 'broken', 'route']);
    const seen = new Set<string>();
    for (const q of queries) {
      const from = /\bFROM (\w+)/.exec(q)?.[1];
      assert.ok(from && ['Metric', 'Transaction', NR_CONNECTION_EVENT].includes(from), `${q}: event type`);
      for (const m of q.matchAll(/'(Custom\/WebSocket\/[^%']*)/g)) {
        const base = [...bases].find((b) => m[1] === b || m[1].startsWith(`${b}/`));
        assert.ok(base, `${m[1]} is a metric ws-apm records`);
        seen.add(base);
      }
      for (const m of q.matchAll(/'(OtherTransaction\/[^%']*)/g)) assert.ok(m[1].startsWith(`OtherTransaction/${NR_TRANSACTION_GROUP}/WS `), m[1]);
      if (from === NR_CONNECTION_EVENT) {
        const attrs = [...q.replace(/'[^']*'/g, '').matchAll(/\b([a-z][A-Za-z]*)\b/g)].map((m) => m[1]).filter((w) => !/^(count|percentile|average|sum|and|or|as)$/i.test(w));
        for (const a of attrs) assert.ok(closeAttrs.has(a), `${NR_CONNECTION_EVENT}.${a} is recorded`);
      }
    }
    for (const m of ['ActiveConnections', 'Connections', 'Messages', 'HeartbeatRtt', 'BrokenConnections']) {
      assert.ok(seen.has(`Custom/WebSocket/${m}`), `a widget shows Custom/WebSocket/${m}`);
    }
  });

  test('New Relic: the dashboard JSON New Relic exports and imports (NerdGraph DashboardInput)', () => {
    assert.deepEqual(Object.keys(nr).sort(), ['description', 'name', 'pages', 'permissions', 'variables']);
    assert.equal(typeof nr.name, 'string');
    assert.ok(['PRIVATE', 'PUBLIC_READ_ONLY', 'PUBLIC_READ_WRITE'].includes(nr.permissions));
    assert.ok(Array.isArray(nr.variables));
    assert.ok(nr.pages.length >= 1);
    const vizIds = new Set(['viz.line', 'viz.area', 'viz.bar', 'viz.pie', 'viz.table', 'viz.billboard', 'viz.markdown', 'viz.stacked-bar', 'viz.histogram', 'viz.heatmap', 'viz.json', 'viz.bullet', 'viz.funnel']);
    for (const page of nr.pages) {
      assert.deepEqual(Object.keys(page).sort(), ['description', 'name', 'widgets']);
      const cells = new Set<string>();
      for (const w of page.widgets) {
        assert.deepEqual(Object.keys(w).sort(), ['layout', 'linkedEntityGuids', 'rawConfiguration', 'title', 'visualization']);
        const { column, row, width, height } = w.layout;
        assert.ok(column >= 1 && width >= 1 && column + width - 1 <= 12 && row >= 1 && height >= 1, `${w.title}: layout on the 12-column grid`);
        for (let c = column; c < column + width; c++) {
          for (let r = row; r < row + height; r++) {
            assert.ok(!cells.has(`${c},${r}`), `${w.title}: overlaps another widget`);
            cells.add(`${c},${r}`);
          }
        }
        assert.ok(vizIds.has(w.visualization.id), `${w.title}: visualization ${w.visualization.id}`);
        assert.ok(w.rawConfiguration.nrqlQueries.length >= 1);
        for (const q of w.rawConfiguration.nrqlQueries) {
          assert.deepEqual(Object.keys(q).sort(), ['accountIds', 'query']);
          assert.ok(Array.isArray(q.accountIds) && q.accountIds.every(Number.isInteger), `${w.title}: accountIds (the multi-account form of exports)`);
          assert.match(q.query, /^SELECT .+ FROM \w+/);
        }
      }
    }
  });
});

// ---- documentation ------------------------------------------------------------------------------

describe("the example's README and examples/VERSIONS.md name the images the stack runs", () => {
  test('every pinned image appears in both', () => {
    const readme = read('examples', 'chat', 'README.md');
    const versions = read('examples', 'VERSIONS.md');
    for (const [name, svc] of Object.entries(services)) {
      if (isExample(svc)) continue;
      assert.ok(versions.includes(`\`${svc.image}\``), `examples/VERSIONS.md names ${svc.image}`);
      assert.ok(readme.includes(`\`${svc.image}\``), `examples/chat/README.md names ${svc.image} (${name})`);
    }
    const from = /^FROM (\S+)$/m.exec(read('examples', 'chat', 'Dockerfile'))?.[1];
    assert.ok(versions.includes(`\`${from}\``) && readme.includes(`\`${from}\``), `${from} named`);
  });
});
