/**
 * An attacking peer without a daemon: a {@linkcode SessionManager} in the
 * harness process on its own loopback UDP socket, wired as the daemon wires
 * it, that can also put arbitrary bytes on the wire from the same socket and
 * shows every frame its session layer transmits (to capture message 3).
 *
 * @module
 */
import type { Endpoint } from "../../src/discovery/endpoint.ts";
import type { Identity } from "../../src/identity/identity.ts";
import { SessionManager } from "../../src/session/manager.ts";
import type { PortPacket } from "../../src/wire/inner.ts";
import { localIdentityOf } from "../../bench/_peer.ts";

/** A session-capable raw peer on `hostname:0`. */
export class FloodPeer {
  /** Its identity. */
  readonly identity: Identity;
  /** Its session table (trusts everyone). */
  readonly sessions: SessionManager;
  /** Where it sends from. */
  readonly endpoint: Endpoint;
  /** Called with every inner packet delivered to it. */
  onPacket: (packet: PortPacket) => void = () => {};
  /** Called with every frame the session layer transmits. */
  onTransmit: (bytes: Uint8Array) => void = () => {};
  #conn: Deno.DatagramConn;
  #timer: ReturnType<typeof setInterval>;
  #serving: Promise<void>;
  #closed = false;
  #lastAttempt = -Infinity;

  /** Binds `hostname:0` for `identity`. */
  constructor(identity: Identity, hostname = "127.0.0.1") {
    this.identity = identity;
    const conn = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
    this.#conn = conn;
    const a = conn.addr as Deno.NetAddr;
    this.endpoint = { hostname: a.hostname, port: a.port };
    this.sessions = new SessionManager({
      local: localIdentityOf(identity),
      transmit: (bytes, to) => {
        if (this.#closed) return;
        this.onTransmit(bytes);
        conn.send(bytes, { transport: "udp", hostname: to.hostname, port: to.port })
          .catch(() => {});
      },
      isTrusted: () => true,
      deliver: (_session, packet) => this.onPacket(packet),
    });
    this.#timer = setInterval(() => this.sessions.tick().catch(() => {}), 250);
    this.#serving = this.#serve();
  }

  async #serve(): Promise<void> {
    const buffer = new Uint8Array(65_536);
    try {
      for (;;) {
        const [bytes, from] = await this.#conn.receive(buffer);
        const f = from as Deno.NetAddr;
        this.sessions.handle(bytes.slice(), { hostname: f.hostname, port: f.port })
          .catch(() => {});
      }
    } catch (e) {
      if (!this.#closed) throw e;
    }
  }

  /**
   * Makes sure a session with `key` at `to` is up (at most one attempt per
   * second, so a refusing victim is not hammered with handshakes); false
   * when there is none.
   */
  async ensureSession(to: Endpoint, key: Uint8Array, timeoutMs = 3000): Promise<boolean> {
    if (this.sessions.binding(key.toHex()) !== undefined) return true;
    const now = performance.now();
    if (now - this.#lastAttempt < 1000) return false;
    this.#lastAttempt = now;
    try {
      await this.sessions.connect(to, { publicKey: key }, timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  /** Sends raw bytes from this peer's socket; resolves false when the socket refused them. */
  async raw(bytes: Uint8Array, to: Endpoint): Promise<boolean> {
    if (this.#closed) return false;
    try {
      await this.#conn.send(bytes, { transport: "udp", hostname: to.hostname, port: to.port });
      return true;
    } catch {
      return false;
    }
  }

  /** Closes the socket and stops the timers. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#conn.close();
    await this.#serving.catch(() => {});
  }
}
