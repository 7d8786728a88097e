/**
 * Inner packets: the plaintext inside a data frame. An empty plaintext is a
 * keepalive; anything else starts with a kind byte, the virtual source and
 * destination (address and port), then the payload. See `docs/PROTOCOL.md`.
 *
 * The decoder throws only {@linkcode DecodeError}; decoded byte fields are
 * views into the input, not copies.
 *
 * @module
 */

import { DecodeError, Reader, Writer } from "../bytes.ts";
import { DATA_HEADER_SIZE, MAX_DATA_FRAME_SIZE, TAG_SIZE } from "./frames.ts";

/** Kind byte of a datagram to a virtual port. */
export const INNER_DATAGRAM = 0x01;
/** Kind byte of a reliable-stream segment (its payload is defined by the stream layer). */
export const INNER_STREAM = 0x02;
/** Size of a raw address on the wire. */
export const ADDRESS_SIZE = 6;
/** Size of the inner header: kind, two addresses, two ports. */
export const INNER_HEADER_SIZE = 1 + 2 * ADDRESS_SIZE + 2 + 2;
/** Largest inner plaintext, so that the whole data frame fits `MAX_DATA_FRAME_SIZE`. */
export const MAX_INNER_SIZE = MAX_DATA_FRAME_SIZE - DATA_HEADER_SIZE - TAG_SIZE;
/** Largest payload of one inner packet. */
export const MAX_INNER_PAYLOAD = MAX_INNER_SIZE - INNER_HEADER_SIZE;

/** An empty plaintext: keeps NAT mappings and the session alive, carries nothing. */
export interface Keepalive {
  /** Packet kind. */
  kind: "keepalive";
}

/** A packet between two virtual ports: a datagram or a stream segment. */
export interface PortPacket {
  /** Packet kind: `"datagram"` (0x01) or `"stream"` (0x02, payload opaque here). */
  kind: "datagram" | "stream";
  /** Sender's 6-byte address. */
  srcAddress: Uint8Array;
  /** Receiver's 6-byte address. */
  dstAddress: Uint8Array;
  /** Sender's virtual port, 0 to 65535. */
  srcPort: number;
  /** Receiver's virtual port, 0 to 65535. */
  dstPort: number;
  /** Application bytes, at most `MAX_INNER_PAYLOAD`. */
  payload: Uint8Array;
}

/** Any inner packet, discriminated by `kind`. */
export type InnerPacket = Keepalive | PortPacket;

/**
 * Decodes the plaintext of a data frame, throwing {@linkcode DecodeError} for
 * anything that {@linkcode encodeInner} would not have produced.
 *
 * @example
 * ```ts
 * import { decodeInner } from "./inner.ts";
 * decodeInner(new Uint8Array(0)); // { kind: "keepalive" }
 * ```
 */
export function decodeInner(bytes: Uint8Array): InnerPacket {
  if (bytes.length === 0) return { kind: "keepalive" };
  if (bytes.length > MAX_INNER_SIZE) {
    throw new DecodeError(
      "too_long",
      `Cannot decode inner packet of ${bytes.length} bytes: expected at most ${MAX_INNER_SIZE}`,
    );
  }
  const r = new Reader(bytes);
  const k = r.u8("inner kind");
  let kind: PortPacket["kind"];
  if (k === INNER_DATAGRAM) kind = "datagram";
  else if (k === INNER_STREAM) kind = "stream";
  else {
    throw new DecodeError(
      "unknown_kind",
      `Cannot decode inner kind 0x${k.toString(16).padStart(2, "0")}: expected 0x01 or 0x02`,
    );
  }
  const srcAddress = r.bytes(ADDRESS_SIZE, "inner source address");
  const dstAddress = r.bytes(ADDRESS_SIZE, "inner destination address");
  const srcPort = r.u16("inner source port");
  const dstPort = r.u16("inner destination port");
  return { kind, srcAddress, dstAddress, srcPort, dstPort, payload: r.rest() };
}

function checkPort(v: number, field: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) {
    throw new RangeError(`Invalid ${field} ${v}: expected an integer from 0 to 65535`);
  }
}

function checkAddress(v: Uint8Array, field: string): void {
  if (v.length !== ADDRESS_SIZE) {
    throw new RangeError(
      `Invalid ${field} of ${v.length} bytes: expected exactly ${ADDRESS_SIZE} bytes`,
    );
  }
}

/**
 * Encodes an inner packet; throws `RangeError` for an address that is not 6
 * bytes, a port outside u16 or a payload above `MAX_INNER_PAYLOAD`.
 */
export function encodeInner(packet: InnerPacket): Uint8Array {
  if (packet.kind === "keepalive") return new Uint8Array(0);
  checkAddress(packet.srcAddress, "source address");
  checkAddress(packet.dstAddress, "destination address");
  checkPort(packet.srcPort, "source port");
  checkPort(packet.dstPort, "destination port");
  if (packet.payload.length > MAX_INNER_PAYLOAD) {
    throw new RangeError(
      `Invalid payload of ${packet.payload.length} bytes: expected at most ${MAX_INNER_PAYLOAD}`,
    );
  }
  return new Writer(INNER_HEADER_SIZE + packet.payload.length)
    .u8(packet.kind === "datagram" ? INNER_DATAGRAM : INNER_STREAM)
    .bytes(packet.srcAddress)
    .bytes(packet.dstAddress)
    .u16(packet.srcPort)
    .u16(packet.dstPort)
    .bytes(packet.payload)
    .finish();
}
