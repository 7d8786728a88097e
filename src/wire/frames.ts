/**
 * Outer UDP frames: the bytes the tunnel puts in every datagram. The first
 * byte is the frame type; integers are big-endian. See `docs/PROTOCOL.md`.
 *
 * Decoders throw only {@linkcode DecodeError}; encoders throw `RangeError`
 * for a value the wire cannot carry, so that nothing is ever encoded that the
 * decoder would refuse. Decoded byte fields are views into the input, not
 * copies: copy them before the input buffer is reused.
 *
 * @module
 */

import { MAX_DATAGRAM, MSG1_SIZE, REJECT_AFTER_MESSAGES } from "../constants.ts";
import { DecodeError, Reader, Writer } from "../bytes.ts";

/** Type byte of handshake message 1. */
export const FRAME_HANDSHAKE_INIT = 0x01;
/** Type byte of handshake message 2. */
export const FRAME_HANDSHAKE_RESP = 0x02;
/** Type byte of handshake message 3. */
export const FRAME_HANDSHAKE_FINAL = 0x03;
/** Type byte of a cookie reply. */
export const FRAME_COOKIE_REPLY = 0x04;
/** Type byte of a transport data frame. */
export const FRAME_DATA = 0x05;

/** Size of mac1 and mac2 on handshake message 1. */
export const MAC_SIZE = 16;
/** Size of the AES-GCM tag that ends every data frame. */
export const TAG_SIZE = 16;
/** Size of the Noise message inside handshake message 1 (ephemeral key and padding payload). */
export const MSG1_NOISE_SIZE = MSG1_SIZE - 1 - 4 - 2 * MAC_SIZE;
/** Smallest Noise message 2: ephemeral key, encrypted static key, payload tag. */
export const MIN_RESP_NOISE_SIZE = 32 + 48 + 16;
/** Largest Noise message 2, so that message 2 is never larger than message 1. */
export const MAX_RESP_NOISE_SIZE = MSG1_SIZE - 9;
/** Smallest Noise message 3: encrypted static key and payload tag. */
export const MIN_FINAL_NOISE_SIZE = 48 + 16;
/** Largest Noise message 3, so that the frame fits in one datagram on real networks. */
export const MAX_FINAL_NOISE_SIZE = MAX_DATAGRAM - 9;
/** Size of a cookie reply frame. */
export const COOKIE_REPLY_SIZE = 1 + 4 + 16 + 16;
/** Size of the data frame header, which is also the AEAD associated data. */
export const DATA_HEADER_SIZE = 13;
/** Largest data frame: the largest UDP payload over IPv4. */
export const MAX_DATA_FRAME_SIZE = 65_507;

const MAC1_OFFSET = MSG1_SIZE - 2 * MAC_SIZE;
const MAC2_OFFSET = MSG1_SIZE - MAC_SIZE;
const TWO_POW_32 = 0x1_0000_0000;
const COUNTER_HIGH_LIMIT = REJECT_AFTER_MESSAGES / TWO_POW_32;

/** Handshake message 1 (initiator to responder), exactly `MSG1_SIZE` bytes. */
export interface HandshakeInitFrame {
  /** Frame kind. */
  type: "init";
  /** Initiator's session index, never 0. */
  senderIndex: number;
  /** Noise message 1, exactly `MSG1_NOISE_SIZE` bytes. */
  noise: Uint8Array;
  /** MAC over the bytes before it, keyed by the responder's static key (or zeros). */
  mac1: Uint8Array;
  /** Cookie MAC over the bytes before it (or zeros). */
  mac2: Uint8Array;
}

/** Handshake message 2 (responder to initiator). */
export interface HandshakeRespFrame {
  /** Frame kind. */
  type: "resp";
  /** Responder's session index, never 0. */
  senderIndex: number;
  /** Initiator's session index from message 1, never 0. */
  receiverIndex: number;
  /** Noise message 2. */
  noise: Uint8Array;
}

/** Handshake message 3 (initiator to responder). */
export interface HandshakeFinalFrame {
  /** Frame kind. */
  type: "final";
  /** Initiator's session index, never 0. */
  senderIndex: number;
  /** Responder's session index from message 2, never 0. */
  receiverIndex: number;
  /** Noise message 3. */
  noise: Uint8Array;
}

/** Cookie reply sent instead of message 2 while the responder is under load. */
export interface CookieReplyFrame {
  /** Frame kind. */
  type: "cookie";
  /** Initiator's session index from message 1, never 0. */
  receiverIndex: number;
  /** Unpredictable value echoed from message 1, 16 bytes. */
  echo: Uint8Array;
  /** Cookie bound to the initiator's source address, 16 bytes. */
  cookie: Uint8Array;
}

/** Transport data frame as decoded; `header` is the AEAD associated data. */
export interface DataFrame {
  /** Frame kind. */
  type: "data";
  /** Receiver's session index, never 0. */
  receiverIndex: number;
  /** Per-direction packet counter, below `REJECT_AFTER_MESSAGES`; the AEAD nonce. */
  counter: number;
  /** View of the first `DATA_HEADER_SIZE` bytes of the frame. */
  header: Uint8Array;
  /** View of the ciphertext followed by its tag, at least `TAG_SIZE` bytes. */
  body: Uint8Array;
}

/** Any outer frame, discriminated by `type`. */
export type Frame =
  | HandshakeInitFrame
  | HandshakeRespFrame
  | HandshakeFinalFrame
  | CookieReplyFrame
  | DataFrame;

/** What {@linkcode encodeFrame} needs: a data frame's header is derived, never supplied. */
export type FrameInput = Exclude<Frame, DataFrame> | Omit<DataFrame, "header">;

function refuse(reason: string, message: string): never {
  throw new DecodeError(reason, message);
}

function decodeIndex(r: Reader, frame: string, field: string): number {
  const v = r.u32(`${frame} ${field}`);
  if (v === 0) {
    refuse("reserved_index", `Cannot decode ${frame}: ${field} is 0, expected a nonzero index`);
  }
  return v;
}

function checkIndex(v: number, field: string): void {
  if (!Number.isInteger(v) || v < 1 || v > 0xffff_ffff) {
    throw new RangeError(`Invalid ${field} ${v}: expected an integer from 1 to 4294967295`);
  }
}

function checkCounter(v: number): void {
  if (!Number.isInteger(v) || v < 0 || v >= REJECT_AFTER_MESSAGES) {
    throw new RangeError(
      `Invalid counter ${v}: expected an integer from 0 to ${REJECT_AFTER_MESSAGES - 1}`,
    );
  }
}

function checkSize(v: Uint8Array, field: string, min: number, max: number): void {
  if (v.length < min || v.length > max) {
    const want = min === max ? `exactly ${min}` : `${min} to ${max}`;
    throw new RangeError(`Invalid ${field} of ${v.length} bytes: expected ${want} bytes`);
  }
}

function decodeInit(bytes: Uint8Array): HandshakeInitFrame {
  if (bytes.length !== MSG1_SIZE) {
    refuse(
      "bad_length",
      `Cannot decode handshake init of ${bytes.length} bytes: expected exactly ${MSG1_SIZE}`,
    );
  }
  const r = new Reader(bytes);
  r.u8();
  const senderIndex = decodeIndex(r, "handshake init", "sender index");
  const noise = r.bytes(MSG1_NOISE_SIZE, "handshake init noise");
  const mac1 = r.bytes(MAC_SIZE, "handshake init mac1");
  const mac2 = r.bytes(MAC_SIZE, "handshake init mac2");
  r.end("handshake init");
  return { type: "init", senderIndex, noise, mac1, mac2 };
}

function decodeHandshakeReply(
  bytes: Uint8Array,
  frame: string,
  minNoise: number,
  maxNoise: number,
): { senderIndex: number; receiverIndex: number; noise: Uint8Array } {
  const r = new Reader(bytes);
  r.u8();
  const senderIndex = decodeIndex(r, frame, "sender index");
  const receiverIndex = decodeIndex(r, frame, "receiver index");
  const noise = r.rest();
  if (noise.length < minNoise) {
    refuse(
      "truncated",
      `Cannot decode ${frame}: noise is ${noise.length} bytes, expected at least ${minNoise}`,
    );
  }
  if (noise.length > maxNoise) {
    refuse(
      "too_long",
      `Cannot decode ${frame}: noise is ${noise.length} bytes, expected at most ${maxNoise}`,
    );
  }
  return { senderIndex, receiverIndex, noise };
}

function decodeCookie(bytes: Uint8Array): CookieReplyFrame {
  if (bytes.length !== COOKIE_REPLY_SIZE) {
    refuse(
      "bad_length",
      `Cannot decode cookie reply of ${bytes.length} bytes: expected exactly ${COOKIE_REPLY_SIZE}`,
    );
  }
  const r = new Reader(bytes);
  r.u8();
  const receiverIndex = decodeIndex(r, "cookie reply", "receiver index");
  const echo = r.bytes(16, "cookie reply echo");
  const cookie = r.bytes(16, "cookie reply cookie");
  r.end("cookie reply");
  return { type: "cookie", receiverIndex, echo, cookie };
}

function readU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

// The hot path: every length is checked up front, so reads cannot go out of
// bounds, and it allocates nothing but the result and its two views (no
// Reader, no DataView, no bigint).
function decodeData(bytes: Uint8Array): DataFrame {
  const n = bytes.length;
  if (n < DATA_HEADER_SIZE + TAG_SIZE) {
    refuse(
      "truncated",
      `Cannot decode data frame of ${n} bytes: expected at least ${DATA_HEADER_SIZE + TAG_SIZE}`,
    );
  }
  if (n > MAX_DATA_FRAME_SIZE) {
    refuse(
      "too_long",
      `Cannot decode data frame of ${n} bytes: expected at most ${MAX_DATA_FRAME_SIZE}`,
    );
  }
  const receiverIndex = readU32(bytes, 1);
  if (receiverIndex === 0) {
    refuse("reserved_index", "Cannot decode data frame: receiver index is 0, expected nonzero");
  }
  const high = readU32(bytes, 5);
  if (high >= COUNTER_HIGH_LIMIT) {
    refuse(
      "counter_limit",
      `Cannot decode data frame: counter ${BigInt(high) << 32n | BigInt(readU32(bytes, 9))} ` +
        `is at or above the limit ${REJECT_AFTER_MESSAGES}`,
    );
  }
  return {
    type: "data",
    receiverIndex,
    counter: high * TWO_POW_32 + readU32(bytes, 9),
    header: bytes.subarray(0, DATA_HEADER_SIZE),
    body: bytes.subarray(DATA_HEADER_SIZE),
  };
}

/**
 * Decodes one outer frame, throwing {@linkcode DecodeError} for anything that
 * {@linkcode encodeFrame} would not have produced.
 *
 * @example
 * ```ts
 * import { decodeFrame } from "./frames.ts";
 * const f = decodeFrame(Uint8Array.fromHex("05000000010000000000000007" + "00".repeat(16)));
 * if (f.type === "data") console.log(f.receiverIndex, f.counter); // 1 7
 * ```
 */
export function decodeFrame(bytes: Uint8Array): Frame {
  switch (bytes[0]) {
    case FRAME_DATA:
      return decodeData(bytes);
    case FRAME_HANDSHAKE_INIT:
      return decodeInit(bytes);
    case FRAME_HANDSHAKE_RESP:
      return {
        type: "resp",
        ...decodeHandshakeReply(bytes, "handshake resp", MIN_RESP_NOISE_SIZE, MAX_RESP_NOISE_SIZE),
      };
    case FRAME_HANDSHAKE_FINAL:
      return {
        type: "final",
        ...decodeHandshakeReply(
          bytes,
          "handshake final",
          MIN_FINAL_NOISE_SIZE,
          MAX_FINAL_NOISE_SIZE,
        ),
      };
    case FRAME_COOKIE_REPLY:
      return decodeCookie(bytes);
    case undefined:
      return refuse("truncated", "Cannot decode frame: the datagram is empty");
    default:
      return refuse(
        "unknown_type",
        `Cannot decode frame type 0x${bytes[0].toString(16).padStart(2, "0")}: ` +
          "expected 0x01 to 0x05",
      );
  }
}

// Writes the header into out[0..13); callers allocate, so the send path can
// build header and body in one buffer.
function writeDataHeader(out: Uint8Array, receiverIndex: number, counter: number): void {
  checkIndex(receiverIndex, "receiver index");
  checkCounter(counter);
  const high = Math.floor(counter / TWO_POW_32);
  const low = counter >>> 0;
  out[0] = FRAME_DATA;
  out[1] = receiverIndex >>> 24;
  out[2] = receiverIndex >>> 16;
  out[3] = receiverIndex >>> 8;
  out[4] = receiverIndex;
  out[5] = high >>> 24;
  out[6] = high >>> 16;
  out[7] = high >>> 8;
  out[8] = high;
  out[9] = low >>> 24;
  out[10] = low >>> 16;
  out[11] = low >>> 8;
  out[12] = low;
}

/**
 * Encodes the 13-byte data frame header, the associated data of its AEAD.
 *
 * @example
 * ```ts
 * import { encodeDataHeader } from "./frames.ts";
 * encodeDataHeader(1, 7).toHex(); // "05000000010000000000000007"
 * ```
 */
export function encodeDataHeader(receiverIndex: number, counter: number): Uint8Array {
  const out = new Uint8Array(DATA_HEADER_SIZE);
  writeDataHeader(out, receiverIndex, counter);
  return out;
}

function encodeHandshakeReply(
  type: number,
  frame: HandshakeRespFrame | HandshakeFinalFrame,
  minNoise: number,
  maxNoise: number,
): Uint8Array {
  checkIndex(frame.senderIndex, "sender index");
  checkIndex(frame.receiverIndex, "receiver index");
  checkSize(frame.noise, `handshake ${frame.type} noise`, minNoise, maxNoise);
  return new Writer(9 + frame.noise.length)
    .u8(type)
    .u32(frame.senderIndex)
    .u32(frame.receiverIndex)
    .bytes(frame.noise)
    .finish();
}

/**
 * Encodes one outer frame; throws `RangeError` for an index of 0, a counter at
 * or above `REJECT_AFTER_MESSAGES`, or a field of the wrong size.
 */
export function encodeFrame(frame: FrameInput): Uint8Array {
  switch (frame.type) {
    case "init":
      checkIndex(frame.senderIndex, "sender index");
      checkSize(frame.noise, "handshake init noise", MSG1_NOISE_SIZE, MSG1_NOISE_SIZE);
      checkSize(frame.mac1, "mac1", MAC_SIZE, MAC_SIZE);
      checkSize(frame.mac2, "mac2", MAC_SIZE, MAC_SIZE);
      return new Writer(MSG1_SIZE)
        .u8(FRAME_HANDSHAKE_INIT)
        .u32(frame.senderIndex)
        .bytes(frame.noise)
        .bytes(frame.mac1)
        .bytes(frame.mac2)
        .finish();
    case "resp":
      return encodeHandshakeReply(
        FRAME_HANDSHAKE_RESP,
        frame,
        MIN_RESP_NOISE_SIZE,
        MAX_RESP_NOISE_SIZE,
      );
    case "final":
      return encodeHandshakeReply(
        FRAME_HANDSHAKE_FINAL,
        frame,
        MIN_FINAL_NOISE_SIZE,
        MAX_FINAL_NOISE_SIZE,
      );
    case "cookie":
      checkIndex(frame.receiverIndex, "receiver index");
      checkSize(frame.echo, "cookie reply echo", 16, 16);
      checkSize(frame.cookie, "cookie reply cookie", 16, 16);
      return new Writer(COOKIE_REPLY_SIZE)
        .u8(FRAME_COOKIE_REPLY)
        .u32(frame.receiverIndex)
        .bytes(frame.echo)
        .bytes(frame.cookie)
        .finish();
    case "data": {
      checkSize(frame.body, "data frame body", TAG_SIZE, MAX_DATA_FRAME_SIZE - DATA_HEADER_SIZE);
      const out = new Uint8Array(DATA_HEADER_SIZE + frame.body.length);
      writeDataHeader(out, frame.receiverIndex, frame.counter);
      out.set(frame.body, DATA_HEADER_SIZE);
      return out;
    }
  }
}

function checkInit(frame: Uint8Array, fn: string): void {
  if (frame.length !== MSG1_SIZE || frame[0] !== FRAME_HANDSHAKE_INIT) {
    throw new RangeError(
      `Cannot take ${fn} of a ${frame.length}-byte frame of type ${frame[0]}: ` +
        `expected a ${MSG1_SIZE}-byte handshake init`,
    );
  }
}

/** Returns a view of the bytes of an encoded handshake init that mac1 covers (all before mac1). */
export function macInput1(frame: Uint8Array): Uint8Array {
  checkInit(frame, "macInput1()");
  return frame.subarray(0, MAC1_OFFSET);
}

/** Returns a view of the bytes of an encoded handshake init that mac2 covers (all before mac2). */
export function macInput2(frame: Uint8Array): Uint8Array {
  checkInit(frame, "macInput2()");
  return frame.subarray(0, MAC2_OFFSET);
}
