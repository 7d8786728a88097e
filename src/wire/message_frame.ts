/**
 * Frames on a messages stream (virtual port 1001): typed messages of up
 * to MAX_STREAM_MESSAGE bytes, files of any size in FILE_DATA chunks, and the
 * receipts that answer them. A stream carries a sequence of frames in the
 * shared framing of `framing.ts`:
 *
 * | size | field  | meaning                                              |
 * |-----:|--------|------------------------------------------------------|
 * | 1    | kind   | 1 MESSAGE, 2 FILE_BEGIN, 3 FILE_DATA, 4 FILE_END, 5 RECEIPT |
 * | 4    | length | u32 body length, at most the kind's cap ({@linkcode frameCap}) |
 * | n    | body   | as below                                             |
 *
 * - MESSAGE: the envelope of `data_message.ts`, data ≤ MAX_STREAM_MESSAGE.
 * - FILE_BEGIN: id (u8 length, 1–128 bytes UTF-8) | name (u8 length, 1–255
 *   bytes UTF-8, untrusted: the receiver sanitises it) | size u64 (≤ 2^53 − 1)
 *   | SHA-256 of the content (32 bytes).
 * - FILE_DATA: 1–MAX_FILE_CHUNK raw content bytes.
 * - FILE_END: u8 outcome, 0 = complete, 1 = cancelled by the sender.
 * - RECEIPT: status u8 (0 stored, 1 duplicate, 2 refused) | subject u8
 *   (1 message, 2 file) | seq u64 | id (u8 length ≤ 128) | detail (u8 length
 *   ≤ 64, `[a-z0-9_]`, a refusal code (`refusal_code.ts`) exactly when refused);
 *   a message receipt refused as `conflict` goes on with the stored message's
 *   size u64 | content digest (32 bytes, `message_digest.ts`); a file receipt
 *   goes on with name (u8 length ≤ 255, the stored name, empty when refused)
 *   | size u64 | SHA-256 (32 bytes).
 *
 * {@linkcode MESSAGE_FRAMES} is the caps table a `FrameReader` checks each
 * header against before it reads (or allocates for) the body, so a peer
 * cannot make it buffer more than the largest legal frame. Worked examples:
 * `tests/message_frame_test.ts`.
 *
 * @module
 */
import {
  MAX_FILE_CHUNK,
  MAX_FILE_NAME,
  MAX_MESSAGE_ID,
  MAX_META_ENTRIES,
  MAX_META_KEY,
  MAX_META_VALUE,
  MAX_STREAM_MESSAGE,
} from "../constants.ts";
import { DecodeError, Reader, Writer } from "../bytes.ts";
import * as framing from "./framing.ts";
import type { FrameReader } from "./framing.ts";
import {
  decodeEnvelope,
  encodeEnvelope,
  type Envelope,
  type ReceiptStatus,
} from "./data_message.ts";
import { isRefusalCode, type RefusalCode } from "./refusal_code.ts";

/** Frame kind of a typed message. */
export const FRAME_MESSAGE = 1;
/** Frame kind that announces a file. */
export const FRAME_FILE_BEGIN = 2;
/** Frame kind of a chunk of file content. */
export const FRAME_FILE_DATA = 3;
/** Frame kind that ends (or cancels) a file. */
export const FRAME_FILE_END = 4;
/** Frame kind of a receipt (receiver to sender). */
export const FRAME_RECEIPT = 5;
/** One frame kind byte. */
export type FrameKind =
  | typeof FRAME_MESSAGE
  | typeof FRAME_FILE_BEGIN
  | typeof FRAME_FILE_DATA
  | typeof FRAME_FILE_END
  | typeof FRAME_RECEIPT;

/** Largest envelope bytes besides the data: ids, expiry and a full meta map. */
export const MAX_ENVELOPE_OVERHEAD = 2 + 3 * (1 + MAX_MESSAGE_ID) + 8 + 1 +
  MAX_META_ENTRIES * (2 + MAX_META_KEY + MAX_META_VALUE) + 4;
/** Longest receipt detail (an error code). */
export const MAX_RECEIPT_DETAIL = 64;

const SHA256_SIZE = 32;
const MAX_U53 = 2n ** 53n - 1n;
/**
 * The caps table of port-1001 frames: each kind's name and largest body
 * (no smallest: an empty body is refused by its decoder, with its reason).
 */
export const MESSAGE_FRAMES: framing.FrameCaps = {
  label: "messages",
  kinds: {
    [FRAME_MESSAGE]: { name: "MESSAGE", min: 0, max: MAX_STREAM_MESSAGE + MAX_ENVELOPE_OVERHEAD },
    [FRAME_FILE_BEGIN]: {
      name: "FILE_BEGIN",
      min: 0,
      max: 1 + MAX_MESSAGE_ID + 1 + MAX_FILE_NAME + 8 + SHA256_SIZE,
    },
    [FRAME_FILE_DATA]: { name: "FILE_DATA", min: 0, max: MAX_FILE_CHUNK },
    [FRAME_FILE_END]: { name: "FILE_END", min: 0, max: 1 },
    [FRAME_RECEIPT]: {
      name: "RECEIPT",
      min: 0,
      max: 1 + 1 + 8 + 1 + MAX_MESSAGE_ID + 1 + MAX_RECEIPT_DETAIL + 1 + MAX_FILE_NAME + 8 +
        SHA256_SIZE,
    },
  },
};
/**
 * What a sender reads back: receipts only. A peer that answers with another
 * kind is refused at the header, before its claimed length is allocated.
 */
export const RECEIPT_FRAMES: framing.FrameCaps = {
  label: "message receipts",
  kinds: { [FRAME_RECEIPT]: MESSAGE_FRAMES.kinds[FRAME_RECEIPT]! },
};
const STATUS: readonly ReceiptStatus[] = ["stored", "duplicate", "refused"];
const DETAIL = /^[a-z0-9_]*$/;
// ignoreBOM: a leading U+FEFF is part of the text, not something to drop silently.
const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/** A file a sender offers (the body of FILE_BEGIN). */
export interface FileOffer {
  /** Transfer id chosen by the sender, 1–128 bytes of UTF-8; the receipt and index carry it. */
  id: string;
  /** The sender's file name, 1–255 bytes of UTF-8 (untrusted). */
  name: string;
  /** Content size in bytes. */
  size: number;
  /** SHA-256 of the content (32 bytes). */
  sha256: Uint8Array;
}

/** What a receiver already stored under an id (carried by a `conflict` receipt). */
export interface StoredContent {
  /** Size of the stored message's data in bytes. */
  size: number;
  /** Content digest of the stored message (32 bytes, `message_digest.ts`). */
  digest: Uint8Array;
}

/** A receipt for a message: what the receiver's inbox did with it. */
export interface MessageReceiptFrame {
  /** Answers a MESSAGE. */
  subject: "message";
  /** Stored now, stored before (a retry), or refused. */
  status: ReceiptStatus;
  /** The receiver's inbox seq (0 when refused). */
  seq: number;
  /** The message id ("" when the envelope could not be read). */
  id: string;
  /** Refusal code when refused, else "". */
  detail: RefusalCode | "";
  /** The message already stored under this id: present exactly when `detail` is `conflict`. */
  stored?: StoredContent;
}

/** A receipt for a file: where the receiver stored it. */
export interface FileReceiptFrame {
  /** Answers a FILE_BEGIN … FILE_END. */
  subject: "file";
  /** Stored now, the same content stored before, or refused. */
  status: ReceiptStatus;
  /** The receiver's received-files seq (0 when refused). */
  seq: number;
  /** The file's id (that of the earlier transfer for a duplicate). */
  id: string;
  /** Refusal code when refused, else "". */
  detail: RefusalCode | "";
  /** The name the receiver stored it under ("" when refused). */
  name: string;
  /** Content size in bytes. */
  size: number;
  /** SHA-256 of the stored content (the offered one when refused). */
  sha256: Uint8Array;
}

/** Either receipt. */
export type ReceiptFrame = MessageReceiptFrame | FileReceiptFrame;

/** One decoded port-1001 frame. */
export type MessageFrame =
  | { kind: "message"; envelope: Envelope }
  | { kind: "file_begin"; file: FileOffer }
  | { kind: "file_data"; data: Uint8Array }
  | { kind: "file_end"; cancelled: boolean }
  | { kind: "receipt"; receipt: ReceiptFrame };

/** A port-1001 frame's kind and body length, checked against the kind's cap. */
export interface FrameHeader {
  /** Frame kind. */
  kind: FrameKind;
  /** Body length in bytes. */
  length: number;
}

/** Largest body length a frame of `kind` may declare. */
export function frameCap(kind: FrameKind): number {
  return framing.boundsOf(MESSAGE_FRAMES, kind).max;
}

/** Human name of a frame kind, for errors and logs. */
export function frameKindName(kind: FrameKind): string {
  return framing.boundsOf(MESSAGE_FRAMES, kind).name;
}

/** Encodes a frame header; throws RangeError for an unknown kind or a length over its cap. */
export function encodeFrameHeader(kind: FrameKind, length: number): Uint8Array {
  return framing.encodeFrameHeader(MESSAGE_FRAMES, kind, length);
}

/** Decodes a 5-byte frame header strictly; throws DecodeError only. */
export function decodeFrameHeader(bytes: Uint8Array): FrameHeader {
  return framing.decodeFrameHeader(MESSAGE_FRAMES, bytes) as FrameHeader;
}

function shortString(w: Writer, s: string, min: number, max: number, what: string): void {
  const b = encoder.encode(s);
  if (b.length < min || b.length > max) {
    throw new RangeError(`${what} is ${b.length} bytes; expected ${min} to ${max}`);
  }
  w.u8(b.length).bytes(b);
}

function readString(r: Reader, min: number, max: number, what: string): string {
  const n = r.u8(`${what} length`);
  if (n < min || n > max) {
    throw new DecodeError("bad_length", `${what} is ${n} bytes; expected ${min} to ${max}`);
  }
  const b = r.bytes(n, what);
  try {
    return fatal.decode(b);
  } catch {
    throw new DecodeError("bad_utf8", `Cannot decode ${what}: not valid UTF-8`);
  }
}

function u53(w: Writer, v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`${what} ${v} is out of range: expected an integer 0 to 2^53 - 1`);
  }
  w.u64(BigInt(v));
}

function readU53(r: Reader, what: string): number {
  const v = r.u64(what);
  if (v > MAX_U53) throw new DecodeError("out_of_range", `${what} is above 2^53 - 1`);
  return Number(v);
}

function sha(w: Writer, h: Uint8Array): void {
  if (h.length !== SHA256_SIZE) {
    throw new RangeError(`SHA-256 is ${h.length} bytes; expected ${SHA256_SIZE}`);
  }
  w.bytes(h);
}

/** Encodes a FILE_BEGIN body; throws RangeError for out-of-range fields. */
function encodeOffer(w: Writer, f: FileOffer): void {
  shortString(w, f.id, 1, MAX_MESSAGE_ID, "File id");
  shortString(w, f.name, 1, MAX_FILE_NAME, "File name");
  u53(w, f.size, "File size");
  sha(w, f.sha256);
}

function encodeReceipt(w: Writer, rc: ReceiptFrame): void {
  const status = STATUS.indexOf(rc.status);
  if (status < 0) throw new RangeError(`Unknown receipt status ${JSON.stringify(rc.status)}`);
  const fits = rc.detail === "" || isRefusalCode(rc.detail);
  if (!fits || (rc.status === "refused") !== (rc.detail !== "")) {
    throw new RangeError(
      `Receipt detail ${JSON.stringify(rc.detail)} does not fit status ${rc.status}: ` +
        "expected an error code exactly when refused",
    );
  }
  w.u8(status).u8(rc.subject === "message" ? 1 : 2);
  u53(w, rc.seq, "Receipt seq");
  shortString(w, rc.id, 0, MAX_MESSAGE_ID, "Receipt id");
  shortString(w, rc.detail, 0, MAX_RECEIPT_DETAIL, "Receipt detail");
  if (rc.subject === "message") {
    if ((rc.detail === "conflict") !== (rc.stored !== undefined)) {
      throw new RangeError("A message receipt names stored content exactly when it is a conflict");
    }
    if (rc.stored !== undefined) {
      u53(w, rc.stored.size, "Receipt stored size");
      sha(w, rc.stored.digest);
    }
  } else {
    shortString(w, rc.name, 0, MAX_FILE_NAME, "Receipt file name");
    u53(w, rc.size, "Receipt file size");
    sha(w, rc.sha256);
  }
}

/**
 * Encodes a whole frame (header and body); throws RangeError for
 * out-of-range fields. Copies a message's data and a chunk's bytes once.
 */
export function encodeFrame(frame: MessageFrame): Uint8Array {
  let kind: FrameKind;
  let body: Uint8Array;
  switch (frame.kind) {
    case "message":
      kind = FRAME_MESSAGE;
      body = encodeEnvelope(frame.envelope, MAX_STREAM_MESSAGE);
      break;
    case "file_begin": {
      kind = FRAME_FILE_BEGIN;
      const w = new Writer(128);
      encodeOffer(w, frame.file);
      body = w.finish();
      break;
    }
    case "file_data":
      kind = FRAME_FILE_DATA;
      if (frame.data.length === 0) throw new RangeError("FILE_DATA frame must not be empty");
      body = frame.data;
      break;
    case "file_end":
      kind = FRAME_FILE_END;
      body = Uint8Array.of(frame.cancelled ? 1 : 0);
      break;
    case "receipt": {
      kind = FRAME_RECEIPT;
      const w = new Writer(96);
      encodeReceipt(w, frame.receipt);
      body = w.finish();
      break;
    }
  }
  return framing.encodeRawFrame(MESSAGE_FRAMES, kind, body);
}

function decodeOffer(r: Reader): FileOffer {
  const id = readString(r, 1, MAX_MESSAGE_ID, "file id");
  const name = readString(r, 1, MAX_FILE_NAME, "file name");
  const size = readU53(r, "file size");
  const sha256 = r.bytes(SHA256_SIZE, "file SHA-256").slice();
  return { id, name, size, sha256 };
}

function decodeReceipt(r: Reader): ReceiptFrame {
  const s = r.u8("receipt status");
  const status = STATUS[s];
  if (status === undefined) throw new DecodeError("unknown_status", `Unknown receipt status ${s}`);
  const subject = r.u8("receipt subject");
  if (subject !== 1 && subject !== 2) {
    throw new DecodeError("unknown_subject", `Unknown receipt subject ${subject}`);
  }
  const seq = readU53(r, "receipt seq");
  const id = readString(r, 0, MAX_MESSAGE_ID, "receipt id");
  const text = readString(r, 0, MAX_RECEIPT_DETAIL, "receipt detail");
  if (!DETAIL.test(text) || (status === "refused") !== (text !== "")) {
    throw new DecodeError(
      "bad_detail",
      `Receipt detail ${JSON.stringify(text)} does not fit status ${status}`,
    );
  }
  // A code this version does not know (a newer peer's) reads as internal:
  // the refusal still ends the call, and the stream stays in step.
  const detail: RefusalCode | "" = text === "" || isRefusalCode(text) ? text : "internal";
  if (subject === 1) {
    if (detail !== "conflict") return { subject: "message", status, seq, id, detail };
    const size = readU53(r, "receipt stored size");
    const digest = r.bytes(SHA256_SIZE, "receipt stored digest").slice();
    return { subject: "message", status, seq, id, detail, stored: { size, digest } };
  }
  const name = readString(r, 0, MAX_FILE_NAME, "receipt file name");
  const size = readU53(r, "receipt file size");
  const sha256 = r.bytes(SHA256_SIZE, "receipt SHA-256").slice();
  return { subject: "file", status, seq, id, detail, name, size, sha256 };
}

/**
 * Decodes the body of a frame whose header was already checked; throws
 * DecodeError only. A FILE_DATA frame's data is a view of `body`.
 */
export function decodeFrameBody(kind: FrameKind, body: Uint8Array): MessageFrame {
  framing.checkFrameHeader(MESSAGE_FRAMES, kind, body.length);
  switch (kind) {
    case FRAME_MESSAGE:
      return { kind: "message", envelope: decodeEnvelope(body, MAX_STREAM_MESSAGE) };
    case FRAME_FILE_BEGIN: {
      const r = new Reader(body);
      const file = decodeOffer(r);
      r.end("FILE_BEGIN");
      return { kind: "file_begin", file };
    }
    case FRAME_FILE_DATA:
      if (body.length === 0) throw new DecodeError("bad_length", "FILE_DATA frame is empty");
      return { kind: "file_data", data: body };
    case FRAME_FILE_END: {
      const r = new Reader(body);
      const outcome = r.u8("FILE_END outcome");
      if (outcome > 1) {
        throw new DecodeError("unknown_outcome", `Unknown FILE_END outcome ${outcome}`);
      }
      return { kind: "file_end", cancelled: outcome === 1 };
    }
    case FRAME_RECEIPT: {
      const r = new Reader(body);
      const receipt = decodeReceipt(r);
      r.end("RECEIPT");
      return { kind: "receipt", receipt };
    }
  }
}

/** Decodes exactly one whole frame strictly; throws DecodeError only. */
export function decodeFrame(bytes: Uint8Array): MessageFrame {
  const { kind, body } = framing.splitFrame(MESSAGE_FRAMES, bytes);
  return decodeFrameBody(kind as FrameKind, body);
}

/** The next whole frame from a reader over {@linkcode MESSAGE_FRAMES}, decoded, or null at a clean end; DecodeError only. */
export async function nextMessageFrame(reader: FrameReader): Promise<MessageFrame | null> {
  const raw = await reader.next();
  return raw === null ? null : decodeFrameBody(raw.kind as FrameKind, raw.body);
}
