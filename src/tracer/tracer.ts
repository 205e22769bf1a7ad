/**
 * The backend-neutral tracer: the patch layer reports ws events to its parts, and only
 * they decide names, attributes, parents, links, sampling and metrics. Each part owns one
 * concern over the shared core (guarded adapter, socket store, names, metric cells):
 *
 *   handshakes  server upgrade → WS CONNECT               (handshake.ts)
 *   clients     client upgrade request → WS CONNECT       (client.ts)
 *   messages    receive, send, sampling, fan-out          (messages.ts)
 *   heartbeats  ping → pong                               (heartbeat.ts)
 *   closes      close summary and connection metrics      (close.ts)
 *   handoff     inject / extract / runWithContext / user  (handoff.ts)
 *   frames      frames of sockets a protocol claimed      (frames.ts)
 *   channels    a protocol's connects (socket.io sockets) (channels.ts)
 *   events      a protocol's events, sends, broadcasts    (events.ts)
 */
import type { Config } from '../config';
import type { Adapter } from './adapter';
import { Boundary } from './boundary';
import { Clients } from './client';
import { Channels } from './channels';
import { Closes } from './close';
import { Events } from './events';
import { Frames } from './frames';
import { TracerCore } from './core';
import { Handoff } from './handoff';
import { Handshakes } from './handshake';
import { Heartbeats } from './heartbeat';
import { Messages } from './messages';

export class Tracer {
  readonly core: TracerCore;
  readonly handshakes: Handshakes;
  readonly clients: Clients;
  readonly messages: Messages;
  readonly heartbeats: Heartbeats;
  readonly closes: Closes;
  readonly handoff: Handoff;
  readonly frames: Frames;
  readonly channels: Channels;
  readonly events: Events;
  /** The one door the patch layer comes in through (boundary.ts). */
  readonly boundary: Boundary;

  constructor(config: Config, adapter: Adapter) {
    const core = new TracerCore(config, adapter);
    this.core = core;
    // First: the parts that run the app's calls themselves (protocol events) go through it too.
    this.boundary = new Boundary(this);
    this.handshakes = new Handshakes(core);
    this.clients = new Clients(core);
    this.heartbeats = new Heartbeats(core);
    this.frames = new Frames(core, this.heartbeats);
    this.messages = new Messages(core, this.frames);
    this.channels = new Channels(core);
    this.events = new Events(core, this.messages, this.channels, this.boundary);
    this.frames.attach(this.events, this.channels);
    this.closes = new Closes(core);
    this.handoff = new Handoff(core);
  }
}
