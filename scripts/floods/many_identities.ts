/**
 * `handshakes_many_identities`: complete handshakes, each from a fresh
 * session table, cycling through {@linkcode IDENTITIES} distinct identities
 * (the committed `tests/fixtures/bench_identities.json`, real address
 * stamps, so nothing here lowers the cost of making an identity), all from
 * 127.0.0.1, {@linkcode IN_FLIGHT} at a time, as fast as they complete.
 *
 * @module
 */
import { decodeIdentityFile } from "../../src/identity/identity.ts";
import benchIdentities from "../../tests/fixtures/bench_identities.json" with { type: "json" };
import { BenchPeer } from "../../bench/_peer.ts";
import { type Attack, sleep } from "./_attack.ts";

/** Distinct identities used (bench identities 0 to IDENTITIES - 1; the honest strangers use the top ones). */
export const IDENTITIES = 200;
/** Handshakes in flight at once. */
export const IN_FLIGHT = 32;
const HANDSHAKE_TIMEOUT_MS = 3000;

/** Full handshakes from many identities. */
export const handshakesManyIdentities: Attack = {
  name: "handshakes_many_identities",
  async run(ctx) {
    const peers: BenchPeer[] = [];
    let done = 0;
    let failed = 0;
    let lastError = "";
    try {
      for (let i = 0; i < IDENTITIES; i++) {
        peers.push(new BenchPeer(decodeIdentityFile(JSON.stringify(benchIdentities[i]))));
      }
      let next = 0;
      const minGapMs = 1000 / ctx.rate;
      const start = performance.now();
      const lane = async () => {
        while (performance.now() < ctx.deadline) {
          // Never faster than --rate handshakes per second in all.
          const due = start + (done + failed) * minGapMs;
          if (due > performance.now()) await sleep(due - performance.now());
          const peer = peers[next++ % IDENTITIES]!;
          peer.renew();
          try {
            await peer.handshake(ctx.victim.endpoint, ctx.victim.publicKey, HANDSHAKE_TIMEOUT_MS);
            done++;
          } catch (e) {
            failed++;
            lastError = (e as Error).message;
          }
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
      return {
        packets_sent: done + failed,
        notes: {
          what: "packets_sent counts handshakes attempted (3 frames each)",
          identities: IDENTITIES,
          in_flight: IN_FLIGHT,
          handshakes_completed: done,
          handshakes_failed: failed,
          ...(lastError === "" ? {} : { last_failure: lastError.slice(0, 200) }),
        },
      };
    } finally {
      await Promise.allSettled(peers.map((p) => p.close()));
    }
  },
};
