/**
 * The OTLP exporters of the SDK ws-apm starts, watched: whether the collector takes the exports
 * is reported once when it cannot be reached (refused, no answer in time) and once when it answers
 * again (reachability.ts). Only exporters ws-apm builds itself are watched, never the app's.
 *
 * sdk-node offers no way to see its exporters' results, so for the common case (traces to OTLP:
 * OTEL_TRACES_EXPORTER unset or `otlp`) ws-apm builds the span processors as sdk-node's
 * `getSpanProcessorsFromEnv` would (same exporter packages, from sdk-node's own dependencies, a
 * BatchSpanProcessor each); any other value is left to sdk-node, unwatched. The metric exporters
 * are built by otel-sdk.ts already and watched there.
 */
import { createRequire } from 'node:module';
import { log } from '../../logger';
import { Reachability, reason, unreachable } from '../reachability';

type Signal = 'traces' | 'metrics';

interface ExportResult {
  code: number;
  error?: unknown;
}

interface Exporter {
  export(items: unknown, done: (result: ExportResult) => void): void;
}

const SUCCESS = 0;
const collector = new Reachability('the OpenTelemetry collector');

/** The OTLP protocol of a signal, as the SDK reads it. */
function otlpProtocol(signal: Signal): string {
  const specific = signal === 'traces' ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL';
  return process.env[specific]?.trim() || process.env.OTEL_EXPORTER_OTLP_PROTOCOL?.trim() || 'http/protobuf';
}

/**
 * Where the signal's exports go, for messages: the origin (no path, no credentials) of the URL
 * the exporter posts to, per the OTLP exporter spec's precedence and defaults.
 */
function otlpAddress(signal: Signal, protocol = otlpProtocol(signal)): string {
  const specific = process.env[signal === 'traces' ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT']?.trim();
  const general = process.env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  const raw = specific || general || (protocol === 'grpc' ? 'http://localhost:4317' : 'http://localhost:4318');
  try {
    const url = new URL(raw);
    return url.origin === 'null' ? raw : url.origin;
  } catch {
    return raw;
  }
}

/** Report the outcome of each export of `exporter` (an object ws-apm built) to the collector's reachability. */
export function watchExports(exporter: unknown, signal: Signal, protocol = otlpProtocol(signal)): void {
  const target = exporter as Partial<Exporter> | null;
  if (target === null || typeof target !== 'object' || typeof target.export !== 'function') return;
  const address = otlpAddress(signal, protocol);
  const exportItems = target.export;
  target.export = function (this: unknown, items: unknown, done: (result: ExportResult) => void): void {
    const ticket = collector.begin();
    exportItems.call(this, items, (result: ExportResult) => {
      try {
        if (result?.code === SUCCESS) collector.succeeded(address, ticket);
        else if (unreachable(result?.error)) collector.failed(address, ticket, result?.error);
        else log.fault(`OpenTelemetry ${signal} export to ${address}`, new Error(reason(result?.error)));
      } catch (err) {
        log.fault('collector reachability', err);
      }
      done(result);
    });
  };
}

interface SdkTracing {
  BatchSpanProcessor: new (exporter: never) => unknown;
}

/**
 * The span processors sdk-node would build from OTEL_TRACES_EXPORTER=otlp, with their exporters
 * watched; undefined for any other OTEL_TRACES_EXPORTER (then sdk-node builds them itself).
 * Call it under the environment sdk-node starts with (timeouts).
 */
export function watchedSpanProcessors(tracing: SdkTracing): unknown[] | undefined {
  const names = (process.env.OTEL_TRACES_EXPORTER ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.some((name) => name !== 'otlp')) return undefined;
  const protocol = otlpProtocol('traces');
  const pkg =
    protocol === 'grpc'
      ? '@opentelemetry/exporter-trace-otlp-grpc'
      : protocol === 'http/json'
        ? '@opentelemetry/exporter-trace-otlp-http'
        : '@opentelemetry/exporter-trace-otlp-proto';
  // sdk-node warns of an unsupported protocol itself (diag) and uses http/protobuf: leave that case to it.
  if (!['grpc', 'http/json', 'http/protobuf'].includes(protocol)) return undefined;
  try {
    const fromSdkNode = createRequire(require.resolve('@opentelemetry/sdk-node'));
    const { OTLPTraceExporter } = fromSdkNode(pkg) as { OTLPTraceExporter: new () => unknown };
    const exporter = new OTLPTraceExporter();
    watchExports(exporter, 'traces', protocol);
    return [new tracing.BatchSpanProcessor(exporter as never)];
  } catch (err) {
    log.debug(`could not build the span processors (${(err as Error).message}); sdk-node builds them, unwatched`);
    return undefined;
  }
}
