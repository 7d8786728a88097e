/**
 * Handshake-frame floods: message 1 with a new ephemeral each time
 * (`init_new_ephemerals`, from one socket; `init_many_sources`, from
 * {@linkcode SOURCES} loopback addresses), and message 3 replays plus
 * garbage message 3s for unknown indices (`final_replays`).
 *
 * Message 1 is built as `InitiatorHandshake` builds it — a 32-byte ephemeral
 * followed by the zero padding payload — with a random ephemeral and no mac1
 * or mac2, so each one costs the victim a real responder handshake if it
 * admits it.
 *
 * @module
 */
import { decodeIdentityFile } from "../../src/identity/identity.ts";
import { encodeFrame, MAC_SIZE, MSG1_NOISE_SIZE } from "../../src/wire/frames.ts";
import { fixture } from "../../tests/_daemon_harness.ts";
import { FloodPeer } from "./_peer.ts";
import {
  type Attack,
  type AttackContext,
  paced,
  randomBytes,
  randomIndex,
  udpSender,
} from "./_attack.ts";

/** Distinct loopback source addresses of `init_many_sources` (127.77.x.y). */
export const SOURCES = 256;
/** Fixture identity whose real message 3 is replayed. */
export const REPLAY_FIXTURE = 7;
const ZERO_MAC = new Uint8Array(MAC_SIZE);

/** A message 1 with a fresh random ephemeral and no MACs. */
export function freshInit(): Uint8Array {
  const noise = new Uint8Array(MSG1_NOISE_SIZE);
  crypto.getRandomValues(noise.subarray(0, 32));
  return encodeFrame({
    type: "init",
    senderIndex: randomIndex(),
    noise,
    mac1: ZERO_MAC,
    mac2: ZERO_MAC,
  });
}

/** Message 1 with new ephemerals from one socket. */
export const initNewEphemerals: Attack = {
  name: "init_new_ephemerals",
  async run(ctx) {
    const udp = udpSender(ctx.victim.endpoint);
    try {
      const sent = await paced(ctx.rate, ctx.deadline, () => udp.send(freshInit()));
      return { packets_sent: sent, notes: { mac1: "zero", mac2: "zero", source: "127.0.0.1" } };
    } finally {
      udp.close();
    }
  },
};

/** The same from many loopback addresses, as many spoofed sources would arrive. */
export const initManySources: Attack = {
  name: "init_many_sources",
  async run(ctx: AttackContext) {
    const senders: ReturnType<typeof udpSender>[] = [];
    try {
      for (let i = 0; i < SOURCES; i++) {
        const n = i + 1;
        senders.push(udpSender(ctx.victim.endpoint, `127.77.${n >> 8}.${n & 0xff}`));
      }
      const sent = await paced(
        ctx.rate,
        ctx.deadline,
        (i) => senders[i % SOURCES]!.send(freshInit()),
      );
      return {
        packets_sent: sent,
        notes: {
          sources: SOURCES,
          addresses: `127.77.0.1 and up, ${SOURCES} of them`,
          mac1: "zero",
        },
      };
    } finally {
      for (const s of senders) s.close();
    }
  },
};

/**
 * Message 3: even packets replay the exact bytes of a real message 3 (its
 * handshake already finished), odd ones are garbage of the same size for
 * random, unknown indices.
 */
export const finalReplays: Attack = {
  name: "final_replays",
  async run(ctx) {
    const peer = new FloodPeer(decodeIdentityFile(JSON.stringify(fixture(REPLAY_FIXTURE))));
    const udp = udpSender(ctx.victim.endpoint);
    try {
      let captured: Uint8Array | undefined;
      peer.onTransmit = (bytes) => {
        if (bytes[0] === 0x03) captured ??= bytes.slice();
      };
      await peer.sessions.connect(ctx.victim.endpoint, { publicKey: ctx.victim.publicKey }, 5000)
        .catch((e) => ctx.log(`final_replays: no session (${(e as Error).message})`));
      const noiseSize = captured === undefined ? 259 : captured.length - 9;
      const garbage = () =>
        encodeFrame({
          type: "final",
          senderIndex: randomIndex(),
          receiverIndex: randomIndex(),
          noise: randomBytes(noiseSize),
        });
      const sent = await paced(ctx.rate, ctx.deadline, (i) => {
        if (i % 2 === 0 && captured !== undefined) return peer.raw(captured, ctx.victim.endpoint);
        return udp.send(garbage());
      });
      return {
        packets_sent: sent,
        notes: {
          replayed_real_message_3: captured !== undefined,
          message_3_bytes: noiseSize + 9,
          mix: "even: the captured message 3 replayed from its own socket; odd: garbage " +
            "message 3s for random indices from another socket",
        },
      };
    } finally {
      udp.close();
      await peer.close();
    }
  },
};
