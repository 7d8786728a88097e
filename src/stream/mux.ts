/**
 * All reliable streams to one peer: connection ids, listeners, per-peer caps
 * and budgets, and one timer for everything. The mux does no I/O and reads
 * no clock of its own; see `mod.ts` for how the daemon wires it.
 *
 * @module
 */

import { DecodeError } from "../bytes.ts";
import { decodeSegment, encodeSegment, SEG_ACK, SEG_RST, SEG_SYN } from "../wire/stream_segment.ts";
import { STREAM_EPHEMERAL_PORT_MIN } from "../constants.ts";
import { Budget } from "./budget.ts";
import type { CongestionFactory } from "./congestion.ts";
import { Connection, type ConnectionHost } from "./connection.ts";
import { StreamError } from "./error.ts";
import { resolveLimits, resolveTimers, type StreamLimits, type StreamTimers } from "./options.ts";
import type { ConnectionState } from "./state.ts";

/** A stream segment between two virtual ports: the port fields of an inner packet of kind "stream". */
export interface StreamPacket {
  /** Sender's virtual port. */
  srcPort: number;
  /** Receiver's virtual port. */
  dstPort: number;
  /** The encoded segment. */
  payload: Uint8Array;
}

/** What a mux needs from the daemon: a way out, a clock, and the segment size. */
export interface StreamMuxOptions {
  /**
   * Carries one segment to the peer (the daemon wraps it in an inner
   * packet of kind "stream" and seals it). Must not call back into this
   * mux synchronously; may drop (the mux retransmits).
   */
  send(packet: StreamPacket): void;
  /** Monotonic clock in ms (the daemon: `performance.now`; tests: a fake clock). */
  now(): number;
  /** Data bytes per segment: `mssFor(MAX_DATAGRAM)` on real networks, more on loopback. */
  mss: number;
  /**
   * Bytes a connection keeps in flight at most, whatever its congestion
   * window (at least two segments): what the receiving socket's buffer
   * holds on a path that drops nothing else, such as loopback. Default: only
   * the send buffer bounds it.
   */
  maxFlight?: number;
  /** Cap overrides. */
  limits?: Partial<StreamLimits>;
  /** Timer overrides (never longer than the defaults). */
  timers?: Partial<StreamTimers>;
  /**
   * Called when the earliest timer moves earlier (and after each tick with
   * the next one): call {@linkcode StreamMux.tick} at `at` (ms on `now()`'s
   * clock). Delayed ACKs need about 1 ms resolution.
   */
  wake?(at: number): void;
  /** Source of u32 values for connection ids and ephemeral ports (default: crypto). */
  random?(): number;
  /** Creates each connection's congestion controller (default: NewReno). */
  congestion?: CongestionFactory;
  /** Called on every state change of a connection, before the mux acts on it (diagnostics, tests). */
  onStateChange?(conn: Connection, from: ConnectionState): void;
}

/** Options of an outgoing connection. */
export interface ConnectOptions {
  /** Our port (default: a random ephemeral port, 49152 and up). */
  localPort?: number;
  /** Send partial segments at once instead of waiting for outstanding data (no Nagle). */
  noDelay?: boolean;
}

/** Options of a listener. */
export interface ListenOptions {
  /** Accepted connections send partial segments at once (no Nagle). */
  noDelay?: boolean;
}

/** A mux's totals, for diagnostics. */
export interface StreamMuxStats {
  /** Connections that are not in TIME_WAIT. */
  connections: number;
  /** Connections in TIME_WAIT. */
  timeWait: number;
  /** Bytes written and not yet acknowledged, all connections. */
  sendBuffered: number;
  /** Bytes of receive window promised to the peer plus unread data, all connections. */
  receiveCommitted: number;
  /** Segments dropped, by reason. */
  dropped: Record<string, number>;
}

interface Listener {
  onAccept(conn: Connection): void;
  noDelay: boolean;
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new RangeError(`Invalid ${what} ${port}: expected an integer from 0 to 65535`);
  }
}

function cryptoU32(): () => number {
  const pool = new Uint32Array(64);
  let i = pool.length;
  return () => {
    if (i === pool.length) {
      crypto.getRandomValues(pool);
      i = 0;
    }
    return pool[i++]!;
  };
}

/**
 * Reliable streams to one peer over any datagram carrier.
 *
 * @example
 * ```ts
 * import { StreamMux } from "./mux.ts";
 * const out: Uint8Array[] = [];
 * const mux = new StreamMux({ send: (p) => out.push(p.payload), now: () => 0, mss: 1328 });
 * mux.listen(7, (conn) => conn.close());
 * ```
 */
export class StreamMux {
  #o: StreamMuxOptions;
  #host: ConnectionHost;
  #limits: StreamLimits;
  #random: () => number;
  #conns = new Map<number, Connection>();
  #listeners = new Map<number, Listener>();
  #timeWait = new Set<Connection>();
  #active = 0;
  #earliest = Infinity;
  #ticking = false;
  #closed: StreamError | null = null;
  #dropped: Record<string, number> = {};

  /** A mux with no connections. */
  constructor(options: StreamMuxOptions) {
    if (!Number.isInteger(options.mss) || options.mss < 64) {
      throw new RangeError(`Invalid MSS ${options.mss}: expected an integer of at least 64`);
    }
    const maxFlight = options.maxFlight ?? Infinity;
    if (!(maxFlight === Infinity || (Number.isSafeInteger(maxFlight) && maxFlight > 0))) {
      throw new RangeError(`Invalid maxFlight ${maxFlight}: expected a positive integer of bytes`);
    }
    this.#o = options;
    this.#limits = resolveLimits(options.limits);
    const timers = resolveTimers(options.timers);
    this.#random = options.random ?? cryptoU32();
    const send = options.send;
    this.#host = {
      mss: options.mss,
      maxFlight,
      limits: this.#limits,
      timers,
      sendBudget: new Budget(this.#limits.peerBuffer, this.#limits.reserve),
      receiveBudget: new Budget(this.#limits.peerBuffer, this.#limits.reserve),
      now: options.now,
      transmit: (conn, payload) => {
        try {
          send({ srcPort: conn.localPort, dstPort: conn.remotePort, payload });
        } catch {
          this.#drop("send_failed"); // as if lost: retransmission recovers
        }
      },
      changed: (conn, from) => this.#changed(conn, from),
      reschedule: (conn) => this.#reschedule(conn.deadline()),
    };
  }

  /**
   * Opens a connection to the peer's `remotePort`. Resolves once the
   * handshake completes; rejects with a {@linkcode StreamError}: `refused`
   * (no listener or the peer's cap), `timeout`, `limit` (our cap), `closed`.
   */
  connect(remotePort: number, options: ConnectOptions = {}): Promise<Connection> {
    checkPort(remotePort, "remote port");
    if (options.localPort !== undefined) checkPort(options.localPort, "local port");
    if (this.#closed !== null) return Promise.reject(this.#closed);
    if (this.#active >= this.#limits.maxConnections) {
      return Promise.reject(
        new StreamError("limit", `${this.#active} connections to this peer, the most allowed`),
      );
    }
    const connId = this.#newConnId();
    const localPort = options.localPort ?? this.#ephemeralPort(remotePort);
    const p = new Promise<Connection>((resolve, reject) => {
      const conn: Connection = new Connection({
        host: this.#host,
        localPort,
        remotePort,
        connId,
        noDelay: options.noDelay ?? false,
        congestion: this.#o.congestion,
        onOpen: (error) => error === null ? resolve(conn) : reject(error),
      });
      this.#conns.set(connId, conn);
      this.#active++;
      this.#reschedule(conn.deadline());
    });
    p.catch(() => {});
    return p;
  }

  /**
   * Accepts connections to our `port`: `onAccept` gets each one once its
   * handshake completes. Throws if the port already has a listener.
   */
  listen(port: number, onAccept: (conn: Connection) => void, options: ListenOptions = {}): void {
    checkPort(port, "port");
    if (this.#listeners.has(port)) {
      throw new Error(`Cannot listen on stream port ${port}: it already has a listener`);
    }
    this.#listeners.set(port, { onAccept, noDelay: options.noDelay ?? false });
  }

  /** Stops accepting on `port`; open connections stay. */
  unlisten(port: number): void {
    this.#listeners.delete(port);
  }

  /**
   * Takes one stream packet from the peer (already authenticated by the
   * session). Malformed segments are counted and dropped; never throws for
   * anything the peer sends.
   */
  receive(packet: StreamPacket): void {
    if (this.#closed !== null) return;
    let seg;
    try {
      seg = decodeSegment(packet.payload);
    } catch (e) {
      if (e instanceof DecodeError) {
        this.#drop("malformed");
        return;
      }
      throw e;
    }
    const conn = this.#conns.get(seg.connId);
    if (conn !== undefined) {
      if (conn.localPort !== packet.dstPort || conn.remotePort !== packet.srcPort) {
        this.#drop("port_mismatch");
        return;
      }
      conn.receive(seg);
      return;
    }
    if ((seg.flags & SEG_RST) !== 0) {
      this.#drop("unknown_connection");
      return;
    }
    if ((seg.flags & SEG_SYN) !== 0 && (seg.flags & SEG_ACK) === 0) {
      this.#accept(packet, seg.connId, seg);
      return;
    }
    this.#drop("unknown_connection");
    this.#refuse(packet, seg.connId, "unknown connection");
  }

  /**
   * Whether `packet` is a segment of a connection this side opened, on its
   * ports: what a firewall lets back in. A SYN, a segment of a connection
   * the peer opened, or one that does not decode is not.
   */
  isReplyToOwn(packet: StreamPacket): boolean {
    let seg;
    try {
      seg = decodeSegment(packet.payload);
    } catch {
      return false;
    }
    const conn = this.#conns.get(seg.connId);
    return conn !== undefined && conn.initiator && conn.localPort === packet.dstPort &&
      conn.remotePort === packet.srcPort;
  }

  /** Runs every due timer, then reports the next deadline through `wake`. */
  tick(): void {
    const now = this.#o.now();
    this.#ticking = true;
    try {
      for (const conn of this.#conns.values()) {
        if (conn.deadline() <= now) conn.tick();
      }
    } finally {
      this.#ticking = false;
    }
    let next = Infinity;
    for (const conn of this.#conns.values()) {
      const d = conn.deadline();
      if (d < next) next = d;
    }
    this.#earliest = next;
    if (next !== Infinity) this.#o.wake?.(next);
  }

  /** The earliest time {@linkcode StreamMux.tick} has work (Infinity: none); may be early, never late. */
  nextDeadline(): number {
    return this.#earliest;
  }

  /** Every connection not yet closed, TIME_WAIT included. */
  connections(): Connection[] {
    return [...this.#conns.values()];
  }

  /** Totals and drop counters. */
  stats(): StreamMuxStats {
    return {
      connections: this.#active,
      timeWait: this.#timeWait.size,
      sendBuffered: this.#host.sendBudget.held,
      receiveCommitted: this.#host.receiveBudget.held,
      dropped: { ...this.#dropped },
    };
  }

  /**
   * Ends every connection without telling the peer (its session is gone
   * for good, or it is no longer trusted) and refuses new ones.
   */
  close(reason = "peer gone"): void {
    if (this.#closed !== null) return;
    this.#closed = new StreamError("closed", reason);
    const error = new StreamError("reset", reason);
    for (const conn of [...this.#conns.values()]) conn.abort(error);
    this.#listeners.clear();
  }

  #sendRaw(packet: StreamPacket): void {
    try {
      this.#o.send(packet);
    } catch {
      this.#drop("send_failed");
    }
  }

  #drop(reason: string): void {
    this.#dropped[reason] = (this.#dropped[reason] ?? 0) + 1;
  }

  #refuse(to: StreamPacket, connId: number, reason: string): void {
    this.#sendRaw({
      srcPort: to.dstPort,
      dstPort: to.srcPort,
      payload: encodeSegment({
        flags: SEG_RST,
        connId,
        seq: 0,
        ack: 0,
        window: 0,
        sack: [],
        data: new TextEncoder().encode(reason),
      }),
    });
  }

  #accept(packet: StreamPacket, connId: number, syn: Parameters<Connection["receive"]>[0]): void {
    const listener = this.#listeners.get(packet.dstPort);
    if (listener === undefined) {
      this.#drop("refused");
      this.#refuse(packet, connId, `no listener on port ${packet.dstPort}`);
      return;
    }
    if (this.#active >= this.#limits.maxConnections) {
      this.#drop("limit");
      this.#refuse(packet, connId, "too many connections");
      return;
    }
    const conn = new Connection({
      host: this.#host,
      localPort: packet.dstPort,
      remotePort: packet.srcPort,
      connId,
      syn,
      noDelay: listener.noDelay,
      congestion: this.#o.congestion,
    });
    this.#conns.set(connId, conn);
    this.#active++;
    this.#reschedule(conn.deadline());
  }

  #changed(conn: Connection, from: ConnectionState): void {
    this.#o.onStateChange?.(conn, from);
    const to = conn.state;
    if (to === "established" && from === "syn-received") {
      const listener = this.#listeners.get(conn.localPort);
      if (listener === undefined) {
        conn.reset("listener gone");
        return;
      }
      try {
        listener.onAccept(conn);
      } catch {
        conn.reset("accept failed");
      }
    } else if (to === "time-wait") {
      this.#active--;
      this.#timeWait.add(conn);
      if (this.#timeWait.size > this.#limits.maxTimeWait) {
        const oldest = this.#timeWait.values().next().value!;
        oldest.abort(null);
      }
    } else if (to === "closed") {
      if (from === "time-wait") this.#timeWait.delete(conn);
      else this.#active--;
      if (this.#conns.get(conn.connId) === conn) this.#conns.delete(conn.connId);
    }
  }

  #reschedule(at: number): void {
    if (this.#ticking) return; // tick() reports the next deadline once at its end
    if (at < this.#earliest) {
      this.#earliest = at;
      this.#o.wake?.(at);
    }
  }

  #newConnId(): number {
    for (;;) {
      const id = this.#random() >>> 0;
      if (id !== 0 && !this.#conns.has(id)) return id;
    }
  }

  #ephemeralPort(remotePort: number): number {
    const span = 0x10000 - STREAM_EPHEMERAL_PORT_MIN;
    let port = STREAM_EPHEMERAL_PORT_MIN;
    for (let attempt = 0; attempt < 16; attempt++) {
      port = STREAM_EPHEMERAL_PORT_MIN + (this.#random() >>> 0) % span;
      let used = false;
      for (const c of this.#conns.values()) {
        if (c.localPort === port && c.remotePort === remotePort) {
          used = true;
          break;
        }
      }
      if (!used) break;
    }
    return port;
  }
}
