/**
 * `node -r ws-apm/register app.js`: instrument ws from the WS_APM_* environment
 * before the app loads. Never throws: a broken setup costs telemetry, not the app.
 */
import { instrument } from './index';
import { log } from './logger';

try {
  instrument();
} catch (err) {
  log.error(`ws-apm could not start, ws traffic is not instrumented: ${(err as Error).message}`);
}
