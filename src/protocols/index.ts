/**
 * Protocols over ws, one module each behind one small contract: which npm modules load it,
 * `detect` (is this export object the library, in a version the module handles), `patch`
 * (its prototypes, reversibly, once per copy) and `unpatch`. The patch layer hooks their loads
 * the way it hooks ws (src/patch/patch-layer.ts); the module turns the protocol's dispatch into the
 * tracer's neutral calls (tracer/events.ts, tracer/frames.ts). A protocol spoken on the ws
 * socket itself (graphql-ws) loads and patches nothing: its factory claims the sockets that
 * negotiated its subprotocol (`tracer.frames.claimSubprotocol`). A new protocol is one more
 * entry in PROTOCOLS; `WS_APM_PROTOCOL` chooses among them.
 */
import type { FrameWrites } from '../patch/frames';
import type { Tracer } from '../tracer/tracer';
import { graphqlWs } from './graphql-ws';
import { socketIo } from './socketio';
import { socketIoClient } from './socketio/client';
import { socketIoRedisAdapter } from './socketio/redis';

/** What a protocol module gets to work with. */
export interface ProtocolContext {
  readonly tracer: Tracer;
  /** Counts the frames ws writes on a socket the protocol claims (`tracer.frames.claim`). */
  readonly frameWrites: FrameWrites;
}

export interface Protocol {
  readonly name: string;
  /** npm module names whose loading (require or import) hands their exports to `patch`. */
  readonly modules: readonly string[];
  /** The module's entry file in `require.cache`, for copies loaded before ws-apm. */
  readonly entry: RegExp;
  /** Is `exports` this protocol's library, in a version this module handles? */
  detect(exports: unknown): boolean;
  /** Patch the library's prototypes (once per copy); `baseDir` is its package directory when known. */
  patch(exports: unknown, baseDir: string | undefined): boolean;
  /** Undo every patch of this module. */
  unpatch(): void;
}

export type ProtocolFactory = (context: ProtocolContext) => Protocol;

/** Every protocol ws-apm knows, in the order they are hooked. */
export const PROTOCOLS: readonly ProtocolFactory[] = [socketIo, socketIoClient, socketIoRedisAdapter, graphqlWs];
