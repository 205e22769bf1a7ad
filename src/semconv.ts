/**
 * Every attribute, metric and operation name ws-apm emits, in one place.
 * Stable OpenTelemetry names are copied here (not imported) so that the incubating
 * messaging names and our own `websocket.*` names sit beside them and adapters can
 * translate the whole set to labels / custom attributes.
 */

// Stable OpenTelemetry semantic conventions.
export const ATTR_URL_PATH = 'url.path';
export const ATTR_URL_SCHEME = 'url.scheme';
export const ATTR_URL_FULL = 'url.full';
export const ATTR_URL_QUERY = 'url.query';
export const ATTR_SERVER_ADDRESS = 'server.address';
export const ATTR_SERVER_PORT = 'server.port';
export const ATTR_CLIENT_ADDRESS = 'client.address';
export const ATTR_NETWORK_PEER_ADDRESS = 'network.peer.address';
export const ATTR_NETWORK_PEER_PORT = 'network.peer.port';
export const ATTR_NETWORK_PROTOCOL_NAME = 'network.protocol.name';
export const ATTR_HTTP_RESPONSE_STATUS_CODE = 'http.response.status_code';
export const ATTR_USER_AGENT_ORIGINAL = 'user_agent.original';
export const ATTR_ERROR_TYPE = 'error.type';
export const ATTR_ENDUSER_ID = 'enduser.id';

// Incubating messaging conventions.
export const ATTR_MESSAGING_SYSTEM = 'messaging.system';
export const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
export const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
export const ATTR_MESSAGING_MESSAGE_BODY_SIZE = 'messaging.message.body.size';
export const MESSAGING_SYSTEM_WEBSOCKET = 'websocket';

// ws-apm's own attributes.
export const ATTR_WS_MESSAGE_TYPE = 'websocket.message.type'; // text | binary
export const ATTR_WS_MESSAGE_NAME = 'websocket.message.name';
export const ATTR_WS_MESSAGE_BODY = 'websocket.message.body';
export const ATTR_WS_CLOSE_CODE = 'websocket.close.code';
export const ATTR_WS_CLOSE_REASON = 'websocket.close.reason';
export const ATTR_WS_CLOSE_INITIATOR = 'websocket.close.initiator'; // server | client | network
export const ATTR_WS_CONNECTION_DURATION_MS = 'websocket.connection.duration_ms';
export const ATTR_WS_CONNECTION_OUTCOME = 'websocket.connection.outcome'; // accepted | rejected
export const ATTR_WS_CONNECTION_BROKEN = 'websocket.connection.broken';
export const ATTR_WS_MESSAGES_IN = 'websocket.messages.in';
export const ATTR_WS_MESSAGES_OUT = 'websocket.messages.out';
export const ATTR_WS_BYTES_IN = 'websocket.bytes.in';
export const ATTR_WS_BYTES_OUT = 'websocket.bytes.out';
export const ATTR_WS_SIDE = 'websocket.side'; // server | client
export const ATTR_WS_ROUTE = 'websocket.route';
export const ATTR_WS_DIRECTION = 'websocket.direction'; // in | out
export const ATTR_WS_CLOSE_CODE_CLASS = 'websocket.close.code_class';
export const ATTR_WS_HANDSHAKE_TRACE_ID = 'websocket.handshake.trace_id';
export const ATTR_WS_HEARTBEAT_RTT_MS = 'websocket.heartbeat.rtt_ms';
/** On a message operation: sends made while it ran that have no span of their own (fan-out cap). */
export const ATTR_WS_SENDS_UNRECORDED = 'websocket.sends.unrecorded';
/** On a message that was not sampled but recorded anyway: why (`error` or `slow`). */
export const ATTR_WS_MESSAGE_KEPT = 'websocket.message.kept';
/**
 * A kept message's real start (epoch ms) and duration (ms), for backends that cannot start an
 * operation in the past (New Relic): there the operation itself is recorded when the listeners return.
 */
export const ATTR_WS_MESSAGE_START_TIME_MS = 'websocket.message.start_time_ms';
export const ATTR_WS_MESSAGE_DURATION_MS = 'websocket.message.duration_ms';

// Protocols over ws (src/protocols): the operations of a protocol's events.
/** The protocol whose event an operation is (`socket.io`). */
export const ATTR_WS_PROTOCOL = 'websocket.protocol';
/** The transport that carried it (`websocket`, `polling`). */
export const ATTR_WS_TRANSPORT = 'websocket.transport';
/** On a send that answers an event's acknowledgement callback. */
export const ATTR_WS_ACK = 'websocket.message.ack';
/** On a broadcast: how many sockets it was written to. */
export const ATTR_WS_BROADCAST_RECIPIENTS = 'websocket.broadcast.recipients';
/** On `websocket.messages` of a protocol's message that belongs to a named event: its protocol type (graphql-ws `next`). */
export const ATTR_WS_PROTOCOL_MESSAGE = 'websocket.protocol.message';

// Metrics (recorded by src/tracer/metrics.ts, which says which attributes each carries).
export const METRIC_ACTIVE_CONNECTIONS = 'websocket.server.active_connections';
export const METRIC_CONNECTIONS = 'websocket.server.connections';
export const METRIC_CONNECTION_DURATION = 'websocket.connection.duration';
export const METRIC_MESSAGES = 'websocket.messages';
export const METRIC_MESSAGE_SIZE = 'websocket.message.size';
export const METRIC_MESSAGE_PROCESS_DURATION = 'websocket.message.process.duration';
export const METRIC_HEARTBEAT_RTT = 'websocket.heartbeat.rtt';
export const METRIC_CONNECTIONS_BROKEN = 'websocket.connections.broken';

// Operation name prefixes.
export const OP_CONNECT = 'WS CONNECT';
export const OP_RECEIVE = 'WS RECEIVE';
export const OP_SEND = 'WS SEND';
export const OP_CLOSE = 'WS CLOSE';
export const OP_PING = 'WS PING';
/** The agents' transaction for work continuing a trace carried through a broker (`runWithContext`). */
export const OP_HANDOFF = 'WS HANDOFF';

// Trace-context header names the tracer understands itself (W3C).
export const HEADER_TRACEPARENT = 'traceparent';
export const HEADER_TRACESTATE = 'tracestate';

/** Units, descriptions and (for histograms) bucket boundaries of every metric. */
export interface MetricInfo {
  readonly unit: string;
  readonly description: string;
  readonly buckets?: readonly number[];
}

export const METRIC_INFO: Readonly<Record<string, MetricInfo>> = {
  [METRIC_ACTIVE_CONNECTIONS]: { unit: '{connection}', description: 'Open WebSocket connections accepted by this server' },
  [METRIC_CONNECTIONS]: { unit: '{connection}', description: 'WebSocket upgrade requests, by outcome (accepted, rejected)' },
  [METRIC_CONNECTION_DURATION]: {
    unit: 's', description: 'How long WebSocket connections stayed open',
    buckets: [1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400],
  },
  [METRIC_MESSAGES]: { unit: '{message}', description: 'WebSocket messages, by direction (in, out) and type (text, binary)' },
  [METRIC_MESSAGE_SIZE]: {
    unit: 'By', description: 'WebSocket message payload size',
    buckets: [16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216],
  },
  [METRIC_MESSAGE_PROCESS_DURATION]: {
    unit: 's', description: 'Time the message listeners took (synchronous part)',
    buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  },
  [METRIC_HEARTBEAT_RTT]: {
    unit: 's', description: 'Round trip from ping() to the matching pong',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  },
  [METRIC_CONNECTIONS_BROKEN]: {
    unit: '{connection}', description: 'Connections that ended without a close handshake (terminate(), 1006)',
  },
};

/** True when `name` is recorded in seconds (its `METRIC_INFO` unit): the one place that says which metrics are times. */
export function inSeconds(name: string): boolean {
  return METRIC_INFO[name]?.unit === 's';
}
