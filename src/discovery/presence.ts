/**
 * Signing and checking presence records (`wire/presence_record.ts`). A node
 * signs its own ({@linkcode signOwnPresence}: one place for the rendezvous
 * client, LAN announcements and the DHT); a rendezvous checks every record
 * before it stores one, and a node checks every record a rendezvous answers
 * with, so a rendezvous can withhold records but never forge one: the key
 * and the static key must be valid, the stamp must prove the address, the
 * signature must cover the body, and the record must be unexpired (or, for
 * a mailbox lookup, expired less than {@linkcode MAILBOX_RETENTION_MS} ago)
 * and not live longer than the protocol allows.
 *
 * @module
 */
import { type Address, verifyStamp } from "../identity/address.ts";
import { isValidPublicKey, sign, verify } from "../identity/ed25519.ts";
import type { Identity } from "../identity/identity.ts";
import { isValidHostname } from "../identity/self_description.ts";
import { DecodeError } from "../bytes.ts";
import {
  decodePresenceRecord,
  encodePresenceBody,
  encodePresenceRecord,
  type PresenceRecord,
  presenceSigningMessage,
  type RecordEndpoint,
  type UnsignedPresence,
  type Visibility,
} from "../wire/presence_record.ts";

/** Longest a record may stay valid after it was checked (ms): nodes refresh well before. */
export const MAX_PRESENCE_LIFETIME_MS = 60 * 60 * 1000;
/** Clock difference tolerated between a node and whoever checks its record (ms). */
export const PRESENCE_CLOCK_SKEW_MS = 5 * 60 * 1000;
/**
 * How long after its expiry a mailbox owner's last record is kept by the
 * rendezvous it names, and still believed by a mailbox lookup (ms): as long
 * as a sealed item may wait there.
 */
export const MAILBOX_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

/** Why a record was refused. */
export type PresenceProblem =
  | "malformed"
  | "bad_key"
  | "bad_static_key"
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

/** What of its identity a node needs to sign its own record (no static private key). */
export type PresenceSigner = Pick<Identity, "seed" | "publicKey" | "stamp" | "binding">;

/** What a node says about itself in a record it signs, beyond its identity. */
export interface OwnPresence {
  /** Claimed hostname, `""` for none. */
  hostname: string;
  /** Whether strangers may learn the endpoints. */
  visibility: Visibility;
  /** Grows with every record the node signs (its clock in ms, never stepping back). */
  serial: number;
  /** When the record stops being valid, Unix ms. */
  expiresAt: number;
  /** Endpoints, at most eight; a private record carries none, whatever is given. */
  endpoints: RecordEndpoint[];
  /** Rendezvous that keep this node's mailbox, at most four, no two alike. Default none. */
  mailboxes?: Address[];
}

/** Options of {@linkcode verifyPresence}. */
export interface VerifyPresenceOptions {
  /**
   * Also accept a record that expired less than this long ago (ms): a
   * mailbox lookup uses {@linkcode MAILBOX_RETENTION_MS}. Default 0.
   */
  staleMs?: number;
}

/** Signs `p` with the identity `seed` and returns the encoded record. */
export function signPresence(seed: Uint8Array, p: UnsignedPresence): Uint8Array {
  const body = encodePresenceBody(p);
  const signature = sign(seed, presenceSigningMessage(body));
  return encodePresenceRecord({ ...p, signature });
}

/**
 * Signs a node's own record: its key, stamp and bound static key (with the
 * binding's serial) from `identity`, the rest from `own`. Throws
 * `RangeError` for a field the record cannot carry.
 *
 * @example
 * ```ts ignore
 * const record = signOwnPresence(identity, {
 *   hostname: "worker",
 *   visibility: "private",
 *   serial: Date.now(),
 *   expiresAt: Date.now() + 30 * 60_000,
 *   endpoints: [],
 *   mailboxes: [rendezvousAddress],
 * });
 * ```
 */
export function signOwnPresence(identity: PresenceSigner, own: OwnPresence): Uint8Array {
  return signPresence(identity.seed, {
    publicKey: identity.publicKey,
    stamp: identity.stamp,
    hostname: own.hostname,
    visibility: own.visibility,
    serial: own.serial,
    expiresAt: own.expiresAt,
    endpoints: own.visibility === "public" ? own.endpoints : [],
    staticKey: identity.binding.staticKey,
    staticSerial: identity.binding.serial,
    mailboxes: own.mailboxes ?? [],
  });
}

/**
 * The u-coordinates of Curve25519's points of order 1, 2, 4 and 8, bit 255
 * ignored (libsodium's list): X25519 with one of them gives a secret the
 * key's owner did not contribute to, so nothing may be sealed to it.
 */
const LOW_ORDER_X25519 = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

function isLowOrderX25519(key: Uint8Array): boolean {
  const masked = key.slice();
  masked[31]! &= 0x7f;
  return LOW_ORDER_X25519.includes(masked.toHex());
}

/**
 * Checks a record, cheapest first: shape, lifetime, hostname, key, static
 * key, stamp (one SHA-512), then the signature. Throws
 * {@linkcode PresenceError}.
 */
export function verifyPresence(
  bytes: Uint8Array,
  now: number,
  options: VerifyPresenceOptions = {},
): VerifiedPresence {
  const { staleMs = 0 } = options;
  let decoded;
  try {
    decoded = decodePresenceRecord(bytes);
  } catch (e) {
    if (e instanceof DecodeError) throw new PresenceError("malformed", e.message);
    throw e;
  }
  const { record, body } = decoded;
  if (record.expiresAt <= now - PRESENCE_CLOCK_SKEW_MS - staleMs) {
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
  if (isLowOrderX25519(record.staticKey)) {
    throw new PresenceError("bad_static_key", "Presence record carries a low-order static key");
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
