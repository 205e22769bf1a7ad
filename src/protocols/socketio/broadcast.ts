/**
 * socket.io broadcasts (`io.to(room).emit`, `socket.broadcast.emit`, `io.emit`): one operation
 * per `BroadcastOperator.prototype.emit`, whose recipients are the writes socket.io makes at
 * `Client.prototype.writeToEngine` while it runs (the in-memory adapter writes synchronously;
 * another instance's deliveries through the Redis adapter are counted there: redis.ts).
 */
import type { Patches } from '../../patch/wrap';
import type { Events } from '../../tracer/events';
import { PROTOCOL } from './packets';
import type { AnyFn } from '../../types';

/** The broadcast being written, and how many sockets it was written to so far. */
let broadcasting: { recipients: number } | undefined;

/** Run `fn`, which writes a broadcast, as one `WS SEND {route} {event}` counting the sockets it writes to. */
export function broadcastCounted(events: Events, route: string, ev: unknown, fn: AnyFn, thisArg: unknown, args: unknown[]): unknown {
  const outer = broadcasting;
  const counter = { recipients: 0 };
  broadcasting = counter;
  try {
    return events.broadcast(PROTOCOL, route, ev, fn, thisArg, args, () => counter.recipients);
  } finally {
    broadcasting = outer;
  }
}

export function patchBroadcasts(operator: object, client: object, events: Events, patches: Patches): void {
  patches.wrap(operator, 'emit', (original: AnyFn) =>
    function emit(this: { adapter?: { nsp?: { name?: unknown } } }, ev: unknown): unknown {
      const route = this.adapter?.nsp?.name;
      if (typeof route !== 'string') return original.apply(this, arguments as unknown as unknown[]);
      return broadcastCounted(events, route, ev, original, this, arguments as unknown as unknown[]);
    },
  );

  patches.wrap(client, 'writeToEngine', (original: AnyFn) =>
    function writeToEngine(this: unknown): unknown {
      if (broadcasting !== undefined) broadcasting.recipients++;
      return original.apply(this, arguments as unknown as unknown[]);
    },
  );
}
