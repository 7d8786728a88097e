import assert from "node:assert/strict";
import { RtoEstimator } from "../src/stream/rto.ts";
import { SEG_ACK, SEG_SYN } from "../src/wire/stream_segment.ts";
import { openPair, SimLink, track } from "./_sim_link.ts";

const opts = { initialMs: 1000, minMs: 200, maxMs: 60_000, granularityMs: 1 };

Deno.test("RtoEstimator starts at the initial RTO with no SRTT", () => {
  const e = new RtoEstimator(opts);
  assert.equal(e.srtt, null);
  assert.equal(e.rto, 1000);
});

Deno.test("RtoEstimator follows RFC 6298 (2.2) and (2.3) on known samples", () => {
  const e = new RtoEstimator(opts);
  e.sample(100);
  // First: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4 RTTVAR) = 100 + 200.
  assert.equal(e.srtt, 100);
  assert.equal(e.rttvar, 50);
  assert.equal(e.rto, 300);
  e.sample(200);
  // RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 62.5 (with the old SRTT);
  // SRTT = 7/8 * 100 + 1/8 * 200 = 112.5; RTO = 112.5 + 250 = 362.5.
  assert.equal(e.rttvar, 62.5);
  assert.equal(e.srtt, 112.5);
  assert.equal(e.rto, 362.5);
  e.sample(112.5);
  assert.equal(e.rttvar, 46.875);
  assert.equal(e.srtt, 112.5);
  assert.equal(e.rto, 112.5 + 187.5);
});

Deno.test("RtoEstimator clamps the RTO to the minimum and uses the granularity", () => {
  const e = new RtoEstimator(opts);
  e.sample(10);
  assert.equal(e.rto, 200); // 10 + 20 is below the floor
  const fine = new RtoEstimator({ ...opts, minMs: 1 });
  for (let i = 0; i < 200; i++) fine.sample(10);
  // RTTVAR decays towards 0, so G keeps RTO above SRTT.
  assert.ok(fine.rto >= 10 + 1 - 1e-9 && fine.rto < 11.01, `rto ${fine.rto}`);
});

Deno.test("RtoEstimator doubles on each backoff up to the maximum, and a sample clears the backoff", () => {
  const e = new RtoEstimator({ ...opts, maxMs: 5000 });
  e.sample(100);
  const seen = [];
  for (let i = 0; i < 6; i++) {
    e.backoff();
    seen.push(e.rto);
  }
  assert.deepEqual(seen, [600, 1200, 2400, 4800, 5000, 5000]);
  assert.equal(e.backoffs, 6);
  e.sample(100);
  assert.equal(e.backoffs, 0);
  assert.ok(e.rto < 600);
});

Deno.test("a retransmitted SYN gives no RTT sample (Karn) and the backed-off RTO stays", async () => {
  let synsDropped = 0;
  const link = new SimLink({
    link: { delayMs: 50 },
    // Lose the first SYN: the answer to the retransmission is ambiguous.
    drop: (p) => p.segment.flags === SEG_SYN && synsDropped++ === 0,
  });
  const { client } = await openPair(link);
  assert.equal(synsDropped, 2);
  assert.equal(client.stats().srtt, null);
  assert.equal(client.stats().rto, 2000); // 1 s doubled once, kept until a clean sample
});

Deno.test("data segments sent once give RTT samples; a retransmitted one does not (Karn)", async () => {
  let dataSeen = 0;
  const link = new SimLink({
    link: { delayMs: 40 },
    drop: (p) =>
      p.from === "a" && p.segment.flags === SEG_ACK && p.segment.data.length > 0 &&
      dataSeen++ === 0,
  });
  const { client, server } = await openPair(link);
  const srttAfterOpen = client.stats().srtt;
  assert.equal(srttAfterOpen, 80);
  // The only data segment is lost once; its retransmission is acknowledged
  // 80 ms later, but more than RTO after the original: a sample would be
  // far above 80.
  const got = track(server.read());
  client.write(new Uint8Array(10));
  await link.run(() => got.settled);
  const s = client.stats();
  assert.equal(s.retransmits, 1);
  assert.equal(s.timeouts, 1);
  assert.equal(s.srtt, 80, "the retransmission's ACK was not sampled");
  assert.ok(s.rto > 200, `backoff kept: ${s.rto}`);
  // The next segment, sent once, is sampled and clears the backoff.
  const next = track(server.read());
  client.write(new Uint8Array(10));
  await link.run(() => next.settled);
  await link.advance(200);
  // One lone segment waits for the 1 ms delayed ACK: the sample is 81 ms.
  assert.equal(client.stats().srtt, 80 + 1 / 8);
  assert.ok(client.stats().rto < 250, `backoff cleared: ${client.stats().rto}`);
  assert.equal(link.counters.hookDrops, 1);
});
