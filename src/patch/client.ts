/**
 * Client connections. ws creates its upgrade request with `http.request` (ws 8) or
 * `http.get` (ws 7), looked up on the module at call time, from a private options
 * object that already holds the WebSocket handshake headers. Wrapping those four
 * functions (http and https) lets the tracer inject trace context into that object
 * before the request exists, on both major versions, without touching ws's private
 * fields. Any other request passes straight through after one property check.
 */
import type { ClientRequestOptions, Tracer } from '../tracer/tracer';
import type { Patches } from './wrap';

type AnyFn = (...args: any[]) => any;

/** ws's own upgrade request options: a single object carrying its handshake headers. */
function isWsUpgrade(options: unknown, argc: number): options is ClientRequestOptions {
  if (argc > 2 || options === null || typeof options !== 'object') return false;
  const headers = (options as ClientRequestOptions).headers;
  return (
    headers !== undefined &&
    headers !== null &&
    headers.Upgrade === 'websocket' &&
    headers['Sec-WebSocket-Key'] !== undefined &&
    typeof (options as { createConnection?: unknown }).createConnection === 'function'
  );
}

export function patchClientRequests(httpModule: object, tracer: Tracer, patches: Patches): void {
  for (const name of ['request', 'get']) {
    patches.wrap(httpModule, name, (original: AnyFn) =>
      function request(this: unknown, options: unknown): unknown {
        if (!isWsUpgrade(options, arguments.length)) return original.apply(this, arguments as unknown as unknown[]);
        return tracer.clientRequest(options, original, this, Array.prototype.slice.call(arguments));
      },
    );
  }
}
