/**
 * A LAN announcement (PROTOCOL.md §14.1): the datagram a node multicasts on
 * its link so that nodes there find it with no rendezvous. A short header,
 * then the node's signed presence record (`wire/presence_record.ts`) as is;
 * the record is checked by `discovery/presence.ts` exactly as a rendezvous
 * answer is.
 *
 * Layout (big-endian):
 *
 * | size | field |
 * |---:|---|
 * | 4 | magic `"PLAN"` (50 4c 41 4e) |
 * | 1 | version = 1 |
 * | 1 | flags: bit 0 `solicit` (asks the nodes that hear it to announce soon); others 0 |
 * | 2 | session port: the UDP port the node's sessions listen on, 1 to 65535 |
 * | n | presence record, to the end of the datagram |
 *
 * The port is not signed: with the datagram's source IP it is only where to
 * send a handshake, which still proves the record's key.
 *
 * @module
 */
import { DecodeError, Reader, Writer } from "../bytes.ts";
import { MAX_PRESENCE_RECORD_SIZE } from "./presence_record.ts";

/** The four bytes every announcement starts with: ASCII `PLAN`. */
export const LAN_MAGIC = Uint8Array.of(0x50, 0x4c, 0x41, 0x4e);
/** The only announcement version this codec reads and writes. */
export const LAN_VERSION = 1;
/** Bytes before the record. */
export const LAN_HEADER_SIZE = 8;
/** The largest announcement: the header and the largest record. */
export const MAX_LAN_ANNOUNCEMENT = LAN_HEADER_SIZE + MAX_PRESENCE_RECORD_SIZE;
/** Flag bit 0: the sender asks for announcements (it has just started). */
export const LAN_FLAG_SOLICIT = 0x01;

/** An announcement, its record still undecoded (bytes, to be verified). */
export interface LanAnnouncement {
  /** The sender asks nodes that hear it to announce themselves soon. */
  solicit: boolean;
  /** The UDP port its sessions listen on. */
  port: number;
  /** Its signed presence record, as received. */
  record: Uint8Array;
}

function fail(reason: string, message: string): never {
  throw new DecodeError(reason, `Cannot decode LAN announcement: ${message}`);
}

/**
 * Decodes the header strictly (magic, version 1, known flags, port 1 to
 * 65535, a record of 1 to MAX_PRESENCE_RECORD_SIZE bytes); the record's own
 * checks are `verifyPresence`'s. Throws only {@linkcode DecodeError}.
 */
export function decodeLanAnnouncement(bytes: Uint8Array): LanAnnouncement {
  if (bytes.length > MAX_LAN_ANNOUNCEMENT) {
    fail("too_large", `${bytes.length} bytes, more than ${MAX_LAN_ANNOUNCEMENT}`);
  }
  const r = new Reader(bytes);
  const magic = r.bytes(4, "magic");
  if (!magic.every((b, i) => b === LAN_MAGIC[i])) fail("bad_magic", "it does not start with PLAN");
  const version = r.u8("version");
  if (version !== LAN_VERSION) {
    throw new DecodeError(
      "unsupported_version",
      `Cannot decode LAN announcement version ${version}: expected ${LAN_VERSION}`,
    );
  }
  const flags = r.u8("flags");
  if ((flags & ~LAN_FLAG_SOLICIT) !== 0) fail("bad_flags", `unknown flags 0x${flags.toString(16)}`);
  const port = r.u16("port");
  if (port === 0) fail("bad_port", "port 0");
  const record = r.rest().slice();
  if (record.length === 0) fail("truncated", "no record");
  return { solicit: (flags & LAN_FLAG_SOLICIT) !== 0, port, record };
}

/** Encodes an announcement; throws `RangeError` for a port out of range or a record of the wrong size. */
export function encodeLanAnnouncement(a: LanAnnouncement): Uint8Array {
  if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535) {
    throw new RangeError(`Invalid announcement port ${a.port}: expected 1 to 65535`);
  }
  if (a.record.length === 0 || a.record.length > MAX_PRESENCE_RECORD_SIZE) {
    throw new RangeError(
      `Invalid announcement record of ${a.record.length} bytes: expected 1 to ${MAX_PRESENCE_RECORD_SIZE}`,
    );
  }
  return new Writer(LAN_HEADER_SIZE + a.record.length)
    .bytes(LAN_MAGIC)
    .u8(LAN_VERSION)
    .u8(a.solicit ? LAN_FLAG_SOLICIT : 0)
    .u16(a.port)
    .bytes(a.record)
    .finish();
}
