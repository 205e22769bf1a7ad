/**
 * Any function, whatever its parameters and result: what the patch layer wraps and hands on
 * unchanged (the app's arguments in, its return value out). `unknown` cannot say this: a
 * function taking a string is not a function of `unknown[]`.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the one place ws-apm spells "any function"
export type AnyFn = (...args: any[]) => any;
