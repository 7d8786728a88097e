/**
 * A benchmark peer without a daemon: a {@linkcode SessionManager} in the
 * bench process, wired as `src/daemon/node.ts` wires it, on a real UDP socket
 * bound to a chosen loopback address (the whole of 127/8 is loopback on
 * Linux, so many peers can each have their own source IP).
 *
 * @module
 */
import { TIMER_TICK_MS } from "../src/constants.ts";
import type { Endpoint } from "../src/discovery/endpoint.ts";
import type { Identity } from "../src/identity/identity.ts";
import { localNodeIdentity } from "../src/session/local_identity.ts";
import { type LocalNodeIdentity, SessionManager } from "../src/session/manager.ts";
import type { PortPacket } from "../src/wire/inner.ts";

const FRAME_INIT = 0x01;
/** How often a peer runs its session timers during a handshake (ms), as the daemon does. */
const TICK_MS = TIMER_TICK_MS;
const FRAME_DATA = 0x05;

/** The local identity a SessionManager needs, built as the daemon builds it. */
export function localIdentityOf(id: Identity): LocalNodeIdentity {
  return localNodeIdentity(id, null);
}

function u32(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset);
}

/** A peer in the bench process on its own UDP socket. */
export class BenchPeer {
  /** Its identity. */
  readonly identity: Identity;
  /** The bound endpoint. */
  readonly endpoint: Endpoint;
  /** The current session table ({@linkcode BenchPeer.renew} replaces it). */
  sessions!: SessionManager;
  /** Called for every packet delivered to the peer. */
  onPacket: (packet: PortPacket) => void = () => {};
  #local: LocalNodeIdentity;
  #conn: Deno.DatagramConn;
  #serving: Promise<void>;
  #closed = false;
  // Index of our latest handshake message 1, and who waits for its confirmation.
  #initIndex = 0;
  #confirmed: (() => void) | undefined;

  /** Binds `hostname:0` for `identity`. */
  constructor(identity: Identity, hostname = "127.0.0.1") {
    this.identity = identity;
    this.#local = localIdentityOf(identity);
    this.#conn = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
    const a = this.#conn.addr as Deno.NetAddr;
    this.endpoint = { hostname: a.hostname, port: a.port };
    this.renew();
    this.#serving = this.#serve();
  }

  /**
   * A fresh, empty session table on the same socket and identity, so the next
   * `handshake()` runs a full handshake again.
   */
  renew(): void {
    this.sessions = new SessionManager({
      local: this.#local,
      transmit: (bytes, to) => {
        if (this.#closed) return;
        if (bytes[0] === FRAME_INIT) this.#initIndex = u32(bytes, 1);
        this.#conn.send(bytes, { transport: "udp", hostname: to.hostname, port: to.port })
          .catch(() => {});
      },
      isTrusted: () => true,
      deliver: (_session, packet) => this.onPacket(packet),
    });
  }

  async #serve(): Promise<void> {
    const buffer = new Uint8Array(65_536);
    try {
      for (;;) {
        const [bytes, from] = await this.#conn.receive(buffer);
        // The responder answers message 3 with an authenticated keepalive on
        // the new session: the first data frame to our index means the
        // handshake is complete at the responder, session installed.
        if (
          this.#confirmed !== undefined && bytes[0] === FRAME_DATA && bytes.length >= 5 &&
          u32(bytes, 1) === this.#initIndex
        ) {
          this.#confirmed();
          this.#confirmed = undefined;
        }
        const f = from as Deno.NetAddr;
        this.sessions.handle(bytes.slice(), { hostname: f.hostname, port: f.port })
          .catch(() => {});
      }
    } catch (e) {
      if (!this.#closed) throw e;
    }
  }

  /**
   * Runs a full handshake with the node at `to` holding `key`, and resolves
   * once the responder confirmed it (its first authenticated packet).
   */
  async handshake(to: Endpoint, key: Uint8Array, timeoutMs: number): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#confirmed = resolve;
    // The session table's timers resend message 1 and message 3 as a node's
    // do, so a responder that sheds one (its work budget) is asked again.
    const sessions = this.sessions;
    const ticker = setInterval(() => void sessions.tick().catch(() => {}), TICK_MS);
    try {
      await this.#confirmedHandshake(to, key, timeoutMs, promise);
    } finally {
      clearInterval(ticker);
    }
  }

  async #confirmedHandshake(
    to: Endpoint,
    key: Uint8Array,
    timeoutMs: number,
    confirmed: Promise<void>,
  ): Promise<void> {
    await this.sessions.connect(to, { publicKey: key }, timeoutMs);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`No confirmation of the handshake within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      await Promise.race([confirmed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the socket. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#confirmed = undefined;
    this.#conn.close();
    await this.#serving.catch(() => {});
  }
}
