// Room fan-out between server instances. With REDIS_URL: Redis pub/sub (ioredis), so any
// number of instances (processes, containers) share rooms. Without: an in-process broker,
// for instances started in the same process (PORTS=0,0), so the example runs with no service.
// Both serialize the message the same way, so what an instance delivers is what Redis would carry.
'use strict';
const { AsyncResource } = require('node:async_hooks');
const { EventEmitter } = require('node:events');

const CHANNEL = 'chat:rooms';

/**
 * @typedef {{ room: string, id?: string, from: string, text: string, origin: string, ctx: Record<string, string> }} RoomMessage
 * @typedef {{ publish(m: RoomMessage): Promise<void>, subscribe(fn: (m: RoomMessage) => void): Promise<void>, close(): Promise<void> }} Broker
 */

/** @returns {Broker} */
function memoryBroker() {
  const bus = new EventEmitter();
  bus.setMaxListeners(0);
  // Bound to the context the broker was created in (none), so a delivery does not silently
  // inherit the publisher's context: like with Redis, only the carried `ctx` links them.
  const deliver = AsyncResource.bind((/** @type {string} */ raw) => bus.emit('message', raw));
  return {
    async publish(m) {
      const raw = JSON.stringify(m);
      // Asynchronous like a real broker: delivery never runs inside the publisher's call stack.
      setImmediate(deliver, raw);
    },
    async subscribe(fn) {
      bus.on('message', (raw) => fn(JSON.parse(raw)));
    },
    async close() {
      bus.removeAllListeners();
    },
  };
}

/** @param {string} url @returns {Broker} */
function redisBroker(url) {
  const { Redis } = require('ioredis');
  const options = { maxRetriesPerRequest: 3, lazyConnect: false };
  const pub = new Redis(url, options);
  const sub = new Redis(url, options);
  for (const c of [pub, sub]) c.on('error', (/** @type {Error} */ err) => console.error(`redis: ${err.message}`));
  return {
    async publish(m) {
      await pub.publish(CHANNEL, JSON.stringify(m));
    },
    async subscribe(fn) {
      sub.on('message', (/** @type {string} */ _channel, /** @type {string} */ raw) => {
        try {
          fn(JSON.parse(raw));
        } catch (err) {
          console.error(`broker: bad message: ${/** @type {Error} */ (err).message}`);
        }
      });
      await sub.subscribe(CHANNEL);
    },
    async close() {
      await Promise.allSettled([pub.quit(), sub.quit()]);
    },
  };
}

/** One broker per process: Redis when `url` is set, else in-process. @param {string | undefined} url */
function createBroker(url) {
  return url ? redisBroker(url) : memoryBroker();
}

module.exports = { createBroker, CHANNEL };
