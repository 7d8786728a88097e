/**
 * The node's streams: one StreamMux per peer key (it outlives rekeys), fed
 * with that peer's stream packets, and the ports API clients listen on.
 * A mux's timers are one setTimeout re-armed to its next deadline.
 *
 * @module
 */
import {
  DEFAULT_RECEIVE_BUFFER,
  LISTEN_BACKLOG,
  LISTEN_LINGER_MS,
  LOOPBACK_DATAGRAM,
  LOOPBACK_FLIGHT,
  MAX_DATAGRAM,
} from "../constants.ts";
import { type Endpoint, formatEndpoint, relayPathOf } from "../discovery/endpoint.ts";
import { RELAY_OVERHEAD } from "../wire/rendezvous_message.ts";
import { noAnswer, PilotError } from "../errors.ts";
import type { PeerIdentity } from "../session/peer_identity.ts";
import { type Connection, mssFor, StreamMux, type StreamTimers } from "../stream/mod.ts";
import { streamOpenError } from "./errors_map.ts";
import { checkPort } from "./user_ports.ts";
import { withTimeout } from "../with_timeout.ts";

/** Sends one stream packet to a peer. */
export type StreamSend = (
  peerKeyHex: string,
  p: { srcPort: number; dstPort: number; payload: Uint8Array },
) => void;

/** An incoming stream and who opened it. */
export interface Incoming {
  /** The connection. */
  conn: Connection;
  /** The peer that opened it. */
  peer: PeerIdentity;
}

interface Listener {
  backlog: Incoming[];
  waiters: ((i: Incoming) => void)[];
  linger: ReturnType<typeof setTimeout> | undefined;
}

interface PeerMux {
  mux: StreamMux;
  peer: PeerIdentity;
  timer: ReturnType<typeof setTimeout> | undefined;
  at: number;
}

/** Whether an endpoint is on this machine (larger segments are safe there). */
export function isLoopback(e: Endpoint): boolean {
  return e.hostname.startsWith("127.") || e.hostname === "::1";
}

/**
 * Bytes a stream keeps in flight on loopback where sockets get `receiveBuffer`
 * bytes: LOOPBACK_FLIGHT scaled by it, in whole LOOPBACK_DATAGRAMs, at least two.
 */
export function loopbackFlight(receiveBuffer: number): number {
  const datagrams = Math.floor(
    (LOOPBACK_FLIGHT / LOOPBACK_DATAGRAM) * receiveBuffer / DEFAULT_RECEIVE_BUFFER,
  );
  return Math.max(2, datagrams) * LOOPBACK_DATAGRAM;
}

/** Every stream of one node. */
export class Streams {
  #muxes = new Map<string, PeerMux>();
  #listeners = new Map<number, Listener>();
  #handlers = new Map<number, (conn: Connection, peer: PeerIdentity) => void>();
  #send: StreamSend;

  #timers: Partial<StreamTimers>;
  #loopbackFlight: number;

  /**
   * Creates the registry; `send` carries packets over the peer's session,
   * and loopback streams keep within what a socket of `receiveBuffer` bytes holds.
   */
  constructor(
    send: StreamSend,
    timers: Partial<StreamTimers> = {},
    receiveBuffer: number = DEFAULT_RECEIVE_BUFFER,
  ) {
    this.#send = send;
    this.#timers = timers;
    this.#loopbackFlight = loopbackFlight(receiveBuffer);
  }

  /** The mux of a peer, made on first use (segment size fits the path). */
  muxFor(peer: PeerIdentity, endpoint: Endpoint | null): StreamMux {
    const existing = this.#muxes.get(peer.keyHex);
    if (existing !== undefined) return existing.mux;
    // A relayed segment travels inside a second session frame: it leaves room for that.
    const loopback = endpoint !== null && isLoopback(endpoint);
    const limit = endpoint === null
      ? MAX_DATAGRAM
      : loopback
      ? LOOPBACK_DATAGRAM
      : relayPathOf(endpoint) !== null
      ? MAX_DATAGRAM - RELAY_OVERHEAD
      : MAX_DATAGRAM;
    const mux = new StreamMux({
      send: (p) => this.#send(peer.keyHex, p),
      now: () => performance.now(),
      mss: mssFor(limit),
      // Loopback drops only at the receiving socket: keep within what it holds.
      ...(loopback ? { maxFlight: this.#loopbackFlight } : {}),
      timers: this.#timers,
      wake: (at) => {
        const entry = this.#muxes.get(peer.keyHex);
        if (entry !== undefined) this.#arm(entry, at);
      },
    });
    const entry: PeerMux = { mux, peer, timer: undefined, at: Infinity };
    this.#muxes.set(peer.keyHex, entry);
    for (const port of this.#listeners.keys()) this.#listenOn(entry, port);
    for (const [port, handler] of this.#handlers) mux.listen(port, (c) => handler(c, peer));
    return entry.mux;
  }

  #arm(entry: PeerMux, at: number): void {
    if (entry.timer !== undefined && at >= entry.at) return;
    clearTimeout(entry.timer);
    entry.at = at;
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      entry.at = Infinity;
      entry.mux.tick();
      const next = entry.mux.nextDeadline();
      if (Number.isFinite(next)) this.#arm(entry, next);
    }, Math.max(0, at - performance.now()));
  }

  /**
   * Opens a stream to `port` of a peer (whose trust the caller checked),
   * failing with `timeout`, `not_found` (nothing listens) or `unreachable`.
   */
  async open(
    peer: PeerIdentity,
    endpoint: Endpoint | null,
    port: number,
    timeoutMs: number,
  ): Promise<Connection> {
    checkPort(port);
    const connecting = this.muxFor(peer, endpoint).connect(port);
    try {
      return await withTimeout(
        connecting,
        timeoutMs,
        `Opening a stream to ${peer.address}:${port}`,
      );
    } catch (e) {
      if (e instanceof PilotError) {
        // The connect may still complete: end it rather than leak it.
        connecting.then((c) => c.reset("timed out"), () => {});
        if (e.code !== "timeout") throw e;
        throw noAnswer(
          "timeout",
          peer.hostname || peer.address,
          endpoint === null ? null : formatEndpoint(endpoint),
        );
      }
      throw streamOpenError(e, peer.address, port);
    }
  }

  /** Feeds a stream packet from a peer to its mux. */
  receive(
    peer: PeerIdentity,
    endpoint: Endpoint | null,
    p: { srcPort: number; dstPort: number; payload: Uint8Array },
  ) {
    this.muxFor(peer, endpoint).receive(p);
  }

  /** Whether a packet from a peer belongs to a stream this node opened to it (on its ports). */
  isReplyToOwn(
    peerKeyHex: string,
    p: { srcPort: number; dstPort: number; payload: Uint8Array },
  ): boolean {
    return this.#muxes.get(peerKeyHex)?.mux.isReplyToOwn(p) ?? false;
  }

  /** Ends every stream with a peer (untrusted, or gone). */
  closePeer(peerKeyHex: string, reason: string): void {
    const entry = this.#muxes.get(peerKeyHex);
    if (entry === undefined) return;
    clearTimeout(entry.timer);
    entry.mux.close(reason);
    this.#muxes.delete(peerKeyHex);
  }

  /** Every connection with its peer. */
  connections(): { peer: PeerIdentity; conn: Connection }[] {
    return [...this.#muxes.values()].flatMap((e) =>
      e.mux.connections().map((conn) => ({ peer: e.peer, conn }))
    );
  }

  #listenOn(entry: PeerMux, port: number): void {
    entry.mux.listen(port, (conn) => this.#accept(port, { conn, peer: entry.peer }));
  }

  #accept(port: number, incoming: Incoming): void {
    const l = this.#listeners.get(port);
    if (l === undefined) {
      incoming.conn.reset("not listening");
      return;
    }
    const waiter = l.waiters.shift();
    if (waiter !== undefined) waiter(incoming);
    else if (l.backlog.length < LISTEN_BACKLOG) l.backlog.push(incoming);
    else incoming.conn.reset("backlog full");
  }

  /** Serves a built-in service's streams on `port` with `handler`, for every peer. */
  serve(port: number, handler: (conn: Connection, peer: PeerIdentity) => void): void {
    this.#handlers.set(port, handler);
    for (const e of this.#muxes.values()) e.mux.listen(port, (c) => handler(c, e.peer));
  }

  /**
   * Starts listening on `port` (a no-op when it already listens): from its
   * return on, streams to the port wait in the backlog for `accept`.
   * Throws `conflict` for a built-in service's port.
   */
  listen(port: number, reserved: (p: number) => boolean): void {
    const l = this.#listeners.get(port);
    if (l !== undefined) {
      clearTimeout(l.linger);
      return;
    }
    if (reserved(port)) {
      throw new PilotError(
        "conflict",
        `Port ${port} is used by a built-in service`,
        "pick another port",
      );
    }
    this.#listeners.set(port, { backlog: [], waiters: [], linger: undefined });
    for (const entry of this.#muxes.values()) this.#listenOn(entry, port);
  }

  /** Waits for the next incoming stream on `port`; listening starts with the first call. */
  async accept(
    port: number,
    signal: AbortSignal,
    reserved: (p: number) => boolean,
  ): Promise<Incoming> {
    this.listen(port, reserved);
    const l = this.#listeners.get(port)!;
    const ready = l.backlog.shift();
    if (ready !== undefined) return ready;
    const listener = l;
    return await new Promise<Incoming>((resolve, reject) => {
      const waiter = (i: Incoming) => {
        signal.removeEventListener("abort", onAbort);
        resolve(i);
      };
      const onAbort = () => {
        listener.waiters = listener.waiters.filter((w) => w !== waiter);
        this.#maybeUnlisten(port);
        reject(new PilotError("timeout", `No stream arrived on port ${port}`, "retry"));
      };
      listener.waiters.push(waiter);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Stops listening on a port once nobody has waited on it for a while. */
  #maybeUnlisten(port: number): void {
    const l = this.#listeners.get(port);
    if (l === undefined || l.waiters.length > 0) return;
    clearTimeout(l.linger);
    l.linger = setTimeout(() => {
      if (l.waiters.length > 0) return;
      this.#listeners.delete(port);
      for (const i of l.backlog) i.conn.reset("not listening");
      for (const e of this.#muxes.values()) e.mux.unlisten(port);
    }, LISTEN_LINGER_MS);
  }

  /** Called when an accepted stream is handed over: start the linger clock if idle. */
  handedOver(port: number): void {
    this.#maybeUnlisten(port);
  }

  /** Ends everything. */
  close(): void {
    for (const key of [...this.#muxes.keys()]) this.closePeer(key, "daemon stopping");
    for (const l of this.#listeners.values()) clearTimeout(l.linger);
    this.#listeners.clear();
  }
}
