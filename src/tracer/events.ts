/**
 * A protocol's operations over ws (socket.io first), in the tracer's neutral terms: a channel
 * (socket.io: a socket in a namespace) opens with a connect operation that covers the protocol's
 * middlewares; an event is a message with a name on the channel's route, traced, unsampled or
 * kept exactly as a ws message is (same rate limit, same keep rules, same handler-latency metric);
 * a send is a `WS SEND` under the active operation (an ack is a send marked as one); a broadcast
 * is one send with a recipient count. The protocol module (src/protocols/*) says when each of these
 * happens; nothing here knows which protocol it is.
 */
import { performance } from 'node:perf_hooks';
import * as S from '../semconv';
import type { Attributes, Carrier, Parent } from './adapter';
import { now, ROOT, type TracerCore } from './core';
import type { Messages, OperationSends } from './messages';
import { OTHER } from './naming';
import { sanitizeCarrier } from './propagation';
import type { RouteInfo } from './socket-state';

type AnyFn = (...args: any[]) => any;

const MAX_NAME_LENGTH = 64;

/** How a channel opens, as plain values. */
export interface ChannelOpen {
  /** The protocol's name (`socket.io`), recorded as `websocket.protocol`. */
  readonly protocol: string;
  /** The channel's own route (socket.io: the namespace), capped like any route. */
  readonly route: string;
  /** The ws socket it runs over, when it does: the connect is a child of its handshake. */
  readonly over?: object;
  /** Otherwise the headers of the request that opened it, whose trace the connect continues. */
  readonly headers?: Carrier;
  readonly transport?: string;
}

/** An open channel: what its events need, computed once. */
interface Channel {
  readonly protocol: string;
  readonly info: RouteInfo;
  readonly ignored: boolean;
  readonly parent: Parent;
  readonly links: readonly unknown[] | undefined;
  readonly handshakeTraceId: string | undefined;
  counted: boolean;
}

/** A connect in progress. */
export interface Opening {
  readonly key: object;
  readonly protocol: string;
  readonly info: RouteInfo;
  readonly ignored: boolean;
  readonly op: unknown;
  settled: boolean;
}

/** An event being handled. */
export interface EventRun {
  readonly channel: Channel;
  readonly name: string;
  readonly op: unknown;
  readonly sends: OperationSends | undefined;
  readonly started: number;
  readonly sampled: boolean;
  readonly transport: string | undefined;
  failed: boolean;
  error: unknown;
  ended: boolean;
}

export class Events {
  private readonly channels = new WeakMap<object, Channel>();
  private readonly names = new Set<string>();
  private readonly sendNames = new WeakMap<RouteInfo, Map<string, string>>();
  private readonly linkEvents: boolean;

  constructor(private readonly core: TracerCore, private readonly messages: Messages) {
    this.linkEvents = core.config.messageParent === 'link';
  }

  /** Channel `key` is opening: start `WS CONNECT {route}` (child of the ws handshake, or the request's trace). */
  opening(key: object, rec: ChannelOpen): Opening {
    const core = this.core;
    const route = core.routes.route(rec.route);
    const info = core.routeInfo(route, 'server');
    const ignored = core.routes.isIgnored(route, rec.route);
    let op: unknown;
    if (!ignored) {
      const ws = rec.over !== undefined ? core.sockets.get(rec.over) : undefined;
      const carrier = ws === undefined && rec.headers !== undefined ? sanitizeCarrier(rec.headers, core.adapter.propagationHeaders) : undefined;
      const parent: Parent = ws?.ref !== undefined ? { type: 'ref', ref: ws.ref } : carrier !== undefined ? { type: 'remote', carrier } : ROOT;
      op = core.adapter.start({
        name: `${S.OP_CONNECT} ${route}`,
        role: 'connect',
        kind: 'server',
        side: 'server',
        parent,
        attributes: {
          [S.ATTR_MESSAGING_SYSTEM]: S.MESSAGING_SYSTEM_WEBSOCKET,
          [S.ATTR_MESSAGING_DESTINATION_NAME]: route,
          [S.ATTR_WS_ROUTE]: route,
          [S.ATTR_WS_SIDE]: 'server',
          [S.ATTR_WS_PROTOCOL]: rec.protocol,
          [S.ATTR_WS_TRANSPORT]: rec.transport,
        },
        route,
        serverAddress: ws?.serverAddress,
        serverPort: ws?.serverPort,
        urlPath: route,
      });
    }
    return { key, protocol: rec.protocol, info, ignored, op, settled: false };
  }

  /** Run protocol code (middlewares, the app's connection handler) inside the connect, or an event's handler inside its operation. */
  run<R>(x: Opening | EventRun, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    if (x.op !== undefined) return this.core.adapter.run<R>(x.op, fn, thisArg, args);
    if ('sampled' in x && !x.channel.ignored) return this.core.adapter.runUnsampled<R>(undefined, fn, thisArg, args);
    return fn.apply(thisArg, args);
  }

  /** The connect settled: accepted (the channel is open), or rejected with the middleware's error. */
  opened(o: Opening, accepted: boolean, error?: unknown): void {
    if (o.settled) return;
    o.settled = true;
    const core = this.core;
    const metrics = o.info.metrics;
    if (!accepted) {
      metrics.rejected.value++;
      core.adapter.end(o.op, {
        error,
        failed: true,
        attributes: { [S.ATTR_WS_CONNECTION_OUTCOME]: 'rejected', [S.ATTR_ERROR_TYPE]: errorType(error) },
      });
      return;
    }
    const ref = o.op !== undefined ? core.adapter.ref(o.op) : undefined;
    this.channels.set(o.key, this.channel(o.protocol, o.info, o.ignored, ref, true));
    metrics.accepted.value++;
    metrics.active.value++;
    core.adapter.end(o.op, { attributes: { [S.ATTR_WS_CONNECTION_OUTCOME]: 'accepted' } });
  }

  /**
   * A client-side channel (socket.io-client) connected: its events link to (or are children of)
   * the client connect of the ws socket under it, when there is one.
   */
  clientOpened(key: object, rec: ChannelOpen): void {
    const core = this.core;
    const route = core.routes.route(rec.route);
    const info = core.routeInfo(route, 'client');
    const ref = rec.over !== undefined ? core.sockets.get(rec.over)?.ref : undefined;
    this.channels.set(key, this.channel(rec.protocol, info, core.routes.isIgnored(route, rec.route), ref, false));
  }

  private channel(protocol: string, info: RouteInfo, ignored: boolean, ref: unknown, counted: boolean): Channel {
    const link = this.linkEvents || ref === undefined;
    return {
      protocol,
      info,
      ignored,
      parent: link ? ROOT : { type: 'ref', ref },
      links: link && ref !== undefined ? [ref] : undefined,
      handshakeTraceId: ref !== undefined ? this.core.adapter.traceIdOf(ref) : undefined,
      counted,
    };
  }

  /** Channel `key` closed. */
  closed(key: object): void {
    const channel = this.channels.get(key);
    if (channel === undefined || !channel.counted) return;
    channel.counted = false;
    channel.info.metrics.active.value--;
  }

  /**
   * Event `event` arrived on channel `key`: decide (sampled, unsampled) and start its operation.
   * Undefined when the channel is unknown (opened before ws-apm).
   */
  received(key: object, event: unknown, transport: string | undefined): EventRun | undefined {
    const channel = this.channels.get(key);
    if (channel === undefined) return undefined;
    const name = this.name(event);
    const started = performance.now();
    const sampled = !channel.ignored && this.messages.sample(started);
    const op = sampled ? this.start(channel, name, transport, undefined) : undefined;
    const sends = op !== undefined ? this.messages.operationStarted(op) : undefined;
    return { channel, name, op, sends, started, sampled, transport, failed: false, error: undefined, ended: false };
  }

  /** The event's handler threw (recorded; the protocol re-throws it). */
  failed(run: EventRun, error: unknown): void {
    run.failed = true;
    run.error = error;
  }

  /** The event's handler returned (or was never called): end its operation, record its latency, keep it if it failed or was slow. */
  ended(run: EventRun, error?: unknown): void {
    if (run.ended) return;
    run.ended = true;
    if (error !== undefined && !run.failed) this.failed(run, error);
    const core = this.core;
    const elapsed = performance.now() - run.started;
    const channel = run.channel;
    channel.info.metrics.process(run.name).record(elapsed / 1000);
    if (run.op !== undefined) {
      const attributes = run.sends !== undefined ? this.messages.operationEnded(run.sends) : undefined;
      core.adapter.end(run.op, run.failed ? { error: run.error, attributes } : attributes === undefined ? {} : { attributes });
      return;
    }
    if (channel.ignored) return;
    const config = core.config;
    const keep = run.failed ? config.keepErrors : config.keepSlowMs > 0 && elapsed >= config.keepSlowMs;
    if (!keep || !this.messages.keepAllowed(run.started + elapsed)) return;
    const startTime = performance.timeOrigin + run.started;
    const op = this.start(channel, run.name, run.transport, startTime, run.failed ? 'error' : 'slow');
    core.adapter.end(op, run.failed ? { error: run.error, endTime: startTime + elapsed } : { endTime: startTime + elapsed });
  }

  /**
   * A send on channel `key` (`event`, or the answer to an event's ack): `WS SEND {route} {event}`
   * under the active operation (the same parent rules and fan-out cap as a ws send), around `fn`.
   */
  send<R>(key: object, event: unknown, ack: boolean, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    const channel = this.channels.get(key);
    if (channel === undefined || channel.ignored) return fn.apply(thisArg, args);
    const parent = this.messages.parentOfSend(0);
    if (parent === undefined) return fn.apply(thisArg, args);
    const name = ack ? 'ack' : this.name(event);
    const op = this.startSend(channel.info, channel.protocol, name, ack, parent);
    return this.around<R>(op, fn, thisArg, args, undefined);
  }

  /**
   * Run `fn`, which hands a received event (or ack) of channel `key` to the app's listeners
   * synchronously, inside the event's operation (socket.io-client, an ack's callback).
   */
  handle<R>(key: object, event: unknown, transport: string | undefined, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    const run = this.received(key, event, transport);
    if (run === undefined) return fn.apply(thisArg, args);
    try {
      return this.run<R>(run, fn, thisArg, args);
    } catch (err) {
      this.failed(run, err);
      throw err;
    } finally {
      this.ended(run);
    }
  }

  /**
   * A broadcast on `route` (every recipient written by `fn`): one `WS SEND {route} {event}` under
   * the active operation, with the number of recipients `recipients()` reports once `fn` returned.
   */
  broadcast<R>(protocol: string, route: string, event: unknown, fn: AnyFn, thisArg: unknown, args: unknown[], recipients: () => number): R {
    const parent = this.messages.parentOfSend(0);
    if (parent === undefined) return fn.apply(thisArg, args);
    const core = this.core;
    const capped = core.routes.route(route);
    if (core.routes.isIgnored(capped, route)) return fn.apply(thisArg, args);
    const op = this.startSend(core.routeInfo(capped, 'server'), protocol, this.name(event), false, parent);
    return this.around<R>(op, fn, thisArg, args, recipients);
  }

  private around<R>(op: unknown, fn: AnyFn, thisArg: unknown, args: unknown[], recipients: (() => number) | undefined): R {
    if (op === undefined) return fn.apply(thisArg, args);
    let error: unknown;
    let failed = false;
    try {
      return this.core.adapter.run<R>(op, fn, thisArg, args);
    } catch (err) {
      failed = true;
      error = err;
      throw err;
    } finally {
      const attributes = recipients !== undefined ? { [S.ATTR_WS_BROADCAST_RECIPIENTS]: recipients() } : undefined;
      this.core.adapter.end(op, failed ? { error, attributes } : attributes === undefined ? {} : { attributes });
    }
  }

  private startSend(info: RouteInfo, protocol: string, name: string, ack: boolean, parent: Parent): unknown {
    // `WS SEND {route} {name}`, built once per (route, side, name): names are capped.
    let names = this.sendNames.get(info);
    if (names === undefined) this.sendNames.set(info, (names = new Map()));
    let full = names.get(name);
    if (full === undefined) names.set(name, (full = `${info.sendName} ${name}`));
    return this.core.adapter.start({
      name: full,
      role: 'send',
      kind: 'producer',
      side: info.side,
      parent,
      attributes: {
        [S.ATTR_MESSAGING_SYSTEM]: S.MESSAGING_SYSTEM_WEBSOCKET,
        [S.ATTR_MESSAGING_DESTINATION_NAME]: info.route,
        [S.ATTR_MESSAGING_OPERATION_TYPE]: 'send',
        [S.ATTR_WS_PROTOCOL]: protocol,
        [S.ATTR_WS_MESSAGE_NAME]: ack ? undefined : name,
        [S.ATTR_WS_ACK]: ack ? true : undefined,
      },
      route: info.route,
      messageName: ack ? undefined : name,
    });
  }

  private start(channel: Channel, name: string, transport: string | undefined, startTime: number | undefined, kept?: string): unknown {
    const info = channel.info;
    const attributes: Attributes = {
      [S.ATTR_MESSAGING_SYSTEM]: S.MESSAGING_SYSTEM_WEBSOCKET,
      [S.ATTR_MESSAGING_DESTINATION_NAME]: info.route,
      [S.ATTR_MESSAGING_OPERATION_TYPE]: 'receive',
      [S.ATTR_WS_PROTOCOL]: channel.protocol,
      [S.ATTR_WS_MESSAGE_NAME]: name,
      [S.ATTR_WS_TRANSPORT]: transport,
      [S.ATTR_WS_MESSAGE_KEPT]: kept,
    };
    let full = info.namedReceive.get(name);
    if (full === undefined) {
      full = `${info.receiveName} ${name}`;
      info.namedReceive.set(name, full);
    }
    return this.core.adapter.start({
      name: full,
      role: 'receive',
      kind: 'consumer',
      side: info.side,
      parent: channel.parent,
      links: channel.links,
      attributes,
      startTime: startTime ?? (kept === undefined ? undefined : now()),
      route: info.route,
      handshakeTraceId: channel.handshakeTraceId,
      messageName: name,
    });
  }

  /** An event's name, bounded: at most `maxMessageNames` distinct names, then `other`. */
  private name(event: unknown): string {
    if (typeof event !== 'string' || event.length === 0) return OTHER;
    if (this.names.has(event)) return event;
    if (event.length > MAX_NAME_LENGTH || !/^[\w .:/-]+$/.test(event)) return OTHER;
    if (this.names.size >= this.core.config.maxMessageNames) return OTHER;
    this.names.add(event);
    return event;
  }
}

function errorType(error: unknown): string {
  if (error instanceof Error) return error.name || 'Error';
  return error === undefined ? 'connection_closed' : typeof error;
}
