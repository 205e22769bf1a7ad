// Writes kibana-websocket.ndjson and newrelic-websocket.json from the panel lists below
// (`node examples/dashboards/generate.js`). The generated files are committed; test/examples/compose.test.ts
// checks they parse, have the shape Kibana 9 / New Relic import, and name only metrics and
// attributes ws-apm emits.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const ROUTE_LABEL = 'labels.websocket_route';
const INSTANCE = 'service.node.name';

// ---- Kibana 9 (Elastic APM data: metrics-apm* metricsets, traces-apm* transactions) ----------
//
// Saved objects as Kibana's import (Stack Management → Saved objects → Import, or
// POST /api/saved_objects/_import) takes them. Kibana's docs ask generated objects to carry
// coreMigrationVersion and typeMigrationVersion: they say which migrations the object has already
// been through. The values below are the last migration each type's shape here corresponds to, as
// defined in Kibana's source (examples/VERSIONS.md names the files):
//   index-pattern  8.0.0   (last migration: the 8.0.0 multi-namespace conversion)
//   visualization  8.5.0   (last legacy migration; visState below is in that shape)
//   dashboard      10.1.0  (model version 1; later model versions only add optional attributes)
// and coreMigrationVersion 9.0.0, the oldest Kibana of the 9.x line, so every 9.x accepts the file.
const CORE_MIGRATION_VERSION = '9.0.0';
const TYPE_MIGRATION_VERSION = { 'index-pattern': '8.0.0', visualization: '8.5.0', dashboard: '10.1.0' };

const savedObject = (type, id, attributes, references) => ({
  type, id, attributes, references,
  coreMigrationVersion: CORE_MIGRATION_VERSION,
  typeMigrationVersion: TYPE_MIGRATION_VERSION[type],
  managed: false,
});

const dataViews = [
  { id: 'ws-apm-metrics', title: 'metrics-apm*', name: 'APM metrics (ws-apm dashboard)' },
  { id: 'ws-apm-traces', title: 'traces-apm*', name: 'APM traces (ws-apm dashboard)' },
];

// Buckets. Terms are ordered by a single-value metric ('1') when there is one, else alphabetically:
// Elasticsearch can order terms neither by a pipeline aggregation (derivative) nor by a multi-value
// one (percentiles).
const terms = (field, size = 10, orderBy = '_key') => ({
  type: 'terms', schema: 'group',
  params: { field, size, order: 'desc', orderBy, otherBucket: false, otherBucketLabel: 'Other', missingBucket: false, missingBucketLabel: 'Missing' },
});
const histogram = () => ({
  type: 'date_histogram', schema: 'segment',
  params: { field: '@timestamp', useNormalizedEsInterval: true, scaleMetricValues: false, interval: 'auto', drop_partials: false, min_doc_count: 1, extended_bounds: {} },
});
const max = (field) => ({ type: 'max', schema: 'metric', params: { field } });
// Elastic metricsets of counters are cumulative: the rate is the derivative of their max. A
// derivative needs a date histogram as its parent, so in those panels it is the last bucket.
const rate = (field) => ({
  type: 'derivative', schema: 'metric',
  params: { metricAgg: 'custom', customMetric: { id: '1-metric', enabled: true, type: 'max', params: { field }, schema: 'metric' } },
});

/** @type {{ id: string, title: string, view: string, type: 'line' | 'histogram' | 'pie', query: string, yTitle?: string, aggs: object[] }[]} */
const panels = [
  {
    id: 'ws-apm-active-connections', title: 'Active connections per instance and route', view: 'ws-apm-metrics', type: 'line',
    query: 'websocket.server.active_connections:*', yTitle: 'open connections',
    aggs: [max('websocket.server.active_connections'), histogram(), terms(INSTANCE, 10, '1'), terms(ROUTE_LABEL, 10, '1')],
  },
  {
    id: 'ws-apm-connects', title: 'Connects and rejections (upgrades per interval)', view: 'ws-apm-metrics', type: 'histogram',
    query: 'websocket.server.connections:*', yTitle: 'upgrades',
    aggs: [rate('websocket.server.connections'), terms('labels.websocket_connection_outcome', 2), histogram()],
  },
  {
    id: 'ws-apm-message-rate', title: 'Messages in / out per interval', view: 'ws-apm-metrics', type: 'line',
    query: 'websocket.messages:*', yTitle: 'messages',
    aggs: [rate('websocket.messages'), terms('labels.websocket_direction', 2), terms('labels.websocket_side', 2), histogram()],
  },
  {
    id: 'ws-apm-handler-latency', title: 'Handler latency by message name (p50 / p95 / p99, µs)', view: 'ws-apm-traces', type: 'line',
    query: 'transaction.type:messaging and transaction.name:"WS RECEIVE*"', yTitle: 'µs',
    aggs: [
      { type: 'percentiles', schema: 'metric', params: { field: 'transaction.duration.us', percents: [50, 95, 99] } },
      histogram(), terms('labels.websocket_message_name'),
    ],
  },
  {
    id: 'ws-apm-heartbeat-rtt', title: 'Heartbeat round trip (ms, WS PING operations)', view: 'ws-apm-traces', type: 'line',
    query: 'transaction.name:"WS PING*"', yTitle: 'ms',
    aggs: [
      { type: 'percentiles', schema: 'metric', params: { field: 'numeric_labels.websocket_heartbeat_rtt_ms', percents: [50, 95, 99] } },
      histogram(), terms(INSTANCE),
    ],
  },
  {
    id: 'ws-apm-broken', title: 'Broken connections (no close handshake) per interval', view: 'ws-apm-metrics', type: 'histogram',
    query: 'websocket.connections.broken:*', yTitle: 'connections',
    aggs: [rate('websocket.connections.broken'), terms(INSTANCE), terms('labels.websocket_side', 2), histogram()],
  },
  {
    id: 'ws-apm-close-codes', title: 'Close codes', view: 'ws-apm-traces', type: 'pie',
    query: 'transaction.name:"WS CLOSE*"',
    aggs: [{ type: 'count', schema: 'metric', params: {} }, { ...terms('numeric_labels.websocket_close_code', 20, '1'), schema: 'segment' }, { ...terms('labels.websocket_close_initiator', 3, '1'), schema: 'segment' }],
  },
];

// visState params of Kibana's aggregation-based editors (vis_types/xy line and histogram,
// vis_types/pie), with the keys of those types' defaults.
function xyParams(p) {
  const bar = p.type === 'histogram';
  const metric = p.aggs.find((a) => a.schema === 'metric');
  return {
    type: p.type,
    grid: { categoryLines: false },
    categoryAxes: [{
      id: 'CategoryAxis-1', type: 'category', position: 'bottom', show: true, scale: { type: 'linear' },
      labels: { show: true, filter: true, truncate: 100 }, title: {}, style: {},
    }],
    valueAxes: [{
      id: 'ValueAxis-1', name: 'LeftAxis-1', type: 'value', position: 'left', show: true, scale: { type: 'linear', mode: 'normal' },
      labels: { show: true, rotate: 0, filter: true, truncate: 100 }, title: { text: p.yTitle ?? '' }, style: {},
    }],
    seriesParams: [{
      show: true, type: bar ? 'histogram' : 'line', mode: bar ? 'stacked' : 'normal',
      data: { label: p.yTitle ?? metric.type, id: '1' }, valueAxis: 'ValueAxis-1',
      drawLinesBetweenPoints: true, lineWidth: 2, interpolate: 'linear', showCircles: true, circlesRadius: 1,
    }],
    addTooltip: true,
    detailedTooltip: true,
    palette: { type: 'palette', name: 'default' },
    addLegend: true,
    legendPosition: 'right',
    legendSize: 'auto',
    ...(bar ? {} : { fittingFunction: 'linear' }),
    times: [],
    addTimeMarker: false,
    truncateLegend: true,
    maxLegendLines: 1,
    labels: bar ? { show: false } : {},
    radiusRatio: bar ? 0 : 9,
    thresholdLine: { show: false, value: 10, width: 1, style: 'full', color: '#E7664C' },
  };
}

function pieParams() {
  return {
    type: 'pie',
    addTooltip: true,
    legendDisplay: 'show',
    legendPosition: 'right',
    legendSize: 'auto',
    nestedLegend: false,
    truncateLegend: true,
    maxLegendLines: 1,
    distinctColors: true,
    isDonut: true,
    emptySizeRatio: 0.3,
    palette: { type: 'palette', name: 'default' },
    labels: { show: true, last_level: true, values: true, valuesFormat: 'percent', percentDecimals: 2, truncate: 100, position: 'default' },
  };
}

function kibana() {
  const out = [];
  for (const v of dataViews) {
    out.push(savedObject('index-pattern', v.id, { title: v.title, name: v.name, timeFieldName: '@timestamp' }, []));
  }
  for (const p of panels) {
    const aggs = p.aggs.map((a, i) => ({ id: String(i + 1), enabled: true, ...a }));
    out.push(savedObject('visualization', p.id, {
      title: p.title,
      description: '',
      uiStateJSON: '{}',
      version: 1,
      visState: JSON.stringify({ title: p.title, type: p.type, aggs, params: p.type === 'pie' ? pieParams() : xyParams(p) }),
      kibanaSavedObjectMeta: {
        searchSourceJSON: JSON.stringify({
          query: { query: p.query, language: 'kuery' },
          filter: [],
          indexRefName: 'kibanaSavedObjectMeta.searchSourceJSON.index',
        }),
      },
    }, [{ name: 'kibanaSavedObjectMeta.searchSourceJSON.index', type: 'index-pattern', id: p.view }]));
  }
  // Dashboard panels by reference, as Kibana stores them since 7.11: the panel names its type and a
  // panelRefName, the reference is named "<panelIndex>:<panelRefName>".
  const grid = panels.map((p, i) => ({
    type: 'visualization',
    panelIndex: p.id,
    gridData: { x: (i % 2) * 24, y: Math.floor(i / 2) * 15, w: 24, h: 15, i: p.id },
    embeddableConfig: {},
    panelRefName: `panel_${p.id}`,
  }));
  out.push(savedObject('dashboard', 'ws-apm-websocket-overview', {
    title: 'WebSockets (ws-apm)',
    description: 'Connections, messages, handler latency, heartbeats and closes of ws servers instrumented by ws-apm.',
    panelsJSON: JSON.stringify(grid),
    optionsJSON: JSON.stringify({ useMargins: true, syncColors: false, syncCursor: true, syncTooltips: false, hidePanelTitles: false }),
    timeRestore: true,
    timeFrom: 'now-30m',
    timeTo: 'now',
    refreshInterval: { pause: false, value: 10000 },
    kibanaSavedObjectMeta: { searchSourceJSON: JSON.stringify({ query: { query: '', language: 'kuery' }, filter: [] }) },
  }, grid.map((g) => ({ name: `${g.panelIndex}:${g.panelRefName}`, type: 'visualization', id: g.panelIndex }))));
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
    description: 'Import: Dashboards → Import dashboard, then choose the account. If a widget shows no data, set your account id in its query (accountIds is left empty, as in New Relic\'s own quickstart dashboards).',
    permissions: 'PUBLIC_READ_WRITE',
    pages: [{
      name: 'WebSockets',
      description: null,
      widgets: nrql.map(([title, viz, query], i) => ({
        title,
        layout: { column: (i % 2) * 6 + 1, row: Math.floor(i / 2) * 3 + 1, width: 6, height: 3 },
        linkedEntityGuids: null,
        visualization: { id: viz },
        rawConfiguration: {
          facet: { showOtherSeries: false },
          legend: { enabled: true },
          nrqlQueries: [{ accountIds: [], query }],
          platformOptions: { ignoreTimeRange: false },
        },
      })),
    }],
    variables: [],
  }, null, 2)}\n`;
}

fs.writeFileSync(path.join(__dirname, 'kibana-websocket.ndjson'), kibana());
fs.writeFileSync(path.join(__dirname, 'newrelic-websocket.json'), newrelic());
