/**
 * Shedding before spending: spoofed message 1 floods cannot lock a real node
 * out (cookies prove an address before a per-IP limit can refuse it, and a
 * trusted peer's endpoint has a lane of its own), forged cookie replies are
 * acted on at most once per message 1, and a global work budget with a
 * reserve bounds what any crowd of strangers can make the node compute.
 */

import assert from "node:assert/strict";
import {
  FakeNetwork,
  freshMessage1,
  IDS,
  localIdentity,
  pair,
  T,
  u32,
} from "./_session_helpers.ts";
import {
  HANDSHAKE_WORK_BURST_MS,
  HANDSHAKE_WORK_PER_SECOND,
  HANDSHAKE_WORK_RESERVED,
  MSG2_WORK,
} from "../src/constants.ts";
import type { Endpoint } from "../src/discovery/endpoint.ts";
import { DEFAULT_TIMERS } from "../src/session/manager.ts";

const spoofer = localIdentity(IDS[5]!);

for (const exact of [false, true]) {
  const what = exact ? "its exact endpoint" : "its IP";
  Deno.test(`SessionManager lets a trusted peer rekey through a spoofed message-1 flood from ${what}`, async () => {
    const { net, a, b } = await pair();
    await a.send(b, "before");
    await net.pump();
    const first = b.delivered[0]!.session;
    let index = 1;
    // 50 spoofed message 1s per second, five times the per-address rate.
    const flood = async () => {
      for (let k = 0; k < 50; k++, index++) {
        const from: Endpoint = exact
          ? a.endpoint
          : { hostname: a.endpoint.hostname, port: 20_000 + index };
        await net.inject(await freshMessage1(spoofer, index), from, b);
      }
    };
    await net.advance(DEFAULT_TIMERS.rekeyAfterMs - 3_000, a, b);
    await net.pump();
    // Until just before the responder's own rekey time (it would rekey from its side).
    for (let t = 0; t < 12_000; t += 1000) {
      // Time passes (buckets refill), then the flood, then the peers' timers.
      net.clock.advance(1000);
      await flood();
      await net.advance(0, a, b);
      await net.pump();
    }
    await a.send(b, "after");
    await net.pump();
    assert.deepEqual(b.texts(), ["before", "after"]);
    const second = b.delivered[1]!.session;
    assert.notEqual(second, first, "the rekeyed session carries data");
    assert.equal(second.initiator, false, "a's rekey got through, not one of b's");
    assert.equal(b.manager.peers().length, 1);
  });
}

Deno.test("SessionManager sends its answers to message 1s (message 2, cookie replies) on the reply queue, everything else on the session's", async () => {
  const { net, a, b } = await pair();
  await a.send(b, "before");
  await net.pump();
  // A flood from a's exact endpoint: message 2s within its lane, then cookies.
  for (let index = 1; index <= 100; index++) {
    await net.inject(await freshMessage1(spoofer, index), a.endpoint, b);
  }
  await a.send(b, "after");
  await net.pump();
  assert.deepEqual(b.texts(), ["before", "after"]);
  const byType = new Map<number, Set<string | undefined>>();
  for (const d of net.sent.filter((d) => d.by === b)) {
    const queues = byType.get(d.bytes[0]!) ?? new Set();
    byType.set(d.bytes[0]!, queues.add(d.queue));
  }
  assert.deepEqual(byType.get(T.RESP), new Set(["reply"]));
  assert.deepEqual(byType.get(T.COOKIE), new Set(["reply"]));
  // b's confirmation of a's session is a data frame, in the session's order.
  assert.deepEqual(byType.get(T.DATA), new Set(["session"]));
  for (const d of net.sent.filter((d) => d.by === a)) assert.equal(d.queue, "session");
});

Deno.test("SessionManager lets two nodes behind one NAT address handshake while that address is spoofed", async () => {
  const net = new FakeNetwork();
  const b = net.node(IDS[1]!);
  const nat = "198.18.50.1";
  for (let k = 0; k < 100; k++) {
    await net.inject(await freshMessage1(spoofer, k + 1), { hostname: nat, port: 30_000 + k }, b);
  }
  net.take();
  for (const [i, port] of [[2, 4001], [3, 4002]] as const) {
    const c = net.node(IDS[i]!, { endpoint: { hostname: nat, port } });
    const pending = await net.begin(c, b);
    await net.pump();
    assert.equal(pending.state, "resolved", `the node at ${nat}:${port} got through`);
  }
  assert.equal(b.manager.peers().length, 2);
  assert.ok((b.manager.drops.cookie_sent ?? 0) >= 2, "they proved their address with a cookie");
});

Deno.test("SessionManager acts on at most one cookie reply per message 1", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const b = net.node(IDS[1]!, { manager: { cookieThreshold: 0 } });
  net.filter = (d) => d.bytes[0] === T.COOKIE ? "drop" : "deliver";
  const pending = await net.begin(a, b);
  await net.pump();
  net.filter = undefined;
  const genuine = net.dropped.find((d) => d.bytes[0] === T.COOKIE)!.bytes;
  const initsBefore = net.sentBy(a, T.INIT).length;
  // Anyone who saw message 1 knows the index and the echo; the cookie is theirs to choose.
  for (let k = 0; k < 10; k++) {
    const forged = Uint8Array.from(genuine);
    forged.set(crypto.getRandomValues(new Uint8Array(16)), 21);
    await net.inject(forged, b.endpoint, a);
  }
  assert.ok(net.sentBy(a, T.INIT).length - initsBefore <= 1, "message 1 resent at most once");
  assert.equal(a.manager.drops.cookie_ignored, 9);
  await net.inject(genuine, b.endpoint, a);
  assert.equal(a.manager.drops.cookie_ignored, 10, "even the genuine one comes too late");
  // The connect still succeeds, on the next fresh message 1.
  for (let t = 0; pending.state === "pending" && t < 30_000; t += 1000) {
    await net.advance(1000, a, b);
    await net.pump();
  }
  assert.equal(pending.state, "resolved");
  assert.equal(u32(net.sentBy(a, T.INIT).at(-1)!.bytes, 1) !== u32(genuine, 1), true);
});

Deno.test("SessionManager spends at most its work budget on a crowd of strangers and keeps a reserve for trusted peers", async () => {
  const { net, a, b } = await pair({ b: { manager: { cookieThreshold: 1_000_000 } } });
  net.clock.advance(DEFAULT_TIMERS.rekeyAfterMs);
  const before = b.manager.workSpent.init;
  // 1000 message 1s from 1000 addresses in the same instant (each within its own rate).
  for (let k = 0; k < 1000; k++) {
    const from = { hostname: `198.19.${k >> 8}.${k & 255}`, port: 7000 };
    await net.inject(await freshMessage1(spoofer, k + 1), from, b);
  }
  // At one instant, strangers spend at most one burst of the shared part.
  const strangersMax = (HANDSHAKE_WORK_PER_SECOND * (1 - HANDSHAKE_WORK_RESERVED) *
    HANDSHAKE_WORK_BURST_MS / 1000) / MSG2_WORK;
  const spent = b.manager.workSpent.init - before;
  assert.ok(spent <= strangersMax, `${spent} message 2s computed, budget ${strangersMax}`);
  assert.ok((b.manager.drops.cookie_sent ?? 0) >= 1000 - strangersMax, "the rest got cookies");
  net.take();
  // The trusted peer's rekey at that same instant draws on the reserve.
  const finals = net.ofType(T.FINAL).length;
  await a.manager.tick();
  await net.waitFor(() => net.sentBy(a, T.INIT).length === 2, "the rekey's message 1");
  await net.pump();
  assert.equal(net.ofType(T.FINAL).length, finals + 1, "the rekey completed");
  assert.equal(b.manager.workSpent.final, 2);
});

Deno.test("SessionManager gives a trusted peer that proved its endpoint the reserve, even with its lane drained by spoofers and the budget spent by strangers", async () => {
  const { net, a, b } = await pair({ b: { manager: { cookieThreshold: 1_000_000 } } });
  net.clock.advance(DEFAULT_TIMERS.rekeyAfterMs);
  // Spoofed copies of a's exact endpoint drain its lane and its IP's rate...
  for (let k = 0; k < 60; k++) {
    await net.inject(await freshMessage1(spoofer, k + 1), a.endpoint, b);
  }
  // ...and a crowd of strangers spends what strangers may spend.
  for (let k = 0; k < 400; k++) {
    const from = { hostname: `198.19.${k >> 8}.${k & 255}`, port: 7000 };
    await net.inject(await freshMessage1(spoofer, 1000 + k), from, b);
  }
  net.take();
  const finals = net.ofType(T.FINAL).length;
  await a.manager.tick();
  await net.waitFor(() => net.sentBy(a, T.INIT).length >= 2, "the rekey's message 1");
  await net.pump();
  assert.equal(net.ofType(T.FINAL).length, finals + 1, "the rekey completed in the same instant");
  const lastInit = net.sentBy(a, T.INIT).at(-1)!.bytes;
  assert.ok(
    lastInit.subarray(lastInit.length - 16).some((x) => x !== 0),
    "it proved itself (mac2)",
  );
});

Deno.test("SessionManager forgets the sources of a spoofed message-1 flood once their buckets refill", async () => {
  const { net, a, b } = await pair();
  await net.pump();
  const before = b.manager.rateKeysTracked;
  // One message 1 from each of 3,000 spoofed addresses.
  for (let i = 0; i < 3000; i++) {
    const from = { hostname: `198.18.${(i >> 8) & 255}.${i & 255}`, port: 40_000 };
    await net.inject(await freshMessage1(spoofer, i + 1), from, b);
  }
  const during = b.manager.rateKeysTracked;
  assert.ok(during >= before + 3000, `${during} keys tracked during the flood (${before} before)`);
  // Every bucket is full again within a few seconds; each sweep (once a
  // second) forgets up to FORGET_PER_SWEEP keys per limiter.
  for (let s = 0; s < 10; s++) await net.advance(1000, a, b);
  assert.ok(
    b.manager.rateKeysTracked <= before,
    `${b.manager.rateKeysTracked} keys tracked after the flood (${before} before)`,
  );
  // The flood changed nothing for the real peer.
  await a.send(b, "after");
  await net.pump();
  assert.deepEqual(b.texts(), ["after"]);
});
