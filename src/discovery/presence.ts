/**
 * Signing and checking presence records (`wire/presence_record.ts`). A node
 * signs its own; a rendezvous checks every record before it stores one, and
 * a node checks every record a rendezvous answers with, so a rendezvous
 * can withhold records but never forge one: the key must be valid, the
 * stamp must prove the address, the signature must cover the body, and the
 * record must be unexpired and not live longer than the protocol allows.
 *
 * @module
 */
import { type Address, verifyStamp } from "../identity/address.ts";
import { isValidPublicKey, sign, verify } from "../identity/ed25519.ts";
import { isValidHostname } from "../identity/self_description.ts";
import { DecodeError } from "../bytes.ts";
import {
  decodePresenceRecord,
  encodePresenceBody,
  encodePresenceRecord,
  type PresenceRecord,
  presenceSigningMessage,
  type UnsignedPresence,
} from "../wire/presence_record.ts";

/** Longest a record may stay valid after it was checked (ms): nodes refresh well before. */
export const MAX_PRESENCE_LIFETIME_MS = 60 * 60 * 1000;
/** Clock difference tolerated between a node and whoever checks its record (ms). */
export const PRESENCE_CLOCK_SKEW_MS = 5 * 60 * 1000;

/** Why a record was refused. */
export type PresenceProblem =
  | "malformed"
  | "bad_key"
  | "bad_stamp"
  | "bad_hostname"
  | "bad_signature"
  | "expired"
  | "too_long_lived";

/** A record refused, with the reason a rendezvous counts it under. */
export class PresenceError extends Error {
  /** Short machine-readable reason. */
  readonly reason: PresenceProblem;
  /** Creates the error. */
  constructor(reason: PresenceProblem, message: string) {
    super(message);
    this.name = "PresenceError";
    this.reason = reason;
  }
}

/** A record that passed every check, with the address its stamp proves. */
export interface VerifiedPresence {
  /** The record. */
  record: PresenceRecord;
  /** Its exact bytes (to store and hand on as received). */
  bytes: Uint8Array;
  /** The address the stamp proves for the key. */
  address: Address;
}

/** Signs `p` with the identity `seed` and returns the encoded record. */
export function signPresence(seed: Uint8Array, p: UnsignedPresence): Uint8Array {
  const body = encodePresenceBody(p);
  const signature = sign(seed, presenceSigningMessage(body));
  return encodePresenceRecord({ ...p, signature });
}

/**
 * Checks a record, cheapest first: shape, lifetime, hostname, key, stamp (one
 * SHA-512), then the signature. Throws {@linkcode PresenceError}.
 */
export function verifyPresence(bytes: Uint8Array, now: number): VerifiedPresence {
  let decoded;
  try {
    decoded = decodePresenceRecord(bytes);
  } catch (e) {
    if (e instanceof DecodeError) throw new PresenceError("malformed", e.message);
    throw e;
  }
  const { record, body } = decoded;
  if (record.expiresAt <= now - PRESENCE_CLOCK_SKEW_MS) {
    throw new PresenceError("expired", `Presence record expired at ${record.expiresAt}`);
  }
  if (record.expiresAt > now + MAX_PRESENCE_LIFETIME_MS + PRESENCE_CLOCK_SKEW_MS) {
    throw new PresenceError(
      "too_long_lived",
      `Presence record expires at ${record.expiresAt}, more than ${MAX_PRESENCE_LIFETIME_MS} ms ahead`,
    );
  }
  if (record.hostname !== "" && !isValidHostname(record.hostname)) {
    throw new PresenceError("bad_hostname", `Presence record claims hostname "${record.hostname}"`);
  }
  if (!isValidPublicKey(record.publicKey)) {
    throw new PresenceError("bad_key", "Presence record carries a weak or malformed key");
  }
  const address = verifyStamp(record.publicKey, record.stamp);
  if (address === null) {
    throw new PresenceError("bad_stamp", "Presence record's stamp does not prove an address");
  }
  if (!verify(record.signature, presenceSigningMessage(body), record.publicKey)) {
    throw new PresenceError("bad_signature", "Presence record's signature does not verify");
  }
  return { record, bytes: bytes.slice(), address };
}
