'use strict';
// Fingerprints of the functions an instrumentation could patch (ws prototypes, http.Server#emit).
// The orchestrator computes them in its own pristine process and compares with what each server
// reports, to tell whether a variant patched anything (and that WS_APM_ENABLED=false patched nothing).
const crypto = require('node:crypto');
const http = require('node:http');

const EXTRA = ['emit', 'on', 'once', 'addListener', 'removeListener', 'off', 'addEventListener'];

function hashFn(fn) {
  return crypto.createHash('sha1').update(Function.prototype.toString.call(fn)).digest('hex').slice(0, 12);
}

function protoFingerprint(label, proto, out) {
  if (!proto) return;
  const names = new Set([...Object.getOwnPropertyNames(proto), ...EXTRA]);
  for (const name of names) {
    if (name === 'constructor') continue;
    let d;
    for (let p = proto; p && !d; p = Object.getPrototypeOf(p)) d = Object.getOwnPropertyDescriptor(p, name);
    if (!d) continue;
    if (typeof d.value === 'function') out[`${label}.${name}`] = hashFn(d.value);
    if (typeof d.get === 'function') out[`${label}.get ${name}`] = hashFn(d.get);
  }
}

function fingerprint(ws) {
  const out = {};
  const WebSocket = ws.WebSocket || ws;
  const WebSocketServer = ws.WebSocketServer || ws.Server;
  protoFingerprint('WebSocket.prototype', WebSocket.prototype, out);
  protoFingerprint('WebSocketServer.prototype', WebSocketServer && WebSocketServer.prototype, out);
  protoFingerprint('Receiver.prototype', ws.Receiver && ws.Receiver.prototype, out);
  protoFingerprint('Sender.prototype', ws.Sender && ws.Sender.prototype, out);
  out['http.Server.prototype.emit'] = hashFn(http.Server.prototype.emit);
  out['ws export'] = hashFn(ws);
  return out;
}

function diff(pristine, seen) {
  const changed = [];
  for (const k of Object.keys(seen)) if (pristine[k] !== seen[k]) changed.push(k);
  return changed.sort();
}

module.exports = { fingerprint, diff };
