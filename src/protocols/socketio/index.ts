/**
 * socket.io 4 (on engine.io 6): its own prototypes, where it dispatches, patched reversibly.
 *
 * - `Namespace.prototype.run(socket, fn)` runs the namespace's `io.use` middlewares: the connect
 *   operation covers them and, on socket.io's next tick, the app's connection handler; a
 *   middleware's `next(err)` is a rejected connect.
 * - `Socket.prototype.run(event, fn)` runs `socket.use` middlewares, then socket.io calls the
 *   listeners on a `process.nextTick`: the event's operation covers both (the tick is queued
 *   inside it) and ends when the listeners return, where socket.io calls them (`emitUntyped`,
 *   which finds its event in a queue of pending dispatches: ticks run in the order queued).
 *   Listeners are never wrapped. A failed middleware's event ends on a tick after socket.io's.
 * - `Socket.prototype.packet` writes every event and ack of one socket; `BroadcastOperator.prototype.emit`
 *   every broadcast, whose recipients are counted at `Client.prototype.writeToEngine`.
 * - engine.io's `onWebSocket` hands each ws socket to the tracer's frames part: heartbeats are
 *   heartbeats, every frame is counted, and no frame is an operation of its own.
 * - OpenTelemetry's socket.io instrumentation stands aside (aside.ts): each
 *   event is recorded once, by ws-apm, whichever was loaded first.
 */
import path from 'node:path';
import { log } from '../../logger';
import { Patches } from '../../patch/wrap';
import type { Opening } from '../../tracer/channels';
import type { EventRun } from '../../tracer/events';
import type { Protocol, ProtocolContext } from '../index';
import { standAside } from './aside';
import { patchBroadcasts } from './broadcast';
import { engineFrame, patchEngine } from './engine';
import { ACK_NAME, asClass, chosen, type Ctor, patchSends, PROTOCOL } from './packets';
import type { AnyFn } from '../../types';

interface IoSocket {
  readonly connected?: boolean;
  readonly nsp?: { readonly name?: unknown };
  readonly handshake?: { readonly headers?: Record<string, string | string[] | undefined> };
  readonly conn?: { readonly transport?: { readonly name?: unknown; readonly socket?: unknown } };
}

/** socket.io's classes from its CJS exports or its ESM namespace. */
function classes(mod: unknown): { server?: Ctor; socket?: Ctor; namespace?: Ctor } {
  if (mod === null || (typeof mod !== 'object' && typeof mod !== 'function')) return {};
  const m = mod as Record<string, unknown>;
  const d = (m.default ?? {}) as Record<string, unknown>;
  return {
    server: asClass(m.Server) ?? asClass(d.Server),
    socket: asClass(m.Socket) ?? asClass(d.Socket),
    namespace: asClass(m.Namespace) ?? asClass(d.Namespace),
  };
}

function transportOf(socket: IoSocket): string | undefined {
  const name = socket.conn?.transport?.name;
  return typeof name === 'string' ? name : undefined;
}

/** The ws socket under a socket.io socket on the websocket transport. */
function wsOf(socket: IoSocket): object | undefined {
  const transport = socket.conn?.transport;
  const ws = transport?.name === 'websocket' ? transport.socket : undefined;
  return ws !== null && typeof ws === 'object' ? ws : undefined;
}

/**
 * Events whose socket.io tick will call their listeners, oldest first. socket.io queues one tick
 * per event and ticks run in the order queued, so when its tick calls `emitUntyped` on a socket,
 * that socket's first event here is the one dispatched; events queued before it are stale (their
 * tick called no listener) and are ended there. The event ends when its listeners return: no tick
 * of ours, no allocation. A socket that closes first ends its queued events.
 */
let first: EventRun | undefined;
let last: EventRun | undefined;
let queued = 0;
/** More pending dispatches than this means socket.io no longer calls emitUntyped: the oldest are ended. */
const MAX_QUEUED = 10_000;

function enqueue(run: EventRun): void {
  if (last === undefined) first = run;
  else last.next = run;
  last = run;
  queued++;
}

/** Remove `run` (found after `prev`) from the queue. */
function unlink(run: EventRun, prev: EventRun | undefined): void {
  if (prev === undefined) first = run.next;
  else prev.next = run.next;
  if (last === run) last = prev;
  run.next = undefined;
  queued--;
}
export function socketIo({ tracer, frameWrites }: ProtocolContext): Protocol {
  const { events, channels } = tracer;
  const patches = new Patches();
  const seen = new WeakSet<object>();

  // Also run on ticks of ours: a fault here would be an uncaught exception in the app, so it stays here.
  const leave = (run: EventRun, err: unknown): void => {
    try {
      events.ended(run, err ?? undefined);
    } catch (fault) {
      tracer.boundary.fault('ws-apm socket.io', fault);
    }
  };
  /** A queued event whose listeners will not be called: out of the queue (found after `prev`), and ended. */
  const drop = (run: EventRun, prev: EventRun | undefined): void => {
    unlink(run, prev);
    leave(run, undefined);
  };
  /** The queued event socket.io is dispatching on `socket`, out of the queue; stale ones before it ended. */
  const dispatched = (socket: unknown): EventRun | undefined => {
    let at = first;
    while (at !== undefined && at.socket !== socket) at = at.next;
    if (at === undefined) return undefined; // not a dispatch of a queued event
    while (first !== at) drop(first!, undefined);
    unlink(at, undefined);
    return at;
  };
  /** `socket` closed: its queued events will not be dispatched. */
  const closedQueued = (socket: unknown): void => {
    let prev: EventRun | undefined;
    let at = first;
    while (at !== undefined) {
      const next = at.next;
      if (at.socket === socket) drop(at, prev);
      else prev = at;
      at = next;
    }
  };
  const queue = (run: EventRun): void => {
    enqueue(run);
    if (queued > MAX_QUEUED) drop(first!, undefined);
  };
  /** Set once emitUntyped is wrapped: events end when their listeners return, else on a tick after socket.io's. */
  let dispatchWrapped = false;
  const settle = (opening: Opening, socket: IoSocket, err: unknown): void => {
    try {
      channels.opened(opening, err == null && socket.connected === true, err ?? undefined);
    } catch (fault) {
      tracer.boundary.fault('ws-apm socket.io', fault);
    }
  };
  // socket.io-client (engine.io-client) under Node connects with ws: its sockets are recognised by
  // engine.io's protocol-version parameter, so their heartbeats are heartbeats too.
  tracer.frames.claimUrls(PROTOCOL, /[?&]EIO=\d+(?:&|$)/, engineFrame);
  const claim = (ws: object): void => {
    if (tracer.frames.claim(ws, PROTOCOL, engineFrame)) frameWrites.watch(ws, () => tracer.frames.readAtWrite(ws));
  };

  function patchNamespace(proto: object): void {
    patches.wrap(proto, 'run', (original: AnyFn) =>
      function run(this: { name?: unknown }, socket: IoSocket, fn: AnyFn): unknown {
        if (typeof fn !== 'function' || socket === null || typeof socket !== 'object' || typeof this.name !== 'string') {
          return original.apply(this, arguments as unknown as unknown[]);
        }
        let opening: Opening;
        try {
          opening = channels.opening(socket, {
            protocol: PROTOCOL,
            route: this.name,
            over: wsOf(socket),
            headers: socket.handshake?.headers,
            transport: transportOf(socket),
          });
        } catch (err) {
          tracer.boundary.fault('ws-apm socket.io', err);
          return original.apply(this, arguments as unknown as unknown[]);
        }
        // socket.io settles on its next tick (connects and calls the app's handler, or sends
        // CONNECT_ERROR): that tick is queued inside the connect, and ours right after it ends it.
        const done = function (this: unknown, err?: unknown): unknown {
          const out = channels.run(opening, fn, this, arguments as unknown as unknown[]);
          process.nextTick(settle, opening, socket, err);
          return out;
        };
        return channels.run(opening, original, this, [socket, done]);
      },
    );
  }

  function patchSocket(proto: Record<string, unknown>): void {
    patches.wrap(proto, 'run', (original: AnyFn) =>
      function run(this: IoSocket, event: unknown, fn: AnyFn): unknown {
        if (!Array.isArray(event) || typeof fn !== 'function') return original.apply(this, arguments as unknown as unknown[]);
        let traced: EventRun | undefined;
        try {
          traced = events.received(this, event[0], transportOf(this));
        } catch (err) {
          tracer.boundary.fault('ws-apm socket.io', err);
        }
        if (traced === undefined) return original.apply(this, arguments as unknown as unknown[]);
        const ev = traced;
        ev.socket = this;
        // eslint-disable-next-line @typescript-eslint/no-this-alias
        const socket = this;
        const done = function (this: unknown, err?: unknown): unknown {
          // socket.io's tick calls the listeners unless a middleware failed or the socket closed:
          // then it ends on a tick of ours right after socket.io's (which it covers).
          const toListeners = dispatchWrapped && err == null && socket.connected === true;
          if (toListeners) queue(ev);
          let out: unknown;
          try {
            out = events.run(ev, fn, this, arguments as unknown as unknown[]);
          } finally {
            if (!toListeners) process.nextTick(leave, ev, err);
          }
          return out;
        };
        try {
          return events.run(ev, original, this, [event, done]);
        } catch (err) {
          leave(ev, err);
          throw err;
        }
      },
    );

    // socket.io calls the listeners through the parent class's emitUntyped (`super.emitUntyped`).
    const parent = Object.getPrototypeOf(proto) as Record<string, unknown> | null;
    if (parent !== null && typeof parent.emitUntyped === 'function') {
      patches.wrap(parent, 'emitUntyped', (original: AnyFn) =>
        function emitUntyped(this: unknown): unknown {
          const current = first !== undefined ? dispatched(this) : undefined;
          if (current === undefined) return original.apply(this, arguments as unknown as unknown[]);
          let out: unknown;
          try {
            out = original.apply(this, arguments as unknown as unknown[]);
          } catch (err) {
            leave(current, err);
            throw err;
          }
          leave(current, undefined);
          return out;
        },
      );
      dispatchWrapped = true;
    }

    patchSends(proto, events, patches);

    // An ack the client sent back for an event the server emitted: its callback runs inside `WS RECEIVE {namespace} ack`.
    patches.wrap(proto, 'onack', (original: AnyFn) =>
      function onack(this: IoSocket): unknown {
        return events.handle(this, ACK_NAME, transportOf(this), original, this, arguments as unknown as unknown[]);
      },
    );

    patches.wrap(proto, '_onclose', (original: AnyFn) =>
      function _onclose(this: object): unknown {
        try {
          if (first !== undefined) closedQueued(this);
          channels.closed(this);
        } catch (err) {
          tracer.boundary.fault('ws-apm socket.io', err);
        }
        return original.apply(this, arguments as unknown as unknown[]);
      },
    );
  }

  /** socket.io's own file next to its entry (the same module instance socket.io uses), or undefined. */
  function internal(baseDir: string | undefined, file: string, name: string): Ctor | undefined {
    if (baseDir === undefined) return undefined;
    try {
      return asClass((require(path.join(baseDir, 'dist', file)) as Record<string, unknown>)[name]);
    } catch (err) {
      log.debug(`socket.io ${file} not found (${(err as Error).message}): its broadcasts are not recorded`);
      return undefined;
    }
  }

  return {
    name: PROTOCOL,
    modules: ['socket.io'],
    entry: /[\\/]node_modules[\\/]socket\.io[\\/]dist[\\/]index\.js$/,

    detect(exports) {
      const { server, socket, namespace } = classes(exports);
      return (
        server !== undefined &&
        typeof socket?.prototype.run === 'function' &&
        typeof socket.prototype.packet === 'function' &&
        typeof namespace?.prototype.run === 'function' &&
        typeof server.prototype.bind === 'function'
      );
    },

    patch(exports, baseDir) {
      // WS_APM_PROTOCOL=none (or another protocol): its traffic stays plain ws messages.
      if (!chosen(tracer.core.config.protocol)) return false;
      const { server, socket, namespace } = classes(exports);
      if (server === undefined || socket === undefined || namespace === undefined) return false;
      if (seen.has(socket.prototype)) return true;
      seen.add(socket.prototype);
      const broadcast = internal(baseDir, 'broadcast-operator.js', 'BroadcastOperator');
      const client = internal(baseDir, 'client.js', 'Client');
      standAside(socket.prototype, 'on');
      standAside(socket.prototype, 'emit');
      standAside(server.prototype, 'on');
      if (broadcast !== undefined) standAside(broadcast.prototype, 'emit');
      patchNamespace(namespace.prototype);
      patchSocket(socket.prototype);
      if (broadcast !== undefined && client !== undefined) patchBroadcasts(broadcast.prototype, client.prototype, events, patches);
      patches.wrap(server.prototype, 'bind', (original: AnyFn) =>
        function bind(this: unknown, engine: unknown): unknown {
          try {
            patchEngine(engine, patches, claim);
          } catch (err) {
            tracer.boundary.fault('ws-apm socket.io', err);
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
