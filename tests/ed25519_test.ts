import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as ed from "@noble/ed25519";
import {
  checkPublicKey,
  generateSeed,
  isValidPublicKey,
  KeyError,
  type KeyErrorReason,
  publicKeyFromSeed,
  sign,
  verify,
  verifyAsync,
} from "../src/identity/ed25519.ts";

interface WycheproofTest {
  tcId: number;
  comment: string;
  flags: string[];
  msg: string;
  sig: string;
  result: "valid" | "invalid" | "acceptable";
}
interface WycheproofFile {
  numberOfTests: number;
  testGroups: { publicKey: { pk: string }; tests: WycheproofTest[] }[];
}
interface Vector {
  id: number;
  key: Uint8Array;
  message: Uint8Array;
  signature: Uint8Array;
  valid: boolean;
}

async function loadWycheproof(): Promise<Vector[]> {
  const shared = new URL("../../shared/vectors/wycheproof/ed25519_test.json", import.meta.url);
  const local = new URL("./vectors/wycheproof/ed25519_test.json", import.meta.url);
  let text: string;
  try {
    text = await Deno.readTextFile(shared);
  } catch {
    text = await Deno.readTextFile(local);
  }
  const file = JSON.parse(text) as WycheproofFile;
  const vectors: Vector[] = [];
  for (const group of file.testGroups) {
    for (const test of group.tests) {
      // This file has no "acceptable" cases; if a new copy adds some, they
      // need a written decision rather than a silent pass.
      assert.notEqual(test.result, "acceptable", `tcId ${test.tcId} needs a decision`);
      vectors.push({
        id: test.tcId,
        key: Uint8Array.fromHex(group.publicKey.pk),
        message: Uint8Array.fromHex(test.msg),
        signature: Uint8Array.fromHex(test.sig),
        valid: test.result === "valid",
      });
    }
  }
  assert.equal(vectors.length, file.numberOfTests);
  return vectors;
}

async function webCryptoVerify(key: Uint8Array, signature: Uint8Array, message: Uint8Array) {
  // Copies give WebCrypto the ArrayBuffer-backed views its types ask for.
  const imported = await crypto.subtle.importKey("raw", key.slice(), "Ed25519", false, ["verify"]);
  return await crypto.subtle.verify("Ed25519", imported, signature.slice(), message.slice());
}

/** What WebCrypto says with no pre-check: a verdict, or the error name it threw. */
async function webCryptoOutcome(key: Uint8Array, signature: Uint8Array, message: Uint8Array) {
  try {
    return await webCryptoVerify(key, signature, message);
  } catch (error) {
    return (error as Error).name;
  }
}

function refusalReason(key: Uint8Array): KeyErrorReason | "accepted" {
  try {
    checkPublicKey(key);
    return "accepted";
  } catch (error) {
    assert.ok(error instanceof KeyError, `expected KeyError, got ${error}`);
    return error.reason;
  }
}

const P = 2n ** 255n - 19n;
const L = ed.Point.CURVE().n;

function littleEndian(value: bigint, signBit = false): Uint8Array {
  const out = new Uint8Array(32);
  let v = value;
  for (let i = 0; i < 32; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  if (signBit) out[31]! |= 0x80;
  return out;
}

/** The canonical encodings of the 8 points of order dividing 8 (published in many blocklists). */
const TORSION_POINTS = [
  "0100000000000000000000000000000000000000000000000000000000000000", // identity
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
  "0000000000000000000000000000000000000000000000000000000000000000", // order 4
  "0000000000000000000000000000000000000000000000000000000000000080", // order 4
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", // order 8
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", // order 8
];

/** Non-canonical encodings of small-order points: y + p, or the sign bit set with x = 0. */
const NON_CANONICAL_TORSION = [
  littleEndian(P), // y = 0 as p
  littleEndian(P, true),
  littleEndian(P + 1n), // y = 1 as p + 1
  littleEndian(P + 1n, true),
  littleEndian(1n, true), // identity with x "negative"
  littleEndian(P - 1n, true), // order 2 with x "negative"
];

/** True unless the encoding has y >= p or the sign bit set with x = 0. */
function isCanonicalEncoding(key: Uint8Array): boolean {
  const y = BigInt(`0x${key.slice().reverse().toHex()}`) & (2n ** 255n - 1n);
  const signBit = (key[31]! & 0x80) !== 0;
  return y < P && !((y === 1n || y === P - 1n) && signBit);
}

/** A point of order 8, found independently of the table above. */
function pointOfOrder8(): ed.Point {
  for (let y = 2n;; y++) {
    let q: ed.Point;
    try {
      q = ed.Point.fromBytes(littleEndian(y));
    } catch {
      continue;
    }
    const t = q.multiply(L - 1n, false).add(q); // [L]q keeps only the torsion part
    if (!t.multiply(4n, false).is0()) return t;
  }
}

/** A signature by `seed`'s scalar under the key `keyBytes` (which may differ from the seed's key). */
function signWithScalar(seed: Uint8Array, keyBytes: Uint8Array, message: Uint8Array) {
  const { scalar } = ed.utils.getExtendedPublicKey(seed);
  const r = 1n + (BigInt(`0x${generateSeed().toHex()}`) % (L - 1n));
  const rBytes = ed.Point.BASE.multiply(r).toBytes();
  const h = createHash("sha512").update(rBytes).update(keyBytes).update(message).digest();
  let k = 0n;
  for (let i = 63; i >= 0; i--) k = (k << 8n) | BigInt(h[i]!);
  k %= L;
  const signature = new Uint8Array(64);
  signature.set(rBytes, 0);
  signature.set(littleEndian((r + k * scalar) % L), 32);
  return { signature, k };
}

Deno.test("verify() gives every Wycheproof Ed25519 verdict (all 151 vectors)", async () => {
  const vectors = await loadWycheproof();
  assert.equal(vectors.length, 151);
  const wrong = vectors.filter((v) => verify(v.signature, v.message, v.key) !== v.valid);
  assert.deepEqual(wrong.map((v) => v.id), []);
  assert.ok(vectors.some((v) => v.valid) && vectors.some((v) => !v.valid));
});

Deno.test("WebCrypto Ed25519 agrees with noble on every Wycheproof vector after checkPublicKey()", async () => {
  const vectors = await loadWycheproof();
  const disagreements: string[] = [];
  let compared = 0;
  for (const v of vectors) {
    const ours = verify(v.signature, v.message, v.key);
    if (!isValidPublicKey(v.key)) {
      // The pre-check refuses the key, so WebCrypto is never asked.
      assert.equal(ours, false);
      continue;
    }
    compared++;
    const theirs = await webCryptoVerify(v.key, v.signature, v.message);
    if (theirs !== ours) disagreements.push(`tcId ${v.id}: noble ${ours}, WebCrypto ${theirs}`);
  }
  assert.deepEqual(disagreements, []);
  // Every Wycheproof key is an ordinary key, so all 151 reach WebCrypto.
  assert.equal(compared, 151);
});

Deno.test("checkPublicKey() refuses all 8 small-order points", () => {
  const computed = new Set<string>();
  const t = pointOfOrder8();
  for (let k = 0n; k < 8n; k++) {
    computed.add((k === 0n ? ed.Point.ZERO : t.multiply(k, false)).toHex());
  }
  assert.deepEqual([...computed].sort(), [...TORSION_POINTS].sort());
  for (const hex of TORSION_POINTS) {
    assert.equal(refusalReason(Uint8Array.fromHex(hex)), "small-order", hex);
  }
});

Deno.test("checkPublicKey() refuses non-canonical encodings of small-order points", () => {
  for (const key of NON_CANONICAL_TORSION) {
    assert.equal(refusalReason(key), "non-canonical", key.toHex());
    // A lenient (ZIP-215) decoder would take each as a small-order point.
    assert.ok(ed.Point.fromBytes(key, true).isSmallOrder(), key.toHex());
  }
});

Deno.test("checkPublicKey() refuses a non-canonical y (y >= p) even for a point on the curve", () => {
  let onCurve: Uint8Array | undefined;
  for (let y = 2n; y < 19n && onCurve === undefined; y++) {
    try {
      const key = littleEndian(P + y);
      const point = ed.Point.fromBytes(key, true);
      if (!point.isSmallOrder()) onCurve = key;
    } catch {
      // y is not on the curve; try the next one.
    }
  }
  assert.ok(onCurve, "some y + p below 2^255 should decode leniently");
  assert.equal(refusalReason(onCurve), "non-canonical");
  assert.equal(refusalReason(new Uint8Array(32).fill(0xff)), "non-canonical");
});

Deno.test("checkPublicKey() refuses a key with a small-order component", () => {
  const key = ed.Point.fromBytes(publicKeyFromSeed(generateSeed()));
  const mixed = key.add(pointOfOrder8()).toBytes();
  assert.equal(refusalReason(mixed), "mixed-order");
});

Deno.test("checkPublicKey() refuses wrong lengths and points off the curve", () => {
  assert.equal(refusalReason(new Uint8Array(31)), "length");
  assert.equal(refusalReason(new Uint8Array(33)), "length");
  assert.equal(refusalReason(new Uint8Array(0)), "length");
  let offCurve: Uint8Array | undefined;
  for (let y = 2n; offCurve === undefined; y++) {
    try {
      ed.Point.fromBytes(littleEndian(y));
    } catch {
      offCurve = littleEndian(y);
    }
  }
  assert.equal(refusalReason(offCurve), "not-on-curve");
});

Deno.test("checkPublicKey() accepts keys made from seeds and its errors quote the key", () => {
  for (let i = 0; i < 16; i++) checkPublicKey(publicKeyFromSeed(generateSeed()));
  assert.throws(
    () => checkPublicKey(Uint8Array.fromHex(TORSION_POINTS[0]!)),
    (error: unknown) =>
      error instanceof KeyError && error.message.includes(TORSION_POINTS[0]!) &&
      /^Cannot use public key/.test(error.message),
  );
});

Deno.test("sign() then verify() succeeds, and any change to message, signature or key fails", () => {
  const seed = generateSeed();
  const key = publicKeyFromSeed(seed);
  const message = new TextEncoder().encode("pilot");
  const signature = sign(seed, message);
  assert.equal(verify(signature, message, key), true);
  assert.equal(verify(signature, new TextEncoder().encode("pilot!"), key), false);
  const flipped = signature.slice();
  flipped[10]! ^= 1;
  assert.equal(verify(flipped, message, key), false);
  assert.equal(verify(signature, message, publicKeyFromSeed(generateSeed())), false);
});

Deno.test("verify() returns false for malformed lengths instead of throwing", () => {
  const seed = generateSeed();
  const key = publicKeyFromSeed(seed);
  const message = new Uint8Array([1]);
  const signature = sign(seed, message);
  assert.equal(verify(signature.subarray(0, 63), message, key), false);
  assert.equal(verify(new Uint8Array([...signature, 0]), message, key), false);
  assert.equal(verify(signature, message, key.subarray(0, 31)), false);
  assert.equal(verify(new Uint8Array(0), message, new Uint8Array(0)), false);
});

Deno.test("sign() and publicKeyFromSeed() refuse a seed that is not 32 bytes", () => {
  assert.throws(() => sign(new Uint8Array(31), new Uint8Array(1)), TypeError);
  assert.throws(() => publicKeyFromSeed(new Uint8Array(64)), /expected 32 bytes/);
});

// Documents Deno's WebCrypto without the pre-check, so a change shows up here.
// Observed with Deno 2.9.6 for the forgery R = identity, S = 0 (no secret):
// - canonical small-order keys: WebCrypto does not refuse them; it accepts
//   exactly when the cofactorless equation [S]B = R + [k]A holds, i.e. when
//   [k]A = identity. For the identity key 0100…00 that is every message.
// - the 6 non-canonical small-order encodings: WebCrypto imports them but
//   never verifies anything under them.
// Our verify() refuses all 14 keys before any equation is checked.
// If this test fails, WebCrypto changed: update this comment to match.
Deno.test("WebCrypto without checkPublicKey() accepts forgeries under small-order keys", async () => {
  const forgery = new Uint8Array(64);
  forgery.set(ed.Point.ZERO.toBytes(), 0);
  const r = forgery.subarray(0, 32);
  const mismatches: string[] = [];
  let acceptedByWebCrypto = 0;
  for (
    const key of [...TORSION_POINTS.map((h) => Uint8Array.fromHex(h)), ...NON_CANONICAL_TORSION]
  ) {
    const canonical = isCanonicalEncoding(key);
    const point = ed.Point.fromBytes(key, true);
    for (let m = 0; m < 16; m++) {
      const message = new Uint8Array([m]);
      assert.equal(verify(forgery, message, key), false);
      const h = createHash("sha512").update(r).update(key).update(message).digest();
      let k = 0n;
      for (let i = 63; i >= 0; i--) k = (k << 8n) | BigInt(h[i]!);
      k %= L;
      const equationHolds = point.multiply(k === 0n ? L : k, false).is0();
      const expected = canonical && equationHolds;
      const outcome = await webCryptoOutcome(key, forgery, message);
      if (outcome === true) acceptedByWebCrypto++;
      if (outcome !== expected) mismatches.push(`${key.toHex()} message ${m}: ${outcome}`);
    }
  }
  assert.deepEqual(mismatches, []);
  // At least the 16 identity-key cases: WebCrypto alone is forgeable.
  assert.ok(acceptedByWebCrypto >= 16, `WebCrypto accepted ${acceptedByWebCrypto}`);
});

// noble's strict branch checks the cofactored equation [8]SB = [8]R + [8]kA,
// which ignores a torsion component of A; WebCrypto (cofactorless) does not.
// A signature under A + T (T of order 8) therefore splits them whenever
// k mod 8 != 0. checkPublicKey() refusing mixed-order keys removes the split.
Deno.test("noble alone and WebCrypto disagree on a mixed-order key; checkPublicKey() removes it", async () => {
  const seed = generateSeed();
  const t = pointOfOrder8();
  const mixed = ed.Point.fromBytes(publicKeyFromSeed(seed)).add(t).toBytes();
  let split = 0;
  for (let i = 0; split < 3; i++) {
    assert.ok(i < 100, "expected k mod 8 != 0 within 100 tries");
    const message = generateSeed();
    const { signature, k } = signWithScalar(seed, mixed, message);
    if (k % 8n === 0n) continue;
    split++;
    assert.equal(ed.verify(signature, message, mixed, { zip215: false }), true);
    assert.equal(await webCryptoVerify(mixed, signature, message), false);
    assert.equal(verify(signature, message, mixed), false);
  }
});

Deno.test("verifyAsync() (WebCrypto behind the key checks) gives Wycheproof's verdict on all 151 vectors", async () => {
  const vectors = await loadWycheproof();
  assert.equal(vectors.length, 151);
  for (const v of vectors) {
    const fast = await verifyAsync(v.signature, v.message, v.key);
    assert.equal(fast, v.valid, `tcId ${v.id}`);
    assert.equal(fast, verify(v.signature, v.message, v.key), `tcId ${v.id} agrees with noble`);
  }
});

Deno.test("verifyAsync() refuses small-order keys that WebCrypto alone would accept forgeries under", async () => {
  const identity = new Uint8Array(32);
  identity[0] = 1;
  // R = identity point, S = 0: valid under the identity key for every message in plain WebCrypto.
  const forged = new Uint8Array(64);
  forged[0] = 1;
  assert.equal(await verifyAsync(forged, new TextEncoder().encode("anything"), identity), false);
});
