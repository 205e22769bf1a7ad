// An app's own OpenTelemetry SDK 3.x setup (sdk-node 0.301), loaded before ws-apm.
const fs = require('node:fs');
const path = require('node:path');
const { NodeSDK } = require('@opentelemetry/sdk-node');

new NodeSDK({ instrumentations: [] }).start();
const manifest = path.join(__dirname, 'node_modules', '@opentelemetry', 'sdk-node', 'package.json');
console.log(`SDK ${JSON.parse(fs.readFileSync(manifest, 'utf8')).version}`);
