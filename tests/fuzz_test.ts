/**
 * Issue 8 item 11: every decoder a remote peer's bytes can reach takes at
 * least 100,000 fuzzed inputs (seeded, see `_fuzz.ts`) and only ever returns
 * a value (that re-encodes to exactly its input, where the codec is
 * canonical) or throws its own error; and no length field makes it allocate:
 * inputs whose length fields claim more bytes than follow are all refused,
 * and a batch of them does not grow the process's RSS.
 *
 * Replay a failure with `FUZZ_SEED=<seed> deno test -A tests/fuzz_test.ts`.
 */

import assert from "node:assert/strict";
import fixtures from "./fixtures/identities.json" with { type: "json" };
import { DecodeError, utf8 } from "../src/bytes.ts";
import {
  MAX_MESSAGE_ID,
  MAX_META_ENTRIES,
  MAX_META_KEY,
  MAX_META_VALUE,
  MAX_PORT_DATAGRAM,
  MAX_STREAM_MESSAGE,
  PROLOGUE,
} from "../src/constants.ts";
import { verifyStamp } from "../src/identity/address.ts";
import { decodeIdentityFile } from "../src/identity/identity.ts";
import { signSelfDescription } from "../src/identity/self_description.ts";
import { HandshakeState, NoiseError } from "../src/session/noise.ts";
import { HandshakeFailure, verifyPeerPayload } from "../src/session/peer_identity.ts";
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
import {
  decodeHandshakePayload,
  encodeHandshakePayload,
  type HandshakePayload,
} from "../src/wire/handshake_payload.ts";
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
import {
  decodeTrustMessage,
  type SignedTrustMessage,
  signTrustMessage,
  TrustMessageError,
} from "../src/wire/trust_message.ts";
import { decodeTrustPacket, encodeTrustPacket } from "../src/wire/trust_packet.ts";
import type { ReasonedError } from "./_codec_contract.ts";
import {
  assertNoAllocationFromLengths,
  assertReachesBoth,
  type Corpus,
  envelopeSeeds,
  fuzz,
  fuzzAsync,
  index,
  type LengthField,
  pastEndInputs,
  pattern,
  reencodeEnvelope,
  type Seed,
  time,
  u16,
  u8,
} from "./_fuzz.ts";

const IDS = fixtures.map((f) => decodeIdentityFile(JSON.stringify(f)));
const ALICE = IDS[0]!;
const BOB = IDS[1]!;
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

function payloadOf(hostname: string, selfTime = 1_795_706_107_118): HandshakePayload {
  const self = signSelfDescription(ALICE.seed, {
    stamp: ALICE.stamp,
    hostname: hostname === "" ? null : hostname,
    time: selfTime,
  });
  return {
    publicKey: ALICE.publicKey,
    stamp: ALICE.stamp,
    staticSerial: ALICE.binding.serial,
    staticCreated: ALICE.binding.created,
    bindingSignature: ALICE.binding.signature,
    hostname,
    selfTime: self.time,
    selfSignature: self.signature,
  };
}
const payloads = ["", "alpha", "data-processor-node", "a".repeat(63)].map((h) => payloadOf(h));
const HOSTNAME_LENGTH_AT = 1 + 32 + 8 + 4 + 8 + 64;
const payloadCorpus: Corpus = {
  seeds: payloads.map((p) => ({
    bytes: encodeHandshakePayload(p),
    lengths: [
      u8(HOSTNAME_LENGTH_AT, 63),
      index(41),
      time(45),
      time(HOSTNAME_LENGTH_AT + 1 + p.hostname.length),
    ],
  })),
  maxLength: MAX_FINAL_NOISE_SIZE,
};

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

// ---- Trust messages (trust_message.ts) ----

const BINDING = pattern(32, 11);
const trustMessages: SignedTrustMessage[] = await Promise.all([
  signTrustMessage(ALICE.seed, {
    kind: "request",
    fromStamp: ALICE.stamp,
    toKey: BOB.publicKey,
    nonce: pattern(16),
    created: 1_795_706_107_118,
    expires: 0,
    binding: BINDING,
    hostname: "alpha",
    reason: "deploy bot é",
  }),
  signTrustMessage(ALICE.seed, {
    kind: "request",
    fromStamp: ALICE.stamp,
    toKey: BOB.publicKey,
    nonce: pattern(16, 1),
    created: 1,
    expires: MAX_U53,
    binding: new Uint8Array(32),
    hostname: "",
    reason: "r".repeat(1024),
  }),
  signTrustMessage(ALICE.seed, {
    kind: "accept",
    fromStamp: ALICE.stamp,
    toKey: BOB.publicKey,
    nonce: pattern(16, 2),
    created: 5,
    expires: 0,
    binding: BINDING,
    requestHash: pattern(32, 3),
  }),
  signTrustMessage(ALICE.seed, {
    kind: "reject",
    fromStamp: ALICE.stamp,
    toKey: BOB.publicKey,
    nonce: pattern(16, 4),
    created: 5,
    expires: 10,
    binding: new Uint8Array(32),
    requestHash: pattern(32, 5),
    reason: "no",
  }),
  signTrustMessage(ALICE.seed, {
    kind: "revoke",
    fromStamp: ALICE.stamp,
    toKey: BOB.publicKey,
    nonce: pattern(16, 6),
    created: 5,
    expires: 0,
    binding: BINDING,
    acceptHash: pattern(32, 7),
  }),
]);
const TRUST_HEADER = 138;

function trustFields(m: SignedTrustMessage): LengthField[] {
  const fields = [time(90), time(98)];
  const b = m.bytes;
  if (m.message.kind === "request") {
    fields.push(u8(TRUST_HEADER, 63), u16(TRUST_HEADER + 1 + b[TRUST_HEADER]!, 1024));
  }
  if (m.message.kind === "reject") fields.push(u16(TRUST_HEADER + 32, 1024));
  return fields;
}

/**
 * A copy of a valid encoding whose address stamp no longer proves an
 * address. Decoding runs in full on it, and the checks after decoding stop
 * at the stamp (one SHA-512) instead of an Ed25519 verification (about 1 ms
 * here): inputs made from these keep 100,000 runs within the time budget,
 * while the valid seeds they are mixed with still reach every signature check.
 */
function brokenStamp(seed: Seed, stampAt: number, publicKey: Uint8Array): Seed {
  const bytes = seed.bytes.slice();
  bytes[stampAt]! ^= 0x01;
  const stamp = bytes.subarray(stampAt, stampAt + 8);
  assert.equal(verifyStamp(publicKey, stamp), null, "a flipped stamp bit still proves an address");
  return { ...seed, bytes };
}

/** Valid seeds once, stamp-broken copies `weight` times: about 1 mutated input in 40 comes from a valid seed. */
function mostlyCheap(seeds: Seed[], stampAt: number, weight = 39): Seed[] {
  const broken = seeds.map((s) => brokenStamp(s, stampAt, ALICE.publicKey));
  return [...seeds, ...Array.from({ length: weight }, () => broken).flat()];
}

const trustCorpus: Corpus = {
  seeds: mostlyCheap(
    trustMessages.map((m) => ({ bytes: m.bytes, lengths: trustFields(m) })),
    2 + 32,
  ),
  maxLength: 1300,
  cold: [[2, 34], [42, 74]],
};

Deno.test("decodeTrustMessage() takes 100,000 random, truncated and mutated inputs and only ever rejects with TrustMessageError; what it accepts is exactly its input", async () => {
  const stats = await fuzzAsync({
    name: "decodeTrustMessage()",
    decode: decodeTrustMessage,
    encode: (m) => m.bytes,
    error: TrustMessageError,
    corpus: trustCorpus,
  });
  assertReachesBoth("decodeTrustMessage()", stats);
});

// ---- Noise handshake messages (noise.ts, as handshake.ts drives it) ----

const PROLOGUE_BYTES = utf8(PROLOGUE);
const MAX_NOISE_MESSAGE = 65535;

/** The three states a peer's Noise message meets, each forked per input, and a valid message for each. */
async function noiseStates() {
  const responder = await HandshakeState.create({
    pattern: "XX",
    initiator: false,
    prologue: PROLOGUE_BYTES,
    s: ALICE.staticKey,
  });
  const initiator = await HandshakeState.create({
    pattern: "XX",
    initiator: true,
    prologue: PROLOGUE_BYTES,
    s: BOB.staticKey,
  });
  const fresh = responder.fork();
  const m1 = await initiator.writeMessage(new Uint8Array(MSG1_NOISE_SIZE - 32));
  const afterInit = initiator.fork();
  await responder.readMessage(m1);
  const m2 = await responder.writeMessage(encodeHandshakePayload(payloadOf("alpha")));
  await initiator.readMessage(m2);
  const m3 = await initiator.writeMessage(encodeHandshakePayload(payloadOf("")));
  return [
    { name: "message 1 (responder)", state: fresh, message: m1 },
    { name: "message 2 (initiator)", state: afterInit, message: m2 },
    { name: "message 3 (responder)", state: responder, message: m3 },
  ];
}

/**
 * Inputs per Noise message. Message 1 takes the full 100,000. Messages 2 and
 * 3 cost a Diffie-Hellman or an AES-GCM open through WebCrypto per input
 * (about 0.25 ms each here: 100,000 would take 25 to 40 s, more than this
 * whole file may), and readMessage() wraps whatever its steps throw in a
 * NoiseError by construction; they take 5,000 each.
 */
const NOISE_COUNTS = [100_000, 5_000, 5_000];

for (const which of [0, 1, 2]) {
  const label = ["message 1 (responder)", "message 2 (initiator)", "message 3 (responder)"][which]!;
  const count = NOISE_COUNTS[which]!;
  Deno.test(`HandshakeState.readMessage() takes ${count.toLocaleString("en")} random, truncated and mutated Noise ${label}s and only ever rejects with NoiseError`, async () => {
    const { state, message } = (await noiseStates())[which]!;
    const stats = await fuzzAsync({
      name: `readMessage() ${label}`,
      decode: (b) => state.fork().readMessage(b),
      // Ciphertext has no canonical re-encoding: accepting is the whole contract.
      encode: (_payload, input) => input,
      // NoiseError carries no reason code; the contract checks only its class.
      error: NoiseError as unknown as ReasonedError,
      corpus: { seeds: [{ bytes: message, lengths: [] }], maxLength: MAX_NOISE_MESSAGE },
      count,
      parallel: 16,
    });
    assert.equal(stats.count, count);
    assert.ok(stats.refused > 0, `readMessage() ${label}: nothing was refused`);
    // Message 1 carries no key yet: any 32 bytes or more read.
    if (which === 0) assert.ok(stats.accepted > 0, "readMessage() message 1: nothing was read");
  });
}

// ---- The identity in a handshake payload (peer_identity.ts over identity/) ----

/** What the handshake path refuses a payload with: DecodeError for its bytes, HandshakeFailure for its identity. */
abstract class PayloadRefusal extends Error {
  declare readonly reason: string;
  static override [Symbol.hasInstance](e: unknown): boolean {
    return e instanceof DecodeError || e instanceof HandshakeFailure;
  }
}

Deno.test("verifyPeerPayload() takes 100,000 random, truncated and mutated payloads and only ever throws DecodeError or HandshakeFailure", async () => {
  const stats = await fuzzAsync({
    name: "verifyPeerPayload()",
    decode: (b) => verifyPeerPayload(decodeHandshakePayload(b), ALICE.staticKey.publicKey),
    encode: (_peer, input) => input,
    error: PayloadRefusal,
    corpus: { ...payloadCorpus, seeds: mostlyCheap(payloadCorpus.seeds, 1 + 32), cold: [[1, 33]] },
  });
  assertReachesBoth("verifyPeerPayload()", stats);
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
  ["decodeTrustMessage()", decodeTrustMessage, pastEndInputs(trustCorpus), TrustMessageError],
];

for (const [name, decode, inputs, error] of hostile) {
  Deno.test(`${name} refuses every length field that claims more bytes than follow (0 to 2^64-1), and 10,000 such inputs add at most 8 MB of RSS`, async () => {
    await assertNoAllocationFromLengths(name, decode, inputs, error);
  });
}
