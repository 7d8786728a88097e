import assert from "node:assert/strict";
import fc from "fast-check";
import { mutated } from "./_codec_contract.ts";
import { DecodeError } from "../src/bytes.ts";
import {
  ACK_STATUSES,
  decodeTrustPacket,
  encodeTrustPacket,
  type TrustPacket,
} from "../src/wire/trust_packet.ts";

const REQUEST_ID = Uint8Array.fromHex("0102030405060708");

Deno.test("encodeTrustPacket() writes a message and an ack byte for byte", () => {
  // 01 op message | 0102030405060708 request id | aabbcc the signed trust message (opaque here)
  const message: TrustPacket = {
    op: "message",
    requestId: REQUEST_ID,
    message: Uint8Array.of(0xaa, 0xbb, 0xcc),
  };
  const messageHex = "010102030405060708aabbcc";
  assert.equal(encodeTrustPacket(message).toHex(), messageHex);
  assert.deepEqual(decodeTrustPacket(Uint8Array.fromHex(messageHex)), message);
  // 02 op ack | request id | 01 approved | 08 63726f7373696e67 detail "crossing"
  const ack: TrustPacket = {
    op: "ack",
    requestId: REQUEST_ID,
    status: "approved",
    detail: "crossing",
  };
  const ackHex = "020102030405060708010863726f7373696e67";
  assert.equal(encodeTrustPacket(ack).toHex(), ackHex);
  assert.deepEqual(decodeTrustPacket(Uint8Array.fromHex(ackHex)), ack);
});

Deno.test("encodeTrustPacket() refuses a request id other than 8 bytes and a detail over 255 bytes", () => {
  assert.throws(
    () =>
      encodeTrustPacket({ op: "message", requestId: new Uint8Array(7), message: Uint8Array.of(1) }),
    RangeError,
  );
  assert.throws(
    () =>
      encodeTrustPacket({
        op: "ack",
        requestId: REQUEST_ID,
        status: "pending",
        detail: "é".repeat(128),
      }),
    RangeError,
  );
  assert.doesNotThrow(() =>
    encodeTrustPacket({
      op: "ack",
      requestId: REQUEST_ID,
      status: "pending",
      detail: "x".repeat(255),
    })
  );
});

Deno.test("decodeTrustPacket() refuses empty messages, unknown ops and statuses, trailing bytes and bad UTF-8", () => {
  const cases: [number[], string][] = [
    [[], "truncated"],
    [[1, ...REQUEST_ID], "truncated"],
    [[1, 1, 2, 3], "truncated"],
    [[0, ...REQUEST_ID, 1], "unknown_op"],
    [[3, ...REQUEST_ID, 1], "unknown_op"],
    [[2, ...REQUEST_ID, ACK_STATUSES.length, 0], "unknown_status"],
    [[2, ...REQUEST_ID, 0, 0, 0], "trailing"],
    [[2, ...REQUEST_ID, 0, 2, 0x61], "truncated"],
    [[2, ...REQUEST_ID, 0, 1, 0xc3], "bad_utf8"],
  ];
  for (const [bytes, reason] of cases) {
    assert.throws(
      () => decodeTrustPacket(Uint8Array.from(bytes)),
      (e) => e instanceof DecodeError && e.reason === reason,
      `expected ${reason} for ${Uint8Array.from(bytes).toHex()}`,
    );
  }
});

const packets: fc.Arbitrary<TrustPacket> = fc.oneof(
  fc.record({
    op: fc.constant("message" as const),
    requestId: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    message: fc.uint8Array({ minLength: 1, maxLength: 300 }),
  }, { noNullPrototype: true }),
  fc.record({
    op: fc.constant("ack" as const),
    requestId: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    status: fc.constantFrom(...ACK_STATUSES),
    detail: fc.string({ unit: "binary", maxLength: 60 }).filter((s) => !s.startsWith("\uFEFF")),
  }, { noNullPrototype: true }),
);

Deno.test("every trust packet decodes to itself and re-encodes to the same bytes", () => {
  fc.assert(
    fc.property(packets, (p) => {
      const bytes = encodeTrustPacket(p);
      assert.deepEqual(decodeTrustPacket(bytes), p);
      assert.deepEqual(encodeTrustPacket(decodeTrustPacket(bytes)), bytes);
    }),
    { numRuns: 300 },
  );
});

Deno.test("random, truncated and mutated trust packet bytes decode to a re-encodable value or throw DecodeError", () => {
  // Random bytes, mutations of valid packets, and valid ones (so that every run decodes some).
  const inputs = fc.oneof(
    fc.uint8Array({ maxLength: 40 }),
    mutated(packets.map(encodeTrustPacket)),
    packets.map(encodeTrustPacket),
  );
  let decoded = 0;
  fc.assert(
    fc.property(inputs, (bytes) => {
      let p: TrustPacket;
      try {
        p = decodeTrustPacket(bytes);
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
        return;
      }
      decoded++;
      const again = encodeTrustPacket(p);
      assert.deepEqual(decodeTrustPacket(again), p);
      // A leading U+FEFF in an ack detail is dropped by the decoder; anything else is exact.
      const bom = p.op === "ack" && bytes.subarray(11, 14).toHex() === "efbbbf";
      if (!bom) assert.deepEqual(again, bytes);
    }),
    { numRuns: 1_000 },
  );
  assert.ok(decoded > 0, "some inputs decoded");
});
