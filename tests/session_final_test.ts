/**
 * Message 3 at the responder costs as little as it can: a replay of one that
 * failed costs no crypto, a failure never rebuilds the state after message 2,
 * and a half-open handshake that keeps failing is abandoned.
 */

import assert from "node:assert/strict";
import { FakeNetwork, IDS, pair, T, type TestNode } from "./_session_helpers.ts";
import { DEFAULT_TIMERS } from "../src/session/manager.ts";
import { MAX_FINAL_FAILURES, RECONFIRM_RATE } from "../src/constants.ts";

/** a connects to b with every message 3 held back; returns the genuine message 3. */
async function halfOpen(): Promise<
  { net: FakeNetwork; a: TestNode; b: TestNode; final: Uint8Array }
> {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const b = net.node(IDS[1]!);
  net.filter = (d) => d.bytes[0] === T.FINAL ? "drop" : "deliver";
  await net.connect(a, b);
  net.filter = undefined;
  assert.equal(b.manager.halfOpenCount, 1);
  return { net, a, b, final: net.ofType(T.FINAL)[0]!.bytes };
}

/** The genuine message 3 with one byte of its Noise part flipped (at `back` bytes from the end). */
function forged(final: Uint8Array, back = 1): Uint8Array {
  const bad = Uint8Array.from(final);
  bad[bad.length - back]! ^= 1;
  return bad;
}

Deno.test("SessionManager drops a replay of a failed message 3 before any crypto", async () => {
  const { net, a, b, final } = await halfOpen();
  const bad = forged(final);
  const attacker = { hostname: "198.18.6.6", port: 6000 };
  for (let i = 0; i < 10; i++) await net.inject(bad, attacker, b);
  assert.equal(b.manager.drops.bad_final, 1, "only the first copy is tried");
  assert.equal(b.manager.drops.final_failed, 9);
  assert.equal(b.manager.workSpent.final, 1, "one message 3 worth of work in all");

  await net.inject(final, a.endpoint, b);
  await net.pump();
  assert.equal(b.manager.sessionCount, 1, "the genuine message 3 still completes");
  assert.equal(b.manager.workSpent.final, 2);
});

Deno.test("SessionManager abandons a half-open handshake after too many failed message 3s", async () => {
  const { net, a, b, final } = await halfOpen();
  for (let i = 1; i <= MAX_FINAL_FAILURES; i++) {
    await net.inject(forged(final, i), a.endpoint, b);
  }
  assert.equal(b.manager.drops.bad_final, MAX_FINAL_FAILURES);
  assert.equal(b.manager.halfOpenCount, 0);
  await net.inject(final, a.endpoint, b);
  assert.equal(b.manager.drops.unknown_index, 1);
  assert.equal(b.manager.sessionCount, 0);
});

Deno.test("SessionManager answers message 3 for an unknown or finished index with no work", async () => {
  const { net, a, b, final } = await halfOpen();
  const unknown = Uint8Array.from(final);
  unknown[5]! ^= 0xff; // receiver index
  await net.inject(unknown, a.endpoint, b);
  assert.equal(b.manager.drops.unknown_index, 1);
  await net.inject(final, a.endpoint, b);
  await net.pump();
  assert.equal(b.manager.sessionCount, 1);
  const spent = b.manager.workSpent.final;
  for (let i = 0; i < 5; i++) await net.inject(forged(final), a.endpoint, b);
  assert.equal(b.manager.drops.stale_final, 5);
  assert.equal(b.manager.workSpent.final, spent, "a finished handshake costs nothing more");
});

Deno.test("SessionManager confirms repeats of the exact message 3 at a bounded rate", async () => {
  const { net, a, b, final } = await halfOpen();
  await net.inject(final, a.endpoint, b);
  await net.pump();
  assert.equal(b.manager.sessionCount, 1);
  const before = net.sentBy(b, T.DATA).length;
  const replays = 50;
  for (let i = 0; i < replays; i++) await net.inject(final, a.endpoint, b);
  const confirmations = net.sentBy(b, T.DATA).length;
  assert.equal(confirmations - before, RECONFIRM_RATE.burst, "each costs an encryption: a few");
  assert.equal(b.manager.drops.stale_final, replays - RECONFIRM_RATE.burst);
  net.clock.advance(1000);
  await net.inject(final, a.endpoint, b);
  assert.equal(net.sentBy(b, T.DATA).length, confirmations + 1, "a later repeat is confirmed");
});

Deno.test("SessionManager keeps message 3 only while the initiator may repeat it", async () => {
  const { net, a, b, final } = await halfOpen();
  await net.inject(final, a.endpoint, b);
  await net.pump();
  const responder = b.manager.peers()[0]!;
  assert.equal(b.manager.sessionCount, 1);
  const confirmations = () => net.sentBy(b, T.DATA).length;
  // Within the initiator's repeat window a repeat is confirmed again.
  await net.advance(DEFAULT_TIMERS.rekeyTimeoutMs, b);
  const before = confirmations();
  await net.inject(final, a.endpoint, b);
  assert.equal(confirmations(), before + 1);
  // Past twice that window the bytes are gone: a repeat is stale and costs nothing.
  await net.advance(DEFAULT_TIMERS.rekeyTimeoutMs, b);
  await net.inject(final, a.endpoint, b);
  assert.equal(confirmations(), before + 1);
  assert.equal(b.manager.drops.stale_final, 1);
  assert.equal(
    b.manager.peers()[0]!.identity.keyHex,
    responder.identity.keyHex,
    "the session stays",
  );
});

Deno.test("SessionManager charges the check of an identity not verified before, and not a repeat of it", async () => {
  const { net, a, b } = await pair();
  assert.equal(b.manager.workSpent.identity, 1, "a's first handshake: its identity is checked");
  net.clock.advance(DEFAULT_TIMERS.rekeyAfterMs);
  await a.manager.tick();
  await net.pump();
  assert.equal(b.manager.workSpent.final, 2, "the rekey completed");
  assert.equal(b.manager.workSpent.identity, 1, "the same signed payload costs no check again");
});
