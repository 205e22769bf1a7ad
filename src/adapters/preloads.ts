/**
 * What the command line preloads (`-r`/`--require`, `--import`, `--loader`), from the node
 * arguments and NODE_OPTIONS. An agent preloaded *after* `-r ws-apm/register` is not loaded
 * yet when ws-apm decides its backend, but will be started by its own preload before the
 * app runs: ws-apm must pick that backend (even when its settings are only in the agent's
 * config file) and must not start the agent itself (Elastic's second `start()` throws).
 */

const PRELOAD_FLAGS = new Set(['-r', '--require', '--import', '--loader', '--experimental-loader']);

/**
 * The preloaded specifiers, NODE_OPTIONS first (Node applies them first).
 * @internal exported for its unit test.
 */
export function preloadedModules(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env.NODE_OPTIONS,
): string[] {
  const out: string[] = [];
  for (const args of [splitOptions(nodeOptions ?? ''), execArgv]) {
    for (let i = 0; i < args.length; i++) {
      const arg = args[i];
      const eq = arg.indexOf('=');
      if (arg.startsWith('--') && eq > 0 && PRELOAD_FLAGS.has(arg.slice(0, eq))) out.push(arg.slice(eq + 1));
      else if (PRELOAD_FLAGS.has(arg) && i + 1 < args.length) out.push(args[++i]);
    }
  }
  return out;
}

/** NODE_OPTIONS split as Node does: on spaces, with double-quoted values kept whole. */
function splitOptions(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/"((?:\\.|[^"\\])*)"|(\S+)/g)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]);
  return out;
}

/** True when a preload on the command line matches `pattern` (before or after ws-apm's own). */
export function isPreloaded(pattern: RegExp): boolean {
  try {
    return preloadedModules().some((specifier) => pattern.test(specifier));
  } catch {
    return false;
  }
}

/** `-r elastic-apm-node/start` (or `start.js`): the agent starts itself from its env or config file. */
export const ELASTIC_START_PRELOAD = /(?:^|[\\/])elastic-apm-node[\\/]start(?:\.c?js)?$/;

/** `-r newrelic`: the agent loads (and starts) itself from its env or newrelic.js. */
export const NEWRELIC_PRELOAD = /(?:^|[\\/])newrelic(?:[\\/]index(?:\.js)?)?$/;
