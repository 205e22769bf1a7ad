/**
 * socket.io broadcasts (`io.to(room).emit`, `socket.broadcast.emit`, `io.emit`): one operation
 * per `BroadcastOperator.prototype.emit`, whose recipients are the writes socket.io makes at
 * `Client.prototype.writeToEngine` while it runs (the in-memory adapter writes synchronously;
 * a cluster adapter's remote deliveries are not counted here).
 */
import type { Patches } from '../../patch/wrap';
import type { Events } from '../../tracer/events';
import { PROTOCOL } from './packets';
import type { AnyFn } from '../../types';

/** The broadcast being written, and how many sockets it was written to so far. */
let broadcasting: { recipients: number } | undefined;

export function patchBroadcasts(operator: object, client: object, events: Events, patches: Patches): void {
  patches.wrap(operator, 'emit', (original: AnyFn) =>
    function emit(this: { adapter?: { nsp?: { name?: unknown } } }, ev: unknown): unknown {
      const route = this.adapter?.nsp?.name;
      if (typeof route !== 'string') return original.apply(this, arguments as unknown as unknown[]);
      const outer = broadcasting;
      const counter = { recipients: 0 };
      broadcasting = counter;
      try {
        return events.broadcast(PROTOCOL, route, ev, original, this, arguments as unknown as unknown[], () => counter.recipients);
      } finally {
        broadcasting = outer;
      }
    },
  );

  patches.wrap(client, 'writeToEngine', (original: AnyFn) =>
    function writeToEngine(this: unknown): unknown {
      if (broadcasting !== undefined) broadcasting.recipients++;
      return original.apply(this, arguments as unknown as unknown[]);
    },
  );
}
