import assert from "node:assert/strict";
import type { Connection } from "../src/stream/connection.ts";
import { SEG_ACK } from "../src/wire/stream_segment.ts";
import { STREAM_ACK_BYTES } from "../src/constants.ts";
import { StreamMux } from "../src/stream/mux.ts";
import {
  openPair,
  patternBytes,
  readAll,
  sha256,
  SimLink,
  track,
  type WirePacket,
  writeAll,
} from "./_sim_link.ts";

const MIB = 1024 * 1024;
const isData = (p: WirePacket) => p.segment.flags === SEG_ACK && p.segment.data.length > 0;

Deno.test("16 MiB arrive intact (SHA-256) at 10% loss with reordering and duplication", async () => {
  const link = new SimLink({
    seed: 16,
    link: {
      loss: 0.1,
      duplicate: 0.05,
      reorder: 0.1,
      reorderMs: 15,
      delayMs: 10,
      jitterMs: 2,
      bytesPerMs: 20_000,
      queueBytes: 512 * 1024,
    },
    timers: { minRtoMs: 50 },
    limits: { sendBuffer: 4 * MIB, receiveBuffer: 4 * MIB },
  });
  const { client, server } = await openPair(link);
  const data = patternBytes(16 * MIB, 16);
  const got = readAll(server);
  const sent = track(writeAll(client, data, { chunk: MIB }));
  await link.run(() => sent.settled && got.result.ended, { maxMs: 3_600_000 });
  assert.equal(sent.error, undefined);
  assert.equal(got.result.bytes, data.length);
  assert.equal(got.result.sha256, sha256(data));
  // The link really was hostile, and recovery did the work.
  const c = link.counters;
  assert.ok(c.lost > 1000 && c.duplicated > 500 && c.reordered > 1000, JSON.stringify(c));
  const s = client.stats();
  assert.ok(s.retransmits > 1000, `retransmits ${s.retransmits}`);
  assert.ok(s.fastRecoveries > 10, `fast recoveries ${s.fastRecoveries}`);
  assert.equal(s.sent, data.length);
});

Deno.test("corrupted segments are dropped (as the AEAD would) and recovered by retransmission", async () => {
  const link = new SimLink({
    seed: 7,
    link: { corrupt: 0.05, delayMs: 5 },
    timers: { minRtoMs: 50 },
  });
  const { client, server } = await openPair(link);
  const data = patternBytes(2 * MIB, 3);
  const got = readAll(server);
  const sent = track(writeAll(client, data));
  await link.run(() => sent.settled && got.result.ended);
  assert.equal(got.result.sha256, sha256(data));
  assert.ok(link.counters.corrupted > 50, `corrupted ${link.counters.corrupted}`);
  assert.ok(client.stats().retransmits > 20);
});

Deno.test("corrupted segments fed straight to a mux never make it throw", async () => {
  // Without the AEAD a flipped bit in the data goes unnoticed, so content
  // is not checked here: only that every segment is handled or dropped.
  const link = new SimLink({
    seed: 8,
    link: { corrupt: 0.2, delayMs: 5 },
    corruption: "deliver",
    timers: { minRtoMs: 50, idleTimeoutMs: 5_000 },
  });
  const { client, server } = await openPair(link);
  const got = readAll(server);
  got.done.catch(() => {});
  const sent = track(writeAll(client, patternBytes(MIB, 5)));
  await link.run(() => (sent.settled && got.result.ended) || client.state === "closed", {
    maxMs: 120_000,
  });
  assert.ok(link.counters.corrupted > 50);
  // Some flips hit a header: refused by the decoder or by the conn id check.
  const dropped = [link.a, link.b].map((m) => m.stats().dropped).reduce(
    (n, d) => n + (d.malformed ?? 0) + (d.unknown_connection ?? 0),
    0,
  );
  assert.ok(dropped > 0, `dropped ${dropped}`);
});

Deno.test("50 concurrent streams over one mux all deliver their own data", async () => {
  const link = new SimLink({
    seed: 50,
    link: { loss: 0.02, reorder: 0.05, reorderMs: 10, delayMs: 5, bytesPerMs: 10_000 },
    timers: { minRtoMs: 50 },
  });
  const servers = new Map<number, Connection>();
  link.b.listen(1001, (c) => servers.set(c.remotePort, c));
  const clients: Connection[] = [];
  const opens = Array.from(
    { length: 50 },
    (_, i) => track(link.a.connect(1001, { localPort: 50_000 + i }).then((c) => clients.push(c))),
  );
  await link.run(() => opens.every((o) => o.settled) && servers.size === 50);
  const payloads = clients.map((c) => patternBytes(100_000 + c.localPort % 7 * 1000, c.localPort));
  const reads = clients.map((c) => readAll(servers.get(c.localPort)!));
  const writes = clients.map((c, i) => track(writeAll(c, payloads[i]!, { chunk: 8192 })));
  await link.run(() => writes.every((w) => w.settled) && reads.every((r) => r.result.ended));
  clients.forEach((c, i) => {
    assert.equal(reads[i]!.result.sha256, sha256(payloads[i]!), `stream ${c.localPort}`);
  });
  assert.ok(link.counters.lost > 0);
});

Deno.test("a receiver that never reads stops the sender with bounded memory, and zero-window probes resume the flow once it reads", async () => {
  const cap = 64 * 1024;
  const link = new SimLink({
    seed: 3,
    link: { delayMs: 5 },
    limits: { sendBuffer: cap, receiveBuffer: cap, reserve: cap, peerBuffer: cap },
    timers: { persistMaxMs: 5_000 },
  });
  const { client, server } = await openPair(link);
  const data = patternBytes(MIB, 11);
  const sent = track(writeAll(client, data, { chunk: 16 * 1024 }));
  // Nobody reads at the server for a long while.
  let maxSend = 0;
  let maxRecv = 0;
  const sample = () => {
    maxSend = Math.max(maxSend, client.stats().sendBuffered, link.a.stats().sendBuffered);
    maxRecv = Math.max(maxRecv, server.stats().receiveBuffered, link.b.stats().receiveCommitted);
  };
  for (let i = 0; i < 60; i++) {
    await link.advance(1_000);
    sample();
  }
  assert.equal(sent.settled, false, "the writer is held back");
  assert.ok(maxSend <= cap, `send side held ${maxSend}`);
  assert.ok(maxRecv <= cap, `receive side held ${maxRecv}`);
  assert.equal(server.stats().receiveBuffered, cap);
  assert.equal(client.stats().peerWindow, 0);
  const probesWhileStalled = client.stats().probes;
  assert.ok(probesWhileStalled >= 10, `probes ${probesWhileStalled}`);
  assert.equal(client.stats().keepalives, 0, "the persist timer, not keepalives, probes");
  // The reader drains, but its window update is lost: only a probe can
  // tell the sender that the window opened.
  link.impair("b", { loss: 1 });
  const got = readAll(server);
  await link.advance(50);
  link.impair("b", { loss: 0 });
  await link.run(() => sent.settled && got.result.ended, { maxMs: 120_000 });
  assert.equal(got.result.sha256, sha256(data));
  assert.ok(client.stats().probes > probesWhileStalled);
});

Deno.test("many silent readers cannot make one peer hold more than its budget", async () => {
  const reserve = 16 * 1024;
  const peerBuffer = 64 * 1024;
  const link = new SimLink({
    link: { delayMs: 2 },
    limits: { receiveBuffer: 256 * 1024, reserve, peerBuffer, sendBuffer: 256 * 1024 },
  });
  const servers: Connection[] = [];
  link.b.listen(1001, (c) => servers.push(c));
  const clients: Connection[] = [];
  const opens = Array.from(
    { length: 8 },
    () => track(link.a.connect(1001).then((c) => clients.push(c))),
  );
  await link.run(() => opens.every((o) => o.settled) && servers.length === 8);
  const writes = clients.map((c) => track(writeAll(c, patternBytes(MIB, 1))));
  let most = 0;
  for (let i = 0; i < 30; i++) {
    await link.advance(500);
    most = Math.max(most, link.b.stats().receiveCommitted);
  }
  assert.ok(writes.every((w) => !w.settled));
  const bound = peerBuffer + 8 * reserve;
  assert.ok(most <= bound, `peer b committed ${most} > ${bound}`);
  const buffered = servers.reduce((n, s) => n + s.stats().receiveBuffered, 0);
  assert.ok(buffered <= bound && buffered >= peerBuffer, `buffered ${buffered}`);
  // Reading one stream frees budget for it; it completes while the others wait.
  const got = readAll(servers[0]!);
  await link.run(() => got.result.ended);
  assert.equal(got.result.bytes, MIB);
});

Deno.test("in-order data is acknowledged once per STREAM_ACK_BYTES with small segments, every second segment with large ones", async () => {
  for (const mss of [1328, 30_000]) {
    const link = new SimLink({
      mss,
      link: { delayMs: 5 },
      limits: { sendBuffer: 4 * MIB, receiveBuffer: 4 * MIB },
    });
    link.tracing = true;
    const { client, server } = await openPair(link);
    const data = patternBytes(4 * MIB, 3);
    const got = readAll(server);
    const sent = track(writeAll(client, data));
    await link.run(() => sent.settled && got.result.ended);
    assert.equal(got.result.sha256, sha256(data));
    assert.equal(client.stats().retransmits, 0);
    const segments = link.trace.filter((p) => p.from === "a" && isData(p)).length;
    const acks = link.trace.filter((p) =>
      p.from === "b" && p.segment.flags === SEG_ACK && p.segment.data.length === 0
    ).length;
    // One ACK per ceil(STREAM_ACK_BYTES / mss) segments, at least two
    // (RFC 5681 4.2), give or take the ACKs of window updates and of the
    // delayed-ACK timer.
    const every = Math.max(2, Math.ceil(STREAM_ACK_BYTES / mss));
    const expected = segments / every;
    assert.ok(
      acks >= 0.9 * expected && acks <= 1.25 * expected,
      `mss ${mss}: ${acks} ACKs for ${segments} segments, expected about ${expected}`,
    );
  }
});

Deno.test("maxFlight keeps a bulk transfer within a receiver that holds three segments, which an uncapped sender overflows", async () => {
  // Loopback's only drop: a receiving socket that holds three large datagrams
  // and is drained at the reader's pace (a bottleneck that queues three
  // segments; a FIN may follow the third).
  const mss = 30_000;
  const run = async (maxFlight: number | undefined) => {
    const link = new SimLink({
      mss,
      ...(maxFlight === undefined ? {} : { maxFlight }),
      link: { delayMs: 0.05 },
      aToB: { delayMs: 0.05, bytesPerMs: 100_000, queueBytes: 3 * (mss + 100) },
      limits: { sendBuffer: 4 * MIB, receiveBuffer: 4 * MIB },
      timers: { minRtoMs: 20 },
    });
    const { client, server } = await openPair(link);
    let peak = 0;
    const data = patternBytes(8 * MIB, 9);
    const got = readAll(server);
    const sent = track(writeAll(client, data));
    await link.run(() => {
      peak = Math.max(peak, client.stats().bytesInFlight);
      return sent.settled && got.result.ended;
    });
    assert.equal(got.result.sha256, sha256(data));
    return { peak, drops: link.counters.queueDrops, retransmits: client.stats().retransmits };
  };
  const capped = await run(3 * mss);
  assert.ok(capped.peak <= 3 * mss, `peak in flight ${capped.peak}`);
  assert.equal(capped.drops, 0);
  assert.equal(capped.retransmits, 0);
  const uncapped = await run(undefined);
  assert.ok(uncapped.peak > 3 * mss, `uncapped peak in flight ${uncapped.peak}`);
  assert.ok(uncapped.drops > 0 && uncapped.retransmits > 0, JSON.stringify(uncapped));
});

Deno.test("a mux refuses an in-flight cap that is not a positive integer", () => {
  for (const maxFlight of [0, -1, 1.5, NaN]) {
    assert.throws(
      () => new StreamMux({ send: () => {}, now: () => 0, mss: 1328, maxFlight }),
      /Invalid maxFlight/,
    );
  }
});

Deno.test("a segment lost once is retransmitted after three duplicate ACKs, well before the RTO", async () => {
  let n = 0;
  const link = new SimLink({
    link: { delayMs: 20 },
    drop: (p) => p.from === "a" && isData(p) && ++n === 5,
  });
  link.tracing = true;
  const { client, server } = await openPair(link);
  const data = patternBytes(20 * 1328, 2);
  const got = readAll(server);
  const sent = track(writeAll(client, data));
  await link.run(() => sent.settled && got.result.ended);
  assert.equal(got.result.sha256, sha256(data));
  const s = client.stats();
  assert.equal(s.retransmits, 1);
  assert.equal(s.timeouts, 0);
  assert.equal(s.fastRecoveries, 1);
  const sends = link.trace.filter((p) => p.from === "a" && isData(p));
  const lost = sends.filter((p) => p.segment.seq === sends[4]!.segment.seq);
  assert.equal(lost.length, 2);
  const gap = lost[1]!.at - lost[0]!.at;
  // One round trip (40 ms) for the duplicate ACKs; the RTO would be >= 200 ms.
  assert.ok(gap < 60, `retransmitted after ${gap} ms`);
});

Deno.test("with SACK the sender retransmits only the missing segments", async () => {
  const mss = 1328;
  const lostAt = new Set([10, 20, 21, 35]);
  let n = 0;
  const link = new SimLink({
    mss,
    link: { delayMs: 20 },
    limits: { sendBuffer: MIB, receiveBuffer: MIB },
    drop: (p) => p.from === "a" && isData(p) && lostAt.has(++n),
  });
  const { client, server } = await openPair(link);
  // Open cwnd first so the losses fall in one window.
  const warm = patternBytes(200 * mss, 1);
  const warmRead = readAll(server);
  n = -1_000_000;
  const w1 = track(writeAll(client, warm, { close: false }));
  await link.run(() => w1.settled && warmRead.result.bytes === warm.length);
  n = 0;
  const data = patternBytes(60 * mss, 2);
  const sent = track(writeAll(client, data));
  await link.run(() => sent.settled && warmRead.result.ended);
  assert.equal(warmRead.result.bytes, warm.length + data.length);
  const s = client.stats();
  assert.equal(s.timeouts, 0);
  assert.equal(s.retransmits, 4);
  assert.equal(s.retransmittedBytes, 4 * mss);
  assert.equal(s.fastRecoveries, 1);
});

Deno.test("idle connections hold only their reserve of the peer's budget while a busy one's window grows to the cap", async () => {
  const reserve = 64 * 1024;
  const link = new SimLink({
    link: { delayMs: 10 },
    limits: { receiveBuffer: MIB, reserve, peerBuffer: 8 * MIB },
  });
  const servers: Connection[] = [];
  link.b.listen(1001, (c) => servers.push(c));
  const clients: Connection[] = [];
  const opens = Array.from(
    { length: 20 },
    () => track(link.a.connect(1001).then((c) => clients.push(c))),
  );
  await link.run(() => opens.every((o) => o.settled) && servers.length === 20);
  assert.equal(link.b.stats().receiveCommitted, 20 * reserve);
  const busy = servers[0]!;
  const got = readAll(busy);
  const peer = clients.find((c) => c.localPort === busy.remotePort)!;
  const sent = track(writeAll(peer, patternBytes(8 * MIB, 2), { chunk: MIB }));
  let widest = 0;
  await link.run(() => {
    widest = Math.max(widest, busy.stats().receiveWindow);
    return sent.settled && got.result.ended;
  });
  assert.equal(widest, MIB);
  for (const s of servers.slice(1)) assert.equal(s.stats().receiveWindow, reserve);
});

Deno.test("a bulk transfer over a long round trip grows the receive window past its reserve however fast the reader reads", async () => {
  const reserve = 64 * 1024;
  const link = new SimLink({
    mss: 1328,
    // 10 MB/s: segments arrive one by one, and the reader takes each at once.
    link: { delayMs: 50, bytesPerMs: 10_000, queueBytes: 4 * MIB },
    limits: { receiveBuffer: 4 * MIB, reserve, peerBuffer: 8 * MIB, sendBuffer: 4 * MIB },
  });
  const { client, server } = await openPair(link);
  const data = patternBytes(8 * MIB, 3);
  let unread = 0;
  const got = readAll(server);
  const sent = track(writeAll(client, data, { chunk: MIB }));
  const start = link.clock.now;
  let widest = 0;
  await link.run(() => {
    const s = server.stats();
    widest = Math.max(widest, s.receiveWindow);
    unread = Math.max(unread, s.receiveBuffered);
    return sent.settled && got.result.ended;
  });
  const seconds = (link.clock.now - start) / 1000;
  assert.equal(got.result.sha256, sha256(data));
  // At the reserve's 64 KiB per 100 ms round trip, 8 MiB take 12.8 s.
  assert.ok(widest >= 4 * reserve, `the window reached only ${widest} bytes`);
  assert.ok(
    seconds < 4,
    `8 MiB took ${seconds} s over a 100 ms round trip (unread at most ${unread})`,
  );
});

Deno.test("a stream of small requests keeps its reserve window however much it carries in all", async () => {
  const reserve = 64 * 1024;
  const link = new SimLink({
    mss: 1328,
    link: { delayMs: 10 },
    limits: { receiveBuffer: 4 * MIB, reserve, peerBuffer: 8 * MIB },
  });
  const { client, server } = await openPair(link);
  const got = readAll(server);
  let widest = 0;
  // 400 requests of 1 KiB, one every 50 ms: 400 KiB in 20 s, 20 KiB/s.
  for (let i = 0; i < 400; i++) {
    const wrote = track(client.write(patternBytes(1024, i)));
    await link.run(() => wrote.settled);
    await link.advance(50);
    widest = Math.max(widest, server.stats().receiveWindow);
  }
  assert.equal(got.result.bytes, 400 * 1024);
  assert.equal(widest, reserve);
});

Deno.test("acknowledging every second large segment never stalls the smallest loopback flight (three) on the delayed-ACK timer", async () => {
  // A bottleneck of 100 MB/s and a 0.1 ms round trip: the transfer takes
  // the bottleneck's time, give or take the handshake, only if each third
  // segment's ACK rides with the next one's instead of waiting 1 ms.
  const mss = 30_000;
  const bytesPerMs = 100_000;
  const link = new SimLink({
    mss,
    maxFlight: 3 * mss,
    link: { delayMs: 0.05 },
    aToB: { delayMs: 0.05, bytesPerMs },
    limits: { sendBuffer: 4 * MIB, receiveBuffer: 4 * MIB },
  });
  const { client, server } = await openPair(link);
  const data = patternBytes(8 * MIB, 9);
  const got = readAll(server);
  const t0 = link.clock.now;
  const sent = track(writeAll(client, data));
  await link.run(() => sent.settled && got.result.ended);
  assert.equal(got.result.sha256, sha256(data));
  const ideal = data.length / bytesPerMs;
  const took = link.clock.now - t0;
  assert.ok(took <= 1.05 * ideal, `took ${took.toFixed(1)} ms of simulated time, ideal ${ideal}`);
});
