/**
 * The public hand-off API (src/index.ts): carry the active trace context through a broker
 * (`inject` / `extract` / `runWithContext`), and name the user of a socket (`setUser`).
 */
import type { Carrier } from './adapter';
import type { TracerCore } from './core';
import { sanitizeCarrier } from './propagation';

const MAX_USER_ID = 256;

export class Handoff {
  constructor(private readonly core: TracerCore) {}

  inject(carrier: Record<string, string>): Record<string, string> {
    this.core.adapter.inject(undefined, carrier);
    return carrier;
  }

  extract(carrier: Carrier): unknown {
    const clean = sanitizeCarrier(carrier, this.core.adapter.propagationHeaders);
    return clean === undefined ? undefined : this.core.adapter.extract(clean);
  }

  runWithContext<R>(carrier: Carrier, fn: () => R): R {
    const clean = sanitizeCarrier(carrier, this.core.adapter.propagationHeaders);
    return clean === undefined ? fn() : this.core.adapter.runWithRemote(clean, fn);
  }

  setUser(ws: object, id: string | undefined): void {
    const state = this.core.sockets.get(ws);
    if (state !== undefined) state.user = id === undefined ? undefined : String(id).slice(0, MAX_USER_ID);
  }
}
