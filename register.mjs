// `node --import ws-apm/register app.mjs`: install the ESM loader hook for `ws`,
// `undici`, `socket.io` and `socket.io-client` only (so `import { WebSocketServer } from 'ws'` is seen), then instrument as with -r.
import { register } from 'node:module';
import { createRequire } from 'node:module';

try {
  register('import-in-the-middle/hook.mjs', import.meta.url, { data: { include: ['ws', 'undici', 'socket.io', 'socket.io-client'] } });
} catch (err) {
  process.stderr.write(`[ws-apm] warn: ESM loader hook unavailable (${err && err.message}); ESM imports of ws are not instrumented\n`);
}

createRequire(import.meta.url)('./dist/register.js');
