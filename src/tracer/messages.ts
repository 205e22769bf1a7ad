/**
 * Messages: every incoming message and every send is counted; a sampled message runs its
 * listeners inside `WS RECEIVE` (a new trace linked to the handshake, or the trace it
 * carries), an unsampled one inside a non-sampled context so nothing nested records, and a
 * failed or slow unsampled one is recorded afterwards with its real start time. Sends are
 * `WS SEND` children of the operation that is active, at most `maxSendSpans` per operation
 * (the rest counted on it), and the sends of an async listener after its `await` still
 * belong to its `WS RECEIVE` for a bounded window — the same rule for every backend.
 */
import { performance } from 'node:perf_hooks';
import * as S from '../semconv';
import type { Attributes, Carrier, Parent } from './adapter';
import { RunMode, type Traced } from './boundary';
import { ACTIVE, NO_OUTCOME, OperationRun, ROOT, type TracerCore } from './core';
import type { Frames } from './frames';
import { JsonFieldReader, type JsonData } from './json-field';
import { sanitizeCarrier } from './propagation';
import { RateLimit, Sampler, upstreamSampled } from './sampler';
import type { NamedReceive, RouteInfo, SocketState } from './socket-state';

/** How long, and for how many sends, an ended message operation still parents its listener's sends. */
const ASYNC_TAIL_MS = 30_000;
const ASYNC_TAIL_SENDS = 64;

/** What the tracer knows about an operation that sends run under (ours or another instrumentation's). */
export class OperationSends {
  /** Sends while it was active, their bytes, and how many got a span. */
  sends = 0;
  bytes = 0;
  spans = 0;
  /** performance.now() when our message operation ended (0: not ended, or not ours). */
  endedAt = 0;
  tailSends = ASYNC_TAIL_SENDS;
  private parentRef: Parent | undefined;

  /** `op`: our message operation, or undefined for another instrumentation's. */
  constructor(readonly op: unknown) {}

  parent(core: TracerCore): Parent {
    return (this.parentRef ??= { type: 'ref', ref: core.adapter.ref(this.op) });
  }
}

/**
 * Operation (the backend's object for it: a span, a transaction) → what the tracer counts on it,
 * kept on the object under a private symbol: one WeakMap entry per traced message made the GC's
 * ephemeron work cost more than the message's spans (scavenge time 1.7-2.1×). Not the sockets'
 * ObjectIndex: one property-load site for sockets and spans alike goes megamorphic, and every
 * lookup of either got 2.3× slower (measured: 40 vs 17 ns for two socket and one span lookups).
 * A non-extensible object (never seen from the SDK or the agents) falls back to a WeakMap.
 */
class OperationIndex {
  private static readonly SENDS = Symbol('ws-apm.sends');
  private fallback: WeakMap<object, OperationSends> | undefined;

  get(key: object): OperationSends | undefined {
    const sends = (key as { [OperationIndex.SENDS]?: OperationSends })[OperationIndex.SENDS];
    return sends !== undefined || this.fallback === undefined ? sends : this.fallback.get(key);
  }

  set(key: object, sends: OperationSends): void {
    if (Object.isExtensible(key)) (key as { [OperationIndex.SENDS]?: OperationSends })[OperationIndex.SENDS] = sends;
    else (this.fallback ??= new WeakMap()).set(key, sends);
  }
}

export class Messages {
  private readonly sampler: Sampler;
  private readonly keepLimit: RateLimit;
  private readonly operations = new OperationIndex();
  /** Message records not in use (one per nesting level of messages emitted from listeners). */
  private readonly free: MessageRecord[] = [];
  /** Reads the name and carried-context fields without parsing the message; null when neither is configured. */
  private readonly fields: JsonFieldReader | null;
  private readonly nameField: number;
  private readonly contextField: number;

  /** `frames`: where the frames of sockets a protocol claimed go (tracer/frames.ts). */
  constructor(private readonly core: TracerCore, private readonly frames?: Frames) {
    const config = core.config;
    this.sampler = new Sampler(config.messageSampleRate, config.messageRateLimit);
    this.keepLimit = new RateLimit(config.keepRateLimit);
    // JSON is read only when a name or a carried context is configured, in one pass for both.
    const paths: (readonly string[])[] = [];
    this.nameField = core.names.enabled ? paths.push(config.messageName) - 1 : -1;
    this.contextField = config.messageContext.length > 0 ? paths.push(config.messageContext) - 1 : -1;
    this.fields = paths.length > 0 ? new JsonFieldReader(paths) : null;
  }

  /**
   * A message arrived on `ws`: count it, name it and decide how its listeners run. Returns
   * the message's record (traced, unsampled, or plain but timed), or undefined when the
   * listeners just run (no tracked socket, a claimed socket's frame, nobody listening).
   */
  receiveStart(ws: object, data: unknown, size: number, binary: boolean, listening: boolean): Traced | undefined {
    const core = this.core;
    const state = core.sockets.get(ws);
    if (state === undefined) return undefined;
    if (state.frames !== undefined && this.frames !== undefined) return this.frames.received(ws, state, state.frames, data, size, binary);
    const metrics = state.info.metrics;
    state.messagesIn++;
    state.bytesIn += size;
    (binary ? metrics.inBinary : metrics.inText).value++;
    metrics.sizeIn.record(size);
    if (!listening) return undefined;

    let name: string | undefined;
    let carried: Carrier | undefined;
    const fields = this.fields;
    if (fields !== null && !binary && size !== 0 && size <= core.config.messageNameMaxBytes && fields.read(data as JsonData)) {
      if (this.nameField !== -1) name = core.names.nameAt(fields, this.nameField);
      if (this.contextField !== -1 && !state.ignored) carried = this.carried(fields.object(this.contextField));
      fields.release();
    }
    const started = performance.now();
    const rec = this.free.pop() ?? new MessageRecord(this);
    rec.state = state;
    rec.data = data;
    rec.size = size;
    rec.binary = binary;
    rec.name = name;
    rec.carried = carried;
    rec.started = started;
    rec.mode = state.ignored ? RunMode.Plain : RunMode.Unsampled;
    if (!state.ignored) {
      const upstream = carried !== undefined ? upstreamSampled(carried) : undefined;
      if (upstream ?? this.sampler.sample(started)) this.startTraced(rec);
    }
    return rec;
  }

  /** The message's operation: its sends are counted on it; its listeners run inside it. */
  private startTraced(rec: MessageRecord): void {
    const op = this.startReceive(rec, undefined, undefined);
    if (op === undefined) return;
    const sends = new OperationSends(op);
    const key = this.core.adapter.keyOf(op);
    if (key !== undefined) this.operations.set(key, sends);
    rec.op = op;
    rec.sends = sends;
    rec.mode = RunMode.Active;
  }

  /** The listeners of `rec` returned or threw: its process time, its operation (or a kept one) ended. */
  receiveEnded(rec: MessageRecord, threw: boolean, error: unknown): void {
    try {
      const core = this.core;
      const state = rec.state!;
      const ended = performance.now();
      const sends = rec.sends;
      if (sends !== undefined) {
        state.info.metrics.process(rec.name).record((ended - rec.started) / 1000);
        // Counted on the operation only when some sends got no span of their own (fan-out cap).
        const attributes = sends.sends === sends.spans ? undefined : sendAttributes(sends);
        core.adapter.end(rec.op, threw ? { error, attributes } : attributes === undefined ? NO_OUTCOME : { attributes });
        sends.endedAt = ended;
        return;
      }
      const elapsed = ended - rec.started;
      state.info.metrics.process(rec.name).recordMicros(Math.round(elapsed * 1000));
      const config = core.config;
      if (!state.ignored && (threw ? config.keepErrors : config.keepSlowMs > 0 && elapsed >= config.keepSlowMs)) {
        this.keep(rec, elapsed, threw, error);
      }
    } finally {
      rec.clear();
      this.free.push(rec);
    }
  }

  /** Record an unsampled message that failed or was slow, after the fact, with its real times. */
  private keep(rec: MessageRecord, elapsed: number, threw: boolean, error: unknown): void {
    if (!this.keepLimit.allow(rec.started + elapsed)) return;
    const startTime = performance.timeOrigin + rec.started;
    const op = this.startReceive(rec, startTime, threw ? 'error' : 'slow');
    this.core.adapter.end(op, threw ? { error, endTime: startTime + elapsed } : { endTime: startTime + elapsed });
  }

  /** `WS RECEIVE` for `rec` (not traced from upstream context when kept after the fact). */
  private startReceive(rec: MessageRecord, startTime: number | undefined, kept: string | undefined): unknown {
    const core = this.core;
    const state = rec.state!;
    const { name, size, binary } = rec;
    const carried = kept === undefined ? rec.carried : undefined;
    const info = state.info;
    // A named message's scratch attributes already carry its name (no copy per message).
    const named = name !== undefined ? namedReceive(info, name) : undefined;
    let attributes = messageAttributes(named !== undefined ? named.attributes : info.receiveAttributes, state, size, binary);
    const body = core.config.captureBody === 'all' ? this.captureBody(rec.data, binary, size) : undefined;
    // Only what this message has: an undefined attribute still costs the SDK copies and checks per span.
    if (body !== undefined || kept !== undefined) {
      attributes = { ...attributes };
      if (body !== undefined) attributes[S.ATTR_WS_MESSAGE_BODY] = body;
      if (kept !== undefined) attributes[S.ATTR_WS_MESSAGE_KEPT] = kept;
    }
    return core.adapter.start({
      name: named !== undefined ? named.spanName : info.receiveName,
      role: 'receive',
      kind: 'consumer',
      side: state.side,
      parent: carried !== undefined ? { type: 'remote', carrier: carried } : state.parent,
      links: carried !== undefined ? state.carriedLinks : state.links,
      attributes,
      startTime,
      route: info.route,
      serverAddress: state.serverAddress,
      serverPort: state.serverPort,
      handshakeTraceId: state.handshakeTraceId,
      messageName: name,
      body,
    });
  }

  /**
   * A send on `ws`: counted when the socket is open; returns the `WS SEND` operation to
   * end when the write completes, or undefined when the send is not traced. `data` lets a
   * protocol that claimed the socket tell its heartbeats from its messages.
   */
  sendStart(ws: object, size: number, binary: boolean, open: boolean, data?: unknown): Traced | undefined {
    const core = this.core;
    const state = core.sockets.get(ws);
    if (state === undefined || !open) return undefined;
    if (state.frames !== undefined && this.frames !== undefined) {
      return this.frames.sent(ws, state, state.frames, data, size, binary);
    }
    const metrics = state.info.metrics;
    state.messagesOut++;
    state.bytesOut += size;
    (binary ? metrics.outBinary : metrics.outText).value++;
    metrics.sizeOut.record(size);
    if (state.ignored) return undefined;
    const parent = this.sendParent(size);
    if (parent === undefined) return undefined;
    const info = state.info;
    const op = core.adapter.start({
      name: info.sendName,
      role: 'send',
      kind: 'producer',
      side: state.side,
      parent,
      attributes: messageAttributes(info.sendAttributes, state, size, binary),
      route: info.route,
      serverAddress: state.serverAddress,
      serverPort: state.serverPort,
    });
    // Ended when the write completes (or send throws); a send is not made the active operation.
    return op === undefined ? undefined : new OperationRun(core.adapter, op, RunMode.Plain);
  }

  // Entry points for a protocol's operations (tracer/events.ts): the same budget, keep limit
  // and send rules as messages, so an event is traced exactly as a message would be.

  /** The sampling decision for one more message-like operation (ratio, then the rate limit). */
  sample(nowMs: number): boolean {
    return this.sampler.sample(nowMs);
  }

  /** May one more failed or slow unsampled operation be recorded after the fact? */
  keepAllowed(nowMs: number): boolean {
    return this.keepLimit.allow(nowMs);
  }

  /** `op` (a protocol's message operation) now parents the sends made while it is active. */
  operationStarted(op: unknown): OperationSends {
    const sends = new OperationSends(op);
    const key = this.core.adapter.keyOf(op);
    if (key !== undefined) this.operations.set(key, sends);
    return sends;
  }

  /** The operation ended: its async tail starts; returns the attributes counting its sends, if any went unrecorded. */
  operationEnded(sends: OperationSends): Attributes | undefined {
    sends.endedAt = performance.now();
    return sends.sends === sends.spans ? undefined : sendAttributes(sends);
  }

  /** Where a protocol's send of `size` bytes hangs, or undefined for no span (the rules of `sendParent`). */
  parentOfSend(size: number): Parent | undefined {
    return this.sendParent(size);
  }

  /** Where a send hangs, or undefined for no span: the parent rules, once for every backend. */
  private sendParent(size: number): Parent | undefined {
    const adapter = this.core.adapter;
    const key = adapter.active();
    if (key === undefined) return this.orphan();
    let sends = this.operations.get(key);
    let parent: Parent = ACTIVE;
    if (sends === undefined) {
      // Another instrumentation's operation (an http request, a broker hand-off), or ours
      // that is not a message (a handshake): sends are its children while it runs.
      if (!adapter.live(key)) return this.orphan();
      sends = new OperationSends(undefined);
      this.operations.set(key, sends);
    } else if (sends.endedAt !== 0) {
      // Our message operation has ended: an async listener's sends after an `await` are
      // still its children, within a bounded tail (a timer started there must not grow it forever).
      if (sends.tailSends <= 0 || performance.now() - sends.endedAt > ASYNC_TAIL_MS) return this.orphan();
      sends.tailSends--;
      parent = sends.parent(this.core);
    } else if (sends.op === undefined && !adapter.live(key)) {
      return this.orphan();
    }
    sends.sends++;
    sends.bytes += size;
    if (sends.spans >= this.core.config.maxSendSpans) return undefined;
    sends.spans++;
    return parent;
  }

  /** A send with no operation to belong to: no span, unless orphan sends are traced (and sampled). */
  private orphan(): Parent | undefined {
    return this.core.config.traceOrphanSends && this.sampler.sample(performance.now()) ? ROOT : undefined;
  }

  private carried(field: Record<string, unknown> | undefined): Carrier | undefined {
    if (field === undefined) return undefined;
    return sanitizeCarrier(field as Carrier, this.core.adapter.propagationHeaders);
  }

  private captureBody(data: unknown, binary: boolean, size: number): string | undefined {
    if (binary) return `[binary ${size} bytes]`;
    const max = this.core.config.captureBodyMaxBytes;
    if (typeof data === 'string') {
      if (size <= max) return data;
      return Buffer.from(data).toString('utf8', 0, max);
    }
    if (Buffer.isBuffer(data)) return data.toString('utf8', 0, Math.min(max, data.length));
    return undefined;
  }
}

/**
 * One incoming message from its arrival to the end of its listeners: what the steps between
 * need, instead of a long list of positional arguments. Pooled by `Messages` (a message
 * emitted from inside a listener takes another), so an untraced message allocates nothing.
 */
export class MessageRecord implements Traced {
  state: SocketState | undefined = undefined;
  data: unknown = undefined;
  size = 0;
  binary = false;
  name: string | undefined = undefined;
  carried: Carrier | undefined = undefined;
  /** performance.now() when the listeners were about to run. */
  started = 0;
  mode: RunMode = RunMode.Plain;
  op: unknown = undefined;
  /** The sends of a traced message (undefined: not traced). */
  sends: OperationSends | undefined = undefined;

  constructor(private readonly messages: Messages) {}

  ended(threw: boolean, error: unknown): void {
    this.messages.receiveEnded(this, threw, error);
  }

  /** Nothing of the app's is retained between messages. */
  clear(): void {
    this.state = undefined;
    this.data = undefined;
    this.name = undefined;
    this.carried = undefined;
    this.op = undefined;
    this.sends = undefined;
  }
}

/** What a message operation sent while it ran: counts always, and how many sends have no span. */
function sendAttributes(sends: OperationSends): Attributes {
  return {
    [S.ATTR_WS_MESSAGES_OUT]: sends.sends,
    [S.ATTR_WS_BYTES_OUT]: sends.bytes,
    [S.ATTR_WS_SENDS_UNRECORDED]: sends.sends - sends.spans,
  };
}

/**
 * Attributes of a message operation, on the hot path: the route's scratch object, refilled
 * in place (adapters copy what they keep during start(), per the contract).
 */
function messageAttributes(scratch: Attributes, state: SocketState, size: number, binary: boolean): Attributes {
  scratch[S.ATTR_MESSAGING_MESSAGE_BODY_SIZE] = size;
  scratch[S.ATTR_WS_MESSAGE_TYPE] = binary ? 'binary' : 'text';
  // The scratch is the route's, shared by its sockets: a socket's user goes on a copy.
  return state.user === undefined ? scratch : { ...scratch, [S.ATTR_ENDUSER_ID]: state.user };
}

/** `WS RECEIVE {route} {name}` and its scratch attributes, built once per route and name (names are capped). */
export function namedReceive(info: RouteInfo, name: string): NamedReceive {
  let named = info.namedReceive.get(name);
  if (named === undefined) {
    named = { spanName: `${info.receiveName} ${name}`, attributes: { ...info.receiveAttributes, [S.ATTR_WS_MESSAGE_NAME]: name } };
    info.namedReceive.set(name, named);
  }
  return named;
}
