/**
 * The Noise payload of handshake messages 2 and 3: the sender's identity key,
 * address stamp, the identity's signature binding the static X25519 key, and a
 * signed self-description (hostname and informational time). It travels
 * encrypted; this module only lays out the bytes and checks their shape —
 * keys, stamps and signatures are verified by the identity layer.
 *
 * @module
 */

import { DecodeError, Reader, Writer } from "../bytes.ts";
import { checkSize, checkTime } from "./_encode_checks.ts";

export { MSG1_NOISE_SIZE } from "./frames.ts";

/** The only payload version this codec reads and writes. */
export const HANDSHAKE_PAYLOAD_VERSION = 1;
/** Longest hostname in bytes. */
export const MAX_HOSTNAME_LENGTH = 63;
/** Size of a payload with an empty hostname. */
export const MIN_HANDSHAKE_PAYLOAD_SIZE = 1 + 32 + 8 + 4 + 8 + 64 + 1 + 8 + 64;
/** Size of a payload with the longest hostname. */
export const MAX_HANDSHAKE_PAYLOAD_SIZE = MIN_HANDSHAKE_PAYLOAD_SIZE + MAX_HOSTNAME_LENGTH;

/** The sender's identity as carried in handshake messages 2 and 3. */
export interface HandshakePayload {
  /** Ed25519 identity public key, 32 bytes. */
  publicKey: Uint8Array;
  /** Address stamp, 8 bytes. */
  stamp: Uint8Array;
  /** Serial of the static X25519 key binding (u32); peers keep the highest seen. */
  staticSerial: number;
  /** Creation time of the static key binding, Unix ms below 2^53. */
  staticCreated: number;
  /** Identity signature over the static key binding, 64 bytes. */
  bindingSignature: Uint8Array;
  /** Self-claimed hostname, 0 to 63 characters of `[a-z0-9-]`; empty when none. */
  hostname: string;
  /** Time of the self-description, Unix ms below 2^53; informational, never a freshness test. */
  selfTime: number;
  /** Identity signature over the self-description, 64 bytes. */
  selfSignature: Uint8Array;
}

const TWO_POW_53 = 2n ** 53n;

function isHostnameByte(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d;
}

function readTime(r: Reader, field: string): number {
  const v = r.u64(field);
  if (v >= TWO_POW_53) {
    throw new DecodeError(
      "out_of_range",
      `Cannot decode handshake payload: ${field} ${v} is not below 2^53`,
    );
  }
  return Number(v);
}

/**
 * Decodes a handshake payload strictly: version 1, exact length, a hostname
 * of at most 63 bytes of `[a-z0-9-]`, times below 2^53. Throws only
 * {@linkcode DecodeError}. Byte fields are copies, safe to keep.
 */
export function decodeHandshakePayload(bytes: Uint8Array): HandshakePayload {
  const r = new Reader(bytes);
  const version = r.u8("payload version");
  if (version !== HANDSHAKE_PAYLOAD_VERSION) {
    throw new DecodeError(
      "unsupported_version",
      `Cannot decode handshake payload version ${version}: expected ${HANDSHAKE_PAYLOAD_VERSION}`,
    );
  }
  const publicKey = r.bytes(32, "public key").slice();
  const stamp = r.bytes(8, "stamp").slice();
  const staticSerial = r.u32("static serial");
  const staticCreated = readTime(r, "static created");
  const bindingSignature = r.bytes(64, "binding signature").slice();
  const hostnameLength = r.u8("hostname length");
  if (hostnameLength > MAX_HOSTNAME_LENGTH) {
    throw new DecodeError(
      "bad_hostname",
      `Cannot decode handshake payload: hostname length ${hostnameLength} ` +
        `exceeds ${MAX_HOSTNAME_LENGTH}`,
    );
  }
  const hostnameBytes = r.bytes(hostnameLength, "hostname");
  for (const c of hostnameBytes) {
    if (!isHostnameByte(c)) {
      throw new DecodeError(
        "bad_hostname",
        `Cannot decode handshake payload: hostname byte 0x${c.toString(16).padStart(2, "0")} ` +
          "is outside [a-z0-9-]",
      );
    }
  }
  const hostname = String.fromCharCode(...hostnameBytes);
  const selfTime = readTime(r, "self time");
  const selfSignature = r.bytes(64, "self signature").slice();
  r.end("handshake payload");
  return {
    publicKey,
    stamp,
    staticSerial,
    staticCreated,
    bindingSignature,
    hostname,
    selfTime,
    selfSignature,
  };
}

/**
 * Encodes a handshake payload; throws `RangeError` for a field of the wrong
 * size or range, or a hostname that is not 0 to 63 characters of `[a-z0-9-]`.
 */
export function encodeHandshakePayload(p: HandshakePayload): Uint8Array {
  checkSize(p.publicKey, "public key", 32);
  checkSize(p.stamp, "stamp", 8);
  if (!Number.isInteger(p.staticSerial) || p.staticSerial < 0 || p.staticSerial > 0xffff_ffff) {
    throw new RangeError(
      `Invalid static serial ${p.staticSerial}: expected an integer from 0 to 4294967295`,
    );
  }
  checkTime(p.staticCreated, "static created");
  checkSize(p.bindingSignature, "binding signature", 64);
  if (!/^[a-z0-9-]{0,63}$/.test(p.hostname)) {
    throw new RangeError(
      `Invalid hostname ${JSON.stringify(p.hostname)}: expected 0 to 63 characters of [a-z0-9-]`,
    );
  }
  checkTime(p.selfTime, "self time");
  checkSize(p.selfSignature, "self signature", 64);
  const w = new Writer(MIN_HANDSHAKE_PAYLOAD_SIZE + p.hostname.length)
    .u8(HANDSHAKE_PAYLOAD_VERSION)
    .bytes(p.publicKey)
    .bytes(p.stamp)
    .u32(p.staticSerial)
    .u64(BigInt(p.staticCreated))
    .bytes(p.bindingSignature)
    .u8(p.hostname.length);
  for (let i = 0; i < p.hostname.length; i++) w.u8(p.hostname.charCodeAt(i));
  return w
    .u64(BigInt(p.selfTime))
    .bytes(p.selfSignature)
    .finish();
}
