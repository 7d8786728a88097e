import assert from "node:assert/strict";
import fc from "fast-check";
import { TRUST_MESSAGE_MAX } from "../src/constants.ts";
import { encodeEnvelope, type Envelope } from "../src/wire/data_message.ts";
import {
  decodeSealedContent,
  encodeSealedContent,
  MAILBOX_MESSAGE_MAX,
  type SealedContent,
} from "../src/wire/sealed_item.ts";
import { assertCanonicalOrRefused, assertRefuses, mutated } from "./_codec_contract.ts";

const ENVELOPE: Envelope = {
  id: "job-1",
  type: "json",
  correlationId: "",
  inReplyTo: "",
  expiresAt: 0,
  meta: {},
  data: new TextEncoder().encode('{"command":"run"}'),
};

const SAMPLES: SealedContent[] = [
  { kind: "message", envelope: ENVELOPE },
  { kind: "receipt", id: "job-1", status: "stored", seq: 7, code: "" },
  { kind: "receipt", id: "job-2", status: "duplicate", seq: 3, code: "" },
  { kind: "receipt", id: "é", status: "refused", seq: 0, code: "not_trusted" },
  { kind: "trust", signed: new Uint8Array(200).fill(9) },
];

Deno.test("sealed content round-trips every kind", () => {
  for (const c of SAMPLES) assert.deepEqual(decodeSealedContent(encodeSealedContent(c)), c);
});

Deno.test("a receipt's bytes are laid out as documented", () => {
  const bytes = encodeSealedContent({
    kind: "receipt",
    id: "m1",
    status: "stored",
    seq: 5,
    code: "",
  });
  // kind 2 · status 1 · seq 5 · id "m1" · no code
  assert.equal(bytes.toHex(), "0201" + "0000000000000005" + "026d31" + "00");
});

Deno.test("a message item is the kind byte and the envelope", () => {
  const bytes = encodeSealedContent({ kind: "message", envelope: ENVELOPE });
  assert.equal(bytes[0], 1);
  assert.deepEqual(bytes.subarray(1), encodeEnvelope(ENVELOPE));
});

Deno.test("encodeSealedContent refuses what a mailbox does not carry", () => {
  const big = { ...ENVELOPE, data: new Uint8Array(MAILBOX_MESSAGE_MAX + 1) };
  assert.throws(() => encodeSealedContent({ kind: "message", envelope: big }), RangeError);
  encodeSealedContent({ kind: "message", envelope: { ...big, data: big.data.subarray(1) } });
  assert.throws(
    () => encodeSealedContent({ kind: "trust", signed: new Uint8Array(TRUST_MESSAGE_MAX + 1) }),
    RangeError,
  );
  assert.throws(
    () => encodeSealedContent({ kind: "trust", signed: new Uint8Array(0) }),
    RangeError,
  );
  assert.throws(
    () => encodeSealedContent({ kind: "receipt", id: "", status: "stored", seq: 1, code: "" }),
    RangeError,
  );
  assert.throws(
    () => encodeSealedContent({ kind: "receipt", id: "a", status: "stored", seq: 1, code: "x" }),
    RangeError,
    "a code only with a refusal",
  );
  assert.throws(
    () => encodeSealedContent({ kind: "receipt", id: "a", status: "refused", seq: 1, code: "" }),
    RangeError,
    "a refusal needs its code",
  );
});

Deno.test("decodeSealedContent refuses malformed content by reason", () => {
  const receipt = encodeSealedContent({
    kind: "receipt",
    id: "m1",
    status: "stored",
    seq: 5,
    code: "",
  });
  assertRefuses(decodeSealedContent, Uint8Array.of(), "truncated");
  assertRefuses(decodeSealedContent, Uint8Array.of(4), "unknown_kind");
  assertRefuses(decodeSealedContent, Uint8Array.of(0), "unknown_kind");
  assertRefuses(decodeSealedContent, Uint8Array.of(3), "bad_length");
  assertRefuses(decodeSealedContent, Uint8Array.of(...receipt, 0), "trailing");
  const badStatus = receipt.slice();
  badStatus[1] = 4;
  assertRefuses(decodeSealedContent, badStatus, "bad_status");
  const noId = Uint8Array.fromHex("0201" + "0000000000000005" + "00" + "00");
  assertRefuses(decodeSealedContent, noId, "bad_id");
  const codeOnStored = Uint8Array.fromHex("0201" + "0000000000000005" + "026d31" + "0161");
  assertRefuses(decodeSealedContent, codeOnStored, "bad_code");
  const badUtf8 = Uint8Array.fromHex("0201" + "0000000000000005" + "01ff" + "00");
  assertRefuses(decodeSealedContent, badUtf8, "bad_utf8");
  const hugeSeq = Uint8Array.fromHex("0201" + "0020000000000000" + "026d31" + "00");
  assertRefuses(decodeSealedContent, hugeSeq, "out_of_range");
});

Deno.test("decodeSealedContent returns only canonical content or refuses (fuzzed)", () => {
  const valid = fc.constantFrom(...SAMPLES.map(encodeSealedContent));
  fc.assert(
    fc.property(mutated(valid), (bytes) => {
      assertCanonicalOrRefused(decodeSealedContent, encodeSealedContent, bytes);
    }),
    { numRuns: 2000 },
  );
});
