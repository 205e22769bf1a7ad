/**
 * ObjectIndex: what the tracer keeps about an object (a socket's state, an operation's sends) on the
 * object itself. The app's sockets must look the same as without ws-apm; frozen or sealed objects
 * still work (through a WeakMap); forgetting clears.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inspect } from 'node:util';
import { ObjectIndex } from '../../src/tracer/object-index';

class Socket {
  readyState = 1;
  protocol = '';
}

test('the value rides on the object, invisible to keys, inspect, JSON, spread and assign', () => {
  const index = new ObjectIndex<{ n: number }>('ws-apm.test');
  const socket = new Socket();
  const before = { keys: Object.keys(socket), inspected: inspect(socket), json: JSON.stringify(socket) };
  const state = { n: 1 };
  index.set(socket, state);
  assert.equal(index.get(socket), state);
  assert.equal(index.has(socket), true);
  assert.deepEqual(Object.keys(socket), before.keys);
  assert.equal(inspect(socket), before.inspected);
  assert.equal(JSON.stringify(socket), before.json);
  assert.equal(Object.getOwnPropertySymbols({ ...socket }).length, 0, 'a spread copies nothing of ours');
  assert.equal(Object.getOwnPropertySymbols(Object.assign({}, socket)).length, 0);
  // Set again (a socket tracked anew): replaced, still hidden.
  const next = { n: 2 };
  index.set(socket, next);
  assert.equal(index.get(socket), next);
  assert.equal(inspect(socket), before.inspected);
});

test('delete forgets: the value is released, the property stays (cleared)', () => {
  const index = new ObjectIndex<{ n: number }>('ws-apm.test');
  const socket = new Socket();
  index.set(socket, { n: 1 });
  index.delete(socket);
  assert.equal(index.get(socket), undefined);
  assert.equal(index.has(socket), false);
  index.delete(socket); // twice: nothing to do
  index.delete(new Socket()); // never set
  assert.equal(index.get(new Socket()), undefined);
});

test('frozen, sealed and non-extensible objects fall back to a WeakMap', () => {
  for (const lock of [Object.freeze, Object.seal, Object.preventExtensions]) {
    const index = new ObjectIndex<{ n: number }>('ws-apm.test');
    const socket = lock(new Socket());
    const state = { n: 1 };
    index.set(socket, state);
    assert.equal(index.get(socket), state, lock.name);
    assert.equal(Object.getOwnPropertySymbols(socket).length, 0, lock.name);
    index.delete(socket);
    assert.equal(index.get(socket), undefined, lock.name);
  }
});

test('two indexes never see each other\'s values (two tracers in one process)', () => {
  const a = new ObjectIndex<{ n: number }>('ws-apm.test');
  const b = new ObjectIndex<{ n: number }>('ws-apm.test');
  const socket = new Socket();
  a.set(socket, { n: 1 });
  assert.equal(b.get(socket), undefined);
  b.set(socket, { n: 2 });
  assert.deepEqual(a.get(socket), { n: 1 });
  assert.deepEqual(b.get(socket), { n: 2 });
});
