/**
 * The events service's bytes (virtual port 1002): frames on a reliable
 * stream, each `kind u8 | length u32 | body`, big-endian.
 *
 * | kind | name      | body                                                                   |
 * |-----:|-----------|------------------------------------------------------------------------|
 * | 0x01 | SUBSCRIBE | pattern (1–128 bytes, the whole body)                                  |
 * | 0x02 | PUBLISH   | id u32, topic_len u8, topic, data (the rest, ≤ 64 KiB)                 |
 * | 0x03 | EVENT     | seq u64, time u64 (ms since the epoch), from address (6), from key (32), topic_len u8, topic, data |
 * | 0x04 | OVERFLOW  | dropped u64, first_seq u64, last_seq u64                               |
 * | 0x05 | ACK       | id u32, seq u64, delivered u32, dropped u32                            |
 * | 0x06 | ERROR     | id u32, code_len u8, code (`[a-z_]`, ≤ 32), message (UTF-8, ≤ 512)     |
 *
 * Topics and patterns follow the grammar of `pubsub_topic.ts` (a frame
 * with a malformed one is refused).
 *
 * Framing is `framing.ts`'s, with the caps table {@linkcode PUBSUB_FRAMES}: a
 * frame's header is checked before its body is buffered, an unknown kind or
 * a length outside that kind's bounds is refused at once, so no decoder
 * ever allocates from an unchecked length. Decoders throw only
 * {@linkcode DecodeError}; encoders throw `TypeError` or `RangeError` for
 * anything the decoder would refuse. Decoded byte fields are views into the
 * input.
 *
 * @module
 */
import { PUBSUB_MAX_DATA, PUBSUB_MAX_ERROR_MESSAGE, PUBSUB_MAX_TOPIC } from "../constants.ts";
import { type Address, addressToBytes, formatAddress } from "../identity/address.ts";
import { DecodeError, Reader, Writer } from "../bytes.ts";
import {
  checkFrameHeader,
  FRAME_HEADER_SIZE,
  type FrameCaps,
  type FrameReader,
  type RawFrame,
  splitFrame,
} from "./framing.ts";
import {
  checkPattern,
  checkTopic,
  patternMessage,
  patternProblem,
  quoteInput,
  topicMessage,
  topicProblem,
} from "./pubsub_topic.ts";

/** Kind byte of SUBSCRIBE: the first frame of a subscription stream. */
export const PUBSUB_SUBSCRIBE = 0x01;
/** Kind byte of PUBLISH: one event for the broker to fan out. */
export const PUBSUB_PUBLISH = 0x02;
/** Kind byte of EVENT: one event pushed to a subscriber. */
export const PUBSUB_EVENT = 0x03;
/** Kind byte of OVERFLOW: how many events a slow subscriber lost. */
export const PUBSUB_OVERFLOW = 0x04;
/** Kind byte of ACK: a publish fanned out, or a subscription in place. */
export const PUBSUB_ACK = 0x05;
/** Kind byte of ERROR: a refusal with a code and a message. */
export const PUBSUB_ERROR = 0x06;

/** Size of an encoded OVERFLOW frame, header included. */
export const OVERFLOW_FRAME_SIZE: number = FRAME_HEADER_SIZE + 24;
/** Size of an encoded ACK frame, header included. */
export const ACK_FRAME_SIZE: number = FRAME_HEADER_SIZE + 20;
/** Longest error code in an ERROR frame. */
export const MAX_ERROR_CODE = 32;
/** Largest u64 a decoder accepts (exact as a number). */
export const MAX_PUBSUB_U64: number = Number.MAX_SAFE_INTEGER;

const ADDRESS_SIZE = 6;
const KEY_SIZE = 32;
const EVENT_FIXED = 8 + 8 + ADDRESS_SIZE + KEY_SIZE + 1;

/** The caps table of port-1002 frames: each kind's name and smallest and largest body. */
export const PUBSUB_FRAMES: FrameCaps = {
  label: "events",
  kinds: {
    [PUBSUB_SUBSCRIBE]: { name: "SUBSCRIBE", min: 1, max: PUBSUB_MAX_TOPIC },
    [PUBSUB_PUBLISH]: { name: "PUBLISH", min: 6, max: 5 + PUBSUB_MAX_TOPIC + PUBSUB_MAX_DATA },
    [PUBSUB_EVENT]: {
      name: "EVENT",
      min: EVENT_FIXED + 1,
      max: EVENT_FIXED + PUBSUB_MAX_TOPIC + PUBSUB_MAX_DATA,
    },
    [PUBSUB_OVERFLOW]: { name: "OVERFLOW", min: 24, max: 24 },
    [PUBSUB_ACK]: { name: "ACK", min: 20, max: 20 },
    [PUBSUB_ERROR]: {
      name: "ERROR",
      min: 6,
      max: 5 + MAX_ERROR_CODE + PUBSUB_MAX_ERROR_MESSAGE,
    },
  },
};

/** Largest encoded frame of any kind, header included. */
export const MAX_PUBSUB_FRAME: number = FRAME_HEADER_SIZE + PUBSUB_FRAMES.kinds[PUBSUB_EVENT]!.max;

/** SUBSCRIBE: makes the stream a subscription to `pattern`. */
export interface SubscribeFrame {
  /** Frame kind. */
  kind: "subscribe";
  /** Topic pattern: a topic, `prefix.*` or `*`. */
  pattern: string;
}

/** PUBLISH: one event for the broker to fan out. */
export interface PublishFrame {
  /** Frame kind. */
  kind: "publish";
  /** Chosen by the publisher, echoed by the ACK or ERROR (0: nothing to correlate). */
  id: number;
  /** The topic. */
  topic: string;
  /** The event's data, at most `PUBSUB_MAX_DATA` bytes. */
  data: Uint8Array;
}

/** EVENT: one published event, as a subscriber receives it. */
export interface EventFrame {
  /** Frame kind. */
  kind: "event";
  /** The broker's sequence number of the publish, from 1, increasing. */
  seq: number;
  /** When the broker accepted it (ms since the epoch, the broker's clock). */
  time: number;
  /** The publisher's address (the broker's own for local publishes). */
  from: Address;
  /** The publisher's Ed25519 identity key (32 bytes). */
  fromKey: Uint8Array;
  /** The topic. */
  topic: string;
  /** The event's data. */
  data: Uint8Array;
}

/** OVERFLOW: events dropped for this subscriber because it did not keep up. */
export interface OverflowFrame {
  /** Frame kind. */
  kind: "overflow";
  /** How many events were dropped (at least 1). */
  dropped: number;
  /** Seq of the first dropped event. */
  firstSeq: number;
  /** Seq of the last dropped event. */
  lastSeq: number;
}

/** ACK: a PUBLISH was fanned out (or, as a subscription's first frame, the SUBSCRIBE took effect). */
export interface AckFrame {
  /** Frame kind. */
  kind: "ack";
  /** The PUBLISH's id (0 for a subscription). */
  id: number;
  /** The event's seq (for a subscription: the last seq assigned before it; later ones match). */
  seq: number;
  /** Subscriptions whose queue took the event. */
  delivered: number;
  /** Subscriptions that matched but had to drop it (they get an OVERFLOW). */
  dropped: number;
}

/** ERROR: a refusal. */
export interface ErrorFrame {
  /** Frame kind. */
  kind: "error";
  /** The refused PUBLISH's id, or 0 when the refusal ends the stream. */
  id: number;
  /** Machine-readable code (`[a-z_]`, 1–32 bytes), e.g. `bad_topic`, `limit`. */
  code: string;
  /** One sentence for a human, quoting the bad input. */
  message: string;
}

/** Any frame on a port-1002 stream, discriminated by `kind`. */
export type PubSubFrame =
  | SubscribeFrame
  | PublishFrame
  | EventFrame
  | OverflowFrame
  | AckFrame
  | ErrorFrame;

const encoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is part of the text, not something to drop silently.
const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const CODE = /^[a-z_]{1,32}$/;

// ---- Encoding ----

function checkU32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new RangeError(`Invalid ${what} ${v}: expected an integer from 0 to 4294967295`);
  }
}

function checkU64(v: number, what: string, min = 0): void {
  if (!Number.isInteger(v) || v < min || v > MAX_PUBSUB_U64) {
    throw new RangeError(`Invalid ${what} ${v}: expected an integer from ${min} to 2^53 - 1`);
  }
}

function checkData(data: Uint8Array): void {
  if (data.length > PUBSUB_MAX_DATA) {
    throw new RangeError(
      `Event data of ${data.length} bytes is over the ${PUBSUB_MAX_DATA}-byte limit`,
    );
  }
}

function topicBytes(topic: string): Uint8Array {
  return encoder.encode(checkTopic(topic)); // valid topics are ASCII
}

function header(w: Writer, kind: number, bodyLength: number): Writer {
  return w.u8(kind).u32(bodyLength);
}

/**
 * Encodes one frame, header included. Throws `TypeError` for a malformed
 * topic, pattern or error code and `RangeError` for an out-of-range number
 * or oversized data or message.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "./pubsub_frame.ts";
 * const bytes = encodeFrame({ kind: "subscribe", pattern: "swarm.*" });
 * bytes.length; // 5 + 7
 * ```
 */
export function encodeFrame(frame: PubSubFrame): Uint8Array {
  switch (frame.kind) {
    case "subscribe": {
      const p = encoder.encode(checkPattern(frame.pattern));
      return header(new Writer(FRAME_HEADER_SIZE + p.length), PUBSUB_SUBSCRIBE, p.length)
        .bytes(p).finish();
    }
    case "publish": {
      checkU32(frame.id, "publish id");
      const t = topicBytes(frame.topic);
      checkData(frame.data);
      const n = 5 + t.length + frame.data.length;
      return header(new Writer(FRAME_HEADER_SIZE + n), PUBSUB_PUBLISH, n)
        .u32(frame.id).u8(t.length).bytes(t).bytes(frame.data).finish();
    }
    case "event": {
      checkU64(frame.seq, "event seq", 1);
      checkU64(frame.time, "event time");
      const t = topicBytes(frame.topic);
      checkData(frame.data);
      if (frame.fromKey.length !== KEY_SIZE) {
        throw new RangeError(`Invalid sender key of ${frame.fromKey.length} bytes: expected 32`);
      }
      const from = addressToBytes(frame.from);
      const n = EVENT_FIXED + t.length + frame.data.length;
      return header(new Writer(FRAME_HEADER_SIZE + n), PUBSUB_EVENT, n)
        .u64(BigInt(frame.seq)).u64(BigInt(frame.time)).bytes(from).bytes(frame.fromKey)
        .u8(t.length).bytes(t).bytes(frame.data).finish();
    }
    case "overflow": {
      checkU64(frame.dropped, "dropped count", 1);
      checkU64(frame.firstSeq, "first dropped seq", 1);
      checkU64(frame.lastSeq, "last dropped seq", frame.firstSeq);
      if (frame.dropped > frame.lastSeq - frame.firstSeq + 1) {
        throw new RangeError(
          `Invalid overflow: ${frame.dropped} dropped events do not fit seqs ${frame.firstSeq}-${frame.lastSeq}`,
        );
      }
      return header(new Writer(OVERFLOW_FRAME_SIZE), PUBSUB_OVERFLOW, 24)
        .u64(BigInt(frame.dropped)).u64(BigInt(frame.firstSeq)).u64(BigInt(frame.lastSeq))
        .finish();
    }
    case "ack": {
      checkU32(frame.id, "ack id");
      checkU64(frame.seq, "ack seq");
      checkU32(frame.delivered, "delivered count");
      checkU32(frame.dropped, "dropped count");
      return header(new Writer(ACK_FRAME_SIZE), PUBSUB_ACK, 20)
        .u32(frame.id).u64(BigInt(frame.seq)).u32(frame.delivered).u32(frame.dropped).finish();
    }
    case "error": {
      checkU32(frame.id, "error id");
      if (!CODE.test(frame.code)) {
        throw new TypeError(
          `Invalid error code ${quoteInput(frame.code)}: expected 1-32 of [a-z_]`,
        );
      }
      const m = encoder.encode(frame.message);
      if (m.length > PUBSUB_MAX_ERROR_MESSAGE) {
        throw new RangeError(
          `Error message of ${m.length} bytes is over the ${PUBSUB_MAX_ERROR_MESSAGE}-byte limit`,
        );
      }
      const n = 5 + frame.code.length + m.length;
      return header(new Writer(FRAME_HEADER_SIZE + n), PUBSUB_ERROR, n)
        .u32(frame.id).u8(frame.code.length).bytes(encoder.encode(frame.code)).bytes(m)
        .finish();
    }
  }
}

// ---- Decoding ----

function refuse(reason: string, message: string): never {
  throw new DecodeError(reason, message);
}

function utf8(bytes: Uint8Array, what: string): string {
  try {
    return fatal.decode(bytes);
  } catch {
    return refuse("bad_utf8", `Cannot decode ${what}: not valid UTF-8`);
  }
}

function u64(r: Reader, what: string, min = 0): number {
  const v = r.u64(what);
  if (v > BigInt(MAX_PUBSUB_U64) || v < BigInt(min)) {
    refuse("out_of_range", `Cannot decode ${what} ${v}: expected ${min} to 2^53 - 1`);
  }
  return Number(v);
}

function topicField(r: Reader, frame: string): string {
  const n = r.u8(`${frame} topic length`);
  const topic = utf8(r.bytes(n, `${frame} topic`), `${frame} topic`);
  const why = topicProblem(topic);
  if (why !== null) refuse("bad_topic", topicMessage(topic, why));
  return topic;
}

function dataField(r: Reader): Uint8Array {
  if (r.remaining > PUBSUB_MAX_DATA) {
    refuse(
      "too_large",
      `Event data of ${r.remaining} bytes is over the ${PUBSUB_MAX_DATA}-byte limit`,
    );
  }
  return r.rest();
}

/** Decodes a body of a known kind (strict: every byte used, every field in range). */
export function decodeBody(raw: RawFrame): PubSubFrame {
  const { name } = PUBSUB_FRAMES.kinds[raw.kind] ?? { name: "" };
  checkFrameHeader(PUBSUB_FRAMES, raw.kind, raw.body.length);
  const r = new Reader(raw.body);
  let frame: PubSubFrame;
  switch (raw.kind) {
    case PUBSUB_SUBSCRIBE: {
      const pattern = utf8(r.rest(), "SUBSCRIBE pattern");
      const why = patternProblem(pattern);
      if (why !== null) refuse("bad_pattern", patternMessage(pattern, why));
      frame = { kind: "subscribe", pattern };
      break;
    }
    case PUBSUB_PUBLISH: {
      const id = r.u32("PUBLISH id");
      const topic = topicField(r, "PUBLISH");
      frame = { kind: "publish", id, topic, data: dataField(r) };
      break;
    }
    case PUBSUB_EVENT: {
      const seq = u64(r, "EVENT seq", 1);
      const time = u64(r, "EVENT time");
      const addressBytes = r.bytes(ADDRESS_SIZE, "EVENT sender address");
      let from: Address;
      try {
        from = formatAddress(addressBytes);
      } catch (e) {
        return refuse("bad_address", `Cannot decode EVENT sender: ${(e as Error).message}`);
      }
      const fromKey = r.bytes(KEY_SIZE, "EVENT sender key");
      const topic = topicField(r, "EVENT");
      frame = { kind: "event", seq, time, from, fromKey, topic, data: dataField(r) };
      break;
    }
    case PUBSUB_OVERFLOW: {
      const dropped = u64(r, "OVERFLOW dropped count", 1);
      const firstSeq = u64(r, "OVERFLOW first seq", 1);
      const lastSeq = u64(r, "OVERFLOW last seq", firstSeq);
      if (dropped > lastSeq - firstSeq + 1) {
        refuse(
          "out_of_range",
          `Cannot decode OVERFLOW: ${dropped} dropped events do not fit seqs ${firstSeq}-${lastSeq}`,
        );
      }
      frame = { kind: "overflow", dropped, firstSeq, lastSeq };
      break;
    }
    case PUBSUB_ACK: {
      const id = r.u32("ACK id");
      const seq = u64(r, "ACK seq");
      frame = {
        kind: "ack",
        id,
        seq,
        delivered: r.u32("ACK delivered"),
        dropped: r.u32("ACK dropped"),
      };
      break;
    }
    default: {
      const id = r.u32("ERROR id");
      const n = r.u8("ERROR code length");
      const code = utf8(r.bytes(n, "ERROR code"), "ERROR code");
      if (!CODE.test(code)) {
        refuse("bad_code", `Cannot decode ERROR code ${quoteInput(code)}: expected 1-32 of [a-z_]`);
      }
      const rest = r.rest();
      if (rest.length > PUBSUB_MAX_ERROR_MESSAGE) {
        refuse("too_large", `ERROR message of ${rest.length} bytes is over its limit`);
      }
      frame = { kind: "error", id, code, message: utf8(rest, "ERROR message") };
    }
  }
  r.end(name);
  return frame;
}

/** Decodes exactly one whole frame, header included (strict: no trailing bytes). */
export function decodeFrame(bytes: Uint8Array): PubSubFrame {
  return decodeBody(splitFrame(PUBSUB_FRAMES, bytes));
}

/** The next whole frame from a reader over {@linkcode PUBSUB_FRAMES}, decoded, or null at a clean end; DecodeError only. */
export async function nextPubSubFrame(reader: FrameReader): Promise<PubSubFrame | null> {
  const raw = await reader.next();
  return raw === null ? null : decodeBody(raw);
}
