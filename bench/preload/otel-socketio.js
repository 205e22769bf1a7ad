'use strict';
// Variant 17 preload: OpenTelemetry's own `@opentelemetry/instrumentation-socket.io` (the one
// auto-instrumentations-node turns on by default), default configuration, with the same OpenTelemetry Node
// SDK as ws-apm variant 4, configured from the same OTEL_* environment (OTLP/HTTP exporter to the local sink).
const { NodeSDK } = require('@opentelemetry/sdk-node');
const { SocketIoInstrumentation } = require('@opentelemetry/instrumentation-socket.io');

new NodeSDK({ instrumentations: [new SocketIoInstrumentation()] }).start();
