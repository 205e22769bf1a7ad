/**
 * socket.io-client 4 under Node: the same protocol seen from the other end. A received event
 * is `WS RECEIVE {namespace} {event}` over its listeners (socket.io-client calls them
 * synchronously, also for events buffered before the connect), an ack received runs its
 * callback inside `WS RECEIVE {namespace} ack`, and emits and acks sent are `WS SEND` under the
 * active operation (none, and no span, when nothing is active, as for ws sends). Events link to
 * (or are children of) the client connect of the ws socket under them.
 */
import { Patches } from '../../patch/wrap';
import type { Protocol, ProtocolContext } from '../index';
import { ACK_NAME, asClass, chosen, patchSends, PROTOCOL } from './packets';
import type { AnyFn } from '../../types';

interface ClientSocket {
  readonly nsp?: unknown;
  readonly io?: { readonly engine?: { readonly transport?: { readonly name?: unknown; readonly ws?: unknown } } };
}

function clientSocketClass(mod: unknown): { prototype: Record<string, unknown> } | undefined {
  if (mod === null || (typeof mod !== 'object' && typeof mod !== 'function')) return undefined;
  const m = mod as Record<string, unknown>;
  return asClass(m.Socket) ?? asClass((m.default as Record<string, unknown> | undefined)?.Socket);
}

function transportOf(socket: ClientSocket): string | undefined {
  const name = socket.io?.engine?.transport?.name;
  return typeof name === 'string' ? name : undefined;
}

function wsOf(socket: ClientSocket): object | undefined {
  const transport = socket.io?.engine?.transport;
  const ws = transport?.name === 'websocket' ? transport.ws : undefined;
  return ws !== null && typeof ws === 'object' ? ws : undefined;
}

export function socketIoClient({ tracer }: ProtocolContext): Protocol {
  const { events, channels } = tracer;
  const patches = new Patches();
  const seen = new WeakSet<object>();

  return {
    name: 'socket.io-client',
    modules: ['socket.io-client'],
    entry: /[\\/]node_modules[\\/]socket\.io-client[\\/]build[\\/]cjs[\\/]index\.js$/,

    detect(exports) {
      const proto = clientSocketClass(exports)?.prototype;
      return proto !== undefined && ['onconnect', 'emitEvent', 'onack', 'packet', 'onclose'].every((m) => typeof proto[m] === 'function');
    },

    patch(exports) {
      if (!chosen(tracer.core.config.protocol)) return false;
      const proto = clientSocketClass(exports)?.prototype;
      if (proto === undefined) return false;
      if (seen.has(proto)) return true;
      seen.add(proto);
      patches.wrap(proto, 'onconnect', (original: AnyFn) =>
        function onconnect(this: ClientSocket): unknown {
          try {
            if (typeof this.nsp === 'string') channels.clientOpened(this, { protocol: PROTOCOL, route: this.nsp, over: wsOf(this), transport: transportOf(this) });
          } catch (err) {
            tracer.boundary.fault('ws-apm socket.io-client', err);
          }
          return original.apply(this, arguments as unknown as unknown[]);
        },
      );
      patches.wrap(proto, 'emitEvent', (original: AnyFn) =>
        function emitEvent(this: ClientSocket, args: unknown): unknown {
          const event = Array.isArray(args) ? args[0] : undefined;
          return events.handle(this, event, transportOf(this), original, this, arguments as unknown as unknown[]);
        },
      );
      patches.wrap(proto, 'onack', (original: AnyFn) =>
        function onack(this: ClientSocket): unknown {
          return events.handle(this, ACK_NAME, transportOf(this), original, this, arguments as unknown as unknown[]);
        },
      );
      patchSends(proto, events, patches);
      patches.wrap(proto, 'onclose', (original: AnyFn) =>
        function onclose(this: object): unknown {
          try {
            channels.closed(this);
          } catch (err) {
            tracer.boundary.fault('ws-apm socket.io-client', err);
          }
          return original.apply(this, arguments as unknown as unknown[]);
        },
      );
      return true;
    },

    unpatch() {
      patches.unwrapAll();
    },
  };
}
