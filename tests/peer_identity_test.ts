import assert from "node:assert/strict";
import { HandshakeFailure, PayloadCheck, verifyPeerPayload } from "../src/session/peer_identity.ts";
import type { HandshakePayload } from "../src/wire/handshake_payload.ts";
import { decodeHandshakePayload } from "../src/wire/handshake_payload.ts";
import { IDS, localIdentity } from "./_session_helpers.ts";

Deno.test("verifyPeerPayload() checks a payload again when it comes with another static key, even after it verified once", async () => {
  const id = IDS[0]!;
  const local = localIdentity(id);
  const payload = decodeHandshakePayload(local.payload);
  const peer = await verifyPeerPayload(payload, id.staticKey.publicKey);
  assert.equal(peer.address, id.address);
  // The same signed bytes again with its own static key: fine (and cached).
  assert.equal((await verifyPeerPayload(payload, id.staticKey.publicKey)).keyHex, peer.keyHex);
  // Replayed by someone whose Noise static key is another: the binding does not cover it.
  await assert.rejects(
    verifyPeerPayload(payload, IDS[1]!.staticKey.publicKey),
    (e: unknown) => e instanceof HandshakeFailure && e.reason === "bad_binding",
  );
});

Deno.test("verifyPeerPayload() refuses a payload whose self-description was altered after a good one was cached", async () => {
  const id = IDS[2]!;
  const good = decodeHandshakePayload(localIdentity(id, { hostname: "alpha" }).payload);
  await verifyPeerPayload(good, id.staticKey.publicKey);
  await assert.rejects(
    verifyPeerPayload({ ...good, hostname: "beta" }, id.staticKey.publicKey),
    (e: unknown) => e instanceof HandshakeFailure && e.reason === "bad_self",
  );
});

/** Whether the payload with this static key verified before, as a responder asks it. */
async function verifiedBefore(p: HandshakePayload, staticKey: Uint8Array): Promise<boolean> {
  return (await PayloadCheck.of(p, staticKey)).verifiedBefore;
}

Deno.test("PayloadCheck.verifiedBefore is true only for the very payload and static key that verified", async () => {
  const id = IDS[3]!;
  const bytes = localIdentity(id, { hostname: "gamma" }).payload;
  const payload = decodeHandshakePayload(bytes);
  const staticKey = id.staticKey.publicKey;
  assert.equal(await verifiedBefore(payload, staticKey), false, "nothing verified yet");
  await verifyPeerPayload(payload, staticKey);
  assert.equal(await verifiedBefore(payload, staticKey), true);
  // The same bytes decoded again (as a rekey sends them): still known.
  assert.equal(
    await verifiedBefore(
      decodeHandshakePayload(bytes),
      staticKey,
    ),
    true,
  );
  // Any signed byte changed, or another static key: not known, checked in full.
  assert.equal(await verifiedBefore({ ...payload, hostname: "delta" }, staticKey), false);
  assert.equal(
    await verifiedBefore({ ...payload, selfTime: payload.selfTime + 1 }, staticKey),
    false,
  );
  assert.equal(await verifiedBefore(payload, IDS[4]!.staticKey.publicKey), false);
});

Deno.test("PayloadCheck.verify() checks in full what did not verify before, and then knows it", async () => {
  const id = IDS[5]!;
  const payload = decodeHandshakePayload(localIdentity(id, { hostname: "epsilon" }).payload);
  const staticKey = id.staticKey.publicKey;
  const check = await PayloadCheck.of(payload, staticKey);
  assert.equal(check.verifiedBefore, false);
  assert.equal((await check.verify()).address, id.address);
  assert.equal(check.verifiedBefore, true);
  assert.equal((await PayloadCheck.of(payload, staticKey)).verifiedBefore, true);
  // The same check on altered bytes is its own, checked in full.
  const altered = await PayloadCheck.of({ ...payload, hostname: "zeta" }, staticKey);
  assert.equal(altered.verifiedBefore, false);
  await assert.rejects(
    altered.verify(),
    (e: unknown) => e instanceof HandshakeFailure && e.reason === "bad_self",
  );
});
