/**
 * Stream segments: the payload of an inner packet of kind 0x02 ("stream").
 * The inner header already carries both virtual ports; a segment adds the
 * connection id, byte offsets, the receive window and selective
 * acknowledgements. Integers are big-endian. See `src/stream/mod.ts` for the
 * byte table and the protocol around it.
 *
 * Sequence numbers are u64 byte offsets that never wrap. On the wire they
 * are full u64 fields, but a decoder refuses any value above 2^53 - 1 so
 * that they stay exact JavaScript numbers (2^53 bytes is 9 PB per stream).
 *
 * The decoder throws only {@linkcode DecodeError}; the data field is a view
 * into the input, not a copy.
 *
 * @module
 */

import { DecodeError, Reader } from "../bytes.ts";

/** Flag: opens a connection; occupies sequence number 0; carries the receive MSS as data. */
export const SEG_SYN = 0x01;
/** Flag: the `ack`, `window` and SACK fields are valid. */
export const SEG_ACK = 0x02;
/** Flag: no more data from the sender; occupies one sequence number after the last byte. */
export const SEG_FIN = 0x04;
/** Flag: aborts the connection; the data is a UTF-8 reason. */
export const SEG_RST = 0x08;
/** Flag: window probe or keepalive; carries no data and asks for an immediate ACK. */
export const SEG_PROBE = 0x10;
/** Every flag bit the protocol defines. */
export const SEG_FLAGS_MASK = SEG_SYN | SEG_ACK | SEG_FIN | SEG_RST | SEG_PROBE;

/** Size of the fixed segment header: flags, SACK count, conn id, seq, ack, window. */
export const SEGMENT_HEADER_SIZE = 1 + 1 + 4 + 8 + 8 + 4;
/** Size of one SACK block on the wire: two u32 offsets from `ack`. */
export const SACK_BLOCK_SIZE = 8;
/** Most SACK blocks one segment carries. */
export const MAX_SACK_BLOCKS = 4;
/** Largest sequence number (2^53 - 1): offsets stay exact JavaScript numbers. */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;
/** Size of a SYN's data: the largest segment data (u32) its sender accepts. */
export const SYN_DATA_SIZE = 4;
/** Longest reset reason, in bytes of UTF-8. */
export const MAX_RESET_REASON = 128;
/** Largest receive window a segment can advertise (u32). */
export const MAX_WINDOW = 0xffff_ffff;

const TWO_POW_32 = 0x1_0000_0000;
const MAX_SEQ_HIGH = Math.floor(MAX_SEQ / TWO_POW_32);

/** One selectively acknowledged byte range `[start, end)`, as absolute offsets. */
export interface SackBlock {
  /** First byte received. */
  start: number;
  /** One past the last byte received. */
  end: number;
}

/** A decoded stream segment. */
export interface StreamSegment {
  /** Bit set of `SEG_*` flags. */
  flags: number;
  /** Connection id (u32), chosen by the side that opened the connection. */
  connId: number;
  /** Offset of the first byte of `data` (or of the SYN/FIN it carries). */
  seq: number;
  /** Next offset the sender expects (cumulative); 0 unless `SEG_ACK`. */
  ack: number;
  /** Bytes the sender will accept beyond `ack` (beyond 0 on a SYN), u32. */
  window: number;
  /** Ranges above `ack` already received, most recent first; empty unless `SEG_ACK`. */
  sack: readonly SackBlock[];
  /** Stream bytes (a SYN's MSS, a reset's reason); a view into the decoded input. */
  data: Uint8Array;
}

/** Everything of a segment except its data, for {@linkcode encodeSegmentParts}. */
export type SegmentHeader = Omit<StreamSegment, "data">;

/** Encoded size of a segment with `sackCount` SACK blocks and `dataLength` data bytes. */
export function segmentSize(sackCount: number, dataLength: number): number {
  return SEGMENT_HEADER_SIZE + sackCount * SACK_BLOCK_SIZE + dataLength;
}

function readSeq(r: Reader, what: string): number {
  const high = r.u32(what);
  const low = r.u32(what);
  if (high > MAX_SEQ_HIGH) {
    throw new DecodeError(
      "out_of_range",
      `Cannot decode ${what} above 2^53 - 1: high word 0x${high.toString(16)}`,
    );
  }
  return high * TWO_POW_32 + low;
}

function refuse(reason: string, message: string): never {
  throw new DecodeError(reason, `Cannot decode stream segment: ${message}`);
}

/** The structural rules shared by decoder and encoder; returns a problem or null. */
function flagProblem(flags: number, dataLength: number, seq: number): string | null {
  if ((flags & ~SEG_FLAGS_MASK) !== 0) return `unknown flag bits 0x${flags.toString(16)}`;
  if ((flags & SEG_RST) !== 0 && (flags & (SEG_SYN | SEG_FIN | SEG_PROBE)) !== 0) {
    return "RST combined with SYN, FIN or PROBE";
  }
  if ((flags & SEG_SYN) !== 0) {
    if ((flags & (SEG_FIN | SEG_PROBE)) !== 0) return "SYN combined with FIN or PROBE";
    if (seq !== 0) return `SYN with seq ${seq}, expected 0`;
    if (dataLength !== SYN_DATA_SIZE) {
      return `SYN with ${dataLength} data bytes, expected ${SYN_DATA_SIZE}`;
    }
  }
  if ((flags & SEG_PROBE) !== 0 && ((flags & SEG_FIN) !== 0 || dataLength !== 0)) {
    return "PROBE with FIN or data";
  }
  if ((flags & SEG_RST) !== 0 && dataLength > MAX_RESET_REASON) {
    return `RST reason of ${dataLength} bytes, expected at most ${MAX_RESET_REASON}`;
  }
  return null;
}

/**
 * Decodes one segment, throwing {@linkcode DecodeError} for anything that
 * {@linkcode encodeSegment} would not have produced.
 *
 * @example
 * ```ts
 * import { decodeSegment, encodeSegment, SEG_ACK } from "./stream_segment.ts";
 * const bytes = encodeSegment({
 *   flags: SEG_ACK, connId: 7, seq: 1, ack: 1, window: 65536, sack: [], data: new Uint8Array(0),
 * });
 * decodeSegment(bytes).window; // 65536
 * ```
 */
export function decodeSegment(bytes: Uint8Array): StreamSegment {
  const r = new Reader(bytes);
  const flags = r.u8("segment flags");
  if ((flags & ~SEG_FLAGS_MASK) !== 0) {
    refuse("bad_flags", `unknown flag bits 0x${flags.toString(16)}`);
  }
  const sackCount = r.u8("segment SACK count");
  const connId = r.u32("segment connection id");
  const seq = readSeq(r, "segment seq");
  const ack = readSeq(r, "segment ack");
  const window = r.u32("segment window");
  if (sackCount > MAX_SACK_BLOCKS) {
    refuse("bad_sack", `${sackCount} SACK blocks, expected at most ${MAX_SACK_BLOCKS}`);
  }
  const hasAck = (flags & SEG_ACK) !== 0;
  if (!hasAck && (ack !== 0 || sackCount !== 0)) {
    refuse("bad_ack", "ack or SACK blocks without the ACK flag");
  }
  const sack: SackBlock[] = [];
  for (let i = 0; i < sackCount; i++) {
    const from = r.u32("SACK block start");
    const to = r.u32("SACK block end");
    if (from === 0 || to <= from) {
      refuse("bad_sack", `SACK block (${from}, ${to}) after ack: expected 0 < start < end`);
    }
    if (ack + to > MAX_SEQ) refuse("out_of_range", "SACK block above 2^53 - 1");
    sack.push({ start: ack + from, end: ack + to });
  }
  const data = r.rest();
  const problem = flagProblem(flags, data.length, seq);
  if (problem !== null) refuse("bad_flags", problem);
  const span = data.length + ((flags & (SEG_SYN | SEG_FIN)) !== 0 ? 1 : 0);
  if ((flags & SEG_RST) === 0 && seq + span > MAX_SEQ) {
    refuse("out_of_range", "segment ends above 2^53 - 1");
  }
  return { flags, connId, seq, ack, window, sack, data };
}

function checkInt(v: number, max: number, field: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new RangeError(`Invalid ${field} ${v}: expected an integer from 0 to ${max}`);
  }
}

// Segments are carved from shared slabs instead of one ArrayBuffer each:
// allocating a buffer per segment cost more than encoding it. A slab is
// written once and never reused, so a segment stays valid for as long as
// anyone holds it; it only keeps its slab alive that long.
const SLAB_SIZE = 256 * 1024;
let slab = new Uint8Array(SLAB_SIZE);
let slabView = new DataView(slab.buffer);
let slabUsed = 0;

function writeSeq(view: DataView, at: number, v: number): void {
  const high = Math.floor(v / TWO_POW_32);
  view.setUint32(at, high);
  view.setUint32(at + 4, v - high * TWO_POW_32);
}

/**
 * Encodes a segment whose data is the concatenation of `parts` (each copied
 * once, straight into the output); throws `RangeError` for any field the
 * decoder would refuse.
 */
export function encodeSegmentParts(
  header: SegmentHeader,
  parts: readonly Uint8Array[],
): Uint8Array {
  let dataLength = 0;
  for (const p of parts) dataLength += p.length;
  const { flags, connId, seq, ack, window, sack } = header;
  checkInt(connId, 0xffff_ffff, "connection id");
  checkInt(seq, MAX_SEQ, "seq");
  checkInt(ack, MAX_SEQ, "ack");
  checkInt(window, MAX_WINDOW, "window");
  const problem = flagProblem(flags, dataLength, seq);
  if (problem !== null) throw new RangeError(`Invalid stream segment: ${problem}`);
  const span = dataLength + ((flags & (SEG_SYN | SEG_FIN)) !== 0 ? 1 : 0);
  if ((flags & SEG_RST) === 0 && seq + span > MAX_SEQ) {
    throw new RangeError("Invalid stream segment: it ends above 2^53 - 1");
  }
  if (sack.length > MAX_SACK_BLOCKS) {
    throw new RangeError(`Invalid ${sack.length} SACK blocks: expected at most ${MAX_SACK_BLOCKS}`);
  }
  if ((flags & SEG_ACK) === 0 && (ack !== 0 || sack.length !== 0)) {
    throw new RangeError("Invalid stream segment: ack or SACK blocks without the ACK flag");
  }
  for (const b of sack) {
    const from = b.start - ack;
    const to = b.end - ack;
    if (
      !Number.isInteger(from) || !Number.isInteger(to) || from < 1 || to <= from ||
      to > 0xffff_ffff || b.end > MAX_SEQ
    ) {
      throw new RangeError(
        `Invalid SACK block [${b.start}, ${b.end}) for ack ${ack}: expected ack < start < end <= ack + 2^32 - 1`,
      );
    }
  }
  const size = segmentSize(sack.length, dataLength);
  let out: Uint8Array;
  let view: DataView;
  let at: number;
  if (size > SLAB_SIZE / 8) {
    out = new Uint8Array(size);
    view = new DataView(out.buffer);
    at = 0;
  } else {
    if (slabUsed + size > SLAB_SIZE) {
      slab = new Uint8Array(SLAB_SIZE);
      slabView = new DataView(slab.buffer);
      slabUsed = 0;
    }
    at = slabUsed;
    slabUsed += (size + 7) & ~7;
    out = slab.subarray(at, at + size);
    view = slabView;
  }
  view.setUint8(at, flags);
  view.setUint8(at + 1, sack.length);
  view.setUint32(at + 2, connId);
  writeSeq(view, at + 6, seq);
  writeSeq(view, at + 14, ack);
  view.setUint32(at + 22, window);
  at += SEGMENT_HEADER_SIZE;
  for (const b of sack) {
    view.setUint32(at, b.start - ack);
    view.setUint32(at + 4, b.end - ack);
    at += SACK_BLOCK_SIZE;
  }
  const target = view === slabView ? slab : out;
  for (const p of parts) {
    target.set(p, at);
    at += p.length;
  }
  return out;
}

/** Encodes a segment; throws `RangeError` for any field the decoder would refuse. */
export function encodeSegment(segment: StreamSegment): Uint8Array {
  return encodeSegmentParts(segment, [segment.data]);
}
