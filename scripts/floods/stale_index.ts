/**
 * `stale_index_data`: data frames that no session can open. Half name
 * random (unknown) receiver indices; half name the victim's live index of an
 * untrusted session this peer completed, with garbage ciphertext and rising
 * counters, so each one costs the victim a real AEAD attempt.
 *
 * @module
 */
import { decodeIdentityFile } from "../../src/identity/identity.ts";
import { decodeFrame, encodeFrame } from "../../src/wire/frames.ts";
import { fixture } from "../../tests/_daemon_harness.ts";
import { FloodPeer } from "./_peer.ts";
import { type Attack, paced, randomBytes, randomIndex, udpSender } from "./_attack.ts";

/** Fixture identity of the untrusted session (nobody trusts it). */
export const STALE_PEER_FIXTURE = 5;
const BODY = 64;

/** Data frames with unknown or unusable receiver indices. */
export const staleIndexData: Attack = {
  name: "stale_index_data",
  async run(ctx) {
    const peer = new FloodPeer(decodeIdentityFile(JSON.stringify(fixture(STALE_PEER_FIXTURE))));
    const udp = udpSender(ctx.victim.endpoint);
    try {
      let liveIndex: number | undefined;
      peer.onTransmit = (bytes) => {
        try {
          const f = decodeFrame(bytes);
          if (f.type === "final") liveIndex = f.receiverIndex;
        } catch {
          // Not a frame of ours to read.
        }
      };
      await peer.sessions.connect(ctx.victim.endpoint, { publicKey: ctx.victim.publicKey }, 5_000)
        .catch((e) => ctx.log(`stale_index_data: no session (${(e as Error).message})`));
      const body = randomBytes(BODY);
      let counter = 1_000;
      const sent = await paced(ctx.rate, ctx.deadline, (i) => {
        const live = i % 2 === 1 && liveIndex !== undefined;
        const frame = encodeFrame({
          type: "data",
          receiverIndex: live ? liveIndex! : randomIndex(),
          counter: counter++,
          body,
        });
        return live ? peer.raw(frame, ctx.victim.endpoint) : udp.send(frame);
      });
      return {
        packets_sent: sent,
        notes: {
          body_bytes: BODY,
          live_index_used: liveIndex !== undefined,
          mix: "odd packets: the live index of an untrusted session with garbage ciphertext; " +
            "even: random unknown indices",
        },
      };
    } finally {
      udp.close();
      await peer.close();
    }
  },
};
