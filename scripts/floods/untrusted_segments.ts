/**
 * `untrusted_stream_segments`: an untrusted session (fixture 3) sends stream
 * segments — SYNs, ACKed data and FINs for connections that do not exist —
 * to port 444 and other ports. The gate should drop them all silently;
 * `notes.stream_answers` counts the stream packets the victim sent back
 * (RSTs: an oracle).
 *
 * @module
 */
import { decodeIdentityFile } from "../../src/identity/identity.ts";
import {
  encodeSegment,
  SEG_ACK,
  SEG_FIN,
  SEG_SYN,
  type StreamSegment,
} from "../../src/wire/stream_segment.ts";
import { fixture } from "../../tests/_daemon_harness.ts";
import { type Attack, paced, randomBytes, randomIndex } from "./_attack.ts";
import { FloodPeer } from "./_peer.ts";

/** Fixture identity of the untrusted sender. */
export const SEGMENT_FIXTURE = 3;
/** Ports the segments go to, in turn. */
export const PORTS = [444, 1001, 7, 1002, 1000, 5000];
const MSS = new Uint8Array([0, 0, 0xea, 0x60]);
const DATA = randomBytes(512);

function segment(i: number): StreamSegment {
  const connId = randomIndex();
  switch (i % 3) {
    case 0:
      return { flags: SEG_SYN, connId, seq: 0, ack: 0, window: 1 << 20, sack: [], data: MSS };
    case 1:
      return { flags: SEG_ACK, connId, seq: 1, ack: 1, window: 1 << 20, sack: [], data: DATA };
    default:
      return { flags: SEG_ACK | SEG_FIN, connId, seq: 1, ack: 1, window: 0, sack: [], data: DATA };
  }
}

/** Stream segments from a peer nobody trusts. */
export const untrustedStreamSegments: Attack = {
  name: "untrusted_stream_segments",
  async run(ctx) {
    const peer = new FloodPeer(decodeIdentityFile(JSON.stringify(fixture(SEGMENT_FIXTURE))));
    const key = ctx.victim.publicKey.toHex();
    let answers = 0;
    peer.onPacket = (p) => {
      if (p.kind === "stream") answers++;
    };
    try {
      if (!(await peer.ensureSession(ctx.victim.endpoint, ctx.victim.publicKey, 5000))) {
        return { packets_sent: 0, notes: { attack_error: "no session with the victim" } };
      }
      const sent = await paced(ctx.rate, ctx.deadline, async (i) => {
        const ok = await peer.sessions.send(key, {
          kind: "stream",
          srcPort: 49_152 + (i % 1000),
          dstPort: PORTS[i % PORTS.length]!,
          payload: encodeSegment(segment(i)),
        });
        if (!ok) await peer.ensureSession(ctx.victim.endpoint, ctx.victim.publicKey);
        return ok;
      });
      return {
        packets_sent: sent,
        notes: {
          sender_fixture: SEGMENT_FIXTURE,
          ports: PORTS,
          kinds: "SYN, ACK with 512 data bytes, ACK|FIN with 512 bytes, in turn",
          stream_answers: answers,
        },
      };
    } finally {
      await peer.close();
    }
  },
};
