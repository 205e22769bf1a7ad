/** A self-signed certificate for 127.0.0.1 written to a temporary directory (cert.pem, key.pem). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  remove(): void;
}

export async function writeSelfSignedCert(): Promise<TlsFiles> {
  const selfsigned = require('selfsigned') as {
    generate(attrs: unknown, options: unknown): Promise<{ cert: string; private: string }>;
  };
  const pems = await selfsigned.generate([{ name: 'commonName', value: '127.0.0.1' }], {
    days: 1,
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ws-apm-example-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  writeFileSync(cert, pems.cert);
  writeFileSync(key, pems.private, { mode: 0o600 });
  return { cert, key, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
