import assert from "node:assert/strict";
import fc from "fast-check";
import { MAX_STREAM_MESSAGE } from "../src/constants.ts";
import { DecodeError } from "../src/bytes.ts";
import {
  decodeEnvelope,
  encodeEnvelope,
  type Envelope,
  MESSAGE_TYPES,
} from "../src/wire/data_message.ts";
import { assertRefuses, mutated } from "./_codec_contract.ts";

// Worked example: a text message "hi" with id "m1", correlation id "c", an
// expiry and one meta entry. 27 bytes:
//   01                 version 1
//   01                 type 1 = text
//   02 6d31            id "m1"
//   01 63              correlation_id "c"
//   00                 in_reply_to ""
//   0000018bcfe56800   expires_at 1700000000000 ms (2023-11-14T22:13:20Z)
//   01                 one meta entry
//   01 6b 01 76        "k" = "v"
//   00000002 6869      data "hi"
const EXAMPLE: Envelope = {
  id: "m1",
  type: "text",
  correlationId: "c",
  inReplyTo: "",
  expiresAt: 1_700_000_000_000,
  meta: { k: "v" },
  data: Uint8Array.of(0x68, 0x69),
};
const EXAMPLE_HEX = "0101026d310163000000018bcfe5680001016b0176000000026869";

Deno.test("encodeEnvelope() writes the worked example byte for byte and decodeEnvelope() reads it back", () => {
  assert.equal(encodeEnvelope(EXAMPLE).toHex(), EXAMPLE_HEX);
  assert.deepEqual(decodeEnvelope(Uint8Array.fromHex(EXAMPLE_HEX)), EXAMPLE);
});

Deno.test("encodeEnvelope() refuses out-of-range fields with RangeError", () => {
  const bad: Partial<Envelope>[] = [
    { id: "" },
    { id: "x".repeat(129) },
    { correlationId: "x".repeat(129) },
    { data: new Uint8Array(MAX_STREAM_MESSAGE + 1) },
    { meta: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, ""])) },
    { meta: { ["k".repeat(65)]: "" } },
    { meta: { k: "v".repeat(256) } },
  ];
  for (const fields of bad) {
    assert.throws(() => encodeEnvelope({ ...EXAMPLE, ...fields }), RangeError);
  }
  assert.doesNotThrow(() => encodeEnvelope({ ...EXAMPLE, id: "x".repeat(128) }));
});

Deno.test("decodeEnvelope() refuses unknown versions and types, empty ids, repeated meta keys and trailing bytes", () => {
  const valid = encodeEnvelope(EXAMPLE);
  const patch = (at: number, v: number) => {
    const b = Uint8Array.from(valid);
    b[at] = v;
    return b;
  };
  const twice = Uint8Array.fromHex(
    "010102" + "6d31" + "00" + "00" + "0000000000000000" + "02" + "016b0176" + "016b0177" +
      "00000000",
  );
  const cases: [Uint8Array, string][] = [
    [patch(0, 2), "unsupported_version"],
    [patch(1, 0), "unknown_type"],
    [patch(1, 4), "unknown_type"],
    [Uint8Array.fromHex("010100000000000000000000000000000000"), "bad_id"],
    [twice, "duplicate_key"],
    [Uint8Array.of(...valid, 0), "trailing"],
    [valid.subarray(0, valid.length - 1), "truncated"],
  ];
  for (const [bytes, reason] of cases) {
    assertRefuses(decodeEnvelope, bytes, reason);
  }
});

Deno.test("decodeEnvelope() refuses data longer than its maxData, and the default is MAX_STREAM_MESSAGE", () => {
  const bytes = encodeEnvelope(EXAMPLE);
  assertRefuses((b) => decodeEnvelope(b, 1), bytes, "too_long");
  assert.deepEqual(decodeEnvelope(bytes, 2), EXAMPLE);
  const big = { ...EXAMPLE, data: new Uint8Array(MAX_STREAM_MESSAGE) };
  assert.equal(decodeEnvelope(encodeEnvelope(big)).data.length, MAX_STREAM_MESSAGE);
  assert.throws(() => encodeEnvelope(EXAMPLE, 1), RangeError);
});

Deno.test("a meta key named __proto__ survives the round trip as an ordinary key", () => {
  const meta = JSON.parse('{"__proto__":"x","a":"b"}');
  const back = decodeEnvelope(encodeEnvelope({ ...EXAMPLE, meta }));
  assert.deepEqual(Object.entries(back.meta), [["__proto__", "x"], ["a", "b"]]);
});

Deno.test({
  name: "an id starting with U+FEFF decodes to exactly the id that was encoded",
  fn: () => {
    const e = { ...EXAMPLE, id: "\uFEFFm1" };
    assert.equal(decodeEnvelope(encodeEnvelope(e)).id, "\uFEFFm1");
  },
});

// --- properties -----------------------------------------------------------------------------

/** Text of any Unicode code points (a leading U+FEFF included). */
const text = (maxLength: number, minLength = 0) =>
  fc.string({ unit: "binary", minLength, maxLength });

const envelopes: fc.Arbitrary<Envelope> = fc.record({
  id: text(32, 1),
  type: fc.constantFrom(...MESSAGE_TYPES),
  correlationId: text(32),
  inReplyTo: text(32),
  expiresAt: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  meta: fc.dictionary(text(16), text(32), { maxKeys: 16, noNullPrototype: true }),
  data: fc.uint8Array({ maxLength: 3_000 }),
}, { noNullPrototype: true });

/** Decodes `bytes`: false for a DecodeError, else true once its encoding decodes to the same envelope. */
function decodesOrRefuses(bytes: Uint8Array): boolean {
  let e: Envelope;
  try {
    e = decodeEnvelope(bytes);
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    return false;
  }
  // Byte for byte: meta keys travel in UTF-8 byte order, so each envelope has one encoding.
  assert.deepEqual(encodeEnvelope(e), bytes);
  return true;
}

Deno.test("every envelope decodes to itself after encoding", () => {
  fc.assert(
    fc.property(envelopes, (e) => {
      assert.deepEqual(decodeEnvelope(encodeEnvelope(e)), e);
    }),
    { numRuns: 300 },
  );
});

Deno.test("random, truncated and mutated envelope bytes decode to a re-encodable value or throw DecodeError", () => {
  let decoded = 0;
  const inputs = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.uint8Array({ maxLength: 64 }).map((b) => Uint8Array.of(1, 1 + (b[0] ?? 0) % 3, ...b)),
    mutated(envelopes.map(encodeEnvelope)),
    // Valid ones too: a mutation rarely leaves bytes whole, so without them a run could
    // decode nothing (about one run in 30 did) and prove nothing about decoding.
    envelopes.map(encodeEnvelope),
  );
  fc.assert(
    fc.property(inputs, (bytes) => {
      if (decodesOrRefuses(bytes)) decoded++;
    }),
    { numRuns: 1_000 },
  );
  assert.ok(decoded > 0, "some inputs decoded");
});

Deno.test("decodeEnvelope() accepts only envelopes that re-encode to the same bytes, whatever order the meta keys come in", () => {
  // meta "b" then "0": an integer-like key comes first in a JS object.
  const bytes = Uint8Array.fromHex("0101016d000000000000000000000201620001300000000000");
  assertRefuses((b) => decodeEnvelope(b), bytes, "meta_order");
  const sorted = encodeEnvelope({ ...EXAMPLE, meta: { b: "", "0": "" } });
  assert.deepEqual(sorted, encodeEnvelope({ ...EXAMPLE, meta: { "0": "", b: "" } }));
  assert.deepEqual(encodeEnvelope(decodeEnvelope(sorted)), sorted);
  const repeated = Uint8Array.fromHex("0101016d000000000000000000000201620001620000000000");
  assertRefuses((b) => decodeEnvelope(b), repeated, "duplicate_key");
});
