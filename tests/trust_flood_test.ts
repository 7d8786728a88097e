/**
 * The trust service (port 444) under floods, in process (the harness of
 * tests/_service_helpers.ts): budgets spent before any signature is checked,
 * bounded queues with room kept for known peers, one pending entry per key,
 * local commands that never wait behind a stranger's work, and answers to
 * silent peers that stop being retried actively within minutes.
 */
import assert from "node:assert/strict";
import {
  MAX_PENDING_PER_SOURCE,
  OUTBOX_ACTIVE_RETRY_MS,
  TRUST_QUEUE_MAX,
  TRUST_QUEUE_PER_KEY,
  TRUST_QUEUE_RESERVED,
  TRUST_RATE_PER_KEY,
} from "../src/constants.ts";
import { addressToBytes, parseAddress } from "../src/identity/address.ts";
import { randomBytes } from "../src/session/crypto.ts";
import type { PeerIdentity } from "../src/session/peer_identity.ts";
import {
  ackOf,
  craft,
  establishTrust,
  messagePacket,
  network,
  type ServiceNode,
} from "./_service_helpers.ts";
import { GatedFlow, Monotonic, rebuild } from "./_trust_service_options.ts";

/** Fails with `what` unless `p` settles within `ms`: a bound on a hang, not a wait. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A session peer with a random key that has never signed anything. */
function fakePeer(): PeerIdentity {
  const publicKey = randomBytes(32);
  const address = parseAddress("0000.0000.0001");
  return {
    publicKey,
    keyHex: publicKey.toHex(),
    address,
    addressBytes: addressToBytes(address),
    fingerprint: "x",
    hostname: "",
    staticSerial: 0,
    staticKey: randomBytes(32),
  };
}

/**
 * 300 random bytes that pass the header checks (addressed to `to`, from
 * `peer`, bound to `binding`), so only verification refuses them.
 */
function junk(peer: PeerIdentity, to: ServiceNode, binding: Uint8Array): Uint8Array {
  const m = randomBytes(300);
  m.set(peer.publicKey, 2);
  m.set(to.id.publicKey, 42);
  m.set(binding, 106);
  return messagePacket(m);
}

/** Inode and size of every file in a home: what a write (or an atomic rename) changes. */
async function filesOf(home: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const e of Deno.readDir(home)) {
    const st = await Deno.stat(`${home}/${e.name}`);
    out[e.name] = `${st.ino}:${st.size}`;
  }
  return out;
}

Deno.test("requests beyond a key's budget are refused rate_limited before their signature is checked", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  rebuild(net, b, { monotonic: new Monotonic().now });
  const binding = net.binding(a, b.keyHex)!;
  const details: string[] = [];
  for (let i = 0; i < TRUST_RATE_PER_KEY.burst + 10; i++) {
    const m = await craft(a.id, { to: b, binding });
    const forged = Uint8Array.from(m.bytes);
    forged[forged.length - 1]! ^= 0x80;
    const replies = await net.inject(b, { peer: a.peer, binding, payload: messagePacket(forged) });
    details.push(ackOf(replies).detail);
  }
  assert.deepEqual(details, [
    ...Array(TRUST_RATE_PER_KEY.burst).fill("bad_signature"),
    ...Array(10).fill("rate_limited"),
  ]);
  assert.equal(b.trustService.drops.bad_signature, TRUST_RATE_PER_KEY.burst);
  assert.equal(b.trustService.drops.rate_limited, 10);
});

Deno.test("a message misaddressed, from another signer or bound to another session is refused before its signature is checked", async () => {
  await using net = await network(3);
  const [a, b, c] = net.nodes as [ServiceNode, ServiceNode, ServiceNode];
  const binding = net.binding(a, b.keyHex)!;
  const cases = [
    [await craft(a.id, { to: c, binding }), "misaddressed"],
    [await craft(c.id, { to: b, binding }), "wrong_sender"],
    [await craft(a.id, { to: b, binding: randomBytes(32) }), "wrong_binding"],
  ] as const;
  for (const [m, reason] of cases) {
    const forged = Uint8Array.from(m.bytes);
    forged[forged.length - 1]! ^= 0x80;
    const replies = await net.inject(b, { peer: a.peer, binding, payload: messagePacket(forged) });
    assert.deepEqual(ackOf(replies), { status: "refused", detail: reason });
  }
  assert.equal(b.trustService.drops.bad_signature, 0);
});

Deno.test("a repeat of the pending request under a new request id is answered pending and writes nothing", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const binding = net.binding(a, b.keyHex)!;
  const request = await craft(a.id, { to: b, binding, reason: "once" });
  const first = await net.inject(b, {
    peer: a.peer,
    binding,
    payload: messagePacket(request.bytes),
  });
  assert.deepEqual(ackOf(first), { status: "pending", detail: "" });
  const before = await filesOf(b.home);
  for (let i = 0; i < 5; i++) {
    const again = await net.inject(b, {
      peer: a.peer,
      binding,
      payload: messagePacket(request.bytes),
    });
    assert.deepEqual(ackOf(again), { status: "pending", detail: "" });
  }
  assert.deepEqual(await filesOf(b.home), before);
  assert.equal(b.eventsOf("trust.requested").length, 1);
  assert.equal(b.flow.pendingFrom(a.keyHex)?.request_hash, request.hash.toHex());
});

Deno.test("a flood of signed requests from one stranger keeps one pending entry and bounded queues while local commands and an honest stranger get through", async () => {
  await using net = await network(4);
  const [a, b, c, d] = net.nodes as [ServiceNode, ServiceNode, ServiceNode, ServiceNode];
  await establishTrust(net, d, b);
  // a's work stalls at the pending write, at a point the test controls; its
  // budget never refills (the monotonic clock stands still).
  const gated = new GatedFlow(b.flow, [a.keyHex]);
  rebuild(net, b, { flow: gated, monotonic: new Monotonic().now });
  const binding = net.binding(a, b.keyHex)!;
  const flood = [];
  for (let i = 0; i < 2_000; i++) {
    flood.push(messagePacket((await craft(a.id, { to: b, binding, reason: `#${i}` })).bytes));
  }

  let most = 0;
  const answers = flood.map((payload) => {
    const answered = net.inject(b, { peer: a.peer, binding, payload });
    most = Math.max(most, b.trustService.queued + b.trustService.processing);
    return answered;
  });
  await within(gated.reached(1), 10_000, "the flood's first request");

  // While a's work is stuck: untrust, an honest stranger's request, approve.
  const untrusted = await within(b.trustService.untrust(d.keyHex, 2_000), 10_000, "untrust");
  assert.deepEqual(untrusted, { status: "untrusted", changed: true, delivered: true });
  const asked = await within(c.trustService.request(b.peer, "honest", 2_000), 10_000, "request");
  assert.equal(asked.status, "pending");
  const approved = await within(b.trustService.approve(c.keyHex, 2_000), 10_000, "approve");
  assert.deepEqual(approved, { status: "trusted", changed: true, delivered: true });
  assert.equal(gated.waiting, 1, "a's work was stuck all along");

  gated.open();
  const replies = await Promise.all(answers);
  const acks = replies.filter((r) => r.length > 0).map(ackOf);
  const count = (detail: string) => acks.filter((x) => x.detail === detail).length;
  assert.ok(most <= TRUST_QUEUE_PER_KEY + 1, `at most ${most} of a's messages held at once`);
  assert.equal(count("rate_limited"), 2_000 - TRUST_RATE_PER_KEY.burst);
  assert.equal(b.trustService.drops.rate_limited, 2_000 - TRUST_RATE_PER_KEY.burst);
  // Those dropped at a full queue get no ack (the sender repeats); the others
  // within the budget were verified and collapsed into one pending entry.
  const full = b.trustService.drops.queue_full;
  assert.equal(replies.length - acks.length, full);
  assert.ok(full > 0, "a's share of the queue filled up");
  assert.equal(count(""), TRUST_RATE_PER_KEY.burst - full);
  assert.ok(acks.every((x) => x.status === "pending" || x.detail === "rate_limited"));
  assert.deepEqual(b.flow.pending.map((p) => p.public_key), [a.keyHex]);
  const fromA = b.eventsOf("trust.requested").filter((e) =>
    (e.data.peer as { public_key: string }).public_key === a.keyHex
  );
  assert.equal(fromA.length, 1);
  assert.equal(b.trustService.queued + b.trustService.processing, 0);
});

Deno.test("a trusted peer's revoke finds a place while strangers fill their share of the verification queue", async () => {
  await using net = await network(6);
  const [b, ...rest] = net.nodes as [ServiceNode, ...ServiceNode[]];
  const d = rest.pop()!;
  await establishTrust(net, d, b);
  // Every worker stalls on a stranger's request, so nothing leaves the queue.
  const gated = new GatedFlow(b.flow, rest.map((n) => n.keyHex));
  rebuild(net, b, { flow: gated });
  const stalled = rest.map(async (s) => {
    const m = await craft(s.id, { to: b, binding: net.binding(s, b.keyHex)! });
    return net.inject(b, {
      peer: s.peer,
      binding: net.binding(s, b.keyHex)!,
      payload: messagePacket(m.bytes),
    });
  });
  await within(gated.reached(rest.length), 10_000, "the stalled requests");

  const flood: Promise<Uint8Array[]>[] = [];
  const share = TRUST_QUEUE_MAX - TRUST_QUEUE_RESERVED;
  for (let k = 0; k < share / TRUST_QUEUE_PER_KEY; k++) {
    const peer = fakePeer();
    const binding = randomBytes(32);
    for (let i = 0; i < TRUST_QUEUE_PER_KEY; i++) {
      flood.push(net.inject(b, { peer, binding, payload: junk(peer, b, binding) }));
    }
  }
  assert.equal(b.trustService.queued, share);
  const stranger = fakePeer();
  const strangerBinding = randomBytes(32);
  const late = net.inject(b, {
    peer: stranger,
    binding: strangerBinding,
    payload: junk(stranger, b, strangerBinding),
  });
  assert.equal(b.trustService.drops.queue_full, 1, "a stranger finds no place");

  const revoked = d.trustService.untrust(b.keyHex, 5_000);
  await net.waitFor(() => b.trustService.queued === share + 1, "d's revoke queued");
  assert.equal(b.trustService.drops.queue_full, 1, "d's revoke found a place");
  gated.open();
  assert.equal((await revoked).delivered, true);
  await net.waitFor(() => b.untrusted.includes(d.keyHex), "b dropping its trust in d");
  assert.equal(b.trust.has(d.keyHex), false);
  await Promise.all([...stalled, ...flood, late]);
});

Deno.test("pending requests from one source IP are capped; others still get in", async () => {
  await using net = await network(3);
  const [a, b, c] = net.nodes as [ServiceNode, ServiceNode, ServiceNode];
  const endpoints: Record<string, string> = {
    [a.keyHex]: "198.18.0.7:4000",
    [c.keyHex]: "[2001:db8::1]:4000",
  };
  rebuild(net, b, { endpointOf: (key) => endpoints[key] });
  for (let i = 0; i < MAX_PENDING_PER_SOURCE; i++) {
    const key = randomBytes(32).toHex();
    await b.flow.putPending({
      public_key: key,
      stamp: "00".repeat(8),
      address: "0000.0000.0000",
      hostname: null,
      fingerprint: "x",
      reason: "",
      received_at: new Date(net.clock.ms).toISOString(),
      request_hash: "00".repeat(32),
      source: "198.18.0.7",
    });
  }
  const err = await a.trustService.request(b.peer, "", 2_000).catch((e) => e);
  assert.equal(err?.code, "rate_limited");
  assert.equal(b.trustService.drops.source_full, 1);
  assert.equal(b.flow.pendingFrom(a.keyHex), undefined);
  assert.equal((await c.trustService.request(b.peer, "", 2_000)).status, "pending");
  assert.equal(b.flow.pendingFrom(c.keyHex)?.source, "2001:db8::1");
});

Deno.test("an answer to a peer that stays away is retried with backoff, stops within minutes, and goes out when the peer connects", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  await a.trustService.request(b.peer, "", 2_000);
  net.disconnect(a, b);
  const clock = new Monotonic();
  const attempts: number[] = [];
  rebuild(net, b, {
    monotonic: clock.now,
    random: () => 0.5,
    reconnect: (key) => {
      assert.equal(key, a.keyHex);
      attempts.push(clock.ms);
      return Promise.resolve();
    },
    endpointOf: () => "198.18.0.7:4000",
  });
  assert.equal((await b.trustService.approve(a.keyHex, 100)).delivered, false);
  const start = clock.ms;
  for (let s = 0; s < 60 * 60; s++) {
    await b.trustService.retryOutbox();
    clock.advance(1_000);
  }
  const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
  assert.ok(attempts.length >= 4 && attempts.length <= 12, `${attempts.length} attempts`);
  assert.ok(gaps.every((g, i) => i === 0 || g >= gaps[i - 1]!), `backoff grows: ${gaps}`);
  assert.ok(
    attempts.at(-1)! - start <= OUTBOX_ACTIVE_RETRY_MS + 60_000,
    "no active retry after the first few minutes",
  );
  assert.equal(b.trustService.retriesStopped(a.keyHex), true);
  assert.deepEqual(b.flow.outbox.map((i) => i.kind), ["accept"], "the answer is kept");

  net.connect(a, b);
  assert.equal(await b.trustService.peerUp(a.keyHex), true);
  assert.equal(a.trust.get(b.keyHex)?.mutual, true);
  assert.equal(b.flow.outbox.length, 0);
  assert.equal(b.trustService.retriesStopped(a.keyHex), false);
});
