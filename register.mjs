// `node --import ws-apm/register app.mjs`: install the ESM loader hook for `ws`, `undici`,
// `socket.io` and `socket.io-client` (so `import { WebSocketServer } from 'ws'` is seen), then instrument as with -r.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const unavailable = require('./dist/esm-hook.js').installEsmHook();
if (unavailable !== undefined) {
  process.stderr.write(`[ws-apm] warn: ESM loader hook unavailable (${unavailable}); ESM imports of ws are not instrumented\n`);
}
require('./dist/register.js');
