/**
 * The delay brake (src/stream/delay_brake.ts): congestion avoidance stops
 * growing cwnd while a queue stands on the path, so a bottleneck whose
 * buffer is the receiver's socket is not overflowed every sawtooth.
 */
import assert from "node:assert/strict";
import { STREAM_DELAY_BRAKE } from "../src/constants.ts";
import { DelayBrake } from "../src/stream/delay_brake.ts";
import { NewReno } from "../src/stream/new_reno.ts";
import { openPair, patternBytes, readAll, sha256, SimLink, track, writeAll } from "./_sim_link.ts";

const MSS = 1000;
const MIB = 1024 * 1024;

/** Feeds `brake` whole rounds of ACKs: `rounds` of them, each with these RTT samples. */
function rounds(brake: DelayBrake, count: number, samples: number[], at = { seq: 0 }): void {
  for (let r = 0; r < count; r++) {
    const end = at.seq + samples.length * MSS;
    for (const rtt of samples) {
      at.seq += MSS;
      brake.onAck(at.seq, end + samples.length * MSS, rtt);
    }
  }
}

Deno.test("DelayBrake sees no queue before a full round, nor while the round trip stays at its base", () => {
  const brake = new DelayBrake();
  assert.equal(brake.queued(100 * MSS), 0);
  const at = { seq: 0 };
  rounds(brake, 1, [10, 10, 10], at);
  assert.equal(brake.baseRtt, 10);
  rounds(brake, 5, [10, 11, 10], at);
  assert.equal(brake.queued(100 * MSS), 0, "each round's smallest sample is the base");
  assert.equal(brake.holds(100 * MSS, MSS), false);
});

Deno.test("DelayBrake estimates the standing queue as Vegas does, from each round's smallest sample", () => {
  const brake = new DelayBrake();
  const at = { seq: 0 };
  rounds(brake, 2, [10, 10], at);
  // One late sample in a round is noise: the round's minimum stays at the base.
  rounds(brake, 2, [10, 40], at);
  assert.equal(brake.queued(100 * MSS), 0);
  // A whole round at twice the base: half of what is in flight is queued.
  rounds(brake, 2, [20, 25], at);
  assert.equal(brake.queued(100 * MSS), 50 * MSS);
  const limit = STREAM_DELAY_BRAKE.queueSegments;
  assert.equal(brake.holds(2 * limit * MSS + 2 * MSS, MSS), true, "more than the limit queued");
  assert.equal(brake.holds(2 * limit * MSS - 2 * MSS, MSS), false, "less than the limit queued");
});

Deno.test("DelayBrake learns a longer path's base again within twice baseRounds rounds", () => {
  const brake = new DelayBrake();
  const at = { seq: 0 };
  rounds(brake, 3, [10, 10], at);
  rounds(brake, 2 * STREAM_DELAY_BRAKE.baseRounds + 1, [30, 30], at);
  assert.equal(brake.baseRtt, 30);
  assert.equal(brake.queued(100 * MSS), 0);
});

Deno.test("NewReno's congestion avoidance holds cwnd while a queue stands, grows without one, and still halves on loss", () => {
  const cc = new NewReno({ mss: MSS, maxWindow: 64 * MIB });
  cc.cwnd = 60 * MSS;
  cc.endSlowStart();
  let una = 0;
  // One round trip: a window sent, then its ACKs, each with the round trip `rtt`.
  const round = (rtt: number) => {
    const end = una + cc.cwnd;
    while (una < end) {
      una += MSS;
      cc.onAckReceived({ acked: MSS, una, flight: cc.cwnd, limited: true, highSeq: end, rtt });
    }
  };
  for (let i = 0; i < 3; i++) round(10);
  const free = cc.cwnd;
  for (let i = 0; i < 3; i++) round(10);
  assert.ok(cc.cwnd >= free + 2 * MSS, `grew to ${cc.cwnd} from ${free} with no queue`);
  // The round trip triples: two thirds of the window stand queued, far above the limit.
  for (let i = 0; i < 2; i++) round(30);
  const held = cc.cwnd;
  for (let i = 0; i < 5; i++) round(30);
  assert.equal(cc.cwnd, held, "no growth while the queue stands");
  assert.ok(cc.braked >= 5);
  assert.equal(cc.onLossDetected({ una, flight: cc.cwnd, highSeq: una + cc.cwnd }), true);
  assert.equal(cc.cwnd, Math.floor(held / 2), "a loss still halves it");
});

Deno.test("a bulk transfer through a bottleneck with a drop-tail queue loses nothing once slow start is over, at the bottleneck's rate", async () => {
  // 1 MB/s, 20 ms of propagation both ways (a BDP of 20 segments), and a
  // queue of 60 segments: NewReno alone overflows it at the top of each
  // sawtooth (every ~40 round trips).
  const bytesPerMs = 1000;
  const link = new SimLink({
    mss: MSS,
    link: { delayMs: 10, bytesPerMs, queueBytes: 60 * (MSS + 100) },
    limits: { sendBuffer: 8 * MIB, receiveBuffer: 8 * MIB, peerBuffer: 16 * MIB },
  });
  const { client, server } = await openPair(link);
  const data = patternBytes(12 * MIB, 3);
  const got = readAll(server);
  const sent = track(writeAll(client, data, { chunk: MIB }));
  // Slow start's overshoot (HyStart++ may not stop it in time) is not the brake's business.
  const t0 = link.clock.now;
  await link.run(() => link.clock.now >= t0 + 2_000);
  const before = client.stats();
  const bytesBefore = got.result.bytes;
  const t1 = link.clock.now;
  await link.run(() => sent.settled && got.result.ended);
  const after = client.stats();
  assert.equal(got.result.sha256, sha256(data));
  assert.equal(after.retransmits - before.retransmits, 0, `retransmits after slow start`);
  const rate = (data.length - bytesBefore) / (link.clock.now - t1);
  assert.ok(
    rate >= 0.9 * bytesPerMs,
    `${rate.toFixed(0)} bytes/ms through a ${bytesPerMs} bytes/ms bottleneck`,
  );
});
