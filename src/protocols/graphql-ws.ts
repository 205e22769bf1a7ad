/**
 * graphql-ws (the `graphql-transport-ws` subprotocol: GraphQL subscriptions over ws). It runs on
 * the ws socket itself, so nothing of graphql-ws is patched: a socket is claimed by its
 * negotiated subprotocol (or every socket with `WS_APM_PROTOCOL=graphql-ws`), server and client
 * alike, and each of its frames is read here (`type`, `id`, the operation's name; never a
 * payload, so neither `connection_init`'s nor the variables are recorded):
 *
 * - a `subscribe` received is `WS RECEIVE {route} {operation}` over the listeners (graphql-ws's
 *   own, which parses and starts the operation, then goes on asynchronously in its context: its
 *   results are `WS SEND {route} {operation}` children within the async tail of messages.ts);
 * - a `next`/`error` received (the client's side) runs the app's sink inside the same name;
 * - `next`/`error`/`complete` (and `subscribe`) are counted in `websocket.messages` per operation
 *   name and message type (`websocket.protocol.message`);
 * - `ping`/`pong` are heartbeats: RTT on the side that pinged, never messages, never sampled;
 * - `connection_init`/`connection_ack` are counted as plain messages, never operations.
 *
 * Operation names: the subscribe's `operationName`, else the document's first operation name,
 * else `{type} anonymous`; capped like event names (`WS_APM_MAX_MESSAGE_NAMES`, then `other`).
 */
import { FrameKind, type FrameMeaning } from '../tracer/frames';
import { JsonFieldReader, type JsonData } from '../tracer/json-field';
import type { Protocol, ProtocolContext } from './index';

const PROTOCOL = 'graphql-ws';
const SUBPROTOCOL = 'graphql-transport-ws';

/** Operations in flight per socket that are remembered by id; past this, new ones count as plain messages. */
const MAX_OPERATIONS = 1000;
/** Of a document, only this much is searched for the operation's type and name. */
const MAX_QUERY_SCAN = 4096;

const TYPE = 0;
const ID = 1;
const OPERATION_NAME = 2;
const QUERY = 3;

/** The first operation of a document: its type, and its name when it has one. */
const OPERATION = /(?:^|[\s}])(query|mutation|subscription)\b\s*([_A-Za-z][_0-9A-Za-z]*)?\s*[({@]/;

/** The operation a subscribe starts, by its capped name, and the document's name for it. */
function operationName(operationName: string | undefined, query: string | undefined): string {
  if (operationName !== undefined && operationName !== '') return operationName;
  if (query === undefined) return 'operation anonymous';
  const head = query.length > MAX_QUERY_SCAN ? query.slice(0, MAX_QUERY_SCAN) : query;
  const match = OPERATION.exec(head);
  if (match !== null) return match[2] ?? `${match[1]} anonymous`;
  return /^\s*\{/.test(head) ? 'query anonymous' : 'operation anonymous';
}

export function graphqlWs({ tracer }: ProtocolContext): Protocol {
  const fields = new JsonFieldReader([['type'], ['id'], ['payload', 'operationName'], ['payload', 'query']]);
  /** Per socket: operation id → its capped name. */
  const operations = new WeakMap<object, Map<string, string>>();
  /** One meaning per (name, message type, operation or not), so frames allocate nothing once seen. */
  const meanings = new Map<string, FrameMeaning>();

  const meaning = (name: string, message: string, operation: boolean): FrameMeaning => {
    const key = `${operation ? '+' : '-'}${message}\u0000${name}`;
    let m = meanings.get(key);
    if (m === undefined) meanings.set(key, (m = { name, message, operation }));
    return m;
  };

  /** A frame of `ws`: its graphql-ws message type decides what it is (see the file's comment). */
  const read = (ws: object, data: unknown, binary: boolean, out: boolean): FrameKind | FrameMeaning => {
    if (binary || !fields.read(data as JsonData)) return FrameKind.Message;
    try {
      if (fields.stringIs(TYPE, 'ping')) return FrameKind.Ping;
      if (fields.stringIs(TYPE, 'pong')) return FrameKind.Pong;
      const id = fields.string(ID);
      if (id === undefined) return FrameKind.Message;
      let ids = operations.get(ws);
      // The subscribe's id names the operation its results and its end carry.
      if (fields.stringIs(TYPE, 'subscribe')) {
        if (ids === undefined) operations.set(ws, (ids = new Map()));
        if (ids.size >= MAX_OPERATIONS && !ids.has(id)) return FrameKind.Message;
        const name = tracer.events.name(operationName(fields.string(OPERATION_NAME), fields.string(QUERY)));
        ids.set(id, name);
        return meaning(name, 'subscribe', true);
      }
      const name = ids?.get(id);
      if (name === undefined) return FrameKind.Message;
      if (fields.stringIs(TYPE, 'next')) return meaning(name, 'next', true);
      if (fields.stringIs(TYPE, 'error')) {
        ids?.delete(id);
        return meaning(name, 'error', true);
      }
      if (fields.stringIs(TYPE, 'complete')) {
        ids?.delete(id);
        // A complete sent is a send of the operation; one received only ends a stream: counted.
        return meaning(name, 'complete', out);
      }
      return FrameKind.Message;
    } finally {
      fields.release();
    }
  };

  const mode = tracer.core.config.protocol;
  if (mode === 'auto' || mode === PROTOCOL) tracer.frames.claimSubprotocol(PROTOCOL, mode === PROTOCOL ? undefined : SUBPROTOCOL, read);

  // Nothing of graphql-ws is loaded or patched: its sockets are recognised where ws tracks them.
  return {
    name: PROTOCOL,
    modules: [],
    entry: /(?!)/,
    detect: () => false,
    patch: () => false,
    unpatch() {},
  };
}
