/**
 * `trust_requests_signed` and `trust_requests_bad_sig`: an untrusted session
 * (fixture 4) sends port-444 trust requests, each datagram with a new request
 * id, as fast as its session can seal them. The requests are valid (signed,
 * channel-bound to the session, addressed to the victim's key; a pool of
 * {@linkcode POOL} nonces reused), or the same bytes with one signature byte
 * flipped.
 *
 * @module
 */
import { PORT_TRUST } from "../../src/constants.ts";
import { decodeIdentityFile } from "../../src/identity/identity.ts";
import { signTrustMessage } from "../../src/wire/trust_message.ts";
import { encodeTrustPacket } from "../../src/wire/trust_packet.ts";
import { fixture } from "../../tests/_daemon_harness.ts";
import {
  type Attack,
  type AttackContext,
  type AttackOutcome,
  paced,
  randomBytes,
} from "./_attack.ts";
import { FloodPeer } from "./_peer.ts";

/** Fixture identity of the requesting stranger. */
export const REQUESTER_FIXTURE = 4;
/** Distinct signed requests (nonces) cycled through. */
const POOL = 64;

async function flood(ctx: AttackContext, badSignature: boolean): Promise<AttackOutcome> {
  const id = decodeIdentityFile(JSON.stringify(fixture(REQUESTER_FIXTURE)));
  const peer = new FloodPeer(id);
  const victimKey = ctx.victim.publicKey.toHex();
  let reconnects = 0;
  try {
    if (!(await peer.ensureSession(ctx.victim.endpoint, ctx.victim.publicKey, 5000))) {
      return { packets_sent: 0, notes: { attack_error: "no session with the victim" } };
    }
    let binding = peer.sessions.binding(victimKey)!;
    const sign = async (b: Uint8Array) => {
      const out: Uint8Array[] = [];
      for (let i = 0; i < POOL; i++) {
        const m = await signTrustMessage(id.seed, {
          kind: "request",
          fromStamp: id.stamp,
          toKey: ctx.victim.publicKey,
          nonce: randomBytes(16),
          created: Date.now(),
          expires: 0,
          binding: b,
          hostname: "",
          reason: "flood harness: a stranger asking again and again",
        });
        const bytes = m.bytes.slice();
        if (badSignature) bytes[bytes.length - 1]! ^= 0x01;
        out.push(bytes);
      }
      return out;
    };
    let pool = await sign(binding);
    const sent = await paced(ctx.rate, ctx.deadline, async (i) => {
      const ok = await peer.sessions.send(victimKey, {
        kind: "datagram",
        srcPort: PORT_TRUST,
        dstPort: PORT_TRUST,
        payload: encodeTrustPacket({
          op: "message",
          requestId: randomBytes(8),
          message: pool[i % POOL]!,
        }),
      });
      if (ok) return true;
      // The victim closed the session (idle expiry, a cap): open another and re-sign for it.
      if (await peer.ensureSession(ctx.victim.endpoint, ctx.victim.publicKey)) {
        const now = peer.sessions.binding(victimKey)!;
        if (now.toHex() !== binding.toHex()) {
          reconnects++;
          binding = now;
          pool = await sign(binding);
        }
      }
      return false;
    });
    return {
      packets_sent: sent,
      notes: {
        requester_fixture: REQUESTER_FIXTURE,
        distinct_signed_requests: POOL,
        signature: badSignature ? "one byte flipped" : "valid",
        session_reopened: reconnects,
      },
    };
  } finally {
    await peer.close();
  }
}

/** Valid signed trust requests, a new request id per datagram. */
export const trustRequestsSigned: Attack = {
  name: "trust_requests_signed",
  run: (ctx) => flood(ctx, false),
};

/** The same requests with a bad signature. */
export const trustRequestsBadSig: Attack = {
  name: "trust_requests_bad_sig",
  run: (ctx) => flood(ctx, true),
};
