/**
 * The app's socket → its state, on the socket itself under a private symbol rather than in a
 * WeakMap: a property load is about 10 ns where a WeakMap lookup is about 25 ns (measured, 10,000
 * keys, Node 20 and 24), and the WeakMap's table held an entry per connection. A non-extensible
 * object falls back to a WeakMap. One use per class: a second kind of object through the same
 * `get` makes its property load megamorphic, and every lookup 2.3× slower (the operation index in
 * messages.ts is its own class for that reason).
 */
export class ObjectIndex<V extends object> {
  private readonly key: symbol;
  private fallback: WeakMap<object, V> | undefined;

  constructor(description: string) {
    this.key = Symbol(description);
  }

  get(o: object): V | undefined {
    const value = (o as Record<symbol, V | undefined>)[this.key];
    return value !== undefined || this.fallback === undefined ? value : this.fallback.get(o);
  }

  has(o: object): boolean {
    return this.get(o) !== undefined;
  }

  set(o: object, value: V): void {
    // Non-enumerable: the app's socket looks the same to keys, `util.inspect`, JSON, spreads and `Object.assign`.
    if (!Object.isExtensible(o)) (this.fallback ??= new WeakMap()).set(o, value);
    else Object.defineProperty(o, this.key, { value, writable: true, configurable: true, enumerable: false });
  }

  /** Forget `o`: its property is cleared, not deleted (a delete would turn the object's layout into a slow dictionary). */
  delete(o: object): void {
    if (Object.prototype.hasOwnProperty.call(o, this.key)) Reflect.set(o, this.key, undefined);
    this.fallback?.delete(o);
  }
}
