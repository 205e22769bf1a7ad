/** ws-apm's version, reported as the instrumentation scope version. */
export const VERSION: string = (require('../package.json') as { version: string }).version;
