/**
 * The node's UDP socket (Deno.listenDatagram, unstable `net`).
 *
 * @module
 */
import {
  DEFAULT_RECEIVE_BUFFER,
  MAX_RECEIVE_DATAGRAM,
  UDP_SEND_QUEUE,
  UDP_SEND_QUEUE_PER_DESTINATION,
  UDP_SOCKET_BUFFER,
} from "../constants.ts";
import type { Endpoint } from "../discovery/endpoint.ts";
import { raiseSocketBuffers, type SocketBuffers } from "./socket_buffers.ts";

/**
 * The receive buffer a new UDP socket gets (Deno's API cannot set one;
 * `socket_buffers.ts` raises the daemon's own): Linux's
 * net.core.rmem_default, or DEFAULT_RECEIVE_BUFFER where that cannot be
 * read (other systems, no permission, a value that is not a positive integer).
 */
export function systemReceiveBuffer(
  read: () => string = () => Deno.readTextFileSync("/proc/sys/net/core/rmem_default"),
): number {
  return positiveSetting(read) ?? DEFAULT_RECEIVE_BUFFER;
}

/**
 * The share of a peer's socket on this machine that one loopback stream
 * may fill (bytes): half of what any daemon here gets by asking for
 * UDP_SOCKET_BUFFER without privilege (Linux: twice the smaller of it and
 * net.core.rmem_max), and no more than this daemon got itself. The other
 * half is headroom for everyone else's datagrams to that socket. The
 * system's default `systemDefault` whenever that would be less, or when
 * this daemon's own buffers were not raised: nothing then says a peer's were.
 */
export function loopbackStreamBuffer(
  own: SocketBuffers,
  systemDefault: number,
  readMax: () => string = () => Deno.readTextFileSync("/proc/sys/net/core/rmem_max"),
): number {
  if (!own.raised) return systemDefault;
  const max = positiveSetting(readMax);
  if (max === null) return systemDefault;
  const anyone = 2 * Math.min(UDP_SOCKET_BUFFER, max);
  return Math.max(systemDefault, Math.floor(Math.min(own.receive, anyone) / 2));
}

/** A kernel setting's value, or null when it cannot be read or is not a positive integer. */
function positiveSetting(read: () => string): number | null {
  try {
    const n = Number(read().trim());
    return Number.isSafeInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

function ignore(): void {}

/**
 * The queue a datagram waits in for its destination: `session` for what
 * must leave in the order it was issued (a session's frames, message 1 and
 * 3), `reply` for answers to a message 1 (a cookie reply, message 2), which
 * nothing orders against the rest: whoever spoofs a peer's endpoint makes
 * us answer there at the rate it sends, and those answers must not delay
 * that peer's own traffic.
 */
export type SendQueue = "session" | "reply";

/** Sends waiting for one destination in one queue: the last one issued, and how many. */
interface Lane {
  tail: Promise<void>;
  queued: number;
}

/** A bound UDP socket. */
export class UdpSocket {
  #conn: Deno.DatagramConn;
  #closed = false;
  /** Sends waiting, by queue and destination: each waits for the one before it in its queue (see `send`). */
  #lanes = new Map<string, Lane>();
  #queued = 0;
  /** Send failures (e.g. unreachable destinations), counted rather than thrown. */
  sendErrors = 0;
  /** Datagrams not sent because UDP_SEND_QUEUE of them already waited. */
  sendsDropped = 0;
  /** The socket's kernel buffers (raised where the system allows). */
  readonly buffers: SocketBuffers;

  private constructor(conn: Deno.DatagramConn, buffers: SocketBuffers) {
    this.#conn = conn;
    this.buffers = buffers;
  }

  /**
   * Binds to `hostname:port` (port 0 = OS-chosen) and asks for
   * `bufferBytes` of kernel buffers (0: the system's default).
   */
  static open(
    listen: { hostname: string; port: number },
    bufferBytes: number = UDP_SOCKET_BUFFER,
  ): UdpSocket {
    const conn = Deno.listenDatagram({
      transport: "udp",
      hostname: listen.hostname,
      port: listen.port,
    });
    const a = conn.addr as Deno.NetAddr;
    const defaultReceive = systemReceiveBuffer();
    const buffers = bufferBytes === 0
      ? { receive: defaultReceive, send: null, raised: false, why: "not asked for" }
      : raiseSocketBuffers({ hostname: a.hostname, port: a.port }, {
        bytes: bufferBytes,
        defaultReceive,
      });
    return new UdpSocket(conn, buffers);
  }

  /** Datagrams waiting to be sent, to every destination. */
  get queued(): number {
    return this.#queued;
  }

  /** The bound address. */
  get local(): Endpoint {
    const a = this.#conn.addr as Deno.NetAddr;
    return { hostname: a.hostname, port: a.port };
  }

  /**
   * Sends a datagram after every datagram sent before it to the same
   * destination in the same `queue`; failures are counted, never thrown
   * (UDP is best effort).
   *
   * One send at a time to each destination: the runtime's sends, issued
   * all at once in a burst, can leave out of order (measured at a
   * receiving daemon: a tunnel's frames 1468-1471 arrived after
   * 1472-1593, in reverse, though the sender issued them in order), and a
   * stream takes datagrams that far out of order for loss. A send is not
   * slower for waiting its turn (a chain of sends ran at 90,000 a second
   * here, sends all at once at 68,000), but while the event loop is busy
   * each takes a turn of it; so other destinations do not wait behind one
   * whose sends back up (a peer flooding us with segments, each owed an
   * ACK, held a friend's echo behind 200 of them for 80 ms). Past
   * UDP_SEND_QUEUE waiting in all, or UDP_SEND_QUEUE_PER_DESTINATION in
   * one destination's queue, datagrams are dropped and counted. Replies
   * to a message 1 wait in a queue of their own per destination: a flood
   * of spoofed message 1s from a trusted peer's endpoint held that peer's
   * ping replies behind up to 1,024 cookie replies to it.
   */
  send(bytes: Uint8Array, to: Endpoint, queue: SendQueue = "session"): void {
    if (this.#closed) return;
    const key = `${queue} ${to.hostname} ${to.port}`;
    const lane = this.#lanes.get(key) ?? { tail: Promise.resolve(), queued: 0 };
    if (this.#queued >= UDP_SEND_QUEUE || lane.queued >= UDP_SEND_QUEUE_PER_DESTINATION) {
      this.sendsDropped++;
      return;
    }
    this.#lanes.set(key, lane);
    this.#queued++;
    lane.queued++;
    const addr = { transport: "udp" as const, hostname: to.hostname, port: to.port };
    lane.tail = lane.tail.then(() => this.#conn.send(bytes, addr)).then(ignore, () => {
      this.sendErrors++;
    }).finally(() => {
      this.#queued--;
      if (--lane.queued === 0) this.#lanes.delete(key);
    });
  }

  /** Calls `onDatagram` for every datagram until the socket closes. */
  async serve(onDatagram: (bytes: Uint8Array, from: Endpoint) => void): Promise<void> {
    // One receive buffer, reused; each datagram is copied out at its own size.
    const buffer = new Uint8Array(MAX_RECEIVE_DATAGRAM);
    try {
      while (!this.#closed) {
        const [bytes, addr] = await this.#conn.receive(buffer);
        const a = addr as Deno.NetAddr;
        onDatagram(bytes.slice(), { hostname: a.hostname, port: a.port });
      }
    } catch (e) {
      if (!this.#closed) throw e;
    }
  }

  /** Closes the socket. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.close();
  }
}
