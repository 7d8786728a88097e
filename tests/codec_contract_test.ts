/**
 * The shared decoder-contract assertions must fail whenever the copies they
 * replaced would have failed: a helper that passes too easily would silently
 * weaken every codec test that uses it.
 */

import assert from "node:assert/strict";
import { DecodeError } from "../src/bytes.ts";
import {
  assertCanonicalOrRefused,
  assertCanonicalOrRefusedAsync,
  assertRefuses,
  assertRefusesAsync,
} from "./_codec_contract.ts";

/** A toy codec: one byte, values below 128; 0x80 and above are "too_large". */
function decodeByte(bytes: Uint8Array): number {
  if (bytes.length === 0) throw new DecodeError("truncated", "Expected one byte");
  if (bytes.length > 1) throw new DecodeError("trailing", "Expected exactly one byte");
  const v = bytes[0]!;
  if (v >= 0x80) throw new DecodeError("too_large", `Byte ${v} is over 127`);
  return v;
}
const encodeByte = (v: number): Uint8Array => Uint8Array.of(v);

/** A second typed error, standing in for TrustMessageError. */
class OtherError extends Error {
  /** Why it was refused. */
  readonly reason: "bad";
  /** Creates the error. */
  constructor(reason: "bad", message: string) {
    super(message);
    this.reason = reason;
  }
}

Deno.test("assertRefuses() passes only for the decoder's error class with exactly the reason", () => {
  assertRefuses(decodeByte, Uint8Array.of(), "truncated");
  assertRefuses(decodeByte, Uint8Array.of(0x80), "too_large");
  assert.throws(() => assertRefuses(decodeByte, Uint8Array.of(0x80), "truncated"));
  assert.throws(() => assertRefuses(decodeByte, Uint8Array.of(1), "truncated"), /Missing/);
  const throwsType = () => {
    throw new TypeError("not a refusal");
  };
  assert.throws(() => assertRefuses(throwsType, Uint8Array.of(), "truncated"));
  const throwsOther = () => {
    throw new OtherError("bad", "other");
  };
  assertRefuses(throwsOther, Uint8Array.of(), "bad", { error: OtherError });
  assert.throws(() => assertRefuses(throwsOther, Uint8Array.of(), "bad"));
});

Deno.test("assertRefusesAsync() passes only for a rejection of the decoder's class with exactly the reason", async () => {
  const decode = (b: Uint8Array) => Promise.resolve().then(() => decodeByte(b));
  await assertRefusesAsync(decode, Uint8Array.of(0xff), "too_large");
  await assert.rejects(assertRefusesAsync(decode, Uint8Array.of(0xff), "trailing"));
  await assert.rejects(assertRefusesAsync(decode, Uint8Array.of(7), "too_large"));
  const rejectsOther = () => Promise.reject(new OtherError("bad", "other"));
  await assertRefusesAsync(rejectsOther, Uint8Array.of(), "bad", { error: OtherError });
  await assert.rejects(assertRefusesAsync(rejectsOther, Uint8Array.of(), "bad"));
});

Deno.test("assertCanonicalOrRefused() tells decoded from refused and fails on a non-canonical decode or a foreign error", () => {
  assert.equal(assertCanonicalOrRefused(decodeByte, encodeByte, Uint8Array.of(5)), true);
  assert.equal(assertCanonicalOrRefused(decodeByte, encodeByte, Uint8Array.of(5, 6)), false);
  const lossy = (_v: number) => Uint8Array.of(0);
  assert.throws(() => assertCanonicalOrRefused(decodeByte, lossy, Uint8Array.of(5)));
  const crashes = (_b: Uint8Array): number => {
    throw new RangeError("not a refusal");
  };
  assert.throws(() => assertCanonicalOrRefused(crashes, encodeByte, Uint8Array.of(5)));
});

Deno.test("assertCanonicalOrRefusedAsync() tells decoded from refused and fails on a non-canonical decode or a foreign error", async () => {
  const decode = (b: Uint8Array) => Promise.resolve().then(() => decodeByte(b));
  assert.equal(await assertCanonicalOrRefusedAsync(decode, encodeByte, Uint8Array.of(5)), true);
  assert.equal(await assertCanonicalOrRefusedAsync(decode, encodeByte, Uint8Array.of()), false);
  const lossy = (_v: number) => Uint8Array.of(0);
  await assert.rejects(assertCanonicalOrRefusedAsync(decode, lossy, Uint8Array.of(5)));
  const other = () => Promise.reject(new OtherError("bad", "other"));
  await assert.rejects(assertCanonicalOrRefusedAsync(other, encodeByte, Uint8Array.of(5)));
  assert.equal(
    await assertCanonicalOrRefusedAsync(other, encodeByte, Uint8Array.of(5), { error: OtherError }),
    false,
  );
});
