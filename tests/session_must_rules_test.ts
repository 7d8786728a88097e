/**
 * The tunnel's MUST rules (DESIGN.md, "Tunnel"), each checked on
 * SessionManagers wired through the simulated network.
 */

import assert from "node:assert/strict";
import { FakeNetwork, IDS, pair, T } from "./_session_helpers.ts";
import { addressToBytes, verifyStamp } from "../src/identity/address.ts";
import { DEFAULT_TIMERS, type DropReason } from "../src/session/manager.ts";
import { PilotError } from "../src/errors.ts";
import { encodeInner } from "../src/wire/inner.ts";

Deno.test("SessionManager refuses message 2 whose identity signature covers another static key", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  // Identity 1's payload (its binding signs identity 1's X25519 key) over identity 2's Noise static.
  const m = net.node(IDS[1]!, { staticKey: IDS[2]!.staticKey });
  const pending = await net.begin(a, m);
  await net.pump();
  assert.equal(a.manager.drops.bad_binding, 1);
  assert.equal(net.ofType(T.RESP).length, 1, "the responder did answer");
  assert.deepEqual(net.sentBy(a, T.FINAL), [], "the initiator never revealed itself");
  assert.equal(a.manager.sessionCount, 0);
  assert.deepEqual(a.manager.peers(), []);
  assert.equal(pending.state, "pending");
  const outcome = await net.giveUp(pending, a);
  assert.ok(outcome instanceof PilotError && outcome.code === "unreachable", String(outcome));
});

Deno.test("SessionManager refuses message 3 whose identity signature covers another static key", async () => {
  const net = new FakeNetwork();
  const m = net.node(IDS[0]!, { staticKey: IDS[2]!.staticKey });
  const b = net.node(IDS[1]!);
  await net.connect(m, b);
  await net.pump();
  assert.equal(net.ofType(T.FINAL).length, 1);
  assert.equal(b.manager.drops.bad_binding, 1);
  assert.equal(b.manager.sessionCount, 0);
  assert.deepEqual(b.manager.peers(), []);
  assert.deepEqual(b.up, []);
  assert.deepEqual(net.sentBy(b, T.DATA), [], "no session, so no keepalive");
});

Deno.test("SessionManager checks the responder's key and address before it sends message 3", async () => {
  const other = IDS[2]!;
  const cases = [
    { expected: { publicKey: other.publicKey }, reason: "unexpected_key" },
    { expected: { address: other.address }, reason: "unexpected_address" },
    { expected: { hostname: "someone-else" }, reason: "unexpected_hostname" },
  ] satisfies { reason: DropReason; [k: string]: unknown }[];
  for (const { expected, reason } of cases) {
    const net = new FakeNetwork();
    const a = net.node(IDS[0]!);
    const b = net.node(IDS[1]!, { hostname: "bravo" });
    await assert.rejects(
      net.connect(a, b, expected),
      (e: unknown) => e instanceof PilotError && e.code === "key_changed",
      reason,
    );
    assert.equal(a.manager.drops[reason], 1, reason);
    assert.equal(net.ofType(T.RESP).length, 1, reason);
    assert.deepEqual(net.ofType(T.FINAL), [], `${reason}: message 3 never sent`);
    assert.deepEqual(a.manager.peers(), []);
    assert.equal(a.manager.sessionCount, 0);
    assert.equal(b.manager.sessionCount, 0);
  }
  // The same expectations, met, connect.
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const b = net.node(IDS[1]!, { hostname: "bravo" });
  const got = await net.connect(a, b, {
    publicKey: b.identity.publicKey,
    address: b.identity.address,
    hostname: "bravo",
  });
  assert.equal(got.keyHex, b.keyHex);
});

Deno.test("SessionManager refuses a rekey that reaches a different key at the peer's endpoint", async () => {
  const { net, a, b } = await pair();
  const firstFinal = net.ofType(T.FINAL).length;
  // An impostor takes over the peer's endpoint before the rekey.
  const impostor = net.node(IDS[2]!, { endpoint: b.endpoint });
  await net.advance(DEFAULT_TIMERS.rekeyAfterMs, a);
  await net.waitFor(() => net.ofType(T.INIT).length === 2, "the rekey's message 1");
  await net.pump();
  assert.equal(net.sentBy(impostor, T.RESP).length, 1, "the impostor answered");
  assert.equal(a.manager.drops.unexpected_key, 1);
  assert.equal(net.ofType(T.FINAL).length, firstFinal, "message 3 never sent to the impostor");
  assert.equal(impostor.manager.sessionCount, 0);
  assert.equal(a.manager.sessionCount, 1);
  const peers = a.manager.peers();
  assert.deepEqual(peers.map((p) => p.identity.keyHex), [b.keyHex]);
  assert.deepEqual(a.up.map((p) => p.keyHex), [b.keyHex]);

  // The real peer comes back: the old session still carries traffic.
  net.route(b.endpoint, b);
  await a.send(b, "still you");
  await net.pump();
  assert.deepEqual(b.texts(), ["still you"]);
});

Deno.test("SessionManager treats the self-description's time as informational", async () => {
  for (const selfTime of [0, Number.MAX_SAFE_INTEGER]) {
    for (const role of ["responder", "initiator"] as const) {
      const net = new FakeNetwork();
      const a = net.node(IDS[0]!);
      const odd = net.node(IDS[1]!, { selfTime, hostname: "odd-clock" });
      if (role === "responder") await net.connect(a, odd);
      else await net.connect(odd, a);
      await net.pump();
      const p = a.manager.peers();
      assert.equal(p.length, 1, `${role} with selfTime ${selfTime}`);
      assert.equal(p[0]!.identity.hostname, "odd-clock");
      assert.equal(odd.manager.peers().length, 1);
    }
  }
});

Deno.test("SessionManager drops an inner packet whose source is not the session's peer", async () => {
  const { net, a, b } = await pair();
  await a.send(b, "hi");
  await net.pump();
  const session = b.delivered[0]!.session; // b's session with a
  const third = addressToBytes(IDS[2]!.address);
  const craft = async (srcAddress: Uint8Array, dstAddress: Uint8Array, text: string) => {
    const inner = encodeInner({
      kind: "datagram",
      srcAddress,
      dstAddress,
      srcPort: 1,
      dstPort: 1001,
      payload: new TextEncoder().encode(text),
    });
    return (await session.seal(inner, net.clock.now()))!;
  };
  await net.inject(await craft(third, a.local.addressBytes, "spoofed"), b.endpoint, a);
  assert.deepEqual(a.delivered, []);
  assert.equal(a.manager.drops.inner_address, 1);

  await net.inject(await craft(b.local.addressBytes, third, "misdirected"), b.endpoint, a);
  assert.deepEqual(a.delivered, []);
  assert.equal(a.manager.drops.inner_address, 2);

  // The same construction with the right addresses is delivered.
  await net.inject(
    await craft(b.local.addressBytes, a.local.addressBytes, "genuine"),
    b.endpoint,
    a,
  );
  assert.deepEqual(a.texts(), ["genuine"]);
});

Deno.test("SessionManager refuses weak identity keys, bad stamps and bad self-descriptions", async () => {
  const weakKeys = [
    "0100000000000000000000000000000000000000000000000000000000000000", // identity point
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p: non-canonical
  ];
  const badStamp = Uint8Array.from(IDS[1]!.stamp);
  badStamp[0]! ^= 1;
  assert.equal(verifyStamp(IDS[1]!.publicKey, badStamp), null);
  const cases = [
    ...weakKeys.map((hex) => ({
      payload: { publicKey: Uint8Array.fromHex(hex) },
      reason: "bad_key" as const,
    })),
    { payload: { stamp: badStamp }, reason: "bad_stamp" },
    { payload: { hostname: "not-what-was-signed" }, reason: "bad_self" },
  ] satisfies { reason: DropReason; [k: string]: unknown }[];
  // Control: the same node without a forged field forms a session both ways.
  {
    const net = new FakeNetwork();
    const a = net.node(IDS[0]!);
    const m = net.node(IDS[1]!, { hostname: "signed" });
    await net.connect(a, m);
    await net.connect(m, a);
    await net.pump();
    assert.equal(a.manager.peers().length, 1);
    assert.equal(m.manager.peers().length, 1);
  }
  for (const { payload, reason } of cases) {
    // As responder: the initiator refuses message 2 and stays silent.
    {
      const net = new FakeNetwork();
      const a = net.node(IDS[0]!);
      const m = net.node(IDS[1]!, { hostname: "signed", payload });
      const pending = await net.begin(a, m);
      await net.pump();
      assert.equal(a.manager.drops[reason], 1, `${reason} in message 2`);
      assert.deepEqual(net.ofType(T.FINAL), [], reason);
      assert.deepEqual(a.manager.peers(), []);
      await net.giveUp(pending, a);
    }
    // As initiator: the responder refuses message 3.
    {
      const net = new FakeNetwork();
      const m = net.node(IDS[1]!, { hostname: "signed", payload });
      const b = net.node(IDS[0]!);
      await net.connect(m, b);
      await net.pump();
      assert.equal(b.manager.drops[reason], 1, `${reason} in message 3`);
      assert.deepEqual(b.manager.peers(), []);
      assert.equal(b.manager.sessionCount, 0);
    }
  }
});

Deno.test("a static-key serial below the one kept on disk is refused as a rollback", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  // B remembers (as its trust store would after a restart) that A proved serial 7.
  const b = net.node(IDS[1]!, { manager: { serialFloor: (key) => key === a.keyHex ? 7 : 0 } });
  const pending = await net.begin(a, b);
  await net.pump();
  await pending.result.catch(() => {});
  assert.equal(b.manager.peers().length, 0, "no session with the older static key");
  assert.equal(b.manager.drops.old_static_key, 1);
});
