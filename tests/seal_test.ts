/**
 * Sealed items (session/seal.ts): one Noise X message to a recipient's
 * static key. Only the recipient opens it, learns who sealed it (proven as
 * in a handshake), and any change to it is refused.
 */
import assert from "node:assert/strict";
import { DecodeError } from "../src/bytes.ts";
import { NoiseError } from "../src/session/noise.ts";
import { HandshakeFailure } from "../src/session/peer_identity.ts";
import { MAX_SEALED_ITEM, openSealed, seal, SEAL_OVERHEAD } from "../src/session/seal.ts";
import { IDS, localIdentity } from "./_session_helpers.ts";

const [A, B, C] = [IDS[0]!, IDS[1]!, IDS[2]!];
const ITEM = new TextEncoder().encode('{"command":"run"}');

Deno.test("a sealed item opens only with the recipient's key, names its sender, and is unique per seal", async () => {
  const sealed = await seal(
    localIdentity(A, { hostname: "orchestrator" }),
    B.staticKey.publicKey,
    ITEM,
  );
  assert.equal(
    sealed.length,
    localIdentity(A, { hostname: "orchestrator" }).payload.length +
      ITEM.length + SEAL_OVERHEAD,
  );
  const opened = await openSealed(B.staticKey, sealed);
  assert.deepEqual(opened.item, ITEM);
  assert.equal(opened.sender.keyHex, A.publicKey.toHex());
  assert.equal(opened.sender.address, A.address);
  assert.equal(opened.sender.hostname, "orchestrator");
  await assert.rejects(openSealed(C.staticKey, sealed), NoiseError, "not sealed to C");
  const again = await seal(localIdentity(A), B.staticKey.publicKey, ITEM);
  assert.notEqual((await openSealed(B.staticKey, again)).ephemeral, opened.ephemeral);
});

Deno.test("any changed byte of a sealed item is refused", async () => {
  const sealed = await seal(localIdentity(A), B.staticKey.publicKey, ITEM);
  for (const i of [0, 31, 32, 80, sealed.length - 17, sealed.length - 1]) {
    const bad = sealed.slice();
    bad[i]! ^= 1;
    await assert.rejects(openSealed(B.staticKey, bad), NoiseError, `byte ${i}`);
  }
  await assert.rejects(openSealed(B.staticKey, sealed.subarray(0, 40)), NoiseError, "truncated");
});

Deno.test("an identity that does not bind the static key that sealed the item is refused", async () => {
  // A's signed identity, but C's static key seals: the binding covers A's static key only.
  const forged = await seal(
    { ...localIdentity(A), staticKey: C.staticKey },
    B.staticKey.publicKey,
    ITEM,
  );
  await assert.rejects(
    openSealed(B.staticKey, forged),
    (e) => e instanceof HandshakeFailure && e.reason === "bad_binding",
  );
});

Deno.test("an item over the bound is refused before sealing; an empty one seals", async () => {
  await assert.rejects(
    seal(localIdentity(A), B.staticKey.publicKey, new Uint8Array(MAX_SEALED_ITEM + 1)),
    RangeError,
  );
  const empty = await openSealed(
    B.staticKey,
    await seal(localIdentity(A), B.staticKey.publicKey, new Uint8Array(0)),
  );
  assert.equal(empty.item.length, 0);
});

Deno.test("a sealed inside that is not an identity and an item is refused with DecodeError", async () => {
  // Sealed with a correct Noise message but a payload whose identity length overruns.
  const { HandshakeState } = await import("../src/session/noise.ts");
  const hs = await HandshakeState.create({
    pattern: "X",
    initiator: true,
    prologue: new TextEncoder().encode("pilot sealed item v1"),
    s: A.staticKey,
    rs: B.staticKey.publicKey,
  });
  const bad = await hs.writeMessage(Uint8Array.of(0xff, 0xff, 1, 2, 3));
  await assert.rejects(openSealed(B.staticKey, bad), DecodeError);
});
