/**
 * ws's calling conventions, in one place: what a message's size and type are across
 * ws 7 and 8 and every data shape `send` accepts, and calling a ws method with exactly
 * as many arguments as its caller passed (listeners and ws itself can tell the difference).
 */
import type { AnyFn } from '../tracer/adapter';

/** Bytes of a message as ws accepts or delivers it (string, Buffer, ArrayBuffer, views, fragments, Blob). */
export function sizeOf(data: unknown): number {
  if (typeof data === 'string') return Buffer.byteLength(data);
  if (data === null || data === undefined) return 0;
  const d = data as { byteLength?: unknown; size?: unknown };
  if (typeof d.byteLength === 'number') return d.byteLength;
  if (Array.isArray(data)) {
    let total = 0;
    for (const part of data) total += sizeOf(part);
    return total;
  }
  if (typeof d.size === 'number') return d.size; // Blob
  if (typeof data === 'number') return String(data).length;
  return 0;
}

/** Is an incoming message binary? ws 8 says so (`isBinary`); ws 7 delivers text as strings. */
export function receivedBinary(data: unknown, isBinary: unknown): boolean {
  return isBinary === undefined ? typeof data !== 'string' : isBinary === true;
}

/** Is an outgoing message binary? `options.binary` when given, else by the data's type. */
export function sentBinary(data: unknown, options: unknown): boolean {
  if (typeof options === 'object' && options !== null) {
    const binary = (options as { binary?: unknown }).binary;
    if (typeof binary === 'boolean') return binary;
  }
  return typeof data !== 'string' && typeof data !== 'number';
}

/** Call `fn` with exactly `argc` of the arguments `a`, `b`, `c`. */
export function callWithArgc(fn: AnyFn, thisArg: unknown, argc: number, a: unknown, b: unknown, c: unknown): unknown {
  switch (argc) {
    case 0:
      return fn.call(thisArg);
    case 1:
      return fn.call(thisArg, a);
    case 2:
      return fn.call(thisArg, a, b);
    default:
      return fn.call(thisArg, a, b, c);
  }
}
