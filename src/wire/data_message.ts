/**
 * The data-exchange service's bytes (virtual port 1001): the message
 * envelope, and the datagrams that carry it — fragments of at most
 * MESSAGE_CHUNK bytes so every datagram fits real networks' MTU, and the
 * receipt that says "stored durably".
 *
 * @module
 */
import {
  MAX_MESSAGE_DATA,
  MAX_MESSAGE_ID,
  MAX_META_ENTRIES,
  MAX_META_KEY,
  MAX_META_VALUE,
  MESSAGE_CHUNK,
} from "../constants.ts";
import { DecodeError, Reader, Writer } from "./bytes.ts";

/** Message data types. */
export const MESSAGE_TYPES = ["text", "json", "binary"] as const;
/** One message data type. */
export type MessageType = typeof MESSAGE_TYPES[number];

/** The envelope a sender builds and the receiver stores. */
export interface Envelope {
  /** Idempotency id, chosen by the client or random; 1..128 bytes of UTF-8. */
  id: string;
  /** Data type. */
  type: MessageType;
  /** Correlates a reply with its request ("" = none). */
  correlationId: string;
  /** Id of the message this answers ("" = none). */
  inReplyTo: string;
  /** Expiry, ms since epoch (0 = none). */
  expiresAt: number;
  /** Small string map (at most 16 entries). */
  meta: Record<string, string>;
  /** The data: UTF-8 text or JSON text, or raw bytes for binary. */
  data: Uint8Array;
}

/** A datagram on port 1001. */
export type DataPacket =
  | { op: "fragment"; transfer: Uint8Array; index: number; count: number; chunk: Uint8Array }
  | { op: "receipt"; transfer: Uint8Array; status: ReceiptStatus; seq: number; detail: string };

/** What a receipt says: stored now, stored before (a retry), or refused (detail = error code). */
export type ReceiptStatus = "stored" | "duplicate" | "refused";

const STATUS: ReceiptStatus[] = ["stored", "duplicate", "refused"];
const MAX_META = MAX_META_ENTRIES;
const MAX_DETAIL = 64;
const MAX_FRAGMENTS = Math.ceil((MAX_MESSAGE_DATA + 4096) / MESSAGE_CHUNK);
// ignoreBOM: a leading U+FEFF is part of the text, not something to drop silently.
const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Reads a u8-length-prefixed string of at most `max` bytes. */
function bounded(r: Reader, max: number, what: string): string {
  const n = r.u8(`${what} length`);
  if (n > max) throw new DecodeError("too_long", `${what} is ${n} bytes; at most ${max}`);
  return text(r, n, what);
}

function text(r: Reader, n: number, what: string): string {
  try {
    return fatal.decode(r.bytes(n, what));
  } catch (e) {
    if (e instanceof DecodeError) throw e;
    throw new DecodeError("bad_utf8", `Cannot decode ${what}: not valid UTF-8`);
  }
}

function shortString(w: Writer, s: string, max: number, what: string): void {
  const b = new TextEncoder().encode(s);
  if (b.length > max) throw new RangeError(`${what} is ${b.length} bytes; at most ${max}`);
  w.u8(b.length).bytes(b);
}

/**
 * Encodes an envelope. Throws RangeError for out-of-range fields; `maxData`
 * is the largest data (MAX_STREAM_MESSAGE on streams).
 */
export function encodeEnvelope(e: Envelope, maxData: number = MAX_MESSAGE_DATA): Uint8Array {
  if (e.id === "") throw new RangeError("Message id must not be empty");
  if (e.data.length > maxData) {
    throw new RangeError(`Message data is ${e.data.length} bytes; at most ${maxData}`);
  }
  const meta = Object.entries(e.meta);
  if (meta.length > MAX_META) {
    throw new RangeError(`Message meta has ${meta.length} entries; at most ${MAX_META}`);
  }
  const w = new Writer(64 + e.data.length);
  w.u8(1).u8(MESSAGE_TYPES.indexOf(e.type) + 1);
  shortString(w, e.id, MAX_MESSAGE_ID, "Message id");
  shortString(w, e.correlationId, MAX_MESSAGE_ID, "correlation_id");
  shortString(w, e.inReplyTo, MAX_MESSAGE_ID, "in_reply_to");
  w.u64(BigInt(e.expiresAt)).u8(meta.length);
  for (const [k, v] of meta) {
    shortString(w, k, MAX_META_KEY, "Meta key");
    shortString(w, v, MAX_META_VALUE, "Meta value");
  }
  return w.u32(e.data.length).bytes(e.data).finish();
}

/** Decodes an envelope strictly (data at most `maxData` bytes); throws DecodeError only. */
export function decodeEnvelope(bytes: Uint8Array, maxData: number = MAX_MESSAGE_DATA): Envelope {
  const r = new Reader(bytes);
  const version = r.u8("version");
  if (version !== 1) {
    throw new DecodeError("unsupported_version", `Unknown envelope version ${version}`);
  }
  const t = r.u8("type");
  const type = MESSAGE_TYPES[t - 1];
  if (type === undefined) throw new DecodeError("unknown_type", `Unknown message type ${t}`);
  const id = bounded(r, MAX_MESSAGE_ID, "id");
  if (id === "") throw new DecodeError("bad_id", "Message id is empty");
  const correlationId = bounded(r, MAX_MESSAGE_ID, "correlation_id");
  const inReplyTo = bounded(r, MAX_MESSAGE_ID, "in_reply_to");
  const expires = r.u64("expires_at");
  if (expires >= 2n ** 53n) throw new DecodeError("out_of_range", "expires_at is out of range");
  const metaCount = r.u8("meta count");
  if (metaCount > MAX_META) throw new DecodeError("too_long", `Meta has ${metaCount} entries`);
  const meta: Record<string, string> = {};
  for (let i = 0; i < metaCount; i++) {
    const k = bounded(r, MAX_META_KEY, "meta key");
    meta[k] = bounded(r, MAX_META_VALUE, "meta value");
  }
  const n = r.u32("data length");
  if (n > maxData) {
    throw new DecodeError("too_long", `Message data of ${n} bytes is over the limit`);
  }
  const data = r.bytes(n, "data").slice();
  r.end("envelope");
  if (Object.keys(meta).length !== metaCount) {
    throw new DecodeError("duplicate_key", "Meta repeats a key");
  }
  return { id, type, correlationId, inReplyTo, expiresAt: Number(expires), meta, data };
}

/** Splits an encoded envelope into fragment packets. */
export function fragment(transfer: Uint8Array, envelope: Uint8Array): DataPacket[] {
  const count = Math.max(1, Math.ceil(envelope.length / MESSAGE_CHUNK));
  if (count > MAX_FRAGMENTS) {
    throw new RangeError(`Envelope of ${envelope.length} bytes is too large`);
  }
  return Array.from({ length: count }, (_, index) => ({
    op: "fragment" as const,
    transfer,
    index,
    count,
    chunk: envelope.subarray(index * MESSAGE_CHUNK, (index + 1) * MESSAGE_CHUNK),
  }));
}

/** Encodes a port-1001 datagram. */
export function encodeDataPacket(p: DataPacket): Uint8Array {
  if (p.transfer.length !== 8) throw new RangeError("Transfer id must be 8 bytes");
  const w = new Writer(32 + (p.op === "fragment" ? p.chunk.length : 0));
  if (p.op === "fragment") {
    if (p.count < 1 || p.count > MAX_FRAGMENTS || p.index >= p.count) {
      throw new RangeError(`Fragment ${p.index} of ${p.count} is out of range`);
    }
    if (p.chunk.length > MESSAGE_CHUNK) throw new RangeError("Fragment chunk is too large");
    return w.u8(1).bytes(p.transfer).u16(p.index).u16(p.count).bytes(p.chunk).finish();
  }
  w.u8(2).bytes(p.transfer).u8(STATUS.indexOf(p.status)).u64(BigInt(p.seq));
  shortString(w, p.detail, MAX_DETAIL, "Receipt detail");
  return w.finish();
}

/** Decodes a port-1001 datagram strictly; throws DecodeError only. */
export function decodeDataPacket(bytes: Uint8Array): DataPacket {
  const r = new Reader(bytes);
  const op = r.u8("op");
  const transfer = r.bytes(8, "transfer id").slice();
  if (op === 1) {
    const index = r.u16("index");
    const count = r.u16("count");
    if (count < 1 || count > MAX_FRAGMENTS || index >= count) {
      throw new DecodeError("out_of_range", `Fragment ${index} of ${count} is out of range`);
    }
    const chunk = r.rest();
    if (chunk.length > MESSAGE_CHUNK || (index < count - 1 && chunk.length !== MESSAGE_CHUNK)) {
      throw new DecodeError(
        "bad_length",
        `Fragment ${index} of ${count} has ${chunk.length} bytes`,
      );
    }
    return { op: "fragment", transfer, index, count, chunk: chunk.slice() };
  }
  if (op === 2) {
    const s = r.u8("status");
    const status = STATUS[s];
    if (status === undefined) {
      throw new DecodeError("unknown_status", `Unknown receipt status ${s}`);
    }
    const seq = r.u64("seq");
    if (seq >= 2n ** 53n) throw new DecodeError("out_of_range", "Receipt seq is out of range");
    const detail = bounded(r, MAX_DETAIL, "detail");
    r.end("receipt");
    return { op: "receipt", transfer, status, seq: Number(seq), detail };
  }
  throw new DecodeError("unknown_op", `Unknown data packet op ${op}`);
}
