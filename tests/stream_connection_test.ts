import assert from "node:assert/strict";
import { StreamError } from "../src/stream/error.ts";
import { StreamMux, type StreamPacket } from "../src/stream/mux.ts";
import type { Connection } from "../src/stream/connection.ts";
import {
  decodeSegment,
  encodeSegment,
  SEG_ACK,
  SEG_FIN,
  SEG_RST,
  SEG_SYN,
} from "../src/wire/stream_segment.ts";
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

const timers = {
  keepaliveMs: 1_000,
  idleTimeoutMs: 5_000,
  timeWaitMs: 2_000,
  connectTimeoutMs: 3_000,
};

const flagsOf = (p: WirePacket) => p.segment.flags;
const isError = (code: string, reason?: RegExp) => (e: unknown) =>
  e instanceof StreamError && e.code === code && (reason === undefined || reason.test(e.reason));

Deno.test("connect() and listen() open a connection with SYN, SYN-ACK and ACK", async () => {
  const link = new SimLink({ timers });
  link.tracing = true;
  const { client, server } = await openPair(link, 1001);
  assert.deepEqual(
    link.trace.slice(0, 3).map((p) => [p.from, flagsOf(p)]),
    [["a", SEG_SYN], ["b", SEG_SYN | SEG_ACK], ["a", SEG_ACK]],
  );
  assert.equal(client.state, "established");
  assert.equal(server.state, "established");
  assert.equal(server.localPort, 1001);
  assert.equal(server.remotePort, client.localPort);
  assert.ok(client.localPort >= 49152);
  assert.equal(client.connId, server.connId);
  assert.ok(client.initiator && !server.initiator);
});

Deno.test("connect() to a port without a listener is refused with an RST and its reason", async () => {
  const link = new SimLink({ timers });
  const t = track(link.a.connect(4242));
  await link.run(() => t.settled);
  assert.ok(isError("refused", /no listener on port 4242/)(t.error), String(t.error));
  assert.equal((t.error as StreamError).remote, true);
  assert.equal(link.a.connections().length, 0);
  assert.equal(link.b.stats().dropped.refused, 1);
});

Deno.test("connect() gives up with a timeout when the peer never answers", async () => {
  const link = new SimLink({ timers, aToB: { loss: 1 } });
  const t = track(link.a.connect(1001));
  await link.run(() => t.settled);
  assert.ok(isError("timeout", /connect/)(t.error), String(t.error));
  assert.equal(link.clock.now, 3_000);
  assert.equal(link.a.stats().connections, 0);
});

Deno.test("close() on both sides delivers everything, ends the readers, and leaves the first closer in TIME_WAIT", async () => {
  const link = new SimLink({ timers });
  const { client, server } = await openPair(link);
  const data = patternBytes(200_000, 1);
  const atServer = readAll(server);
  const w = track(writeAll(client, data));
  await link.run(() => w.settled && atServer.result.ended);
  assert.equal(atServer.result.sha256, sha256(data));
  assert.equal(client.state, "fin-wait-2");
  assert.equal(server.state, "close-wait");
  const atClient = readAll(client);
  const c = track(server.close());
  await link.run(() => c.settled && atClient.result.ended);
  assert.equal(atClient.result.bytes, 0);
  assert.equal(client.state, "time-wait");
  assert.equal(server.state, "closed");
  assert.equal(await server.closed, null);
  assert.equal(link.a.stats().timeWait, 1);
  assert.equal(link.b.connections().length, 0);
  // TIME_WAIT lasts timeWaitMs, then the mux forgets the connection.
  const entered = link.clock.now;
  await link.run(() => client.state === "closed");
  assert.ok(link.clock.now - entered >= 2_000 - 10 && link.clock.now - entered <= 2_000 + 10);
  assert.equal(await client.closed, null);
  assert.equal(link.a.connections().length, 0);
  assert.equal(link.a.stats().sendBuffered, 0);
});

Deno.test("after a half-close the other direction still carries data both ways' readers see", async () => {
  const link = new SimLink({ timers });
  const { client, server } = await openPair(link);
  const closing = track(client.close());
  await link.run(() => closing.settled && server.state === "close-wait");
  assert.equal(client.state, "fin-wait-2");
  await assert.rejects(client.write(new Uint8Array(1)), isError("closed"));
  assert.equal(await server.read(), null);
  // The server keeps sending; the client keeps reading.
  const reply = patternBytes(50_000, 9);
  const atClient = readAll(client);
  const w = track(writeAll(server, reply));
  await link.run(() => w.settled && atClient.result.ended);
  assert.equal(atClient.result.sha256, sha256(reply));
  assert.equal(server.state, "closed");
  assert.equal(client.state, "time-wait");
});

Deno.test("reset() sends its reason, fails the peer's pending read, and frees both ends", async () => {
  const link = new SimLink({ timers });
  const { client, server } = await openPair(link);
  const pending = track(server.read());
  client.reset("job cancelled");
  await link.run(() => pending.settled);
  assert.ok(isError("reset", /^job cancelled$/)(pending.error), String(pending.error));
  assert.equal((pending.error as StreamError).remote, true);
  assert.equal(server.state, "closed");
  assert.equal(client.state, "closed");
  const info = await server.closed;
  assert.equal(info?.code, "reset");
  assert.equal(link.a.connections().length + link.b.connections().length, 0);
  await assert.rejects(server.write(new Uint8Array(1)), isError("reset"));
  await assert.rejects(client.read(), isError("reset"));
});

Deno.test("reset() fails the local writer that is waiting for room", async () => {
  const link = new SimLink({ timers, limits: { sendBuffer: 10_000, reserve: 10_000 } });
  const { client } = await openPair(link);
  const w = track(client.write(new Uint8Array(50_000)));
  await link.advance(1);
  assert.equal(w.settled, false);
  client.reset("give up");
  await link.advance(1);
  assert.ok(isError("reset", /give up/)(w.error));
  assert.equal(link.a.stats().sendBuffered, 0);
});

Deno.test("TIME_WAIT absorbs a late duplicate FIN by acknowledging it again", async () => {
  const link = new SimLink({ timers });
  link.tracing = true;
  const { client, server } = await openPair(link);
  const a = track(client.close());
  await link.run(() => a.settled);
  const b = track(server.close());
  await link.run(() => b.settled && client.state === "time-wait");
  const fin = link.trace.find((p) => p.from === "b" && (flagsOf(p) & SEG_FIN) !== 0)!;
  const before = link.trace.length;
  // The server's FIN arrives again, late.
  link.a.receive(fin.packet);
  const answers = link.trace.slice(before);
  assert.equal(answers.length, 1);
  assert.equal(flagsOf(answers[0]!), SEG_ACK);
  assert.equal(answers[0]!.segment.ack, fin.segment.seq + 1);
  assert.equal(client.state, "time-wait");
  // Once TIME_WAIT is over, the same FIN meets an unknown connection: RST.
  await link.run(() => client.state === "closed");
  const after = link.trace.length;
  link.a.receive(fin.packet);
  assert.equal(flagsOf(link.trace[after]!), SEG_RST);
});

Deno.test("an idle connection sends keepalives and stays open while the peer answers", async () => {
  const link = new SimLink({ timers });
  const { client, server } = await openPair(link);
  await link.advance(3 * timers.idleTimeoutMs);
  assert.equal(client.state, "established");
  assert.equal(server.state, "established");
  // Each side's probe is answered, which postpones the other side's probe:
  // about one probe per keepalive interval between them.
  const probes = client.stats().keepalives + server.stats().keepalives;
  assert.ok(probes >= 12, `keepalives ${probes}`);
});

Deno.test("the idle timeout resets a connection whose peer went silent", async () => {
  const link = new SimLink({ timers });
  const { client } = await openPair(link);
  const opened = link.clock.now;
  link.impair("b", { loss: 1 }); // the server's side goes silent
  const pending = track(client.read());
  await link.run(() => pending.settled);
  assert.ok(isError("timeout", /idle timeout/)(pending.error), String(pending.error));
  const waited = link.clock.now - opened;
  assert.ok(waited >= 4_990 && waited <= 5_010, `reset after ${waited} ms`);
  assert.ok(client.stats().keepalives >= 3);
});

Deno.test("a peer's connection cap refuses the next SYN with an RST, and our cap refuses connect()", async () => {
  const link = new SimLink({ timers, limitsB: { maxConnections: 3 } });
  const accepted: Connection[] = [];
  link.b.listen(1001, (c) => accepted.push(c));
  const opens = [1, 2, 3, 4].map(() => track(link.a.connect(1001)));
  await link.run(() => opens.every((o) => o.settled) && accepted.length === 3);
  assert.equal(opens.filter((o) => o.error === undefined).length, 3);
  const refused = opens.find((o) => o.error !== undefined)!;
  assert.ok(isError("refused", /too many connections/)(refused.error), String(refused.error));
  assert.equal(link.b.stats().dropped.limit, 1);
  // Closing one makes room again.
  accepted[0]!.reset("make room");
  const again = track(link.a.connect(1001));
  await link.run(() => again.settled);
  assert.equal(again.error, undefined);

  const small = new SimLink({ timers, limits: { maxConnections: 1 } });
  small.b.listen(7, () => {});
  const first = track(small.a.connect(7));
  await small.run(() => first.settled);
  await assert.rejects(small.a.connect(7), isError("limit"));
});

Deno.test("a segment for an unknown connection is answered with an RST and counted", () => {
  const link = new SimLink({ timers });
  link.tracing = true;
  const bogus = new Uint8Array(26);
  bogus[0] = SEG_ACK;
  link.b.receive({ srcPort: 5, dstPort: 6, payload: bogus });
  assert.equal(link.b.stats().dropped.unknown_connection, 1);
  const rst = decodeSegment(link.trace[0]!.packet.payload);
  assert.equal(rst.flags, SEG_RST);
  assert.equal(new TextDecoder().decode(rst.data), "unknown connection");
  // An RST for an unknown connection is never answered (no RST ping-pong).
  link.a.receive(link.trace[0]!.packet);
  assert.equal(link.trace.length, 1);
});

Deno.test("mux.close() ends every connection without a word to the peer and refuses new ones", async () => {
  const link = new SimLink({ timers });
  const { client } = await openPair(link);
  const pending = track(client.read());
  const sentBefore = link.counters.sent;
  link.a.close("peer untrusted");
  await link.advance(1);
  assert.ok(isError("reset", /peer untrusted/)(pending.error));
  assert.equal(link.counters.sent, sentBefore);
  await assert.rejects(link.a.connect(1001), isError("closed"));
});

Deno.test("the web streams of a connection pipe data and half-close", async () => {
  const link = new SimLink({ timers });
  const { client, server } = await openPair(link);
  const data = patternBytes(300_000, 4);
  const source = new ReadableStream<Uint8Array>({
    start(c) {
      for (let o = 0; o < data.length; o += 10_000) c.enqueue(data.slice(o, o + 10_000));
      c.close();
    },
  });
  const piped = track(source.pipeTo(client.writable));
  const chunks: Uint8Array[] = [];
  const reading = track((async () => {
    for await (const c of server.readable) chunks.push(c);
  })());
  await link.run(() => piped.settled && reading.settled);
  assert.equal(piped.error, undefined);
  const got = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    got.set(c, o);
    o += c.length;
  }
  assert.equal(sha256(got), sha256(data));
  assert.equal(client.state, "fin-wait-2");
});

Deno.test("wake() reports each new earliest deadline so that one timer can drive tick()", () => {
  let now = 0;
  const wakes: number[] = [];
  const sent: StreamPacket[] = [];
  const mux = new StreamMux({
    send: (p) => sent.push(p),
    now: () => now,
    mss: 1328,
    wake: (at) => wakes.push(at),
  });
  const t = track(mux.connect(7));
  assert.deepEqual(wakes, [1_000]); // the SYN's retransmission timer
  assert.equal(mux.nextDeadline(), 1_000);
  now = 1_000;
  mux.tick();
  assert.equal(sent.length, 2); // SYN again
  assert.deepEqual(wakes, [1_000, 3_000]); // backed off to 2 s
  for (const at of [3_000, 7_000, 15_000]) {
    now = at;
    mux.tick();
  }
  // 4 s, then 8 s of backoff; the connect timeout ends it at 15 s.
  assert.deepEqual(wakes, [1_000, 3_000, 7_000, 15_000]);
  assert.equal(sent.length, 5); // four SYNs and the RST that ends it
  assert.equal(mux.nextDeadline(), Infinity);
  return Promise.resolve().then(() => assert.ok(isError("timeout")(t.error)));
});

Deno.test("isReplyToOwn() admits only segments of connections this side opened, on their ports", async () => {
  const link = new SimLink({ timers });
  const { client, server } = await openPair(link, 447);
  const seg = (connId: number, flags: number) =>
    encodeSegment({
      flags,
      connId,
      seq: flags === SEG_SYN ? 0 : 1,
      ack: flags === SEG_SYN ? 0 : 1,
      window: 1 << 16,
      sack: [],
      // A SYN carries its MSS.
      data: flags === SEG_SYN ? Uint8Array.of(0, 0, 0x05, 0x78) : new Uint8Array(),
    });
  const reply = { srcPort: 447, dstPort: client.localPort, payload: seg(client.connId, SEG_ACK) };
  assert.equal(link.a.isReplyToOwn(reply), true, "the answer on a stream a opened");
  assert.equal(link.a.isReplyToOwn({ ...reply, srcPort: 448 }), false, "another remote port");
  assert.equal(link.a.isReplyToOwn({ ...reply, dstPort: 1001 }), false, "another local port");
  assert.equal(
    link.a.isReplyToOwn({ ...reply, payload: seg(client.connId + 1, SEG_SYN) }),
    false,
    "a SYN the peer would open",
  );
  assert.equal(link.a.isReplyToOwn({ ...reply, payload: Uint8Array.of(1, 2) }), false, "junk");
  const towardServer = {
    srcPort: client.localPort,
    dstPort: 447,
    payload: seg(server.connId, SEG_ACK),
  };
  assert.equal(link.b.isReplyToOwn(towardServer), false, "b accepted this one; it did not open it");
});
