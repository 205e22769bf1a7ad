/**
 * A protocol's events over ws (socket.io first), in the tracer's neutral terms, on the channels
 * of channels.ts: an event is a message with a name on the channel's route, traced, unsampled or
 * kept exactly as a ws message is (same rate limit, same keep rules, same handler-latency metric);
 * a send is a `WS SEND` under the active operation (an ack is a send marked as one); a broadcast
 * is one send with a recipient count. The protocol module (src/protocols/*) says when each of these
 * happens; nothing here knows which protocol it is.
 */
import { performance } from 'node:perf_hooks';
import * as S from '../semconv';
import type { AnyFn, Attributes, Parent } from './adapter';
import { type Boundary, RunMode, type Traced } from './boundary';
import type { Channel, Channels } from './channels';
import { now, type TracerCore } from './core';
import { type Messages, namedReceive, type OperationSends } from './messages';
import { OTHER } from './naming';
import type { RouteInfo } from './socket-state';

const MAX_NAME_LENGTH = 64;

/** An event being handled: what runs it (the boundary's `Traced`), and how it ended. */
export class EventRun implements Traced {
  readonly mode: RunMode;
  readonly carried = undefined;
  failed = false;
  error: unknown = undefined;
  done = false;
  /** Inside `Events.run` (its context is active): a nested run (socket.io's `done` called synchronously) needs no switch. */
  inside = false;
  /** The protocol's socket whose listeners run this event (socket.io's dispatch). */
  socket: object | undefined = undefined;
  /** The next event in the protocol's queue of pending dispatches. */
  next: EventRun | undefined = undefined;

  constructor(
    private readonly events: Events,
    readonly channel: Channel,
    readonly name: string,
    readonly op: unknown,
    readonly sends: OperationSends | undefined,
    readonly started: number,
    readonly transport: string | undefined,
  ) {
    this.mode = op !== undefined ? RunMode.Active : channel.ignored ? RunMode.Plain : RunMode.Unsampled;
  }

  ended(threw: boolean, error: unknown): void {
    if (threw) this.events.failed(this, error);
    this.events.ended(this);
  }
}

/** A protocol send (or broadcast) traced as `WS SEND`, ended with the recipients counted. */
class SendRun implements Traced {
  readonly mode = RunMode.Active;
  readonly carried = undefined;

  constructor(private readonly core: TracerCore, readonly op: unknown, private readonly recipients: (() => number) | undefined) {}

  ended(threw: boolean, error: unknown): void {
    const attributes = this.recipients !== undefined ? { [S.ATTR_WS_BROADCAST_RECIPIENTS]: this.recipients() } : undefined;
    this.core.adapter.end(this.op, threw ? { error, attributes } : attributes === undefined ? {} : { attributes });
  }
}

export class Events {
  private readonly names = new Set<string>();
  private readonly sendNames = new WeakMap<RouteInfo, Map<string, string>>();

  constructor(
    private readonly core: TracerCore,
    private readonly messages: Messages,
    private readonly channels: Channels,
    private readonly boundary: Boundary,
  ) {}

  /** Run protocol code (the event's middlewares, the app's handler) inside the event's operation, or unsampled. */
  run<R>(run: EventRun, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    // Called again from inside (middlewares that call `next` synchronously): already in its context.
    if (run.inside) return fn.apply(thisArg, args) as R;
    run.inside = true;
    try {
      return this.boundary.runWithin<R>(run, fn, thisArg, args);
    } finally {
      run.inside = false;
    }
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
    return new EventRun(this, channel, name, op, sends, started, transport);
  }

  /** The event's handler threw (recorded; the protocol re-throws it). */
  failed(run: EventRun, error: unknown): void {
    run.failed = true;
    run.error = error;
  }

  /** The event's handler returned (or was never called): end its operation, record its latency, keep it if it failed or was slow. */
  ended(run: EventRun, error?: unknown): void {
    if (run.done) return;
    run.done = true;
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
    let run: SendRun | undefined;
    try {
      run = this.sendStart(key, event, ack);
    } catch (err) {
      this.boundary.fault('ws-apm event send', err);
    }
    return run === undefined ? fn.apply(thisArg, args) : this.boundary.run<R>(run, fn, thisArg, args);
  }

  private sendStart(key: object, event: unknown, ack: boolean): SendRun | undefined {
    const channel = this.channels.get(key);
    if (channel === undefined || channel.ignored) return undefined;
    const parent = this.messages.parentOfSend(0);
    if (parent === undefined) return undefined;
    const name = ack ? 'ack' : this.name(event);
    const op = this.startSend(channel.info, channel.protocol, name, ack, parent);
    return op === undefined ? undefined : new SendRun(this.core, op, undefined);
  }

  /**
   * A send on channel `key` that names its event, whose write the caller ends (graphql-ws's
   * `next` of an operation, through tracer/frames.ts): `WS SEND {route} {name}` under the active
   * operation, or undefined for no span. `name` is already capped.
   */
  sendStarted(key: object, name: string): Traced | undefined {
    const channel = this.channels.get(key);
    if (channel === undefined || channel.ignored) return undefined;
    const parent = this.messages.parentOfSend(0);
    if (parent === undefined) return undefined;
    const op = this.startSend(channel.info, channel.protocol, name, false, parent);
    return op === undefined ? undefined : new SendRun(this.core, op, undefined);
  }

  /**
   * Run `fn`, which hands a received event (or ack) of channel `key` to the app's listeners
   * synchronously, inside the event's operation (socket.io-client, an ack's callback).
   */
  handle<R>(key: object, event: unknown, transport: string | undefined, fn: AnyFn, thisArg: unknown, args: unknown[]): R {
    let run: EventRun | undefined;
    try {
      run = this.received(key, event, transport);
    } catch (err) {
      this.boundary.fault('ws-apm event', err);
    }
    return run === undefined ? fn.apply(thisArg, args) : this.boundary.run<R>(run, fn, thisArg, args);
  }

  /**
   * A broadcast on `route` (every recipient written by `fn`): one `WS SEND {route} {event}` under
   * the active operation, with the number of recipients `recipients()` reports once `fn` returned.
   */
  broadcast<R>(protocol: string, route: string, event: unknown, fn: AnyFn, thisArg: unknown, args: unknown[], recipients: () => number): R {
    let run: SendRun | undefined;
    try {
      run = this.broadcastStart(protocol, route, event, recipients);
    } catch (err) {
      this.boundary.fault('ws-apm broadcast', err);
    }
    return run === undefined ? fn.apply(thisArg, args) : this.boundary.run<R>(run, fn, thisArg, args);
  }

  private broadcastStart(protocol: string, route: string, event: unknown, recipients: () => number): SendRun | undefined {
    const parent = this.messages.parentOfSend(0);
    if (parent === undefined) return undefined;
    const core = this.core;
    const capped = core.routes.route(route);
    if (core.routes.isIgnored(capped, route)) return undefined;
    const op = this.startSend(core.routeInfo(capped, 'server'), protocol, this.name(event), false, parent);
    return op === undefined ? undefined : new SendRun(core, op, recipients);
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
    return this.core.adapter.start({
      name: namedReceive(info, name).spanName,
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
  name(event: unknown): string {
    if (typeof event !== 'string' || event.length === 0) return OTHER;
    if (this.names.has(event)) return event;
    if (event.length > MAX_NAME_LENGTH || !/^[\w .:/-]+$/.test(event)) return OTHER;
    if (this.names.size >= this.core.config.maxMessageNames) return OTHER;
    this.names.add(event);
    return event;
  }
}
