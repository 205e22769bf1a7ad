/**
 * Per-series histogram state for adapters that aggregate histograms themselves. The
 * tracer passes the same attribute object for every value of a series (adapter.ts), so
 * the lookup is by identity then by metric name: two map reads and no string building
 * per recorded value.
 */
import type { Attributes } from '../tracer/adapter';

export class SeriesCache<T> {
  private readonly byAttributes = new WeakMap<Attributes, Map<string, T>>();

  /** The state of (`name`, `attributes`), made once by `create` (which may return a sentinel to skip). */
  get(name: string, attributes: Attributes, create: (name: string, attributes: Attributes) => T): T {
    let byName = this.byAttributes.get(attributes);
    if (byName === undefined) {
      byName = new Map();
      this.byAttributes.set(attributes, byName);
    }
    let state = byName.get(name);
    if (state === undefined) {
      state = create(name, attributes);
      byName.set(name, state);
    }
    return state;
  }
}
