'use strict';
// Variant 9 preload: the community `opentelemetry-instrumentation-ws` (0.5.0) with the same
// OpenTelemetry Node SDK as ws-apm variant 4, configured from the same OTEL_* environment
// (OTLP/HTTP exporter to the local sink). Both of its optional span kinds are enabled.
const { NodeSDK } = require('@opentelemetry/sdk-node');
const { WSInstrumentation } = require('opentelemetry-instrumentation-ws');

const sdk = new NodeSDK({
  instrumentations: [new WSInstrumentation({ sendSpans: true, messageEvents: true })],
});
sdk.start();
