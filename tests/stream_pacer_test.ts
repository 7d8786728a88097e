/** The stream sender's pacer: a token bucket filled at a rate derived from cwnd / srtt. */
import assert from "node:assert/strict";
import { PACE_GAIN_CA, PACE_GAIN_SS, PACE_QUANTUM_MS, Pacer } from "../src/stream/pacer.ts";
import { openPair, patternBytes, readAll, sha256, SimLink, track, writeAll } from "./_sim_link.ts";

const MSS = 1_400;
const MIB = 1024 * 1024;

Deno.test("the pacing rate is cwnd / srtt times the gain of the phase", () => {
  // Slow start (cwnd below half ssthresh, as Linux): the window doubles per RTT, so twice.
  assert.equal(Pacer.rate(140_000, Infinity, 10), PACE_GAIN_SS * 14_000);
  // Congestion avoidance: a little over the window, so ACK-clocked growth is not starved.
  assert.equal(Pacer.rate(140_000, 200_000, 10), PACE_GAIN_CA * 14_000);
  // No RTT sample yet: not paced.
  assert.equal(Pacer.rate(140_000, Infinity, null), Infinity);
});

Deno.test("an unpaced rate lets everything out at once", () => {
  const p = new Pacer(MSS);
  for (let i = 0; i < 100; i++) {
    assert.equal(p.delay(MSS, Infinity, 0), 0);
    p.spend(MSS);
  }
});

Deno.test("a burst is one quantum of the rate (at least two segments), then the sender waits", () => {
  const p = new Pacer(MSS);
  const rate = 14_000; // bytes per ms: ten segments per ms
  let sent = 0;
  while (p.delay(MSS, rate, 0) === 0) {
    p.spend(MSS);
    sent += MSS;
  }
  assert.equal(sent, Math.floor((rate * PACE_QUANTUM_MS) / MSS) * MSS);
  // The wait is the time the rate takes to earn the missing bytes.
  const wait = p.delay(MSS, rate, 0);
  assert.ok(wait > 0 && wait <= MSS / rate + 1e-9, `waits ${wait} ms`);
  // After that wait, one more segment may go, and no more than the quantum after a long idle.
  assert.equal(p.delay(MSS, rate, wait), 0);
  let after = 0;
  while (p.delay(MSS, rate, 1_000) === 0) {
    p.spend(MSS);
    after += MSS;
  }
  assert.ok(after <= rate * PACE_QUANTUM_MS, `burst after idle ${after} bytes`);
});

Deno.test("a slow rate still releases two segments per burst", () => {
  const p = new Pacer(MSS);
  const rate = 100; // far below one segment per quantum
  let sent = 0;
  while (p.delay(MSS, rate, 0) === 0) {
    p.spend(MSS);
    sent += MSS;
  }
  assert.equal(sent, 2 * MSS);
  // And then one segment per MSS / rate ms.
  assert.ok(Math.abs(p.delay(MSS, rate, 0) - MSS / rate) < 1e-6);
});

Deno.test("over a long run the bytes let out follow the rate", () => {
  const p = new Pacer(MSS);
  const rate = 5_000;
  let now = 0;
  let sent = 0;
  while (now < 1_000) {
    const d = p.delay(MSS, rate, now);
    if (d > 0) {
      now += d;
      continue;
    }
    p.spend(MSS);
    sent += MSS;
  }
  // The rate, plus the full bucket it started with (one quantum), to within a segment.
  const expected = rate * 1_000 + rate * PACE_QUANTUM_MS;
  assert.ok(Math.abs(sent - expected) <= MSS, `sent ${sent} for ${expected}`);
});

Deno.test("a paced connection spreads each window over the round trip instead of sending it at one instant", async () => {
  // A link without a bottleneck: unpaced, a whole window leaves at the
  // instant its ACKs arrive, and they all arrive at once.
  const mss = 1_328;
  const link = new SimLink({
    mss,
    link: { delayMs: 50 },
    limits: { sendBuffer: 4 * MIB, receiveBuffer: 4 * MIB, peerBuffer: 8 * MIB },
  });
  link.tracing = true;
  const { client, server } = await openPair(link);
  const data = patternBytes(4 * MIB, 3);
  const got = readAll(server);
  const sent = track(writeAll(client, data, { chunk: MIB }));
  let peakCwnd = 0;
  await link.run(() => {
    peakCwnd = Math.max(peakCwnd, client.stats().cwnd);
    return sent.settled && got.result.ended;
  });
  assert.equal(got.result.sha256, sha256(data));
  const atInstant = new Map<number, number>();
  for (const p of link.trace) {
    if (p.from !== "a" || p.segment.data.length === 0) continue;
    atInstant.set(p.at, (atInstant.get(p.at) ?? 0) + p.segment.data.length);
  }
  const largest = Math.max(...atInstant.values());
  // The largest burst the pacer allows: one quantum at the highest rate (slow start's gain).
  const srtt = client.stats().srtt!;
  const bound = Math.max(2 * mss, (PACE_GAIN_SS * peakCwnd / srtt) * PACE_QUANTUM_MS) + mss;
  assert.ok(peakCwnd > 5 * bound, `the window (${peakCwnd}) is large enough to tell`);
  assert.ok(largest <= bound, `${largest} bytes left at one instant (bound ${bound.toFixed(0)})`);
});
