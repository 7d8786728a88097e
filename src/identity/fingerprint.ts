/**
 * Fingerprints: what a person compares before trusting a key. 160 bits of
 * SHA-256 over the Ed25519 public key, in base32 groups of four letters.
 *
 * @module
 */

import { base32 } from "@scure/base";
import { createHash } from "node:crypto";
import { constantTimeEqual } from "../bytes.ts";

/** Bytes of SHA-256(key) a fingerprint shows (160 bits, 32 base32 letters). */
export const FINGERPRINT_BYTES = 20;

const LETTERS = (FINGERPRINT_BYTES * 8) / 5;
const EXAMPLE = "abcd-efgh-ijkl-mnop-qrst-uvwx-yz23-4567";

/** Returns the fingerprint of a public key, e.g. `abcd-efgh-ijkl-mnop-qrst-uvwx-yz23-4567`. */
export function fingerprint(publicKey: Uint8Array): string {
  return formatDigest(fingerprintBytes(publicKey));
}

/**
 * Parses a fingerprint leniently (any case; dashes and spaces anywhere) and
 * returns its canonical form; throws `TypeError` when it is not 32 base32 letters.
 */
export function parseFingerprint(text: string): string {
  return formatDigest(decodeFingerprint(text));
}

/**
 * The canonical fingerprint `text` spells (parsed as {@linkcode parseFingerprint}
 * does), or null: for callers that try a fingerprint among other kinds of
 * names on every request, without the cost of a thrown error.
 */
export function fingerprintIn(text: string): string | null {
  const letters = lettersOf(text);
  return letters === null ? null : formatDigest(base32.decode(letters));
}

/** Returns true when `text` (parsed leniently) is the fingerprint of `publicKey`; false for malformed text. */
export function fingerprintMatches(publicKey: Uint8Array, text: string): boolean {
  let wanted: Uint8Array;
  try {
    wanted = decodeFingerprint(text);
  } catch {
    return false;
  }
  return constantTimeEqual(fingerprintBytes(publicKey), wanted);
}

function fingerprintBytes(publicKey: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(publicKey).digest()).subarray(
    0,
    FINGERPRINT_BYTES,
  );
}

function formatDigest(bytes: Uint8Array): string {
  const letters = base32.encode(bytes).toLowerCase();
  return letters.match(/.{4}/g)!.join("-");
}

/** The 32 base32 letters `text` spells (any case, dashes and spaces anywhere), or null. */
function lettersOf(text: string): string | null {
  if (typeof text !== "string") return null;
  const letters = text.replace(/[-\s]/g, "").toUpperCase();
  return letters.length === LETTERS && /^[A-Z2-7]+$/.test(letters) ? letters : null;
}

function decodeFingerprint(text: string): Uint8Array {
  const letters = lettersOf(text);
  if (letters === null) {
    const shown = typeof text === "string"
      ? JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text)
      : typeof text;
    throw new TypeError(
      `Cannot parse fingerprint ${shown}: expected ${LETTERS} base32 letters (a-z, 2-7) like ${EXAMPLE}`,
    );
  }
  return base32.decode(letters);
}
