/**
 * Denial-of-service defences of the session layer: stealth (mac1), cookies
 * (mac2), no amplification, per-source and per-key rate limits, and garbage
 * that must never throw.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  FakeNetwork,
  freshMessage1,
  IDS,
  localIdentity,
  pair,
  T,
  type TestNode,
  u32,
} from "./_session_helpers.ts";
import {
  COOKIE_REPLY_RATE_PER_SOURCE,
  HANDSHAKE_RATE_PER_KEY,
  HANDSHAKE_RATE_UNPROVEN,
  MSG1_SIZE,
  TIMER_TICK_MS,
} from "../src/constants.ts";
import type { Endpoint } from "../src/discovery/endpoint.ts";
import { InitiatorHandshake } from "../src/session/handshake.ts";
import { DEFAULT_TIMERS } from "../src/session/manager.ts";
import { COOKIE_REPLY_SIZE } from "../src/wire/frames.ts";

/** A fresh handshake message 1 from `from`'s identity, as bytes. */
async function message1(from: TestNode, index: number): Promise<Uint8Array> {
  const h = await InitiatorHandshake.start({
    local: from.local,
    localIndex: index,
    endpoint: { hostname: "198.18.0.250", port: 1 },
    expected: {},
    mac1Key: undefined,
    now: 0,
  });
  return await h.frame();
}

Deno.test("SessionManager in stealth mode does not answer message 1 without mac1", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const b = net.node(IDS[1]!, { manager: { requireMac1: true } });
  for (const expected of [{}, { publicKey: IDS[2]!.publicKey }]) {
    const pending = await net.begin(a, b, expected);
    await net.pump();
    await net.advance(DEFAULT_TIMERS.rekeyTimeoutMs * 2, a, b);
    await net.pump();
    assert.ok(net.sentBy(a, T.INIT).length >= 2, "the initiator kept trying");
    assert.deepEqual(net.sentBy(b), [], "nothing at all comes back");
    assert.equal(b.manager.halfOpenCount, 0);
    await net.giveUp(pending, a, b);
    assert.equal(pending.state, "rejected");
  }
  assert.ok((b.manager.drops.mac1 ?? 0) >= 4);

  const got = await net.connect(a, b, { publicKey: b.identity.publicKey });
  assert.equal(got.keyHex, b.keyHex);
  assert.equal(b.manager.peers().length, 1);
});

Deno.test("SessionManager under load answers message 1 with a cookie, then accepts mac2", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const b = net.node(IDS[1]!, { manager: { cookieThreshold: 0 } });
  const got = await net.connect(a, b);
  assert.equal(got.keyHex, b.keyHex);

  const fromB = net.sentBy(b);
  assert.equal(fromB[0]!.bytes[0], T.COOKIE, "the first answer is a cookie reply");
  assert.equal(fromB[0]!.bytes.length, COOKIE_REPLY_SIZE);
  assert.equal(COOKIE_REPLY_SIZE, 37);
  assert.equal(net.sentBy(b, T.COOKIE).length, 1);
  assert.equal(b.manager.drops.cookie_sent, 1);

  const inits = net.sentBy(a, T.INIT);
  assert.equal(inits.length, 2, "message 1 is resent at once with mac2");
  assert.deepEqual(
    inits[1]!.bytes.subarray(0, MSG1_SIZE - 16),
    inits[0]!.bytes.subarray(0, MSG1_SIZE - 16),
  );
  assert.deepEqual(inits[0]!.bytes.subarray(MSG1_SIZE - 16), new Uint8Array(16));
  assert.notDeepEqual(inits[1]!.bytes.subarray(MSG1_SIZE - 16), new Uint8Array(16));
  assert.equal(net.sentBy(b, T.RESP).length, 1);

  await a.send(b, "past the cookie");
  await net.pump();
  assert.deepEqual(b.texts(), ["past the cookie"]);
});

Deno.test("SessionManager ignores a cookie reply whose echo does not match message 1", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const b = net.node(IDS[1]!, { manager: { cookieThreshold: 0 } });
  net.filter = (d) => d.bytes[0] === T.COOKIE ? "drop" : "deliver";
  const pending = await net.begin(a, b);
  await net.pump();
  const cookie = net.dropped.find((d) => d.bytes[0] === T.COOKIE)!.bytes;
  net.filter = undefined;

  const wrongEcho = Uint8Array.from(cookie);
  wrongEcho[5]! ^= 1;
  const sent = net.sent.length;
  await net.inject(wrongEcho, b.endpoint, a);
  assert.equal(a.manager.drops.bad_cookie, 1);
  assert.equal(net.sent.length, sent, "no message 1 with mac2 for a forged cookie reply");

  const unknownIndex = Uint8Array.from(cookie);
  unknownIndex[1]! ^= 0x80;
  await net.inject(unknownIndex, b.endpoint, a);
  assert.equal(a.manager.drops.unknown_index, 1);
  assert.equal(net.sent.length, sent);

  await net.inject(cookie, b.endpoint, a);
  await net.pump();
  assert.equal((await pending.result).keyHex, b.keyHex);
});

Deno.test("SessionManager binds cookies to the source endpoint", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const b = net.node(IDS[1]!, { manager: { cookieThreshold: 0 } });
  // Hold back the second message 1: the one with mac2.
  let inits = 0;
  net.filter = (d) => d.by === a && d.bytes[0] === T.INIT && ++inits === 2 ? "drop" : "deliver";
  const pending = await net.begin(a, b);
  await net.pump();
  const withMac2 = net.dropped.at(-1)!;
  assert.equal(withMac2.bytes[0], T.INIT);
  net.filter = undefined;

  const elsewhere: Endpoint[] = [
    { hostname: "198.18.5.5", port: a.endpoint.port },
    { hostname: a.endpoint.hostname, port: a.endpoint.port + 1 },
  ];
  for (const from of elsewhere) {
    const before = net.sent.length;
    await net.inject(withMac2.bytes, from, b);
    const answers = net.sent.slice(before);
    assert.equal(answers.length, 1);
    assert.equal(answers[0]!.bytes[0], T.COOKIE, "a new cookie, not message 2");
    assert.deepEqual(answers[0]!.to, from);
  }
  assert.equal(net.sentBy(b, T.RESP).length, 0);
  assert.equal(b.manager.halfOpenCount, 0);

  net.take();
  await net.inject(withMac2.bytes, a.endpoint, b);
  await net.pump();
  assert.equal(net.sentBy(b, T.RESP).length, 1);
  assert.equal((await pending.result).keyHex, b.keyHex);
});

// BUG: a cached message 2 is resent to any source under load; the cookie's source binding is skipped.
Deno.test({
  name: "SessionManager under load does not resend a cached message 2 to a source without a cookie",
  fn: async () => {
    const net = new FakeNetwork();
    const a = net.node(IDS[0]!);
    const b = net.node(IDS[1]!, { manager: { cookieThreshold: 0 } });
    net.filter = (d) => d.bytes[0] === T.RESP ? "drop" : "deliver";
    const pending = await net.begin(a, b);
    await net.pump();
    assert.equal(b.manager.halfOpenCount, 1);
    const withMac2 = net.sentBy(a, T.INIT).at(-1)!;
    const victim = { hostname: "198.18.5.5", port: 53 };
    const before = net.sent.length;
    await net.inject(withMac2.bytes, victim, b);
    const answers = net.sent.slice(before);
    assert.deepEqual(
      answers.filter((d) => d.bytes[0] === T.RESP),
      [],
      "no message 2 to the victim",
    );
    net.filter = undefined;
    await net.giveUp(pending, a, b);
  },
});

Deno.test("SessionManager never sends a message 2 larger than the message 1 that caused it", async () => {
  const hostnames = [null, "a", "host-1", "z".repeat(63)];
  const sizes = new Map<string, number>();
  for (const hostname of hostnames) {
    for (const [i, j] of [[0, 1], [2, 3], [4, 5], [6, 7]] as const) {
      const net = new FakeNetwork();
      const a = net.node(IDS[i]!, { hostname: "z".repeat(63) });
      const b = net.node(IDS[j]!, { hostname, manager: { cookieThreshold: 1 } });
      // One half-open handshake puts b at its cookie threshold.
      await net.inject(await message1(a, 7), { hostname: "198.18.9.1", port: 9 }, b);
      await net.connect(a, b);
      assert.equal(net.sentBy(b, T.COOKIE).length, 1);
      assert.equal(net.sentBy(b, T.RESP).length, 2);
      for (const d of net.sent) {
        if (d.bytes[0] === T.INIT) assert.equal(d.bytes.length, MSG1_SIZE);
        if (d.by !== b || d.bytes[0] === T.DATA) continue;
        assert.ok(d.bytes.length <= MSG1_SIZE, `type ${d.bytes[0]} of ${d.bytes.length} bytes`);
        if (d.bytes[0] === T.RESP) sizes.set(hostname ?? "", d.bytes.length);
      }
    }
  }
  assert.equal(sizes.size, hostnames.length);
  assert.equal(sizes.get("z".repeat(63))! - sizes.get("")!, 63, "the hostname is in message 2");
});

Deno.test("SessionManager answers message 1 over a source address's rate with a cookie, not work", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const b = net.node(IDS[1]!);
  const burst = HANDSHAKE_RATE_UNPROVEN.burst;
  const answered = () => net.sentBy(b, T.RESP).length;
  for (let k = 0; k < burst + 5; k++) {
    // Other ports of one address do not help.
    await net.inject(await message1(a, k + 1), { hostname: "198.18.7.7", port: 1000 + k }, b);
  }
  assert.equal(answered(), burst);
  assert.equal(b.manager.drops.cookie_sent, 5, "the address may still prove itself");
  assert.equal(b.manager.drops.rate_limited, undefined);
  assert.equal(b.manager.halfOpenCount, burst);

  await net.inject(await message1(a, 999), { hostname: "198.18.8.8", port: 1000 }, b);
  assert.equal(answered(), burst + 1, "another source is unaffected");

  // Tokens refill with (fake) time.
  net.clock.advance(1000);
  await net.inject(await message1(a, 1000), { hostname: "198.18.7.7", port: 1000 }, b);
  assert.equal(answered(), burst + 2);
});

Deno.test("SessionManager rate-limits completed handshakes per peer key", async () => {
  const net = new FakeNetwork();
  const b = net.node(IDS[1]!);
  const burst = HANDSHAKE_RATE_PER_KEY.burst;
  // One key behind many addresses (as a spoofer or a key-sharing fleet would be).
  for (let k = 0; k < burst + 2; k++) {
    const a = net.node(IDS[0]!, { endpoint: { hostname: `198.18.1.${k + 1}`, port: 4000 } });
    await net.connect(a, b);
  }
  assert.equal(b.manager.drops.rate_limited, 2);
  assert.equal(b.manager.peers().length, 1);
  const other = net.node(IDS[2]!);
  await net.connect(other, b);
  await net.pump();
  assert.equal(b.manager.peers().length, 2, "another key is unaffected");
});

Deno.test("SessionManager counts garbage in drops and never throws from handle()", async () => {
  const { net, a, b } = await pair();
  // A cookie reply to have one real frame of every type.
  const c = net.node(IDS[2]!, { manager: { cookieThreshold: 0 } });
  net.filter = (d) => d.bytes[0] === T.COOKIE ? "drop" : "deliver";
  const pending = await net.begin(a, c);
  await net.pump();
  net.filter = undefined;
  const real = new Map<number, { bytes: Uint8Array; to: TestNode; from: Endpoint }>();
  for (const d of net.sent) {
    const to = d.by === a ? (d.to.hostname === c.endpoint.hostname ? c : b) : a;
    real.set(d.bytes[0]!, { bytes: d.bytes, to, from: d.from });
  }
  await a.send(b, "x");
  const data = net.take()[0]!;
  real.set(T.DATA, { bytes: data.bytes, to: b, from: a.endpoint });
  assert.equal(real.size, 5);

  // Counts every datagram a node handles: each is dropped or answered exactly once.
  const accounted = (n: TestNode) => n.dropTotal + net.sentBy(n).length + n.delivered.length;
  const feed = async (bytes: Uint8Array, to: TestNode, from: Endpoint) => {
    const before = accounted(to);
    await to.manager.handle(bytes, from);
    assert.equal(accounted(to), before + 1, `datagram ${bytes.toHex().slice(0, 40)}…`);
  };

  const stranger = { hostname: "198.18.6.6", port: 6000 };
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 500 }), async (bytes) => {
      await feed(bytes, b, stranger);
    }),
    { numRuns: 300 },
  );
  for (const [type, frame] of real) {
    // Every truncation, and a copy with each header field mutated.
    for (let n = 0; n < frame.bytes.length; n += type === T.INIT ? 7 : 1) {
      await feed(frame.bytes.subarray(0, n), frame.to, frame.from);
    }
    for (const offset of [1, 5, 9, 20, frame.bytes.length - 1]) {
      const bad = Uint8Array.from(frame.bytes);
      bad[offset]! ^= 0x5a;
      if (type === T.INIT) continue; // a mutated message 1 is a valid new message 1
      await feed(bad, frame.to, frame.from);
    }
  }
  // Well-formed frames with indices nobody allocated.
  for (const type of [T.RESP, T.FINAL, T.COOKIE, T.DATA]) {
    const bytes = Uint8Array.from(real.get(type)!.bytes);
    const at = type === T.RESP || type === T.FINAL ? 5 : 1;
    new DataView(bytes.buffer).setUint32(at, (u32(bytes, at) ^ 0x0f0f_0f0f) >>> 0);
    const before = a.manager.drops.unknown_index ?? 0;
    await a.manager.handle(bytes, stranger);
    assert.equal(a.manager.drops.unknown_index, before + 1, `type ${type}`);
  }
  assert.ok((b.manager.drops.malformed ?? 0) > 0);

  // The real session is untouched.
  await a.send(b, "still here");
  await net.pump();
  assert.deepEqual(b.texts(), ["still here"]);
  await net.giveUp(pending, a, b, c);
});

Deno.test("SessionManager recovers from a corrupted message 2", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const b = net.node(IDS[1]!);
  net.filter = (d) => d.bytes[0] === T.RESP && net.ofType(T.RESP).length === 1 ? "drop" : "deliver";
  const pending = await net.begin(a, b);
  await net.pump();
  const resp = net.ofType(T.RESP)[0]!;
  const bad = Uint8Array.from(resp.bytes);
  bad[bad.length - 1]! ^= 1;
  await net.inject(bad, resp.from, a);
  assert.equal(a.manager.drops.bad_resp, 1);
  await net.inject(resp.bytes, resp.from, a);
  assert.equal(a.manager.drops.unknown_index, 1, "the handshake state is spent");
  net.filter = undefined;
  for (let t = 0; pending.state === "pending" && t < 3 * DEFAULT_TIMERS.rekeyTimeoutMs; t += 1000) {
    await net.advance(1000, a, b);
    await net.pump();
  }
  assert.equal(pending.state, "resolved");
  await a.send(b, "recovered");
  await net.pump();
  assert.deepEqual(b.texts(), ["recovered"]);
});

// BUG: a message 3 that fails to decrypt destroys the responder's half-open state; the genuine one is then unknown_index.
Deno.test({
  name: "SessionManager still forms the session after a forged message 3 arrives first",
  fn: async () => {
    const net = new FakeNetwork();
    const a = net.node(IDS[0]!);
    const b = net.node(IDS[1]!);
    net.filter = (d) => d.bytes[0] === T.FINAL ? "drop" : "deliver";
    await net.connect(a, b);
    const final = net.ofType(T.FINAL)[0]!.bytes;
    const forged = Uint8Array.from(final);
    forged[forged.length - 1]! ^= 1; // same indices, bad tag: anyone who saw message 2 can send it
    await net.inject(forged, { hostname: "198.18.6.6", port: 6000 }, b);
    net.filter = undefined;
    for (
      let t = 0;
      b.manager.sessionCount === 0 && t < 3 * DEFAULT_TIMERS.rekeyTimeoutMs;
      t += 1000
    ) {
      await net.inject(final, a.endpoint, b); // the genuine one (or a repeat) arrives
      await net.advance(1000, a, b);
      await net.pump();
    }
    assert.equal(b.manager.sessionCount, 1);
    await a.send(b, "through");
    await net.pump();
    assert.deepEqual(b.texts(), ["through"]);
  },
});

// BUG: a failed handshake (spent or refused) is restarted on every tick, not every rekeyTimeoutMs.
Deno.test({
  name: "SessionManager retries a refused handshake no faster than every rekeyTimeoutMs",
  fn: async () => {
    const net = new FakeNetwork();
    const a = net.node(IDS[0]!);
    // Its binding signs another static key: every message 2 is refused.
    const m = net.node(IDS[1]!, { staticKey: IDS[2]!.staticKey });
    const pending = await net.begin(a, m);
    await net.pump();
    for (let t = 0; t < DEFAULT_TIMERS.rekeyTimeoutMs; t += TIMER_TICK_MS) {
      await net.advance(TIMER_TICK_MS, a, m);
      await net.pump();
    }
    assert.ok(
      net.sentBy(a, T.INIT).length <= 2,
      `${net.sentBy(a, T.INIT).length} handshakes in ${DEFAULT_TIMERS.rekeyTimeoutMs} ms`,
    );
    await net.giveUp(pending, a, m);
  },
});

Deno.test("SessionManager answers a message-1 flood from one source with a bounded number of cookie replies", async () => {
  const net = new FakeNetwork();
  const b = net.node(IDS[1]!, { manager: { cookieThreshold: 0 } });
  const flooder = localIdentity(IDS[5]!);
  const from: Endpoint = { hostname: "198.18.0.77", port: 4000 };
  for (let i = 1; i <= 100; i++) await net.inject(await freshMessage1(flooder, i), from, b);
  await net.pump();
  const burst = COOKIE_REPLY_RATE_PER_SOURCE.burst;
  assert.equal(net.sentBy(b, T.COOKIE).length, burst, "one bucket of cookie replies, no more");
  assert.equal(b.manager.drops.cookie_sent, burst);
  assert.equal(b.manager.drops.cookie_rate, 100 - burst);
  // Another source still gets its answer: the limit is per source.
  await net.inject(await freshMessage1(flooder, 101), { hostname: "198.18.0.78", port: 4000 }, b);
  await net.pump();
  assert.equal(net.sentBy(b, T.COOKIE).length, burst + 1);
});
