/**
 * Signed self-descriptions: a node's key, the stamp proving its address, and
 * the hostname it claims, signed by its identity key.
 *
 * Layout: `utf8(SELF_DESCRIPTION_LABEL) || ed25519_pub (32) || stamp (8) ||
 * hostname_len (u8) || hostname (ASCII) || time (u64 BE, ms since the epoch)`.
 * A node without a hostname signs `hostname_len = 0`.
 *
 * @module
 */

import { utf8, Writer } from "../bytes.ts";
import { isAddressLike, STAMP_BYTES, verifyStamp } from "./address.ts";
import { PUBLIC_KEY_BYTES, publicKeyFromSeed, sign, SIGNATURE_BYTES, verify } from "./ed25519.ts";

/** Domain label of a signed self-description. */
export const SELF_DESCRIPTION_LABEL = "pilot/self/v1";
/** Longest hostname, in characters. */
export const HOSTNAME_MAX = 63;

/** The fields a self-description signs. */
export interface UnsignedSelfDescription {
  /** The node's Ed25519 public key. */
  publicKey: Uint8Array;
  /** The 8-byte stamp proving the node's address for `publicKey`. */
  stamp: Uint8Array;
  /** The self-claimed hostname, or `null` for none. */
  hostname: string | null;
  /**
   * When the node signed, in ms since the epoch. Informational only: it is
   * never a freshness test, since signed descriptions are meant to be relayed
   * and clocks disagree. Replay protection belongs to the session layer.
   */
  time: number;
}

/** A self-description with its signature. */
export interface SelfDescription extends UnsignedSelfDescription {
  /** 64-byte Ed25519 signature over {@linkcode selfDescriptionMessage}. */
  signature: Uint8Array;
}

/** Options of {@linkcode signSelfDescription}. */
export interface SignSelfDescriptionOptions {
  /** The 8-byte stamp proving the node's address. */
  stamp: Uint8Array;
  /** The hostname to claim; omitted or `null` for none. */
  hostname?: string | null;
  /** Signing time in ms since the epoch; defaults to now. */
  time?: number;
}

const LABEL = utf8(SELF_DESCRIPTION_LABEL);
const HOSTNAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;

/**
 * Throws `TypeError` unless `hostname` is 1 to 63 of `a-z`, `0-9` and `-`,
 * not starting or ending with `-`, and not 12 hex digits (an address shape).
 */
export function validateHostname(hostname: string): void {
  const problem = hostnameProblem(hostname);
  if (problem !== undefined) throw new TypeError(problem);
}

/** Returns true when {@linkcode validateHostname} accepts `hostname`. */
export function isValidHostname(hostname: string): boolean {
  return hostnameProblem(hostname) === undefined;
}

/** Returns the bytes a self-description signs; throws `TypeError` on malformed fields. */
export function selfDescriptionMessage(description: UnsignedSelfDescription): Uint8Array {
  const problem = fieldProblem(description);
  if (problem !== undefined) throw new TypeError(problem);
  const hostname = utf8(description.hostname ?? "");
  return new Writer(LABEL.length + PUBLIC_KEY_BYTES + STAMP_BYTES + 1 + hostname.length + 8)
    .bytes(LABEL)
    .bytes(description.publicKey)
    .bytes(description.stamp)
    .u8(hostname.length)
    .bytes(hostname)
    .u64(BigInt(description.time))
    .finish();
}

/** Signs a self-description for the key of `seed`; throws when the stamp or hostname is invalid. */
export function signSelfDescription(
  seed: Uint8Array,
  options: SignSelfDescriptionOptions,
): SelfDescription {
  const unsigned: UnsignedSelfDescription = {
    publicKey: publicKeyFromSeed(seed),
    stamp: options.stamp.slice(),
    hostname: options.hostname ?? null,
    time: options.time ?? Date.now(),
  };
  if (verifyStamp(unsigned.publicKey, unsigned.stamp) === null) {
    throw new TypeError(
      `Cannot sign a self-description with stamp "${unsigned.stamp.toHex()}": it proves no address for this key`,
    );
  }
  return { ...unsigned, signature: sign(seed, selfDescriptionMessage(unsigned)) };
}

/**
 * Returns true when the description is well-formed, its stamp proves an
 * address for its key, and its key signed it. Never judges `time`.
 */
export function verifySelfDescription(description: SelfDescription): boolean {
  if (fieldProblem(description) !== undefined) return false;
  const { signature } = description;
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) return false;
  if (verifyStamp(description.publicKey, description.stamp) === null) return false;
  return verify(signature, selfDescriptionMessage(description), description.publicKey);
}

function hostnameProblem(hostname: string): string | undefined {
  const expected =
    `expected 1 to ${HOSTNAME_MAX} of a-z, 0-9 and "-", not starting or ending with "-"`;
  if (typeof hostname !== "string") {
    return `Cannot use a ${typeof hostname} as hostname: ${expected}`;
  }
  const shown = JSON.stringify(hostname.length > 80 ? `${hostname.slice(0, 80)}…` : hostname);
  if (hostname.length > HOSTNAME_MAX || !HOSTNAME_PATTERN.test(hostname)) {
    return `Cannot use hostname ${shown}: ${expected}`;
  }
  if (isAddressLike(hostname)) {
    return `Cannot use hostname ${shown}: it is 12 hex digits and would read as an address; expected a name that is not`;
  }
  return undefined;
}

function fieldProblem(d: UnsignedSelfDescription): string | undefined {
  if (!(d.publicKey instanceof Uint8Array) || d.publicKey.length !== PUBLIC_KEY_BYTES) {
    return `Cannot describe a public key that is not ${PUBLIC_KEY_BYTES} bytes`;
  }
  if (!(d.stamp instanceof Uint8Array) || d.stamp.length !== STAMP_BYTES) {
    return `Cannot describe a stamp that is not ${STAMP_BYTES} bytes`;
  }
  if (d.hostname !== null) {
    const problem = hostnameProblem(d.hostname);
    if (problem !== undefined) return problem;
  }
  if (!Number.isSafeInteger(d.time) || d.time < 0) {
    return `Cannot describe time ${d.time}: expected a non-negative integer of ms since the epoch`;
  }
  return undefined;
}
