/**
 * Issue 8 item 11: every decoder a remote peer's bytes can reach takes at
 * least 100,000 fuzzed inputs (seeded, see `_fuzz.ts`) and only ever returns
 * a value (that re-encodes to exactly its input, where the codec is
 * canonical) or throws its own error; and no length field makes it allocate:
 * inputs whose length fields claim more bytes than follow are all refused,
 * and a batch of them does not grow the process's RSS.
 *
 * This file: outer frames, inner packets, stream segments, trust packets,
 * handshake payloads and message envelopes. The decoders whose checks are
 * cryptographic are in `fuzz_crypto_test.ts`, the stream services' frames
 * in `fuzz_stream_frames_test.ts`.
 *
 * Replay a failure with `FUZZ_SEED=<seed> deno test -A tests/fuzz_test.ts`.
 */

import { utf8 } from "../src/bytes.ts";
import {
  MAX_MESSAGE_ID,
  MAX_META_ENTRIES,
  MAX_META_KEY,
  MAX_META_VALUE,
  MAX_PORT_DATAGRAM,
  MAX_STREAM_MESSAGE,
} from "../src/constants.ts";
import { decodeEnvelope } from "../src/wire/data_message.ts";
import {
  decodeFrame as decodeOuterFrame,
  encodeFrame as encodeOuterFrame,
  type FrameInput,
  MAX_DATA_FRAME_SIZE,
  MAX_FINAL_NOISE_SIZE,
  MAX_RESP_NOISE_SIZE,
  MIN_FINAL_NOISE_SIZE,
  MIN_RESP_NOISE_SIZE,
  MSG1_NOISE_SIZE,
} from "../src/wire/frames.ts";
import { decodeHandshakePayload, encodeHandshakePayload } from "../src/wire/handshake_payload.ts";
import { decodeInner, encodeInner, MAX_INNER_PAYLOAD, MAX_INNER_SIZE } from "../src/wire/inner.ts";
import {
  decodeSegment,
  encodeSegment,
  SEG_ACK,
  SEG_FIN,
  SEG_PROBE,
  SEG_RST,
  SEG_SYN,
  type StreamSegment,
} from "../src/wire/stream_segment.ts";
import { decodeTrustPacket, encodeTrustPacket } from "../src/wire/trust_packet.ts";
import type { ReasonedError } from "./_codec_contract.ts";
import {
  assertNoAllocationFromLengths,
  assertReachesBoth,
  type Corpus,
  envelopeSeeds,
  fuzz,
  handshakePayloadCorpus,
  index,
  pastEndInputs,
  pattern,
  reencodeEnvelope,
  type Seed,
  time,
  u8,
} from "./_fuzz.ts";

const MAX_U53 = Number.MAX_SAFE_INTEGER;
/** Largest envelope: the largest data and every other field at its longest. */
const MAX_ENVELOPE = MAX_STREAM_MESSAGE + 2 + 3 * (1 + MAX_MESSAGE_ID) + 8 + 1 +
  MAX_META_ENTRIES * (2 + MAX_META_KEY + MAX_META_VALUE) + 4;

// ---- Outer frames (frames.ts) ----

const outerFrames: FrameInput[] = [
  {
    type: "init",
    senderIndex: 1,
    noise: pattern(MSG1_NOISE_SIZE),
    mac1: pattern(16, 1),
    mac2: pattern(16, 2),
  },
  { type: "resp", senderIndex: 7, receiverIndex: 9, noise: pattern(MIN_RESP_NOISE_SIZE + 200) },
  { type: "resp", senderIndex: 0xffff_ffff, receiverIndex: 1, noise: pattern(MAX_RESP_NOISE_SIZE) },
  { type: "final", senderIndex: 3, receiverIndex: 4, noise: pattern(MIN_FINAL_NOISE_SIZE) },
  { type: "final", senderIndex: 3, receiverIndex: 4, noise: pattern(MAX_FINAL_NOISE_SIZE) },
  { type: "cookie", receiverIndex: 5, echo: pattern(16, 3), cookie: pattern(16, 4) },
  { type: "data", receiverIndex: 6, counter: 0, body: pattern(16) },
  { type: "data", receiverIndex: 6, counter: 2 ** 40, body: pattern(1400) },
];
const outerCorpus: Corpus = {
  seeds: outerFrames.map((f) => {
    const bytes = encodeOuterFrame(f);
    const lengths = [index(1)];
    if (f.type === "resp" || f.type === "final" || f.type === "data") lengths.push(index(5));
    if (f.type === "data") lengths.push(index(9));
    return { bytes, lengths };
  }),
  maxLength: MAX_DATA_FRAME_SIZE,
};

Deno.test("frames.ts decodeFrame() takes 100,000 random, truncated and mutated datagrams and only ever throws DecodeError; what it accepts re-encodes to the same bytes", () => {
  const stats = fuzz({
    name: "frames.decodeFrame()",
    decode: decodeOuterFrame,
    encode: (f) => encodeOuterFrame(f),
    corpus: outerCorpus,
  });
  assertReachesBoth("frames.decodeFrame()", stats);
});

// ---- Inner packets (inner.ts) ----

const innerCorpus: Corpus = {
  seeds: [
    { bytes: encodeInner({ kind: "keepalive" }), lengths: [] },
    ...[0, 1, 100, 1400].flatMap((n) =>
      (["datagram", "stream"] as const).map((kind): Seed => ({
        bytes: encodeInner({
          kind,
          srcAddress: pattern(6, 1),
          dstAddress: pattern(6, 2),
          srcPort: 444,
          dstPort: 0xffff,
          payload: pattern(n),
        }),
        lengths: [{ offset: 13, width: 2, max: 0xffff, value: true }],
      }))
    ),
    {
      bytes: encodeInner({
        kind: "datagram",
        srcAddress: pattern(6, 1),
        dstAddress: pattern(6, 2),
        srcPort: 1,
        dstPort: 2,
        payload: pattern(MAX_INNER_PAYLOAD),
      }),
      lengths: [],
    },
  ],
  maxLength: MAX_INNER_SIZE,
};

Deno.test("decodeInner() takes 100,000 random, truncated and mutated inputs and only ever throws DecodeError; what it accepts re-encodes to the same bytes", () => {
  const stats = fuzz({
    name: "decodeInner()",
    decode: decodeInner,
    encode: (p) => encodeInner(p),
    corpus: innerCorpus,
  });
  assertReachesBoth("decodeInner()", stats);
});

// ---- Stream segments (stream_segment.ts) ----

const segments: StreamSegment[] = [
  { flags: SEG_SYN, connId: 1, seq: 0, ack: 0, window: 65536, sack: [], data: pattern(4) },
  { flags: SEG_SYN | SEG_ACK, connId: 2, seq: 0, ack: 1, window: 1, sack: [], data: pattern(4) },
  { flags: SEG_ACK, connId: 3, seq: 1, ack: 1, window: 0, sack: [], data: pattern(1200) },
  {
    flags: SEG_ACK,
    connId: 4,
    seq: 5000,
    ack: 100,
    window: 0xffff_ffff,
    sack: [{ start: 200, end: 300 }, { start: 400, end: 500 }, { start: 600, end: 700 }, {
      start: 800,
      end: 100 + 0xffff_ffff,
    }],
    data: new Uint8Array(0),
  },
  {
    flags: SEG_ACK | SEG_FIN,
    connId: 5,
    seq: MAX_U53 - 11,
    ack: 7,
    window: 9,
    sack: [{ start: 8, end: 9 }],
    data: pattern(10),
  },
  { flags: SEG_RST, connId: 6, seq: 7, ack: 0, window: 0, sack: [], data: utf8("reset: no") },
  { flags: SEG_PROBE | SEG_ACK, connId: 7, seq: 8, ack: 9, window: 10, sack: [], data: pattern(0) },
];
const segmentCorpus: Corpus = {
  seeds: segments.map((s) => ({
    bytes: encodeSegment(s).slice(),
    lengths: [u8(1, 4), time(6), time(14), index(22)],
  })),
  maxLength: MAX_INNER_PAYLOAD,
};

Deno.test("decodeSegment() takes 100,000 random, truncated and mutated inputs and only ever throws DecodeError; what it accepts re-encodes to the same bytes", () => {
  const stats = fuzz({
    name: "decodeSegment()",
    decode: decodeSegment,
    encode: (s) => encodeSegment(s),
    corpus: segmentCorpus,
  });
  assertReachesBoth("decodeSegment()", stats);
});

// ---- Trust packets (trust_packet.ts) ----

const trustPacketCorpus: Corpus = {
  seeds: [
    {
      bytes: encodeTrustPacket({ op: "message", requestId: pattern(8), message: pattern(300) }),
      lengths: [],
    },
    ...["", "ok", "é ✓ 𝄞", "x".repeat(255)].map((detail, i): Seed => ({
      bytes: encodeTrustPacket({
        op: "ack",
        requestId: pattern(8, i),
        status: (["pending", "approved", "rejected", "recorded", "refused"] as const)[i]!,
        detail,
      }),
      lengths: [u8(10, 255)],
    })),
  ],
  maxLength: MAX_PORT_DATAGRAM,
};

Deno.test("decodeTrustPacket() takes 100,000 random, truncated and mutated inputs and only ever throws DecodeError; what it accepts re-encodes to the same bytes", () => {
  const stats = fuzz({
    name: "decodeTrustPacket()",
    decode: decodeTrustPacket,
    encode: (p) => encodeTrustPacket(p),
    corpus: trustPacketCorpus,
  });
  assertReachesBoth("decodeTrustPacket()", stats);
});

// ---- Handshake payloads (handshake_payload.ts) ----

const payloadCorpus = handshakePayloadCorpus();

Deno.test("decodeHandshakePayload() takes 100,000 random, truncated and mutated inputs and only ever throws DecodeError; what it accepts re-encodes to the same bytes", () => {
  const stats = fuzz({
    name: "decodeHandshakePayload()",
    decode: decodeHandshakePayload,
    encode: (p) => encodeHandshakePayload(p),
    corpus: payloadCorpus,
  });
  assertReachesBoth("decodeHandshakePayload()", stats);
});

// ---- Message envelopes (data_message.ts) ----

const envelopeCorpus: Corpus = {
  seeds: envelopeSeeds(),
  maxLength: MAX_ENVELOPE,
};

Deno.test("decodeEnvelope() takes 100,000 random, truncated and mutated inputs and only ever throws DecodeError; what it accepts re-encodes to the same bytes", () => {
  const stats = fuzz({
    name: "decodeEnvelope()",
    decode: (b) => decodeEnvelope(b),
    encode: reencodeEnvelope,
    corpus: envelopeCorpus,
  });
  assertReachesBoth("decodeEnvelope()", stats);
});

// ---- Hostile lengths: refused by count, and no RSS growth ----

const oversized = (type: number, n: number) => {
  const b = new Uint8Array(n);
  b[0] = type;
  b[4] = 1;
  return b;
};

const hostile: [string, (b: Uint8Array) => unknown, Uint8Array[], ReasonedError?][] = [
  ["frames.decodeFrame()", decodeOuterFrame, [
    oversized(5, MAX_DATA_FRAME_SIZE + 1),
    oversized(5, 1 << 20),
    oversized(2, 9 + MAX_RESP_NOISE_SIZE + 1),
    oversized(3, 1 << 20),
    oversized(1, 1 << 20),
    oversized(4, 1 << 20),
  ]],
  ["decodeInner()", decodeInner, [oversized(1, MAX_INNER_SIZE + 1), oversized(2, 1 << 20)]],
  ["decodeSegment()", decodeSegment, pastEndInputs(segmentCorpus)],
  ["decodeTrustPacket()", decodeTrustPacket, pastEndInputs(trustPacketCorpus)],
  ["decodeHandshakePayload()", decodeHandshakePayload, pastEndInputs(payloadCorpus)],
  ["decodeEnvelope()", (b) => decodeEnvelope(b), pastEndInputs(envelopeCorpus)],
];

for (const [name, decode, inputs, error] of hostile) {
  Deno.test(`${name} refuses every length field that claims more bytes than follow (0 to 2^64-1), never sizes a buffer past its input, and refuses 10,000 of them in a row`, async () => {
    await assertNoAllocationFromLengths(name, decode, inputs, error);
  });
}
