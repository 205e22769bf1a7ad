// An app's own OpenTelemetry SDK 3.x setup (sdk-node 0.301), loaded before ws-apm, handing
// ws-apm's histograms to its metric reader (sdk-metrics and the exporter are sdk-node's own
// dependencies, installed next to it).
const fs = require('node:fs');
const path = require('node:path');
const { NodeSDK } = require('@opentelemetry/sdk-node');
const { PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics');
const { OTLPMetricExporter } = require('@opentelemetry/exporter-metrics-otlp-http');
const { metricProducer } = require('../../../dist/index.js');

new NodeSDK({
  instrumentations: [],
  metricReaders: [new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter(), metricProducers: [metricProducer()] })],
}).start();
const manifest = path.join(__dirname, 'node_modules', '@opentelemetry', 'sdk-node', 'package.json');
console.log(`SDK ${JSON.parse(fs.readFileSync(manifest, 'utf8')).version}`);
