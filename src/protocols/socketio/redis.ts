/**
 * `@socket.io/redis-adapter` (8): a broadcast on instance A is published to Redis and delivered
 * by instance B's adapter (`onmessage` → the in-memory adapter's `broadcast`), outside any
 * operation of B. What A publishes is its parser's encoding of `[uid, packet, opts]`: while A's
 * `broadcast` runs inside an operation, the active trace context is appended as a fourth element
 * (adapters read only the first three, so instances without ws-apm deliver as before). B takes it
 * off before the adapter sees it and delivers inside it: `WS SEND {namespace} {event}`, a child of
 * A's broadcast, with B's recipients. Only the room broadcast path is carried (not
 * `broadcastWithAck`, `serverSideEmit`, nor the sharded adapter).
 */
import { Patches } from '../../patch/wrap';
import type { Protocol, ProtocolContext } from '../index';
import { broadcastCounted } from './broadcast';
import { asClass, BINARY_EVENT, EVENT } from './packets';
import type { AnyFn } from '../../types';

type Carrier = Record<string, string>;

interface RedisAdapter {
  readonly uid?: unknown;
  readonly parser?: unknown;
  readonly nsp?: { readonly name?: unknown };
}

/** A's broadcast being encoded: its adapter's uid and the context to append. */
let publishing: { uid: unknown; carrier: Carrier } | undefined;
/** B's message being decoded and delivered: by which adapter, its packet once decoded, and the context it carried. */
let receiving: { adapter: object; decoded: boolean; packet: unknown; carrier: Carrier | undefined } | undefined;

function adapterClass(mod: unknown): { prototype: Record<string, unknown> } | undefined {
  if (mod === null || (typeof mod !== 'object' && typeof mod !== 'function')) return undefined;
  const m = mod as Record<string, unknown>;
  return asClass(m.RedisAdapter) ?? asClass((m.default as Record<string, unknown> | undefined)?.RedisAdapter);
}

/** The in-memory adapter's prototype the Redis adapter delivers through (`super.broadcast` → `apply`). */
function baseOf(proto: object): Record<string, unknown> | undefined {
  const base = Object.getPrototypeOf(proto) as Record<string, unknown> | null;
  return base !== null && typeof base.broadcast === 'function' && typeof base.apply === 'function' ? base : undefined;
}

function eventOf(packet: unknown): unknown {
  const p = packet as { type?: unknown; data?: unknown } | null;
  if (p === null || typeof p !== 'object' || (p.type !== EVENT && p.type !== BINARY_EVENT)) return undefined;
  return Array.isArray(p.data) ? p.data[0] : undefined;
}

export function socketIoRedisAdapter({ tracer }: ProtocolContext): Protocol {
  const { events, handoff } = tracer;
  const patches = new Patches();
  const seen = new WeakSet<object>();
  const parsers = new WeakSet<object>();

  /** The adapter's parser (notepack.io by default, or the app's), wrapped once: encode appends, decode takes off. */
  function watchParser(parser: unknown): void {
    if (parser === null || typeof parser !== 'object' || parsers.has(parser)) return;
    parsers.add(parser);
    patches.wrap(parser, 'encode', (original: AnyFn) =>
      function encode(this: unknown, value: unknown): unknown {
        const p = publishing;
        if (p === undefined || !Array.isArray(value) || value.length !== 3 || value[0] !== p.uid) {
          return original.apply(this, arguments as unknown as unknown[]);
        }
        publishing = undefined;
        const args = Array.prototype.slice.call(arguments) as unknown[];
        args[0] = [value[0], value[1], value[2], p.carrier];
        return original.apply(this, args);
      },
    );
    patches.wrap(parser, 'decode', (original: AnyFn) =>
      function decode(this: unknown): unknown {
        const out: unknown = original.apply(this, arguments as unknown as unknown[]);
        const r = receiving;
        if (r === undefined || r.decoded || !Array.isArray(out)) return out;
        r.decoded = true;
        r.packet = out[1];
        if (out.length === 4) {
          const carrier: unknown = out.pop();
          if (carrier !== null && typeof carrier === 'object') r.carrier = carrier as Carrier;
        }
        return out;
      },
    );
  }

  function patchAdapter(proto: Record<string, unknown>, base: Record<string, unknown>): void {
    patches.wrap(proto, 'broadcast', (original: AnyFn) =>
      function broadcast(this: RedisAdapter, _packet: unknown, opts: { flags?: { local?: unknown } } | undefined): unknown {
        let carrier: Carrier | undefined;
        try {
          if (opts?.flags?.local !== true) {
            watchParser(this.parser);
            carrier = handoff.inject({});
          }
        } catch (err) {
          tracer.boundary.fault('ws-apm socket.io redis-adapter', err);
        }
        if (carrier === undefined || Object.keys(carrier).length === 0) return original.apply(this, arguments as unknown as unknown[]);
        const outer = publishing;
        publishing = { uid: this.uid, carrier };
        try {
          return original.apply(this, arguments as unknown as unknown[]);
        } finally {
          publishing = outer;
        }
      },
    );

    patches.wrap(proto, 'onmessage', (original: AnyFn) =>
      function onmessage(this: RedisAdapter & object): unknown {
        try {
          watchParser(this.parser);
        } catch (err) {
          tracer.boundary.fault('ws-apm socket.io redis-adapter', err);
        }
        const outer = receiving;
        receiving = { adapter: this, decoded: false, packet: undefined, carrier: undefined };
        try {
          return original.apply(this, arguments as unknown as unknown[]);
        } finally {
          receiving = outer;
        }
      },
    );

    // The delivery `onmessage` makes through the in-memory adapter (`super.broadcast`, whose
    // writes to the room's sockets all happen in its `apply`): one broadcast operation, inside the
    // context A carried. Not `broadcast` itself: socket.io's `io.close()` reassigns the in-memory
    // adapter's `broadcast` (restoring what its uWebSockets.js support replaced), which would drop
    // the wrapper. Every other `apply` (A's own local delivery, other adapters) passes through.
    patches.wrap(base, 'apply', (original: AnyFn) =>
      function apply(this: RedisAdapter & object): unknown {
        const r = receiving;
        const route = this.nsp?.name;
        if (r === undefined || r.adapter !== this || !r.decoded || typeof route !== 'string') return original.apply(this, arguments as unknown as unknown[]);
        receiving = undefined;
        const args = arguments as unknown as unknown[];
        const deliver = (): unknown => broadcastCounted(events, route, eventOf(r.packet), original, this, args);
        return r.carrier === undefined ? deliver() : handoff.runWithContext(r.carrier, deliver);
      },
    );
  }

  return {
    name: '@socket.io/redis-adapter',
    modules: ['@socket.io/redis-adapter'],
    entry: /[\\/]node_modules[\\/]@socket\.io[\\/]redis-adapter[\\/]dist[\\/]index\.js$/,

    detect(exports) {
      const proto = adapterClass(exports)?.prototype;
      return proto !== undefined && typeof proto.broadcast === 'function' && typeof proto.onmessage === 'function' && baseOf(proto) !== undefined;
    },

    patch(exports) {
      const proto = adapterClass(exports)?.prototype;
      const base = proto === undefined ? undefined : baseOf(proto);
      if (proto === undefined || base === undefined) return false;
      if (seen.has(proto)) return true;
      seen.add(proto);
      patchAdapter(proto, base);
      return true;
    },

    unpatch() {
      patches.unwrapAll();
    },
  };
}
