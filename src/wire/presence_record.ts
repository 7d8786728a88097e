/**
 * A node's signed presence record, as it publishes it to rendezvous nodes
 * (issue 9), on its LAN and in the DHT: its identity key and address stamp,
 * the hostname it claims, whether strangers may learn its endpoints, a
 * serial that only grows, an expiry, up to eight UDP endpoints, its static
 * X25519 key (what a sealed mailbox item is sealed to) and up to four
 * rendezvous that keep its mailbox. This module lays out the bytes and
 * checks their shape; the signature, keys and stamp are checked by
 * `discovery/presence.ts`.
 *
 * Layout (big-endian), the signed body first:
 *
 * | size | field |
 * |---:|---|
 * | 1 | version = 2 |
 * | 32 | Ed25519 public key |
 * | 8 | address stamp |
 * | 1 | hostname length n, 0 to 63 |
 * | n | hostname, `[a-z0-9-]` |
 * | 1 | visibility: 0 private, 1 public |
 * | 8 | serial, below 2^53 |
 * | 8 | expires at, Unix ms below 2^53 |
 * | 1 | endpoint count, 0 to 8 |
 * | … | each endpoint: kind (0 local, 1 observed), family (4 or 6), the IP (4 or 16 bytes), port (u16, 1 to 65535) |
 * | 32 | static X25519 public key |
 * | 4 | static key serial (u32, the binding's) |
 * | 1 | mailbox count, 0 to 4 |
 * | 6 each | mailbox rendezvous addresses, no two alike |
 * | 64 | Ed25519 signature over `utf8("pilot/presence/v2") ‖ body` |
 *
 * Version 1 (no static key, no mailboxes) is not read: it was never
 * deployed.
 *
 * @module
 */
import { DecodeError, Reader, utf8, Writer } from "../bytes.ts";
import { type Address, ADDRESS_BYTES, addressToBytes, formatAddress } from "../identity/address.ts";
import { checkSize, checkTime } from "./_encode_checks.ts";
import { readEndpoint, writeEndpoint } from "./ip_endpoint.ts";

/** The only record version this codec reads and writes. */
export const PRESENCE_RECORD_VERSION = 2;
/** Domain label the signature covers before the body. */
export const PRESENCE_LABEL = "pilot/presence/v2";
/** Most endpoints one record carries. */
export const MAX_RECORD_ENDPOINTS = 8;
/** Longest hostname, in bytes. */
export const MAX_RECORD_HOSTNAME = 63;
/** Most mailbox rendezvous one record names. */
export const MAX_RECORD_MAILBOXES = 4;
/**
 * Size of the largest record (408 bytes): every field at its longest, eight
 * IPv6 endpoints, four mailboxes. It fits a BEP 44 value (1000 bytes).
 */
export const MAX_PRESENCE_RECORD_SIZE = 1 + 32 + 8 + 1 + MAX_RECORD_HOSTNAME + 1 + 8 + 8 + 1 +
  MAX_RECORD_ENDPOINTS * (1 + 1 + 16 + 2) + 32 + 4 + 1 + MAX_RECORD_MAILBOXES * ADDRESS_BYTES +
  64;

/** Who may learn a node's endpoints from a rendezvous. */
export type Visibility = "private" | "public";
/** How the node knows an endpoint: its own socket, or what a rendezvous observed. */
export type EndpointKind = "local" | "observed";

/** One UDP endpoint in a record. */
export interface RecordEndpoint {
  /** Local (the node's own address) or observed (as a rendezvous saw it). */
  kind: EndpointKind;
  /** IPv4 or IPv6 literal, without brackets. */
  hostname: string;
  /** UDP port, 1 to 65535. */
  port: number;
}

/** The fields a presence record signs. */
export interface UnsignedPresence {
  /** Ed25519 identity public key, 32 bytes. */
  publicKey: Uint8Array;
  /** Address stamp, 8 bytes. */
  stamp: Uint8Array;
  /** Claimed hostname, `""` for none. */
  hostname: string;
  /** Whether strangers may learn the endpoints. */
  visibility: Visibility;
  /** Grows with every record the node publishes (it uses its clock in ms). */
  serial: number;
  /** When the record stops being valid, Unix ms. */
  expiresAt: number;
  /** At most eight endpoints. */
  endpoints: RecordEndpoint[];
  /** The node's static X25519 public key (its tunnel key; sealed items are sealed to it), 32 bytes. */
  staticKey: Uint8Array;
  /** The serial of the identity's binding of that static key, u32. */
  staticSerial: number;
  /** Rendezvous that keep this node's mailbox, at most four, no two alike. */
  mailboxes: Address[];
}

/** A presence record with its signature. */
export interface PresenceRecord extends UnsignedPresence {
  /** Ed25519 signature over `utf8(PRESENCE_LABEL) ‖ body`, 64 bytes. */
  signature: Uint8Array;
}

/** A decoded record and the exact bytes its signature covers (label excluded). */
export interface DecodedPresence {
  /** The record. */
  record: PresenceRecord;
  /** The signed body as received. */
  body: Uint8Array;
}

const LABEL = utf8(PRESENCE_LABEL);
const TWO_POW_53 = 2n ** 53n;
const KINDS: readonly EndpointKind[] = ["local", "observed"];
const VISIBILITIES: readonly Visibility[] = ["private", "public"];

function fail(reason: string, message: string): never {
  throw new DecodeError(reason, `Cannot decode presence record: ${message}`);
}

function readTime(r: Reader, field: string): number {
  const v = r.u64(field);
  if (v >= TWO_POW_53) fail("out_of_range", `${field} ${v} is not below 2^53`);
  return Number(v);
}

function isHostnameByte(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d;
}

/**
 * Decodes a presence record strictly: version 2, exact length, a hostname of
 * `[a-z0-9-]`, known visibility and endpoint kinds, IPv4 or IPv6 endpoints
 * with ports 1 to 65535, times below 2^53, at most four distinct mailboxes
 * that are not reserved addresses. Throws only {@linkcode DecodeError}.
 * Byte fields are copies, safe to keep.
 */
export function decodePresenceRecord(bytes: Uint8Array): DecodedPresence {
  if (bytes.length > MAX_PRESENCE_RECORD_SIZE) {
    fail("too_large", `${bytes.length} bytes, more than ${MAX_PRESENCE_RECORD_SIZE}`);
  }
  const r = new Reader(bytes);
  const version = r.u8("version");
  if (version !== PRESENCE_RECORD_VERSION) {
    throw new DecodeError(
      "unsupported_version",
      `Cannot decode presence record version ${version}: expected ${PRESENCE_RECORD_VERSION}`,
    );
  }
  const publicKey = r.bytes(32, "public key").slice();
  const stamp = r.bytes(8, "stamp").slice();
  const hostnameLength = r.u8("hostname length");
  if (hostnameLength > MAX_RECORD_HOSTNAME) {
    fail("bad_hostname", `hostname length ${hostnameLength} exceeds ${MAX_RECORD_HOSTNAME}`);
  }
  const hostnameBytes = r.bytes(hostnameLength, "hostname");
  if (!hostnameBytes.every(isHostnameByte)) fail("bad_hostname", "hostname outside [a-z0-9-]");
  const hostname = String.fromCharCode(...hostnameBytes);
  const visibility = VISIBILITIES[r.u8("visibility")];
  if (visibility === undefined) fail("bad_visibility", "visibility is neither 0 nor 1");
  const serial = readTime(r, "serial");
  const expiresAt = readTime(r, "expires at");
  const count = r.u8("endpoint count");
  if (count > MAX_RECORD_ENDPOINTS) {
    fail("too_many_endpoints", `${count} endpoints, more than ${MAX_RECORD_ENDPOINTS}`);
  }
  const endpoints: RecordEndpoint[] = [];
  for (let i = 0; i < count; i++) {
    const kind = KINDS[r.u8("endpoint kind")];
    if (kind === undefined) fail("bad_endpoint", `endpoint ${i} has an unknown kind`);
    endpoints.push({ kind, ...readEndpoint(r, `presence record endpoint ${i}`) });
  }
  const staticKey = r.bytes(32, "static key").slice();
  const staticSerial = r.u32("static serial");
  const mailboxCount = r.u8("mailbox count");
  if (mailboxCount > MAX_RECORD_MAILBOXES) {
    fail("too_many_mailboxes", `${mailboxCount} mailboxes, more than ${MAX_RECORD_MAILBOXES}`);
  }
  const mailboxes: Address[] = [];
  for (let i = 0; i < mailboxCount; i++) {
    let mailbox: Address;
    try {
      mailbox = formatAddress(r.bytes(ADDRESS_BYTES, `mailbox ${i}`));
    } catch (e) {
      if (e instanceof DecodeError) throw e;
      fail("bad_mailbox", `mailbox ${i} is a reserved address`);
    }
    if (mailboxes.includes(mailbox)) fail("bad_mailbox", `mailbox ${mailbox} is named twice`);
    mailboxes.push(mailbox);
  }
  const bodyLength = r.offset;
  const signature = r.bytes(64, "signature").slice();
  r.end("presence record");
  return {
    record: {
      publicKey,
      stamp,
      hostname,
      visibility,
      serial,
      expiresAt,
      endpoints,
      staticKey,
      staticSerial,
      mailboxes,
      signature,
    },
    body: bytes.slice(0, bodyLength),
  };
}

/**
 * The signed body of a record (everything but the signature); throws
 * `RangeError` for a field of the wrong size, range or shape.
 */
export function encodePresenceBody(p: UnsignedPresence): Uint8Array {
  checkSize(p.publicKey, "public key", 32);
  checkSize(p.stamp, "stamp", 8);
  if (!/^[a-z0-9-]{0,63}$/.test(p.hostname)) {
    throw new RangeError(
      `Invalid hostname "${p.hostname}": expected 0 to 63 characters of [a-z0-9-]`,
    );
  }
  checkTime(p.serial, "serial");
  checkTime(p.expiresAt, "expires at");
  if (p.endpoints.length > MAX_RECORD_ENDPOINTS) {
    throw new RangeError(
      `Invalid record with ${p.endpoints.length} endpoints: at most ${MAX_RECORD_ENDPOINTS}`,
    );
  }
  checkSize(p.staticKey, "static key", 32);
  if (!Number.isInteger(p.staticSerial) || p.staticSerial < 0 || p.staticSerial > 0xffff_ffff) {
    throw new RangeError(`Invalid static serial ${p.staticSerial}: expected a u32`);
  }
  if (p.mailboxes.length > MAX_RECORD_MAILBOXES) {
    throw new RangeError(
      `Invalid record with ${p.mailboxes.length} mailboxes: at most ${MAX_RECORD_MAILBOXES}`,
    );
  }
  if (new Set(p.mailboxes).size !== p.mailboxes.length) {
    throw new RangeError(`Invalid mailboxes ${p.mailboxes.join(", ")}: one is named twice`);
  }
  // addressToBytes throws TypeError for a malformed or reserved address.
  const mailboxes = p.mailboxes.map((m) => {
    try {
      return addressToBytes(m);
    } catch (e) {
      throw new RangeError(`Invalid mailbox "${m}": ${(e as Error).message}`);
    }
  });
  const w = new Writer(MAX_PRESENCE_RECORD_SIZE)
    .u8(PRESENCE_RECORD_VERSION)
    .bytes(p.publicKey)
    .bytes(p.stamp)
    .u8(p.hostname.length)
    .bytes(utf8(p.hostname))
    .u8(VISIBILITIES.indexOf(p.visibility))
    .u64(BigInt(p.serial))
    .u64(BigInt(p.expiresAt))
    .u8(p.endpoints.length);
  for (const e of p.endpoints) writeEndpoint(w.u8(KINDS.indexOf(e.kind)), e);
  w.bytes(p.staticKey).u32(p.staticSerial).u8(mailboxes.length);
  for (const m of mailboxes) w.bytes(m);
  return w.finish();
}

/** The bytes the signature covers: the domain label, then the body. */
export function presenceSigningMessage(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(LABEL.length + body.length);
  out.set(LABEL, 0);
  out.set(body, LABEL.length);
  return out;
}

/** Encodes a signed record: its body, then its 64-byte signature. */
export function encodePresenceRecord(p: PresenceRecord): Uint8Array {
  checkSize(p.signature, "signature", 64);
  const body = encodePresenceBody(p);
  const out = new Uint8Array(body.length + 64);
  out.set(body, 0);
  out.set(p.signature, body.length);
  return out;
}
