/**
 * Hand-made stream connections for the trusted-but-hostile attacks: the
 * three-way handshake done with raw segments over a {@linkcode FloodPeer}'s
 * session, so the attacker can then send whatever segments it likes.
 *
 * @module
 */
import {
  decodeSegment,
  encodeSegment,
  SEG_ACK,
  SEG_PROBE,
  SEG_RST,
  SEG_SYN,
  type StreamSegment,
} from "../../src/wire/stream_segment.ts";
import { randomIndex, sleep } from "./_attack.ts";
import type { FloodPeer } from "./_peer.ts";

/** Receive window this side announces. */
const OUR_WINDOW = 1 << 20;
/** MSS this side announces (as a loopback peer would). */
const OUR_MSS = 60_000;

/** One open connection as the victim described it in its SYN|ACK. */
export interface RawConn {
  /** Connection id (ours). */
  connId: number;
  /** Our port. */
  srcPort: number;
  /** The victim's port. */
  dstPort: number;
  /** The victim's MSS. */
  mss: number;
  /** The victim's receive window beyond offset 1. */
  window: number;
  /** Set when the victim reset the connection, with its reason. */
  reset?: string;
}

/** Opens and drives raw connections from `peer` to the victim holding `key`. */
export class RawStreams {
  #peer: FloodPeer;
  #key: string;
  #waiters = new Map<number, (s: StreamSegment) => void>();
  #conns = new Map<number, RawConn>();

  /** Takes over `peer.onPacket`. */
  constructor(peer: FloodPeer, key: Uint8Array) {
    this.#peer = peer;
    this.#key = key.toHex();
    peer.onPacket = (p) => {
      if (p.kind !== "stream") return;
      let s: StreamSegment;
      try {
        s = decodeSegment(p.payload);
      } catch {
        return;
      }
      const c = this.#conns.get(s.connId);
      if (c !== undefined && (s.flags & SEG_RST) !== 0) {
        c.reset = new TextDecoder().decode(s.data);
      }
      this.#waiters.get(s.connId)?.(s);
    };
  }

  /** Sends one segment on `conn`; false when the session refused it. */
  send(conn: { srcPort: number; dstPort: number }, segment: StreamSegment): Promise<boolean> {
    return this.#peer.sessions.send(this.#key, {
      kind: "stream",
      srcPort: conn.srcPort,
      dstPort: conn.dstPort,
      payload: encodeSegment(segment),
    });
  }

  /** SYN, SYN|ACK, ACK to `dstPort`; throws when the victim does not answer within `timeoutMs`. */
  async open(dstPort: number, srcPort: number, timeoutMs = 5000): Promise<RawConn> {
    const connId = randomIndex();
    const mss = new Uint8Array(4);
    new DataView(mss.buffer).setUint32(0, OUR_MSS);
    const { promise, resolve } = Promise.withResolvers<StreamSegment>();
    this.#waiters.set(connId, (s) => {
      if ((s.flags & (SEG_SYN | SEG_ACK)) === (SEG_SYN | SEG_ACK) || (s.flags & SEG_RST) !== 0) {
        resolve(s);
      }
    });
    const deadline = performance.now() + timeoutMs;
    let answer: StreamSegment | undefined;
    try {
      while (answer === undefined && performance.now() < deadline) {
        await this.send({ srcPort, dstPort }, {
          flags: SEG_SYN,
          connId,
          seq: 0,
          ack: 0,
          window: OUR_WINDOW,
          sack: [],
          data: mss,
        });
        answer = await Promise.race([promise, sleep(500).then(() => undefined)]);
      }
    } finally {
      this.#waiters.delete(connId);
    }
    if (answer === undefined) throw new Error(`No SYN|ACK from port ${dstPort}`);
    if ((answer.flags & SEG_RST) !== 0) {
      throw new Error(`Port ${dstPort} reset: ${new TextDecoder().decode(answer.data)}`);
    }
    const d = answer.data;
    const conn: RawConn = {
      connId,
      srcPort,
      dstPort,
      mss: new DataView(d.buffer, d.byteOffset, d.byteLength).getUint32(0),
      window: answer.window,
    };
    this.#conns.set(connId, conn);
    await this.send(conn, this.#ack(connId));
    return conn;
  }

  /** An ACK|PROBE: asks for an immediate ACK, keeps the connection from idling out. */
  probe(conn: RawConn): Promise<boolean> {
    return this.send(conn, { ...this.#ack(conn.connId), flags: SEG_ACK | SEG_PROBE });
  }

  #ack(connId: number): StreamSegment {
    return {
      flags: SEG_ACK,
      connId,
      seq: 1,
      ack: 1,
      window: OUR_WINDOW,
      sack: [],
      data: new Uint8Array(0),
    };
  }
}
