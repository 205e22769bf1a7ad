/**
 * Raw TCP helpers for hostile-input tests: hand-written upgrade requests and frames,
 * half requests, and heap measurement after a forced GC.
 */
import net from 'node:net';
import { once } from 'node:events';
import v8 from 'node:v8';
import vm from 'node:vm';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

export function upgradeRequest(path: string, extraHeaderLines: string[] = []): string {
  return [
    `GET ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Connection: Upgrade',
    'Upgrade: websocket',
    'Sec-WebSocket-Version: 13',
    `Sec-WebSocket-Key: ${KEY}`,
    ...extraHeaderLines,
    '',
    '',
  ].join('\r\n');
}

/**
 * Send `text` over raw TCP; resolve with everything received until the server closes,
 * or until `until` matches, or right after writing (`immediate`). `end` half-closes our side after writing.
 */
export async function rawExchange(
  port: number,
  text: string | Buffer,
  opts: { until?: RegExp; end?: boolean; immediate?: boolean } = {},
): Promise<{ response: string; socket: net.Socket }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined); // a reset after a 431 is expected
  await once(socket, 'connect');
  let response = '';
  return new Promise((resolve) => {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      resolve({ response, socket });
    };
    socket.on('data', (chunk: Buffer) => {
      response += chunk.toString('latin1');
      if (opts.until && opts.until.test(response)) finish();
    });
    socket.on('close', finish);
    socket.write(text);
    if (opts.end) socket.end();
    if (opts.immediate) finish();
  });
}

/** A masked client frame (opcode, payload); `fin` false for a fragment; `declared` to lie about the length. */
export function clientFrame(opcode: number, payload: Buffer, fin = true, declared = payload.length): Buffer {
  const mask = Buffer.from([1, 2, 3, 4]);
  let header: Buffer;
  if (declared < 126) {
    header = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | declared]);
  } else if (declared < 65536) {
    header = Buffer.alloc(4);
    header[0] = (fin ? 0x80 : 0) | opcode;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(declared, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = (fin ? 0x80 : 0) | opcode;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(declared), 2);
  }
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i] ^= mask[i % 4];
  return Buffer.concat([header, mask, masked]);
}

let gcFn: (() => void) | undefined;
/** A forced full GC without --expose-gc. */
export function gc(): void {
  if (gcFn === undefined) {
    v8.setFlagsFromString('--expose-gc');
    gcFn = vm.runInNewContext('gc') as () => void;
  }
  gcFn();
}

export async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage().heapUsed;
}

/** Run `fn` over `items` with at most `limit` in flight. */
export async function pool<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** A port on 127.0.0.1 that refuses connections until `release()`. */
export interface RefusingPort {
  port: number;
  release(): Promise<void>;
}

/**
 * A port on 127.0.0.1 where a connect fails with ECONNREFUSED, every time, until `release()`.
 * It is the local port of an open loopback connection: nothing listens on it, and while that
 * connection is open no other socket can bind it. (A port bound and then released can be taken
 * at once by any `listen(0)` on the machine, and a connect then reaches that server instead.)
 */
export async function refusingPort(): Promise<RefusingPort> {
  const accepted: net.Socket[] = [];
  const server = net.createServer((s) => accepted.push(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const holder = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(holder, 'connect');
  return {
    port: holder.localPort!,
    async release() {
      holder.destroy();
      for (const s of accepted) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
