/**
 * The message envelope of the messages service (virtual port 1001):
 * what a sender builds and the receiver stores. A MESSAGE frame of
 * `message_frame.ts` carries one envelope on a port-1001 stream.
 *
 * @module
 */
import {
  MAX_MESSAGE_ID,
  MAX_META_ENTRIES,
  MAX_META_KEY,
  MAX_META_VALUE,
  MAX_STREAM_MESSAGE,
} from "../constants.ts";
import { compareBytes, DecodeError, Reader, utf8, Writer } from "../bytes.ts";

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

/** What a receipt says: stored now, stored before (a retry), or refused (detail = error code). */
export type ReceiptStatus = "stored" | "duplicate" | "refused";

const MAX_META = MAX_META_ENTRIES;
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

/** Encodes an envelope. Throws RangeError for out-of-range fields; `maxData` is the largest data. */
export function encodeEnvelope(e: Envelope, maxData: number = MAX_STREAM_MESSAGE): Uint8Array {
  if (e.id === "") throw new RangeError("Message id must not be empty");
  if (e.data.length > maxData) {
    throw new RangeError(`Message data is ${e.data.length} bytes; at most ${maxData}`);
  }
  // Keys in UTF-8 byte order: one encoding per envelope, whatever order the
  // map was built in (integer-like keys come first in a JS object).
  const meta = Object.entries(e.meta).map(([k, v]) => [utf8(k), v] as const)
    .sort(([a], [b]) => compareBytes(a, b));
  if (meta.length > MAX_META) {
    throw new RangeError(`Message meta has ${meta.length} entries; at most ${MAX_META}`);
  }
  const w = new Writer(64 + e.data.length);
  w.u8(1).u8(MESSAGE_TYPES.indexOf(e.type) + 1);
  shortString(w, e.id, MAX_MESSAGE_ID, "Message id");
  shortString(w, e.correlationId, MAX_MESSAGE_ID, "correlation_id");
  shortString(w, e.inReplyTo, MAX_MESSAGE_ID, "in_reply_to");
  w.u64(BigInt(e.expiresAt)).u8(meta.length);
  for (const [key, v] of meta) {
    if (key.length > MAX_META_KEY) {
      throw new RangeError(`Meta key is ${key.length} bytes; at most ${MAX_META_KEY}`);
    }
    w.u8(key.length).bytes(key);
    shortString(w, v, MAX_META_VALUE, "Meta value");
  }
  return w.u32(e.data.length).bytes(e.data).finish();
}

/** Decodes an envelope strictly (data at most `maxData` bytes); throws DecodeError only. */
export function decodeEnvelope(bytes: Uint8Array, maxData: number = MAX_STREAM_MESSAGE): Envelope {
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
  let previous: Uint8Array | undefined;
  for (let i = 0; i < metaCount; i++) {
    const at = r.offset;
    const k = bounded(r, MAX_META_KEY, "meta key");
    const key = bytes.subarray(at + 1, r.offset);
    if (previous !== undefined && compareBytes(previous, key) >= 0) {
      throw new DecodeError(
        compareBytes(previous, key) === 0 ? "duplicate_key" : "meta_order",
        "Meta keys must be in ascending UTF-8 byte order, each once",
      );
    }
    previous = key;
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
