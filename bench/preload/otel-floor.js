'use strict';
// "OTel floor": the least code that makes ws-apm's two spans per echo through the public API. The
// SDK started as ws-apm starts it; `WS RECEIVE /` (consumer) with the same five attributes around the
// message listeners, `WS SEND /` (producer) inside it. No links, names, metrics, sampling or guards.
const api = require('@opentelemetry/api');
const { NodeSDK } = require('@opentelemetry/sdk-node');
const { WebSocket } = require('ws');

new NodeSDK({ instrumentations: [] }).start();
const tracer = api.trace.getTracer('floor');
const { emit, send } = WebSocket.prototype;
const attributes = (operation, data, binary) => ({
  'messaging.system': 'websocket', 'messaging.destination.name': '/', 'messaging.operation.type': operation,
  'messaging.message.body.size': data.length, 'websocket.message.type': binary ? 'binary' : 'text',
});
WebSocket.prototype.emit = function (event, data, isBinary) {
  if (event !== 'message') return emit.apply(this, arguments);
  const span = tracer.startSpan('WS RECEIVE /', { kind: api.SpanKind.CONSUMER, attributes: attributes('receive', data, isBinary) });
  try {
    return api.context.with(api.trace.setSpan(api.context.active(), span), () => emit.apply(this, arguments));
  } finally {
    span.end();
  }
};
WebSocket.prototype.send = function (data, options) {
  if (api.trace.getActiveSpan() === undefined) return send.apply(this, arguments);
  const span = tracer.startSpan('WS SEND /', { kind: api.SpanKind.PRODUCER, attributes: attributes('send', data, options && options.binary) });
  try {
    return send.apply(this, arguments);
  } finally {
    span.end();
  }
};
