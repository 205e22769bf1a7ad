// Writes kibana-websocket.ndjson and newrelic-websocket.json from the panel lists below
// (`node examples/dashboards/generate.js`). The generated files are committed; test/example.test.ts
// checks they parse and name only metrics and attributes ws-apm emits.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const ROUTE_LABEL = 'labels.websocket_route';
const INSTANCE = 'service.node.name';

// ---- Kibana (Elastic APM data: metrics-apm* metricsets, traces-apm* transactions) ----------

const dataViews = [
  { id: 'ws-apm-metrics', title: 'metrics-apm*' },
  { id: 'ws-apm-traces', title: 'traces-apm*' },
];

const terms = (field, size = 10) => ({ type: 'terms', schema: 'group', params: { field, size, order: 'desc', orderBy: '1' } });
const histogram = () => ({ type: 'date_histogram', schema: 'segment', params: { field: '@timestamp', interval: 'auto', min_doc_count: 1 } });
const max = (field) => ({ type: 'max', schema: 'metric', params: { field } });
// Elastic metricsets of counters are cumulative: the rate is the derivative of their max.
const rate = (field) => ({ type: 'derivative', schema: 'metric', params: { metricAgg: 'custom', customMetric: { id: '1-m', type: 'max', params: { field } } } });

/** @type {{ id: string, title: string, view: string, type: string, query: string, aggs: object[] }[]} */
const panels = [
  {
    id: 'ws-apm-active-connections', title: 'Active connections per instance and route', view: 'ws-apm-metrics', type: 'line',
    query: 'websocket.server.active_connections:*',
    aggs: [max('websocket.server.active_connections'), histogram(), terms(INSTANCE), terms(ROUTE_LABEL)],
  },
  {
    id: 'ws-apm-connects', title: 'Connects and rejections (upgrades per interval)', view: 'ws-apm-metrics', type: 'histogram',
    query: 'websocket.server.connections:*',
    aggs: [rate('websocket.server.connections'), histogram(), terms('labels.websocket_connection_outcome', 2)],
  },
  {
    id: 'ws-apm-message-rate', title: 'Messages in / out per interval', view: 'ws-apm-metrics', type: 'line',
    query: 'websocket.messages:*',
    aggs: [rate('websocket.messages'), histogram(), terms('labels.websocket_direction', 2), terms('labels.websocket_side', 2)],
  },
  {
    id: 'ws-apm-handler-latency', title: 'Handler latency by message name (p50 / p95 / p99, µs)', view: 'ws-apm-traces', type: 'line',
    query: 'transaction.type:messaging and transaction.name:"WS RECEIVE*"',
    aggs: [
      { type: 'percentiles', schema: 'metric', params: { field: 'transaction.duration.us', percents: [50, 95, 99] } },
      histogram(), terms('labels.websocket_message_name'),
    ],
  },
  {
    id: 'ws-apm-heartbeat-rtt', title: 'Heartbeat round trip (ms, WS PING operations)', view: 'ws-apm-traces', type: 'line',
    query: 'transaction.name:"WS PING*"',
    aggs: [
      { type: 'percentiles', schema: 'metric', params: { field: 'numeric_labels.websocket_heartbeat_rtt_ms', percents: [50, 95, 99] } },
      histogram(), terms(INSTANCE),
    ],
  },
  {
    id: 'ws-apm-broken', title: 'Broken connections (no close handshake) per interval', view: 'ws-apm-metrics', type: 'histogram',
    query: 'websocket.connections.broken:*',
    aggs: [rate('websocket.connections.broken'), histogram(), terms(INSTANCE), terms('labels.websocket_side', 2)],
  },
  {
    id: 'ws-apm-close-codes', title: 'Close codes', view: 'ws-apm-traces', type: 'pie',
    query: 'transaction.name:"WS CLOSE*"',
    aggs: [{ type: 'count', schema: 'metric', params: {} }, { ...terms('numeric_labels.websocket_close_code', 20), schema: 'segment' }, { ...terms('labels.websocket_close_initiator', 3), schema: 'segment' }],
  },
];

function kibana() {
  const out = [];
  for (const v of dataViews) {
    out.push({ type: 'index-pattern', id: v.id, attributes: { title: v.title, timeFieldName: '@timestamp' }, references: [] });
  }
  for (const p of panels) {
    const aggs = p.aggs.map((a, i) => ({ id: String(i + 1), enabled: true, ...a }));
    out.push({
      type: 'visualization',
      id: p.id,
      attributes: {
        title: p.title,
        description: '',
        uiStateJSON: '{}',
        version: 1,
        visState: JSON.stringify({ title: p.title, type: p.type, aggs, params: { addLegend: true, legendPosition: 'right', addTooltip: true } }),
        kibanaSavedObjectMeta: {
          searchSourceJSON: JSON.stringify({
            query: { query: p.query, language: 'kuery' },
            filter: [],
            indexRefName: 'kibanaSavedObjectMeta.searchSourceJSON.index',
          }),
        },
      },
      references: [{ name: 'kibanaSavedObjectMeta.searchSourceJSON.index', type: 'index-pattern', id: p.view }],
    });
  }
  const grid = panels.map((p, i) => ({
    panelIndex: String(i + 1),
    gridData: { x: (i % 2) * 24, y: Math.floor(i / 2) * 15, w: 24, h: 15, i: String(i + 1) },
    embeddableConfig: {},
    panelRefName: `panel_${i}`,
  }));
  out.push({
    type: 'dashboard',
    id: 'ws-apm-websocket-overview',
    attributes: {
      title: 'WebSockets (ws-apm)',
      description: 'Connections, messages, handler latency, heartbeats and closes of ws servers instrumented by ws-apm.',
      panelsJSON: JSON.stringify(grid),
      optionsJSON: JSON.stringify({ useMargins: true, hidePanelTitles: false }),
      timeRestore: true,
      timeFrom: 'now-30m',
      timeTo: 'now',
      refreshInterval: { pause: false, value: 10000 },
      kibanaSavedObjectMeta: { searchSourceJSON: JSON.stringify({ query: { query: '', language: 'kuery' }, filter: [] }) },
    },
    references: panels.map((p, i) => ({ name: `panel_${i}`, type: 'visualization', id: p.id })),
  });
  return `${out.map((o) => JSON.stringify(o)).join('\n')}\n`;
}

// Counters (incrementMetric) are read with count(), gauges and timings (recordMetric) with average().
// ---- New Relic (custom metrics `Custom/WebSocket/...`, event WebSocketConnection, transactions) ---

const nrql = [
  ['Active connections per instance and route', 'viz.line',
    "SELECT average(newrelic.timeslice.value) FROM Metric WHERE metricTimesliceName LIKE 'Custom/WebSocket/ActiveConnections/%' AND metricTimesliceName != 'Custom/WebSocket/ActiveConnections/all' FACET host, metricTimesliceName TIMESERIES"],
  ['Connects and rejections', 'viz.area',
    "SELECT count(newrelic.timeslice.value) FROM Metric WHERE metricTimesliceName LIKE 'Custom/WebSocket/Connections/%' FACET metricTimesliceName TIMESERIES"],
  ['Messages in / out', 'viz.line',
    "SELECT rate(count(newrelic.timeslice.value), 1 minute) FROM Metric WHERE metricTimesliceName LIKE 'Custom/WebSocket/Messages/%' FACET metricTimesliceName TIMESERIES"],
  ['Handler latency by message name (ms)', 'viz.line',
    "SELECT percentile(duration * 1000, 50, 95, 99) FROM Transaction WHERE name LIKE 'OtherTransaction/WebSocket/WS RECEIVE%' FACET name TIMESERIES"],
  ['Heartbeat round trip (ms)', 'viz.line',
    "SELECT average(newrelic.timeslice.value) FROM Metric WHERE metricTimesliceName LIKE 'Custom/WebSocket/HeartbeatRtt/%' FACET host TIMESERIES"],
  ['Broken connections', 'viz.bar',
    "SELECT count(newrelic.timeslice.value) FROM Metric WHERE metricTimesliceName LIKE 'Custom/WebSocket/BrokenConnections/%' FACET host, metricTimesliceName TIMESERIES"],
  ['Close codes', 'viz.pie',
    "SELECT count(*) FROM WebSocketConnection WHERE side = 'server' FACET code, initiator"],
  ['Connection duration (s)', 'viz.table',
    "SELECT percentile(durationMs / 1000, 50, 95, 99), count(*) FROM WebSocketConnection FACET route, broken"],
];

function newrelic() {
  return `${JSON.stringify({
    name: 'WebSockets (ws-apm)',
    description: 'Import: Dashboards → Import dashboard, then pick your account for every query (accountIds 0 is a placeholder).',
    permissions: 'PUBLIC_READ_WRITE',
    pages: [{
      name: 'WebSockets',
      description: null,
      widgets: nrql.map(([title, viz, query], i) => ({
        title,
        layout: { column: (i % 2) * 6 + 1, row: Math.floor(i / 2) * 3 + 1, width: 6, height: 3 },
        linkedEntityGuids: null,
        visualization: { id: viz },
        rawConfiguration: { facet: { showOtherSeries: false }, legend: { enabled: true }, nrqlQueries: [{ accountIds: [0], query }] },
      })),
    }],
    variables: [],
  }, null, 2)}\n`;
}

fs.writeFileSync(path.join(__dirname, 'kibana-websocket.ndjson'), kibana());
fs.writeFileSync(path.join(__dirname, 'newrelic-websocket.json'), newrelic());
