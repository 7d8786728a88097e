/**
 * Project Wycheproof vectors through the project's own wrappers in
 * src/session/crypto.ts. Every "acceptable" case is decided here and the
 * decision asserted; every file asserts how many cases ran.
 */

import assert from "node:assert/strict";
import {
  AeadKey,
  CryptoError,
  generateX25519,
  hkdf,
  hmacSha256,
  nonceFromCounter,
  x25519,
  x25519PublicKey,
} from "../src/session/crypto.ts";
import { constantTimeEqual } from "../src/bytes.ts";

interface WycheproofTest {
  tcId: number;
  comment: string;
  flags?: string[];
  result: "valid" | "invalid" | "acceptable";
  [field: string]: unknown;
}

interface WycheproofFile {
  numberOfTests: number;
  testGroups: ({ tests: WycheproofTest[] } & Record<string, unknown>)[];
}

/** The shared vectors when that folder exists, else the project's own copy. */
async function vectorsDir(): Promise<URL> {
  const shared = new URL("../../shared/vectors/", import.meta.url);
  try {
    if ((await Deno.stat(shared)).isDirectory) return shared;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return new URL("./vectors/", import.meta.url);
}

async function load(name: string): Promise<WycheproofFile> {
  const url = new URL(`wycheproof/${name}`, await vectorsDir());
  return JSON.parse(await Deno.readTextFile(url));
}

function field(test: WycheproofTest, name: string): Uint8Array {
  const value = test[name];
  assert.equal(typeof value, "string", `tcId ${test.tcId} has hex field ${name}`);
  return Uint8Array.fromHex(value as string);
}

function label(test: WycheproofTest): string {
  return `tcId ${test.tcId} (${test.result}, ${test.flags?.join(" ") ?? ""}) ${test.comment}`;
}

Deno.test("x25519() matches Wycheproof and refuses every low-order public key", async () => {
  const file = await load("x25519_test.json");
  let valid = 0;
  let refused = 0;
  let acceptedAcceptable = 0;
  let nonCanonical = 0;
  for (const group of file.testGroups) {
    for (const test of group.tests) {
      const flags = test.flags ?? [];
      const shared = field(test, "shared");
      const result = x25519(field(test, "private"), field(test, "public"));
      // Decision: a zero shared secret means a low-order peer key, so the DH
      // is refused (CryptoError) whatever Wycheproof's verdict.
      const zero = constantTimeEqual(shared, new Uint8Array(32));
      assert.equal(zero, flags.includes("ZeroSharedSecret"), label(test));
      if (zero) {
        await assert.rejects(result, CryptoError, label(test));
        refused++;
        continue;
      }
      // Decision: every other case, twist points and non-canonical encodings
      // included, is computed exactly as RFC 7748 defines. Twist points give
      // an attacker nothing because X25519 is twist-secure; non-canonical
      // keys (u >= 2^255 - 19, or the top bit set) are reduced as RFC 7748
      // section 5 says, and WebCrypto does so.
      assert.notEqual(test.result, "invalid", label(test));
      assert.equal((await result).toHex(), shared.toHex(), label(test));
      if (test.result === "valid") valid++;
      else acceptedAcceptable++;
      if (flags.includes("NonCanonicalPublic")) nonCanonical++;
    }
  }
  assert.equal(valid + refused + acceptedAcceptable, file.numberOfTests);
  assert.equal(valid + refused + acceptedAcceptable, 518);
  assert.equal(valid, 264, "valid cases computed");
  assert.equal(acceptedAcceptable, 223, "acceptable twist and non-canonical cases computed");
  assert.equal(refused, 31, "low-order cases refused");
  assert.equal(nonCanonical, 13, "non-canonical public keys computed as RFC 7748 reduces them");
});

Deno.test("AeadKey matches Wycheproof AES-256-GCM with 12-byte nonces and 16-byte tags", async () => {
  const file = await load("aes_gcm_test.json");
  let ran = 0;
  let notApplicable = 0;
  for (const group of file.testGroups) {
    // AeadKey is AES-256 with 96-bit nonces and 128-bit tags only, on purpose.
    if (group.keySize !== 256 || group.ivSize !== 96 || group.tagSize !== 128) {
      notApplicable += group.tests.length;
      continue;
    }
    for (const test of group.tests) {
      assert.notEqual(test.result, "acceptable", `${label(test)}: no acceptable GCM cases`);
      const key = await AeadKey.create(field(test, "key"));
      const [iv, aad, msg, ct, tag] = ["iv", "aad", "msg", "ct", "tag"].map((f) => field(test, f));
      const sealed = new Uint8Array([...ct!, ...tag!]);
      const opened = await key.open(iv!, sealed, aad!);
      if (test.result === "valid") {
        assert.equal(opened?.toHex(), msg!.toHex(), label(test));
        assert.equal((await key.seal(iv!, msg!, aad!)).toHex(), sealed.toHex(), label(test));
      } else {
        assert.equal(opened, null, label(test));
      }
      ran++;
    }
  }
  assert.equal(ran + notApplicable, file.numberOfTests);
  assert.equal(ran, 66, "AES-256-GCM cases with 12-byte nonces run");
});

Deno.test("AeadKey.open() returns null for input shorter than a tag", async () => {
  const key = await AeadKey.create(new Uint8Array(32));
  const nonce = new Uint8Array(12);
  assert.equal(await key.open(nonce, new Uint8Array(15), new Uint8Array(0)), null);
  assert.equal(await key.open(nonce, new Uint8Array(0), new Uint8Array(0)), null);
});

Deno.test("hkdf() matches Wycheproof HKDF-SHA256 and refuses oversized output", async () => {
  const file = await load("hkdf_sha256_test.json");
  let valid = 0;
  let invalid = 0;
  for (const group of file.testGroups) {
    for (const test of group.tests) {
      const [ikm, salt, info] = ["ikm", "salt", "info"].map((f) => field(test, f));
      const size = test.size as number;
      if (test.result === "valid") {
        const okm = await hkdf(salt!, ikm!, info!, size);
        assert.equal(okm.toHex(), field(test, "okm").toHex(), label(test));
        valid++;
      } else {
        // Wycheproof's only invalid HKDF cases ask for more than 255 blocks.
        assert.ok(test.flags?.includes("SizeTooLarge"), label(test));
        await assert.rejects(hkdf(salt!, ikm!, info!, size), RangeError, label(test));
        invalid++;
      }
    }
  }
  assert.equal(valid + invalid, file.numberOfTests);
  assert.equal(valid, 83);
  assert.equal(invalid, 3);
});

Deno.test("hmacSha256() matches Wycheproof HMAC-SHA256, truncated tags by prefix", async () => {
  const file = await load("hmac_sha256_test.json");
  let valid = 0;
  let invalid = 0;
  let truncated = 0;
  for (const group of file.testGroups) {
    const tagBytes = (group.tagSize as number) / 8;
    for (const test of group.tests) {
      const expected = field(test, "tag");
      const computed = (await hmacSha256(field(test, "key"), field(test, "msg")))
        .subarray(0, tagBytes);
      if (tagBytes < 32) truncated++;
      assert.notEqual(test.result, "acceptable", `${label(test)}: no acceptable HMAC cases`);
      if (test.result === "valid") {
        assert.equal(computed.toHex(), expected.toHex(), label(test));
        valid++;
      } else {
        assert.ok(!constantTimeEqual(computed, expected), label(test));
        invalid++;
      }
    }
  }
  assert.equal(valid + invalid, file.numberOfTests);
  assert.equal(valid, 66);
  assert.equal(invalid, 108);
  assert.ok(truncated > 0, "truncated tags were exercised");
});

Deno.test("x25519() refuses a low-order public key", async () => {
  const { privateKey } = await generateX25519();
  for (
    const u of ["00", "01", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"]
  ) {
    const publicKey = new Uint8Array(32);
    publicKey.set(Uint8Array.fromHex(u));
    await assert.rejects(x25519(privateKey, publicKey), CryptoError, u);
  }
});

Deno.test("x25519() agrees in both directions and x25519PublicKey() matches generateX25519()", async () => {
  const a = await generateX25519();
  const b = await generateX25519();
  assert.equal((await x25519PublicKey(a.privateKey)).toHex(), a.publicKey.toHex());
  assert.equal(
    (await x25519(a.privateKey, b.publicKey)).toHex(),
    (await x25519(b.privateKey, a.publicKey)).toHex(),
  );
});

Deno.test("x25519() uses the new key after the caller overwrites its private key array", async () => {
  const [a, b, c] = [await generateX25519(), await generateX25519(), await generateX25519()];
  const key = a.privateKey.slice();
  const before = await x25519(key, c.publicKey);
  key.set(b.privateKey);
  const after = await x25519(key, c.publicKey);
  assert.notEqual(after.toHex(), before.toHex());
  assert.equal(after.toHex(), (await x25519(b.privateKey, c.publicKey)).toHex());
});

Deno.test("nonceFromCounter() is 4 zero bytes then a big-endian u64", () => {
  assert.equal(nonceFromCounter(0).toHex(), "000000000000000000000000");
  assert.equal(nonceFromCounter(0x0102030405).toHex(), "000000000000000102030405");
  assert.equal(
    nonceFromCounter(Number.MAX_SAFE_INTEGER).toHex(),
    "00000000001fffffffffffff",
  );
  assert.throws(() => nonceFromCounter(-1), RangeError);
  assert.throws(() => nonceFromCounter(1.5), RangeError);
});

Deno.test("hkdf() produces up to 255 blocks and refuses one byte more", async () => {
  const empty = new Uint8Array(0);
  assert.equal((await hkdf(empty, empty, empty, 255 * 32)).length, 255 * 32);
  await assert.rejects(hkdf(empty, empty, empty, 255 * 32 + 1), RangeError);
  await assert.rejects(hkdf(empty, empty, empty, -1), RangeError);
});
