/**
 * Issue 8 item 11 for the frames on reliable streams: messages (port 1001,
 * `message_frame.ts`), events (port 1002, `pubsub_frame.ts`) and the
 * framing both share (`framing.ts`, its FrameReader by pull and by push).
 * Each decoder takes at least 100,000 fuzzed inputs (seeded, see
 * `_fuzz.ts`) and only ever returns a value that re-encodes to exactly its
 * input or throws DecodeError; length fields that claim more bytes than
 * follow are all refused without growing RSS.
 *
 * Replay a failure with `FUZZ_SEED=<seed> deno test -A tests/fuzz_stream_frames_test.ts`.
 */

import fixtures from "./fixtures/identities.json" with { type: "json" };
import assert from "node:assert/strict";
import { concat, DecodeError, utf8 } from "../src/bytes.ts";
import { formatAddress } from "../src/identity/address.ts";
import { decodeIdentityFile } from "../src/identity/identity.ts";
import { type ChunkSource, FrameReader, type RawFrame } from "../src/wire/framing.ts";
import {
  decodeFrame as decodeMessageFrame,
  decodeFrameBody as decodeMessageBody,
  decodeFrameHeader,
  encodeFrame as encodeMessageFrame,
  encodeFrameHeader,
  frameCap,
  type FrameKind,
  MAX_ENVELOPE_OVERHEAD,
  MESSAGE_FRAMES,
  type MessageFrame,
} from "../src/wire/message_frame.ts";
import {
  decodeBody as decodePubSubBody,
  decodeFrame as decodePubSubFrame,
  encodeFrame as encodePubSubFrame,
  MAX_PUBSUB_FRAME,
  PUBSUB_FRAMES,
  type PubSubFrame,
} from "../src/wire/pubsub_frame.ts";
import {
  assertNoAllocationFromLengths,
  assertReachesBoth,
  type Corpus,
  envelopeFields,
  ENVELOPES,
  fuzz,
  fuzzAsync,
  type LengthField,
  makeInput,
  pastEndInputs,
  pattern,
  probeAllocations,
  Rng,
  type Seed,
  seedFor,
  time,
  u32,
  u8,
} from "./_fuzz.ts";
import { MAX_STREAM_MESSAGE } from "../src/constants.ts";

const ALICE = decodeIdentityFile(JSON.stringify(fixtures[0]));
const MAX_U53 = Number.MAX_SAFE_INTEGER;

/** `[kind byte, body]` of an encoded frame, for the body decoders (which take any kind byte). */
function kindAndBody(seed: Seed): Seed {
  return {
    bytes: concat(seed.bytes.subarray(0, 1), seed.bytes.subarray(5)),
    lengths: seed.lengths.filter((f) => f.offset >= 5).map((f) => ({ ...f, offset: f.offset - 4 })),
  };
}

/** A chunk source over `bytes`, cut at random places. */
function chunked(bytes: Uint8Array, rng: Rng): ChunkSource {
  const chunks = cut(bytes, rng);
  let i = 0;
  return { read: () => Promise.resolve(i < chunks.length ? chunks[i++]! : null) };
}

/** `bytes` as views cut at random places (half the time in one piece). */
function cut(bytes: Uint8Array, rng: Rng): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let o = 0;
  while (o < bytes.length) {
    const n = rng.chance(0.5) ? bytes.length - o : rng.between(1, bytes.length - o);
    chunks.push(bytes.subarray(o, o + n));
    o += n;
  }
  return chunks;
}

/**
 * A stream of one to three inputs from `corpus` back to back; random parts
 * stay below 70,000 bytes (copying many 16 MiB parts would cost more than
 * it finds: hostile length fields still claim every size).
 */
function streamInput(whole: Corpus) {
  const corpus = { ...whole, maxLength: Math.min(whole.maxLength, 70_000) };
  return (rng: Rng): Uint8Array => {
    const parts = Array.from({ length: rng.between(1, 3) }, () => makeInput(rng, corpus));
    return parts.length === 1 ? parts[0]! : concat(...parts);
  };
}

// ---- Messages (message_frame.ts) ----

const messageFrames: MessageFrame[] = [
  ...ENVELOPES.map((envelope): MessageFrame => ({ kind: "message", envelope })),
  {
    kind: "file_begin",
    file: { id: "f-1", name: "report.pdf", size: 12345, sha256: pattern(32) },
  },
  {
    kind: "file_begin",
    file: { id: "i".repeat(128), name: "n".repeat(255), size: MAX_U53, sha256: pattern(32, 9) },
  },
  { kind: "file_data", data: pattern(1) },
  { kind: "file_data", data: pattern(5000) },
  { kind: "file_end", cancelled: false },
  { kind: "file_end", cancelled: true },
  {
    kind: "receipt",
    receipt: { subject: "message", status: "stored", seq: 42, id: "job-1", detail: "" },
  },
  {
    kind: "receipt",
    receipt: {
      subject: "message",
      status: "refused",
      seq: 0,
      id: "job-1",
      detail: "conflict",
      stored: { size: 7, digest: pattern(32, 5) },
    },
  },
  {
    kind: "receipt",
    receipt: {
      subject: "file",
      status: "duplicate",
      seq: MAX_U53,
      id: "f-1",
      detail: "",
      name: "report (1).pdf",
      size: 12345,
      sha256: pattern(32, 6),
    },
  },
];

/** The length fields of an encoded message frame: the header's and its body's. */
function messageFields(f: MessageFrame, bytes: Uint8Array): LengthField[] {
  const fields = [u32(1, frameCap(bytes[0]! as FrameKind))];
  switch (f.kind) {
    case "message":
      return [...fields, ...envelopeFields(bytes, 5)];
    case "file_begin": {
      const nameAt = 6 + bytes[5]!;
      return [...fields, u8(5, 128), u8(nameAt, 255), time(nameAt + 1 + bytes[nameAt]!)];
    }
    case "receipt": {
      const detailAt = 16 + bytes[15]!;
      fields.push(time(7), u8(15, 128), u8(detailAt, 64));
      const after = detailAt + 1 + bytes[detailAt]!;
      if (f.receipt.subject === "message") {
        if (f.receipt.stored !== undefined) fields.push(time(after));
      } else {
        fields.push(u8(after, 255), time(after + 1 + bytes[after]!));
      }
      return fields;
    }
    default:
      return fields;
  }
}

const messageCorpus: Corpus = {
  seeds: messageFrames.map((f) => {
    const bytes = encodeMessageFrame(f);
    return { bytes, lengths: messageFields(f, bytes) };
  }),
  maxLength: 5 + MAX_STREAM_MESSAGE + MAX_ENVELOPE_OVERHEAD,
};

/**
 * Whether decoding lost something encoding cannot restore: a receipt's
 * refusal code this version does not know reads as `internal` (documented
 * in `decodeReceipt()`).
 */
function lossy(frames: MessageFrame[]): boolean {
  return frames.some((f) => f.kind === "receipt" && f.receipt.detail === "internal");
}

/** Re-encodes message frames, or gives back the input when {@linkcode lossy}. */
function reencodeMessages(frames: MessageFrame[], input: Uint8Array): Uint8Array {
  return lossy(frames) ? input : concat(...frames.map((f) => encodeMessageFrame(f)));
}

Deno.test("message_frame.ts decodeFrame() takes 100,000 random, truncated and mutated frames and only ever throws DecodeError; what it accepts re-encodes to the same bytes", () => {
  const stats = fuzz({
    name: "message.decodeFrame()",
    decode: decodeMessageFrame,
    encode: (f, input) => reencodeMessages([f], input),
    corpus: messageCorpus,
  });
  assertReachesBoth("message.decodeFrame()", stats);
});

const headerCorpus: Corpus = {
  seeds: ([1, 2, 3, 4, 5] as const).flatMap((kind) =>
    [0, 1, frameCap(kind)].map((n): Seed => ({
      bytes: encodeFrameHeader(kind, n),
      lengths: [u32(1, frameCap(kind))],
    }))
  ),
  maxLength: 5,
};

Deno.test("message_frame.ts decodeFrameHeader() takes 100,000 random, truncated and mutated headers and only ever throws DecodeError; what it accepts re-encodes to the same bytes", () => {
  const stats = fuzz({
    name: "message.decodeFrameHeader()",
    decode: decodeFrameHeader,
    encode: (h) => encodeFrameHeader(h.kind, h.length),
    corpus: headerCorpus,
  });
  assertReachesBoth("message.decodeFrameHeader()", stats);
});

const messageBodyCorpus: Corpus = {
  seeds: messageCorpus.seeds.map(kindAndBody),
  maxLength: 1 + MAX_STREAM_MESSAGE + MAX_ENVELOPE_OVERHEAD,
};

/** decodeFrameBody() with the kind as the input's first byte (any byte: a caller passes what the header named). */
function decodeKindAndBody(b: Uint8Array): MessageFrame {
  return decodeMessageBody((b[0] ?? 0) as FrameKind, b.subarray(1));
}

Deno.test("message_frame.ts decodeFrameBody() takes 100,000 random, truncated and mutated bodies of any kind byte and only ever throws DecodeError; what it accepts re-encodes to the same bytes", () => {
  const stats = fuzz({
    name: "message.decodeFrameBody()",
    decode: decodeKindAndBody,
    encode: (f, input) => {
      if (lossy([f])) return input;
      const whole = encodeMessageFrame(f);
      return concat(whole.subarray(0, 1), whole.subarray(5));
    },
    corpus: messageBodyCorpus,
  });
  assertReachesBoth("message.decodeFrameBody()", stats);
});

/**
 * Reads a whole messages stream by pull, as the port-1001 service does:
 * each frame whole by `next()`, or (half the streams) by `header()` and
 * the body's views from `bodyParts()`, as the server reads a message body.
 */
async function pullMessages(bytes: Uint8Array, rng: Rng): Promise<MessageFrame[]> {
  const reader = new FrameReader(MESSAGE_FRAMES, chunked(bytes, rng));
  const frames: MessageFrame[] = [];
  if (rng.chance(0.5)) {
    for (let raw = await reader.next(); raw !== null; raw = await reader.next()) {
      frames.push(decodeMessageBody(raw.kind as FrameKind, raw.body));
    }
    return frames;
  }
  for (let h = await reader.header(); h !== null; h = await reader.header()) {
    const parts: Uint8Array[] = [];
    for await (const part of reader.bodyParts(h.length)) parts.push(part);
    frames.push(decodeMessageBody(h.kind as FrameKind, concat(...parts)));
  }
  return frames;
}

Deno.test("framing.ts FrameReader (pull: next(), or header() and bodyParts()) takes 100,000 random, truncated and mutated messages streams in random chunks and only ever throws DecodeError; the frames it reads re-encode to the stream", async () => {
  const chunks = new Rng(seedFor("FrameReader pull chunks"));
  const stats = await fuzzAsync({
    name: "FrameReader (pull) messages",
    decode: (b) => pullMessages(b, chunks),
    encode: reencodeMessages,
    corpus: messageCorpus,
    input: streamInput(messageCorpus),
  });
  assertReachesBoth("FrameReader (pull) messages", stats);
});

// ---- Events (pubsub_frame.ts) ----

const pubsubFrames: PubSubFrame[] = [
  { kind: "subscribe", pattern: "*" },
  { kind: "subscribe", pattern: "swarm.status.*" },
  { kind: "subscribe", pattern: "a".repeat(128) },
  { kind: "publish", id: 7, topic: "swarm.status", data: utf8("ok") },
  { kind: "publish", id: 0xffff_ffff, topic: "t", data: pattern(3000) },
  {
    kind: "event",
    seq: 1,
    time: 1_795_706_107_118,
    from: formatAddress(pattern(6, 1)),
    fromKey: ALICE.publicKey,
    topic: "a.b_c-d",
    data: pattern(100),
  },
  { kind: "overflow", dropped: 3, firstSeq: 10, lastSeq: 20 },
  { kind: "ack", id: 1, seq: MAX_U53, delivered: 2, dropped: 0 },
  { kind: "error", id: 9, code: "bad_topic", message: 'Invalid topic "A": é' },
];

function pubsubFields(f: PubSubFrame, bytes: Uint8Array): LengthField[] {
  const fields = [u32(1, PUBSUB_FRAMES.kinds[bytes[0]!]!.max)];
  switch (f.kind) {
    case "publish":
      return [...fields, u8(9, 128)];
    case "event":
      return [...fields, time(5), time(13), u8(5 + 8 + 8 + 6 + 32, 128)];
    case "overflow":
      return [...fields, time(5), time(13), time(21)];
    case "ack":
      return [...fields, time(9)];
    case "error":
      return [...fields, u8(9, 32)];
    default:
      return fields;
  }
}

const pubsubCorpus: Corpus = {
  seeds: pubsubFrames.map((f) => {
    const bytes = encodePubSubFrame(f);
    return { bytes, lengths: pubsubFields(f, bytes) };
  }),
  maxLength: MAX_PUBSUB_FRAME,
};

Deno.test("pubsub_frame.ts decodeFrame() takes 100,000 random, truncated and mutated frames and only ever throws DecodeError; what it accepts re-encodes to the same bytes", () => {
  const stats = fuzz({
    name: "pubsub.decodeFrame()",
    decode: decodePubSubFrame,
    encode: (f) => encodePubSubFrame(f),
    corpus: pubsubCorpus,
  });
  assertReachesBoth("pubsub.decodeFrame()", stats);
});

const pubsubBodyCorpus: Corpus = {
  seeds: pubsubCorpus.seeds.map(kindAndBody),
  maxLength: MAX_PUBSUB_FRAME - 4,
};

Deno.test("pubsub_frame.ts decodeBody() takes 100,000 random, truncated and mutated bodies of any kind byte and only ever throws DecodeError; what it accepts re-encodes to the same bytes", () => {
  const stats = fuzz({
    name: "pubsub.decodeBody()",
    decode: (b) => decodePubSubBody({ kind: b[0] ?? 0, body: b.subarray(1) }),
    encode: (f) => {
      const whole = encodePubSubFrame(f);
      return concat(whole.subarray(0, 1), whole.subarray(5));
    },
    corpus: pubsubBodyCorpus,
  });
  assertReachesBoth("pubsub.decodeBody()", stats);
});

/** Splits an events stream by push, as the port-1002 service does; a stream that ends inside a frame is refused. */
function pushEvents(bytes: Uint8Array, rng: Rng): PubSubFrame[] {
  const reader = new FrameReader(PUBSUB_FRAMES);
  const frames: PubSubFrame[] = [];
  for (const chunk of cut(bytes, rng)) {
    reader.push(chunk);
    for (let raw: RawFrame | null = reader.take(); raw !== null; raw = reader.take()) {
      frames.push(decodePubSubBody(raw));
    }
  }
  if (reader.buffered > 0) throw new DecodeError("truncated", "The stream ended inside a frame");
  return frames;
}

Deno.test("framing.ts FrameReader (push) takes 100,000 random, truncated and mutated events streams in random chunks and only ever throws DecodeError; the frames it takes re-encode to the stream", () => {
  const chunks = new Rng(seedFor("FrameReader push chunks"));
  const stats = fuzz({
    name: "FrameReader.take() events",
    decode: (b) => pushEvents(b, chunks),
    encode: (frames) => concat(...frames.map((f) => encodePubSubFrame(f))),
    corpus: pubsubCorpus,
    input: streamInput(pubsubCorpus),
  });
  assertReachesBoth("FrameReader.take() events", stats);
});

// ---- Hostile lengths: refused by count, and no RSS growth ----

/**
 * Whether a messages stream's first header claims more body than follows
 * but no more than its kind's cap. The pulling FrameReader then allocates
 * the body whole (by design, `framing.ts`: it copies the body as it
 * arrives into one buffer of the checked length), so a MESSAGE header
 * announcing 16 MiB and a single body byte cost a 16.8 MB zeroed
 * allocation. Such inputs are held to "refused" but not to the RSS bound,
 * which is for lengths no check has bounded.
 */
function claimsWithinCap(b: Uint8Array): boolean {
  const cap = MESSAGE_FRAMES.kinds[b[0]!]?.max;
  const claim = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(1);
  return cap !== undefined && claim <= cap && claim > b.length - 5;
}

const pullHostile = pastEndInputs(messageCorpus);

Deno.test("FrameReader (pull) refuses a header that claims up to its cap when the stream ends first, sizing no buffer past the cap", async () => {
  const inputs = pullHostile.filter(claimsWithinCap);
  assert.ok(inputs.length > 0);
  for (const b of inputs) {
    const cap = MESSAGE_FRAMES.kinds[b[0]!]!.max;
    let largest = 0;
    await probeAllocations((n) => largest = Math.max(largest, n), async () => {
      await assert.rejects(pullMessages(b, new Rng(b.length)), DecodeError);
    });
    assert.ok(largest <= cap, `allocated ${largest} bytes for a frame capped at ${cap}`);
  }
});

const hostile: [string, (b: Uint8Array) => unknown, Uint8Array[]][] = [
  ["message.decodeFrame()", decodeMessageFrame, pastEndInputs(messageCorpus)],
  ["message.decodeFrameBody()", decodeKindAndBody, pastEndInputs(messageBodyCorpus)],
  [
    "FrameReader (pull) messages",
    (b) => pullMessages(b, new Rng(b.length)),
    pullHostile.filter((b) => !claimsWithinCap(b)),
  ],
  ["pubsub.decodeFrame()", decodePubSubFrame, pastEndInputs(pubsubCorpus)],
  [
    "pubsub.decodeBody()",
    (b) => decodePubSubBody({ kind: b[0] ?? 0, body: b.subarray(1) }),
    pastEndInputs(pubsubBodyCorpus),
  ],
  [
    "FrameReader.take() events",
    (b) => pushEvents(b, new Rng(b.length)),
    pastEndInputs(pubsubCorpus),
  ],
];

for (const [name, decode, inputs] of hostile) {
  Deno.test(`${name} refuses every length field that claims more bytes than follow (0 to 2^64-1), never sizes a buffer past its input, and refuses 10,000 of them in a row`, async () => {
    await assertNoAllocationFromLengths(name, decode, inputs);
  });
}
