/**
 * Ed25519 identity keys: seeds, signatures and the public-key checks that run
 * wherever a key is parsed.
 *
 * Verification is strict RFC 8032 (`zip215: false`) and additionally refuses
 * every public key that {@linkcode checkPublicKey} refuses, so a key that can
 * never come from a seed (small order, a torsion component, a non-canonical
 * encoding) never verifies anything.
 *
 * @module
 */

import * as ed from "@noble/ed25519";
import { createHash } from "node:crypto";

// noble's synchronous API throws until this hook is set. The hook is set once
// here, at import, and nothing downstream catches that throw: a missing hash
// must be a loud bug, never a signature that quietly fails to verify.
ed.hashes.sha512 = (message: Uint8Array): Uint8Array<ArrayBuffer> =>
  new Uint8Array(createHash("sha512").update(message).digest());

/** Length in bytes of an Ed25519 seed (the secret key). */
export const SEED_BYTES = 32;
/** Length in bytes of an Ed25519 public key. */
export const PUBLIC_KEY_BYTES = 32;
/** Length in bytes of an Ed25519 signature. */
export const SIGNATURE_BYTES = 64;

/** Why {@linkcode checkPublicKey} refused a key. */
export type KeyErrorReason =
  | "length"
  | "non-canonical"
  | "not-on-curve"
  | "small-order"
  | "mixed-order";

/** A public key that must not be used, with a machine-readable reason. */
export class KeyError extends Error {
  /** Which check the key failed. */
  readonly reason: KeyErrorReason;
  /** Creates a key error with a reason code and a sentence-case message. */
  constructor(reason: KeyErrorReason, message: string) {
    super(message);
    this.name = "KeyError";
    this.reason = reason;
  }
}

/** The field prime 2^255 - 19. */
const P = 2n ** 255n - 19n;

/** Returns 32 random bytes to use as a new identity seed. */
export function generateSeed(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(SEED_BYTES));
}

/** Derives the 32-byte public key of a 32-byte seed. */
export function publicKeyFromSeed(seed: Uint8Array): Uint8Array {
  assertSeed(seed);
  return ed.getPublicKey(seed);
}

/** Signs `message` with the key of `seed`; returns a 64-byte signature. */
export function sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
  assertSeed(seed);
  return ed.sign(message, seed);
}

/**
 * Verifies an Ed25519 signature strictly: RFC 8032 with canonical encodings,
 * `S < L`, and a public key that passes {@linkcode checkPublicKey}. Wrong
 * lengths and refused keys give `false`.
 */
export function verify(
  signature: Uint8Array,
  message: Uint8Array,
  publicKey: Uint8Array,
): boolean {
  if (signature.length !== SIGNATURE_BYTES || publicKey.length !== PUBLIC_KEY_BYTES) {
    return false;
  }
  if (publicKeyProblem(publicKey) !== undefined) return false;
  return ed.verify(signature, message, publicKey, { zip215: false });
}

const webKeys = new Map<string, Promise<CryptoKey>>();
/**
 * Imported verify keys kept: the peers verified most recently (a rekey
 * verifies the same key again). A CryptoKey holds about 2 KB of heap and an
 * import costs about 13 µs, so a node with thousands of peers keeps few.
 */
const WEB_KEYS_MAX = 256;

/**
 * The same strict verification as {@linkcode verify}, through WebCrypto's
 * Ed25519 (about ten times faster than noble here; the bench showed the
 * handshake needed it). The key passes {@linkcode checkPublicKey} first:
 * WebCrypto alone accepts forgeries under small-order keys. Cross-tested
 * against noble on every Wycheproof vector.
 */
export async function verifyAsync(
  signature: Uint8Array,
  message: Uint8Array,
  publicKey: Uint8Array,
): Promise<boolean> {
  if (signature.length !== SIGNATURE_BYTES || publicKey.length !== PUBLIC_KEY_BYTES) {
    return false;
  }
  if (publicKeyProblem(publicKey) !== undefined) return false;
  const hex = publicKey.toHex();
  let key = webKeys.get(hex);
  if (key !== undefined) {
    // Most recently used last: the oldest goes first when the cache is full.
    webKeys.delete(hex);
    webKeys.set(hex, key);
  } else {
    key = crypto.subtle.importKey("raw", Uint8Array.from(publicKey), { name: "Ed25519" }, false, [
      "verify",
    ]);
    webKeys.set(hex, key);
    if (webKeys.size > WEB_KEYS_MAX) webKeys.delete(webKeys.keys().next().value!);
  }
  try {
    return await crypto.subtle.verify(
      { name: "Ed25519" },
      await key,
      Uint8Array.from(signature),
      Uint8Array.from(message),
    );
  } catch {
    return false;
  }
}

/**
 * Throws {@linkcode KeyError} unless `key` is a canonical encoding of a point
 * in the prime-order subgroup other than the identity: the only keys a seed can
 * produce.
 */
export function checkPublicKey(key: Uint8Array): void {
  const problem = publicKeyProblem(key);
  if (problem !== undefined) throw problem;
}

/** Returns true when {@linkcode checkPublicKey} accepts `key`. */
export function isValidPublicKey(key: Uint8Array): boolean {
  return publicKeyProblem(key) === undefined;
}

// Keys that passed, so that a peer's key is checked once rather than at every
// signature. Bounded; cleared wholesale when full (re-checking is only cost).
const acceptedKeys = new Set<string>();
const ACCEPTED_KEYS_MAX = 4096;

function publicKeyProblem(key: Uint8Array): KeyError | undefined {
  if (!(key instanceof Uint8Array) || key.length !== PUBLIC_KEY_BYTES) {
    const length = key instanceof Uint8Array ? `${key.length} bytes` : typeof key;
    return new KeyError(
      "length",
      `Cannot use public key of ${length}: expected ${PUBLIC_KEY_BYTES} bytes`,
    );
  }
  const hex = key.toHex();
  if (acceptedKeys.has(hex)) return undefined;

  const signBit = (key[31]! & 0x80) !== 0;
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? key[i]! & 0x7f : key[i]!);
  if (y >= P) {
    return new KeyError(
      "non-canonical",
      `Cannot use public key "${hex}": y is not reduced modulo 2^255-19 (non-canonical encoding)`,
    );
  }
  // y = ±1 means x = 0, whose only canonical encoding has the sign bit clear.
  if ((y === 1n || y === P - 1n) && signBit) {
    return new KeyError(
      "non-canonical",
      `Cannot use public key "${hex}": sign bit set for x = 0 (non-canonical encoding)`,
    );
  }
  let point: ed.Point;
  try {
    point = ed.Point.fromBytes(key, false);
  } catch {
    return new KeyError(
      "not-on-curve",
      `Cannot use public key "${hex}": expected a point on edwards25519`,
    );
  }
  if (point.isSmallOrder()) {
    return new KeyError(
      "small-order",
      `Cannot use public key "${hex}": it is a small-order point`,
    );
  }
  // A seed always yields a point of prime order; a torsion component only
  // lets implementations with different verification equations disagree.
  if (!point.isTorsionFree()) {
    return new KeyError(
      "mixed-order",
      `Cannot use public key "${hex}": it has a small-order component (expected prime order)`,
    );
  }
  if (acceptedKeys.size >= ACCEPTED_KEYS_MAX) acceptedKeys.clear();
  acceptedKeys.add(hex);
  return undefined;
}

function assertSeed(seed: Uint8Array): void {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_BYTES) {
    const got = seed instanceof Uint8Array ? `${seed.length} bytes` : typeof seed;
    throw new TypeError(`Cannot use seed of ${got}: expected ${SEED_BYTES} bytes`);
  }
}
