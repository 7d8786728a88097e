/**
 * The mailbox service's bytes (virtual port 447, docs/design/offline.md §2):
 * frames on a reliable stream inside the depositor's or recipient's session
 * with a rendezvous, each `kind u8 | length u32 | body`, big-endian.
 *
 * | kind | name      | body                                                              |
 * |-----:|-----------|-------------------------------------------------------------------|
 * | 0x01 | DEPOSIT   | recipient key (32), ttl_ms u32, sealed item (the rest, ≥ 1 byte)  |
 * | 0x02 | FETCH     | after u64, max u8 (1–64)                                          |
 * | 0x03 | ACK       | count u8 (1–64), then count ids u64                               |
 * | 0x81 | DEPOSITED | id u64                                                            |
 * | 0x82 | ITEMS     | more u8 (0/1), count u8 (0–64), then each: id u64, deposited_at u64, length u32, sealed |
 * | 0x83 | ACKED     | count u8                                                          |
 * | 0x84 | REFUSED   | code length u8 (1–32), code (`[a-z_]`)                            |
 *
 * Every u64 is below 2^53. A sealed item is 1 to
 * {@linkcode MAX_MAILBOX_SEALED} bytes; the items of one ITEMS frame hold at
 * most {@linkcode MAX_ITEMS_BYTES} of sealed bytes.
 *
 * Framing is `framing.ts`'s: a header is checked against its kind's cap
 * ({@linkcode MAILBOX_REQUESTS} on the server, {@linkcode MAILBOX_ANSWERS}
 * on the client) before any of its body is buffered. Decoders throw only
 * {@linkcode DecodeError}; encoders throw `RangeError` for anything the
 * decoder would refuse. Decoded byte fields are views into the input.
 *
 * @module
 */
import { DecodeError, Reader, Writer } from "../bytes.ts";
import {
  checkFrameHeader,
  encodeRawFrame,
  type FrameCaps,
  type FrameReader,
  splitFrame,
} from "./framing.ts";
import { MAX_HANDSHAKE_PAYLOAD_SIZE } from "./handshake_payload.ts";

/** Virtual stream port of the mailbox service at a rendezvous (447). */
export { PORT_MAILBOX } from "../constants.ts";

/**
 * Largest sealed item (bytes): the largest item a seal carries (70 KiB), the
 * sealer's handshake payload and the seal's overhead. Spelled out because
 * `session/seal.ts` sits above `wire/`; a test keeps it equal to the
 * mailbox store's `MAX_MAILBOX_ITEM`.
 */
export const MAX_MAILBOX_SEALED = 70 * 1024 + MAX_HANDSHAKE_PAYLOAD_SIZE + 32 + 32 + 16 + 16 + 2;
/** Most ids one ACK names, and most items one FETCH asks for or one ITEMS carries. */
export const MAX_MAILBOX_BATCH = 64;
/** Most sealed bytes in one ITEMS frame (1 MiB). */
export const MAX_ITEMS_BYTES = 1024 * 1024;
/** Longest REFUSED code. */
export const MAX_MAILBOX_CODE = 32;

/** Kind byte of DEPOSIT: leave a sealed item for a recipient. */
export const MAILBOX_DEPOSIT = 0x01;
/** Kind byte of FETCH: the session's own items after an id. */
export const MAILBOX_FETCH = 0x02;
/** Kind byte of ACK: remove the session's own items by id. */
export const MAILBOX_ACK = 0x03;
/** Kind byte of DEPOSITED: the id a deposit was stored under. */
export const MAILBOX_DEPOSITED = 0x81;
/** Kind byte of ITEMS: a page of items. */
export const MAILBOX_ITEMS = 0x82;
/** Kind byte of ACKED: how many acknowledged items were removed. */
export const MAILBOX_ACKED = 0x83;
/** Kind byte of REFUSED: a request refused, with a code. */
export const MAILBOX_REFUSED = 0x84;

const KEY_SIZE = 32;
const ITEM_HEADER = 8 + 8 + 4;
const MAX_U53 = 2n ** 53n - 1n;
const CODE = /^[a-z_]+$/;

const DEPOSIT_BOUNDS = {
  name: "DEPOSIT",
  min: KEY_SIZE + 4 + 1,
  max: KEY_SIZE + 4 + MAX_MAILBOX_SEALED,
};
const FETCH_BOUNDS = { name: "FETCH", min: 9, max: 9 };
const ACK_BOUNDS = { name: "ACK", min: 1 + 8, max: 1 + 8 * MAX_MAILBOX_BATCH };
const DEPOSITED_BOUNDS = { name: "DEPOSITED", min: 8, max: 8 };
const ITEMS_BOUNDS = {
  name: "ITEMS",
  min: 2,
  max: 2 + ITEM_HEADER * MAX_MAILBOX_BATCH + MAX_ITEMS_BYTES,
};
const ACKED_BOUNDS = { name: "ACKED", min: 1, max: 1 };
const REFUSED_BOUNDS = { name: "REFUSED", min: 2, max: 1 + MAX_MAILBOX_CODE };

/** Every port-447 frame kind: what encoders check against. */
export const MAILBOX_FRAMES: FrameCaps = {
  label: "mailbox",
  kinds: {
    [MAILBOX_DEPOSIT]: DEPOSIT_BOUNDS,
    [MAILBOX_FETCH]: FETCH_BOUNDS,
    [MAILBOX_ACK]: ACK_BOUNDS,
    [MAILBOX_DEPOSITED]: DEPOSITED_BOUNDS,
    [MAILBOX_ITEMS]: ITEMS_BOUNDS,
    [MAILBOX_ACKED]: ACKED_BOUNDS,
    [MAILBOX_REFUSED]: REFUSED_BOUNDS,
  },
};
/** What a server reads: requests only; an answer kind is refused at its header. */
export const MAILBOX_REQUESTS: FrameCaps = {
  label: "mailbox requests",
  kinds: {
    [MAILBOX_DEPOSIT]: DEPOSIT_BOUNDS,
    [MAILBOX_FETCH]: FETCH_BOUNDS,
    [MAILBOX_ACK]: ACK_BOUNDS,
  },
};
/** What a client reads: answers only; a request kind is refused at its header. */
export const MAILBOX_ANSWERS: FrameCaps = {
  label: "mailbox answers",
  kinds: {
    [MAILBOX_DEPOSITED]: DEPOSITED_BOUNDS,
    [MAILBOX_ITEMS]: ITEMS_BOUNDS,
    [MAILBOX_ACKED]: ACKED_BOUNDS,
    [MAILBOX_REFUSED]: REFUSED_BOUNDS,
  },
};

/** One item in an ITEMS answer. */
export interface MailboxWireItem {
  /** Its id in the recipient's mailbox. */
  id: number;
  /** When the rendezvous took it (Unix ms). */
  depositedAt: number;
  /** The sealed item, 1 to {@linkcode MAX_MAILBOX_SEALED} bytes. */
  sealed: Uint8Array;
}

/** DEPOSIT: a sealed item for `recipient`, kept at most `ttlMs`. */
export interface DepositFrame {
  /** Frame kind. */
  kind: "deposit";
  /** The recipient's Ed25519 identity key (32 bytes). */
  recipient: Uint8Array;
  /** How long to keep it (ms, u32; the rendezvous caps it). */
  ttlMs: number;
  /** The sealed item. */
  sealed: Uint8Array;
}

/** FETCH: up to `max` of the session's own items with ids above `after`. */
export interface FetchFrame {
  /** Frame kind. */
  kind: "fetch";
  /** Items with a larger id only (0: from the first). */
  after: number;
  /** Most items in the answer, 1–64. */
  max: number;
}

/** ACK: the session's own items `ids` may go. */
export interface AckFrame {
  /** Frame kind. */
  kind: "ack";
  /** 1–64 ids. */
  ids: number[];
}

/** DEPOSITED: the deposit is durable under `id`. */
export interface DepositedFrame {
  /** Frame kind. */
  kind: "deposited";
  /** Its id in the recipient's mailbox. */
  id: number;
}

/** ITEMS: a page of items, oldest first; `more` when the mailbox holds more after them. */
export interface ItemsFrame {
  /** Frame kind. */
  kind: "items";
  /** More items follow the last one. */
  more: boolean;
  /** 0–64 items, at most 1 MiB of sealed bytes. */
  items: MailboxWireItem[];
}

/** ACKED: how many of the acknowledged ids were held (and are now gone). */
export interface AckedFrame {
  /** Frame kind. */
  kind: "acked";
  /** 0–64. */
  count: number;
}

/** REFUSED: the request was refused (`no_mailbox`, `mailbox_full`, …). */
export interface RefusedFrame {
  /** Frame kind. */
  kind: "refused";
  /** 1–32 characters of `[a-z_]`. */
  code: string;
}

/** A request a client sends. */
export type MailboxRequest = DepositFrame | FetchFrame | AckFrame;
/** An answer a server sends, one per request, in order. */
export type MailboxAnswer = DepositedFrame | ItemsFrame | AckedFrame | RefusedFrame;
/** Any port-447 frame. */
export type MailboxFrame = MailboxRequest | MailboxAnswer;

function u53(w: Writer, v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`Invalid ${what} ${v}: expected an integer from 0 to 2^53 - 1`);
  }
  w.u64(BigInt(v));
}

function readU53(r: Reader, what: string): number {
  const v = r.u64(what);
  if (v > MAX_U53) throw new DecodeError("out_of_range", `The ${what} is above 2^53 - 1`);
  return Number(v);
}

function checkCount(n: number, min: number, what: string): void {
  if (!Number.isInteger(n) || n < min || n > MAX_MAILBOX_BATCH) {
    throw new RangeError(`Invalid ${what} ${n}: expected ${min} to ${MAX_MAILBOX_BATCH}`);
  }
}

function readCount(r: Reader, min: number, what: string): number {
  const n = r.u8(what);
  if (n < min || n > MAX_MAILBOX_BATCH) {
    throw new DecodeError("out_of_range", `The ${what} is ${n}; expected ${min} to 64`);
  }
  return n;
}

function checkSealed(sealed: Uint8Array): void {
  if (sealed.length < 1 || sealed.length > MAX_MAILBOX_SEALED) {
    throw new RangeError(
      `Invalid sealed item of ${sealed.length} bytes: expected 1 to ${MAX_MAILBOX_SEALED}`,
    );
  }
}

/** Whether `code` is a valid REFUSED code: 1–32 characters of `[a-z_]`. */
export function isMailboxCode(code: string): boolean {
  return code.length <= MAX_MAILBOX_CODE && CODE.test(code);
}

function kindOf(frame: MailboxFrame): number {
  switch (frame.kind) {
    case "deposit":
      return MAILBOX_DEPOSIT;
    case "fetch":
      return MAILBOX_FETCH;
    case "ack":
      return MAILBOX_ACK;
    case "deposited":
      return MAILBOX_DEPOSITED;
    case "items":
      return MAILBOX_ITEMS;
    case "acked":
      return MAILBOX_ACKED;
    case "refused":
      return MAILBOX_REFUSED;
  }
}

function encodeBody(w: Writer, frame: MailboxFrame): void {
  switch (frame.kind) {
    case "deposit":
      if (frame.recipient.length !== KEY_SIZE) {
        throw new RangeError(
          `Invalid recipient key of ${frame.recipient.length} bytes: expected exactly 32`,
        );
      }
      if (!Number.isInteger(frame.ttlMs) || frame.ttlMs < 0 || frame.ttlMs > 0xffff_ffff) {
        throw new RangeError(`Invalid ttl ${frame.ttlMs} ms: expected 0 to 2^32 - 1`);
      }
      checkSealed(frame.sealed);
      w.bytes(frame.recipient).u32(frame.ttlMs).bytes(frame.sealed);
      return;
    case "fetch":
      checkCount(frame.max, 1, "fetch max");
      u53(w, frame.after, "fetch after id");
      w.u8(frame.max);
      return;
    case "ack":
      checkCount(frame.ids.length, 1, "ack count");
      w.u8(frame.ids.length);
      for (const id of frame.ids) u53(w, id, "ack id");
      return;
    case "deposited":
      u53(w, frame.id, "deposited id");
      return;
    case "items": {
      checkCount(frame.items.length, 0, "items count");
      let bytes = 0;
      w.u8(frame.more ? 1 : 0).u8(frame.items.length);
      for (const item of frame.items) {
        checkSealed(item.sealed);
        bytes += item.sealed.length;
        u53(w, item.id, "item id");
        u53(w, item.depositedAt, "item deposited_at");
        w.u32(item.sealed.length).bytes(item.sealed);
      }
      if (bytes > MAX_ITEMS_BYTES) {
        throw new RangeError(`Invalid ITEMS of ${bytes} sealed bytes: at most ${MAX_ITEMS_BYTES}`);
      }
      return;
    }
    case "acked":
      checkCount(frame.count, 0, "acked count");
      w.u8(frame.count);
      return;
    case "refused":
      if (!isMailboxCode(frame.code)) {
        throw new RangeError(
          `Invalid refusal code ${JSON.stringify(frame.code)}: expected 1 to 32 of [a-z_]`,
        );
      }
      w.u8(frame.code.length).bytes(new TextEncoder().encode(frame.code));
      return;
  }
}

/**
 * Encodes a whole frame (header and body); throws RangeError for
 * out-of-range fields. Byte fields are copied once.
 *
 * @example
 * ```ts
 * import { encodeMailboxFrame } from "./mailbox_frame.ts";
 * encodeMailboxFrame({ kind: "fetch", after: 0, max: 16 }).toHex();
 * // "02000000090000000000000000" + "10"
 * ```
 */
export function encodeMailboxFrame(frame: MailboxFrame): Uint8Array {
  const w = new Writer(frame.kind === "deposit" ? 40 + frame.sealed.length : 64);
  encodeBody(w, frame);
  return encodeRawFrame(MAILBOX_FRAMES, kindOf(frame), w.finish());
}

function decodeItems(r: Reader): ItemsFrame {
  const flag = r.u8("items more");
  if (flag > 1) {
    throw new DecodeError("out_of_range", `The items more flag is ${flag}; expected 0 or 1`);
  }
  const count = readCount(r, 0, "items count");
  const items: MailboxWireItem[] = [];
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const id = readU53(r, "item id");
    const depositedAt = readU53(r, "item deposited_at");
    const length = r.u32("item length");
    if (length < 1 || length > MAX_MAILBOX_SEALED) {
      throw new DecodeError(
        "bad_length",
        `Item ${id} is ${length} bytes; expected 1 to ${MAX_MAILBOX_SEALED}`,
      );
    }
    bytes += length;
    if (bytes > MAX_ITEMS_BYTES) {
      throw new DecodeError("too_large", `ITEMS holds over ${MAX_ITEMS_BYTES} sealed bytes`);
    }
    items.push({ id, depositedAt, sealed: r.bytes(length, "item sealed") });
  }
  return { kind: "items", more: flag === 1, items };
}

/**
 * Decodes the body of a frame whose kind is `kind`; throws DecodeError only
 * (`unknown_kind`, `too_large`, `too_short`, `truncated`, `trailing`,
 * `out_of_range`, `bad_length`, `bad_code`).
 */
export function decodeMailboxBody(kind: number, body: Uint8Array): MailboxFrame {
  checkFrameHeader(MAILBOX_FRAMES, kind, body.length);
  const r = new Reader(body);
  let frame: MailboxFrame;
  switch (kind) {
    case MAILBOX_DEPOSIT: {
      const recipient = r.bytes(KEY_SIZE, "recipient key");
      const ttlMs = r.u32("ttl");
      frame = { kind: "deposit", recipient, ttlMs, sealed: r.rest() };
      break;
    }
    case MAILBOX_FETCH: {
      const after = readU53(r, "fetch after id");
      frame = { kind: "fetch", after, max: readCount(r, 1, "fetch max") };
      break;
    }
    case MAILBOX_ACK: {
      const count = readCount(r, 1, "ack count");
      const ids: number[] = [];
      for (let i = 0; i < count; i++) ids.push(readU53(r, "ack id"));
      frame = { kind: "ack", ids };
      break;
    }
    case MAILBOX_DEPOSITED:
      frame = { kind: "deposited", id: readU53(r, "deposited id") };
      break;
    case MAILBOX_ITEMS:
      frame = decodeItems(r);
      break;
    case MAILBOX_ACKED:
      frame = { kind: "acked", count: readCount(r, 0, "acked count") };
      break;
    default: {
      const n = r.u8("refusal code length");
      if (n < 1 || n > MAX_MAILBOX_CODE) {
        throw new DecodeError("bad_length", `Refusal code of ${n} bytes; expected 1 to 32`);
      }
      const code = String.fromCharCode(...r.bytes(n, "refusal code"));
      if (!CODE.test(code)) {
        throw new DecodeError("bad_code", `Refusal code ${JSON.stringify(code)} is not [a-z_]`);
      }
      frame = { kind: "refused", code };
    }
  }
  r.end(`${MAILBOX_FRAMES.kinds[kind]!.name} frame`);
  return frame;
}

/** Decodes exactly one whole frame of any kind strictly; throws DecodeError only. */
export function decodeMailboxFrame(bytes: Uint8Array): MailboxFrame {
  const { kind, body } = splitFrame(MAILBOX_FRAMES, bytes);
  return decodeMailboxBody(kind, body);
}

/**
 * The next whole frame from `reader` (over {@linkcode MAILBOX_REQUESTS} or
 * {@linkcode MAILBOX_ANSWERS}), decoded, or null at a clean end; DecodeError only.
 */
export async function nextMailboxFrame(reader: FrameReader): Promise<MailboxFrame | null> {
  const raw = await reader.next();
  return raw === null ? null : decodeMailboxBody(raw.kind, raw.body);
}
