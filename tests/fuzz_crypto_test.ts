/**
 * Issue 8 item 11 for the decoders whose checks are cryptographic: signed
 * trust messages (port 444), the Noise handshake messages and the identity
 * a handshake payload carries. Each only ever returns a value or throws its
 * own error (TrustMessageError; NoiseError; DecodeError or
 * HandshakeFailure) on seeded random, truncated, mutated and hostile-length
 * inputs (see `_fuzz.ts`), and every check after decoding is reached.
 *
 * Most mutated inputs come from copies of the valid encodings whose address
 * stamp no longer holds, so they stop at one SHA-512 instead of an Ed25519
 * verification: that keeps 100,000 inputs per decoder within this file's
 * time, while the valid seeds still reach every signature check.
 *
 * Replay a failure with `FUZZ_SEED=<seed> deno test -A tests/fuzz_crypto_test.ts`.
 */

import assert from "node:assert/strict";
import { DecodeError, utf8 } from "../src/bytes.ts";
import { PROLOGUE } from "../src/constants.ts";
import { verifyStamp } from "../src/identity/address.ts";
import { HandshakeState, NoiseError } from "../src/session/noise.ts";
import { HandshakeFailure, verifyPeerPayload } from "../src/session/peer_identity.ts";
import { MSG1_NOISE_SIZE } from "../src/wire/frames.ts";
import { decodeHandshakePayload, encodeHandshakePayload } from "../src/wire/handshake_payload.ts";
import {
  decodeTrustMessage,
  type SignedTrustMessage,
  signTrustMessage,
  TrustMessageError,
} from "../src/wire/trust_message.ts";
import type { ReasonedError } from "./_codec_contract.ts";
import {
  assertNoAllocationFromLengths,
  assertReachesBoth,
  type Corpus,
  FUZZ_IDS,
  fuzzAsync,
  handshakePayloadCorpus,
  type LengthField,
  pastEndInputs,
  pattern,
  payloadOf,
  type Seed,
  time,
  u16,
  u8,
} from "./_fuzz.ts";

const ALICE = FUZZ_IDS[0]!;
const BOB = FUZZ_IDS[1]!;
const MAX_U53 = Number.MAX_SAFE_INTEGER;

// ---- Trust messages (trust_message.ts) ----

/** Records a refusal's reason and rethrows it (a decoder sync throw becomes a rejection). */
function noteReason(reasons: Set<string>, e: unknown): never {
  if (e instanceof Error && "reason" in e) reasons.add(String(e.reason));
  throw e;
}

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

/** Valid seeds once, stamp-broken copies `weight` times: about 1 mutated input in 80 comes from a valid seed. */
function mostlyCheap(seeds: Seed[], stampAt: number, weight = 79): Seed[] {
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
  const reasons = new Set<string>();
  const stats = await fuzzAsync({
    name: "decodeTrustMessage()",
    decode: (b) => decodeTrustMessage(b).catch((e) => noteReason(reasons, e)),
    encode: (m) => m.bytes,
    error: TrustMessageError,
    corpus: trustCorpus,
  });
  assertReachesBoth("decodeTrustMessage()", stats);
  // Every check after decoding was reached, the signature included.
  const all = ["too_large", "malformed", "bad_key", "bad_stamp", "bad_signature"];
  assert.deepEqual([...reasons].sort(), all.sort());
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

const payloadCorpus = handshakePayloadCorpus();

/** What the handshake path refuses a payload with: DecodeError for its bytes, HandshakeFailure for its identity. */
abstract class PayloadRefusal extends Error {
  declare readonly reason: string;
  static override [Symbol.hasInstance](e: unknown): boolean {
    return e instanceof DecodeError || e instanceof HandshakeFailure;
  }
}

Deno.test("verifyPeerPayload() takes 100,000 random, truncated and mutated payloads and only ever throws DecodeError or HandshakeFailure", async () => {
  const reasons = new Set<string>();
  const stats = await fuzzAsync({
    name: "verifyPeerPayload()",
    decode: (b) =>
      verifyPeerPayload(decodeHandshakePayload(b), ALICE.staticKey.publicKey).catch((e) =>
        noteReason(reasons, e)
      ),
    encode: (_peer, input) => input,
    error: PayloadRefusal,
    corpus: { ...payloadCorpus, seeds: mostlyCheap(payloadCorpus.seeds, 1 + 32), cold: [[1, 33]] },
  });
  assertReachesBoth("verifyPeerPayload()", stats);
  // Every identity check was reached, both signatures included.
  for (const reason of ["bad_key", "bad_stamp", "bad_binding", "bad_self"]) {
    assert.ok(reasons.has(reason), `verifyPeerPayload(): no input was refused as ${reason}`);
  }
});

// ---- Hostile lengths: refused by count, and no RSS growth ----

Deno.test("decodeTrustMessage() refuses every length field that claims more bytes than follow (0 to 2^64-1), never sizes a buffer past its input, and refuses 10,000 of them in a row", async () => {
  await assertNoAllocationFromLengths(
    "decodeTrustMessage()",
    decodeTrustMessage,
    pastEndInputs(trustCorpus),
    TrustMessageError,
  );
});
