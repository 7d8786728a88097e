import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeFrame, MAX_DATA_FRAME_SIZE } from "../src/wire/frames.ts";
import {
  decodeInner,
  encodeInner,
  INNER_HEADER_SIZE,
  type InnerPacket,
  MAX_INNER_PAYLOAD,
  MAX_INNER_SIZE,
  type PortPacket,
} from "../src/wire/inner.ts";
import { assertCanonicalOrRefused, assertRefuses } from "./_codec_contract.ts";

// Worked examples (docs/PROTOCOL.md).
//
// Datagram from 3fa2.09c1.77e4:1001 to 0a0b.0c0d.0e0f:7 carrying "hi", 19 bytes:
//   01                  kind: datagram
//   3fa209c177e4        source address
//   0a0b0c0d0e0f        destination address
//   03e9                source port 1001
//   0007                destination port 7
//   6869                payload "hi"
const DATAGRAM_HEX = ["01", "3fa209c177e4", "0a0b0c0d0e0f", "03e9", "0007", "6869"].join("");

// Stream segment from 0a0b.0c0d.0e0f:49152 to 3fa2.09c1.77e4:1000, 21 bytes:
//   02                  kind: stream segment (payload defined by the stream layer)
//   0a0b0c0d0e0f        source address
//   3fa209c177e4        destination address
//   c000                source port 49152
//   03e8                destination port 1000
//   00010203            payload (opaque here)
const STREAM_HEX = ["02", "0a0b0c0d0e0f", "3fa209c177e4", "c000", "03e8", "00010203"].join("");

// Keepalive: the empty plaintext (0 bytes).

const hex = (s: string): Uint8Array => Uint8Array.fromHex(s);

/** Asserts that `decodeInner` refuses `bytes` with exactly `reason`. */
function refuses(bytes: Uint8Array, reason: string): void {
  assertRefuses(decodeInner, bytes, reason);
}

/** The decoder contract: a canonical decode or a DecodeError, nothing else. */
function decodesCanonicallyOrRefuses(bytes: Uint8Array): void {
  assertCanonicalOrRefused(decodeInner, encodeInner, bytes);
}

const datagram = (payload: Uint8Array): PortPacket => ({
  kind: "datagram",
  srcAddress: hex("3fa209c177e4"),
  dstAddress: hex("0a0b0c0d0e0f"),
  srcPort: 1001,
  dstPort: 7,
  payload,
});

Deno.test("encodeInner() and decodeInner() agree on the worked datagram example", () => {
  const packet = datagram(new TextEncoder().encode("hi"));
  assert.equal(encodeInner(packet).toHex(), DATAGRAM_HEX);
  assert.deepEqual(decodeInner(hex(DATAGRAM_HEX)), packet);
});

Deno.test("encodeInner() and decodeInner() agree on the worked stream segment example", () => {
  const packet: InnerPacket = {
    kind: "stream",
    srcAddress: hex("0a0b0c0d0e0f"),
    dstAddress: hex("3fa209c177e4"),
    srcPort: 49152,
    dstPort: 1000,
    payload: hex("00010203"),
  };
  assert.equal(encodeInner(packet).toHex(), STREAM_HEX);
  assert.deepEqual(decodeInner(hex(STREAM_HEX)), packet);
});

Deno.test("an empty plaintext is a keepalive and a keepalive encodes to nothing", () => {
  assert.deepEqual(decodeInner(new Uint8Array(0)), { kind: "keepalive" });
  assert.equal(encodeInner({ kind: "keepalive" }).length, 0);
});

Deno.test("a datagram with an empty payload is 17 bytes and not a keepalive", () => {
  const bytes = encodeInner(datagram(new Uint8Array(0)));
  assert.equal(bytes.length, INNER_HEADER_SIZE);
  assert.equal(bytes.length, 17);
  assert.equal(decodeInner(bytes).kind, "datagram");
});

Deno.test("decodeInner() refuses every truncation of the inner header", () => {
  const bytes = hex(DATAGRAM_HEX);
  for (let n = 1; n < INNER_HEADER_SIZE; n++) refuses(bytes.subarray(0, n), "truncated");
});

Deno.test("decodeInner() refuses unknown kinds", () => {
  for (const kind of [0x00, 0x03, 0xff]) {
    const bytes = hex(DATAGRAM_HEX);
    bytes[0] = kind;
    refuses(bytes, "unknown_kind");
  }
});

Deno.test("decodeInner() returns views into the input", () => {
  const bytes = hex(DATAGRAM_HEX);
  const packet = decodeInner(bytes);
  assert.ok(packet.kind === "datagram");
  assert.equal(packet.payload.buffer, bytes.buffer);
  assert.equal(packet.payload.byteOffset, INNER_HEADER_SIZE);
});

Deno.test("the largest inner packet fills a data frame to exactly 65507 bytes", () => {
  assert.equal(MAX_INNER_PAYLOAD, 65_461);
  const inner = encodeInner(datagram(new Uint8Array(MAX_INNER_PAYLOAD)));
  assert.equal(inner.length, MAX_INNER_SIZE);
  assert.equal(decodeInner(inner).kind, "datagram");
  const body = new Uint8Array(inner.length + 16);
  const frame = encodeFrame({ type: "data", receiverIndex: 1, counter: 0, body });
  assert.equal(frame.length, MAX_DATA_FRAME_SIZE);
});

Deno.test("encodeInner() and decodeInner() refuse a payload one byte above the maximum", () => {
  assert.throws(() => encodeInner(datagram(new Uint8Array(MAX_INNER_PAYLOAD + 1))), RangeError);
  const bytes = new Uint8Array(MAX_INNER_SIZE + 1);
  bytes.set(hex(DATAGRAM_HEX));
  refuses(bytes, "too_long");
});

Deno.test("encodeInner() refuses addresses that are not 6 bytes and ports outside u16", () => {
  const good = datagram(new Uint8Array(1));
  assert.throws(() => encodeInner({ ...good, srcAddress: new Uint8Array(5) }), RangeError);
  assert.throws(() => encodeInner({ ...good, dstAddress: new Uint8Array(7) }), RangeError);
  for (const port of [-1, 65536, 1.5, Number.NaN]) {
    assert.throws(() => encodeInner({ ...good, srcPort: port }), RangeError);
    assert.throws(() => encodeInner({ ...good, dstPort: port }), RangeError);
  }
  assert.equal(encodeInner({ ...good, srcPort: 0, dstPort: 65535 }).length, 18);
});

// ---- Property tests ----

const address = fc.uint8Array({ minLength: 6, maxLength: 6 });
const port = fc.integer({ min: 0, max: 0xffff });
const validPacket: fc.Arbitrary<InnerPacket> = fc.oneof(
  fc.constant({ kind: "keepalive" as const }),
  fc.record({
    kind: fc.constantFrom("datagram" as const, "stream" as const),
    srcAddress: address,
    dstAddress: address,
    srcPort: port,
    dstPort: port,
    payload: fc.uint8Array({ maxLength: 200 }),
  }),
);

Deno.test("decodeInner() inverts encodeInner() for every valid packet", () => {
  fc.assert(
    fc.property(validPacket, (packet) => {
      const bytes = encodeInner(packet);
      // fc.record() builds null-prototype objects; spread them to compare.
      assert.deepEqual(decodeInner(bytes), { ...packet });
    }),
  );
});

Deno.test("decodeInner() on random bytes decodes canonically or throws only DecodeError", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), decodesCanonicallyOrRefuses), {
    numRuns: 1000,
  });
});

Deno.test("decodeInner() on every truncation of a valid packet decodes canonically or throws only DecodeError", () => {
  fc.assert(
    fc.property(validPacket, (packet) => {
      const bytes = encodeInner(packet);
      for (let n = 0; n < bytes.length; n++) decodesCanonicallyOrRefuses(bytes.subarray(0, n));
    }),
    { numRuns: 200 },
  );
});

Deno.test("decodeInner() on a valid packet with one byte or bit changed decodes canonically or throws only DecodeError", () => {
  fc.assert(
    fc.property(
      validPacket.filter((p) => p.kind !== "keepalive"),
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      fc.boolean(),
      (packet, at, value, flipBit) => {
        const bytes = encodeInner(packet).slice();
        const i = at % bytes.length;
        bytes[i] = flipBit ? bytes[i]! ^ (1 << (value % 8)) : value;
        decodesCanonicallyOrRefuses(bytes);
      },
    ),
    { numRuns: 2000 },
  );
});
