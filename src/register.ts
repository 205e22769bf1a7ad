/**
 * `node -r ws-apm/register app.js` (and `--import ws-apm/register`, through register.mjs):
 * instrument ws from the WS_APM_* environment before the app loads. Never throws: a
 * broken setup costs telemetry, not the app.
 */
import { installEsmHook, isLoaderHooksThread, mainIsEsm } from './esm-hook';
import { instrument } from './index';
import { log } from './logger';

if (!isLoaderHooksThread()) {
  try {
    // An ESM app started with -r: its `import ... from 'ws'` needs the loader hook that
    // `--import ws-apm/register` installs (register.mjs installed it already in that case).
    if (mainIsEsm()) {
      const unavailable = installEsmHook();
      if (unavailable !== undefined) {
        log.warn(`ESM loader hook unavailable (${unavailable}): \`import ... from 'ws'\` is not instrumented, \`require('ws')\` is`);
      }
    }
    instrument();
  } catch (err) {
    log.error(`ws-apm could not start, ws traffic is not instrumented: ${(err as Error).message}`);
  }
}
