/**
 * The rendezvous table's first-claim name index: claimants in the order
 * they claimed, the earliest holding the name, one key stored alone and an
 * array only for two or more.
 */

import assert from "node:assert/strict";
import { Claims } from "../src/services/rendezvous/_claims.ts";

Deno.test("Claims lists claimants earliest first, once each, and a name passes on when its holder releases it", () => {
  const claims = new Claims();
  assert.deepEqual(claims.claimants("alpha"), []);
  claims.claim("alpha", "k1");
  claims.claim("alpha", "k1");
  assert.deepEqual(claims.claimants("alpha"), ["k1"]);
  claims.claim("alpha", "k2");
  claims.claim("alpha", "k3");
  claims.claim("alpha", "k2");
  assert.deepEqual(claims.claimants("alpha"), ["k1", "k2", "k3"]);
  claims.release("alpha", "k1");
  assert.deepEqual(claims.claimants("alpha"), ["k2", "k3"]);
  claims.release("alpha", "k3");
  assert.deepEqual(claims.claimants("alpha"), ["k2"]);
  claims.claim("alpha", "k1");
  assert.deepEqual(claims.claimants("alpha"), ["k2", "k1"], "a returning key claims last");
  claims.release("alpha", "k2");
  claims.release("alpha", "k1");
  assert.deepEqual(claims.claimants("alpha"), []);
  assert.equal(claims.size, 0);
});

Deno.test("Claims ignores releases by keys that hold no claim, and counts names", () => {
  const claims = new Claims();
  claims.claim("alpha", "k1");
  claims.claim("beta", "k1");
  claims.release("alpha", "k9");
  claims.release("gamma", "k1");
  assert.deepEqual(claims.claimants("alpha"), ["k1"]);
  assert.equal(claims.size, 2);
  claims.claim("beta", "k2");
  claims.release("beta", "k9");
  assert.deepEqual(claims.claimants("beta"), ["k1", "k2"]);
});

Deno.test("Claims.claimants() returns a copy: releasing while iterating skips no one", () => {
  const claims = new Claims();
  for (const k of ["k1", "k2", "k3"]) claims.claim("alpha", k);
  const seen: string[] = [];
  for (const k of claims.claimants("alpha")) {
    seen.push(k);
    claims.release("alpha", k);
  }
  assert.deepEqual(seen, ["k1", "k2", "k3"]);
  claims.claim("solo", "k1");
  const copy = claims.claimants("solo");
  copy.push("k2");
  assert.deepEqual(claims.claimants("solo"), ["k1"]);
});
