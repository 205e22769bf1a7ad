'use strict';
// "OTel SDK alone": the OpenTelemetry Node SDK started as an app starts it (from the same OTEL_*
// environment as the ws-apm variants, OTLP to the local sink), with no instrumentation at all.
// What ws-apm adds on top of it is what ws-apm owns.
const { NodeSDK } = require('@opentelemetry/sdk-node');

new NodeSDK({ instrumentations: [] }).start();
