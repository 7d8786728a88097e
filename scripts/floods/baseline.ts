/**
 * `baseline`: no attack at all. The same probes run against a victim that
 * only serves the friend, so the figures of the attacks can be read against
 * what this (possibly shared) machine gives when nobody attacks.
 *
 * @module
 */
import { type Attack, sleep } from "./_attack.ts";

/** Sends nothing until the deadline. */
export const baseline: Attack = {
  name: "baseline",
  async run(ctx) {
    await sleep(Math.max(0, ctx.deadline - performance.now()));
    return { packets_sent: 0, notes: { what: "no attack: the probes alone" } };
  },
};
