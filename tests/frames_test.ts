import assert from "node:assert/strict";
import fc from "fast-check";
import { MSG1_SIZE, REJECT_AFTER_MESSAGES } from "../src/constants.ts";
import {
  DATA_HEADER_SIZE,
  decodeFrame,
  encodeDataHeader,
  encodeFrame,
  type Frame,
  type FrameInput,
  macInput1,
  macInput2,
  MAX_DATA_FRAME_SIZE,
  MAX_FINAL_NOISE_SIZE,
  MAX_RESP_NOISE_SIZE,
  MIN_FINAL_NOISE_SIZE,
  MIN_RESP_NOISE_SIZE,
  MSG1_NOISE_SIZE,
} from "../src/wire/frames.ts";
import { assertCanonicalOrRefused, assertRefuses } from "./_codec_contract.ts";

// Worked examples (docs/PROTOCOL.md). Each frame is written field by field in
// hex; the byte patterns make every field easy to spot in a dump.
//
// HandshakeInit, 384 bytes:
//   01                  type
//   0a0b0c0d            sender index
//   e1 x 32             noise: ephemeral public key
//   00 x 315            noise: padding payload (Noise message 1 payload)
//   a1 x 16             mac1
//   00 x 16             mac2 (no cookie)
const INIT_HEX = [
  "01",
  "0a0b0c0d",
  "e1".repeat(32),
  "00".repeat(315),
  "a1".repeat(16),
  "00".repeat(16),
].join("");

// HandshakeResp, 105 bytes (the smallest):
//   02                  type
//   1a2b3c4d            sender index (responder)
//   0a0b0c0d            receiver index (initiator's, from message 1)
//   e2 x 32             noise: ephemeral public key
//   5e x 48             noise: encrypted static key + tag
//   7a x 16             noise: encrypted payload tag (empty payload)
const RESP_HEX = [
  "02",
  "1a2b3c4d",
  "0a0b0c0d",
  "e2".repeat(32),
  "5e".repeat(48),
  "7a".repeat(16),
].join("");

// HandshakeFinal, 73 bytes (the smallest):
//   03                  type
//   0a0b0c0d            sender index (initiator)
//   1a2b3c4d            receiver index (responder's, from message 2)
//   5e x 48             noise: encrypted static key + tag
//   7a x 16             noise: encrypted payload tag
const FINAL_HEX = [
  "03",
  "0a0b0c0d",
  "1a2b3c4d",
  "5e".repeat(48),
  "7a".repeat(16),
].join("");

// CookieReply, 37 bytes:
//   04                  type
//   0a0b0c0d            receiver index (initiator's, from message 1)
//   ec x 16             echo
//   c0 x 16             cookie
const COOKIE_HEX = ["04", "0a0b0c0d", "ec".repeat(16), "c0".repeat(16)].join("");

// Data, 32 bytes:
//   05                  type            \
//   1a2b3c4d            receiver index   > header = AEAD associated data
//   0000010203040506    counter          /  (nonce = 00000000 || counter)
//   c1c2c3              ciphertext
//   7a x 16             tag
const DATA_HEX = ["05", "1a2b3c4d", "0000010203040506", "c1c2c3", "7a".repeat(16)].join("");

// Data keepalive, 29 bytes (the smallest data frame):
//   05 0a0b0c0d 0000000000000000 | tag 7b x 16
const KEEPALIVE_HEX = ["05", "0a0b0c0d", "0000000000000000", "7b".repeat(16)].join("");

const hex = (s: string): Uint8Array => Uint8Array.fromHex(s);
const fill = (n: number, v = 0): Uint8Array => new Uint8Array(n).fill(v);

/** Asserts that `decodeFrame` refuses `bytes` with exactly `reason`. */
function refuses(bytes: Uint8Array, reason: string): void {
  assertRefuses(decodeFrame, bytes, reason);
}

/** The decoder contract: a canonical decode or a DecodeError, nothing else. */
function decodesCanonicallyOrRefuses(bytes: Uint8Array): void {
  assertCanonicalOrRefused(decodeFrame, encodeFrame, bytes);
}

Deno.test("encodeFrame() writes the worked handshake init example", () => {
  const bytes = encodeFrame({
    type: "init",
    senderIndex: 0x0a0b0c0d,
    noise: new Uint8Array([...fill(32, 0xe1), ...fill(315)]),
    mac1: fill(16, 0xa1),
    mac2: fill(16),
  });
  assert.equal(bytes.length, MSG1_SIZE);
  assert.equal(bytes.toHex(), INIT_HEX);
});

Deno.test("decodeFrame() reads the worked handshake init example", () => {
  const f = decodeFrame(hex(INIT_HEX));
  assert.equal(f.type, "init");
  if (f.type !== "init") return;
  assert.equal(f.senderIndex, 0x0a0b0c0d);
  assert.deepEqual(f.noise, new Uint8Array([...fill(32, 0xe1), ...fill(315)]));
  assert.deepEqual(f.mac1, fill(16, 0xa1));
  assert.deepEqual(f.mac2, fill(16));
});

Deno.test("encodeFrame() writes the worked handshake resp example", () => {
  const bytes = encodeFrame({
    type: "resp",
    senderIndex: 0x1a2b3c4d,
    receiverIndex: 0x0a0b0c0d,
    noise: new Uint8Array([...fill(32, 0xe2), ...fill(48, 0x5e), ...fill(16, 0x7a)]),
  });
  assert.equal(bytes.toHex(), RESP_HEX);
  assert.equal(bytes.length, 105);
});

Deno.test("decodeFrame() reads the worked handshake resp example", () => {
  assert.deepEqual(decodeFrame(hex(RESP_HEX)), {
    type: "resp",
    senderIndex: 0x1a2b3c4d,
    receiverIndex: 0x0a0b0c0d,
    noise: new Uint8Array([...fill(32, 0xe2), ...fill(48, 0x5e), ...fill(16, 0x7a)]),
  });
});

Deno.test("encodeFrame() and decodeFrame() agree on the worked handshake final example", () => {
  const frame: Frame = {
    type: "final",
    senderIndex: 0x0a0b0c0d,
    receiverIndex: 0x1a2b3c4d,
    noise: new Uint8Array([...fill(48, 0x5e), ...fill(16, 0x7a)]),
  };
  assert.equal(encodeFrame(frame).toHex(), FINAL_HEX);
  assert.deepEqual(decodeFrame(hex(FINAL_HEX)), frame);
});

Deno.test("encodeFrame() and decodeFrame() agree on the worked cookie reply example", () => {
  const frame: Frame = {
    type: "cookie",
    receiverIndex: 0x0a0b0c0d,
    echo: fill(16, 0xec),
    cookie: fill(16, 0xc0),
  };
  assert.equal(encodeFrame(frame).toHex(), COOKIE_HEX);
  assert.deepEqual(decodeFrame(hex(COOKIE_HEX)), frame);
});

Deno.test("encodeFrame() and decodeFrame() agree on the worked data example", () => {
  const body = hex("c1c2c3" + "7a".repeat(16));
  const bytes = encodeFrame({
    type: "data",
    receiverIndex: 0x1a2b3c4d,
    counter: 0x010203040506,
    body,
  });
  assert.equal(bytes.toHex(), DATA_HEX);
  assert.deepEqual(decodeFrame(hex(DATA_HEX)), {
    type: "data",
    receiverIndex: 0x1a2b3c4d,
    counter: 1108152157446,
    header: hex("051a2b3c4d0000010203040506"),
    body,
  });
});

Deno.test("encodeFrame() and decodeFrame() agree on the worked keepalive example", () => {
  const bytes = encodeFrame({
    type: "data",
    receiverIndex: 0x0a0b0c0d,
    counter: 0,
    body: fill(16, 0x7b),
  });
  assert.equal(bytes.toHex(), KEEPALIVE_HEX);
  const f = decodeFrame(bytes);
  assert.equal(f.type === "data" && f.counter, 0);
});

Deno.test("encodeDataHeader() writes the same 13 bytes that start an encoded data frame", () => {
  const header = encodeDataHeader(0x1a2b3c4d, 0x010203040506);
  assert.equal(header.length, DATA_HEADER_SIZE);
  assert.equal(header.toHex(), DATA_HEX.slice(0, 2 * DATA_HEADER_SIZE));
});

Deno.test("decodeFrame() returns views into the input for a data frame's header and body", () => {
  const bytes = hex(DATA_HEX);
  const f = decodeFrame(bytes);
  assert.ok(f.type === "data");
  assert.equal(f.header.buffer, bytes.buffer);
  assert.equal(f.body.buffer, bytes.buffer);
  assert.equal(f.header.byteOffset, 0);
  assert.equal(f.body.byteOffset, DATA_HEADER_SIZE);
  assert.equal(f.body.length, bytes.length - DATA_HEADER_SIZE);
});

Deno.test("decodeFrame() reads a data frame inside a larger buffer at its own offset", () => {
  const outer = new Uint8Array(100).fill(0xff);
  outer.set(hex(DATA_HEX), 7);
  const f = decodeFrame(outer.subarray(7, 7 + DATA_HEX.length / 2));
  assert.ok(f.type === "data");
  assert.equal(f.counter, 0x010203040506);
  assert.equal(f.header.toHex(), DATA_HEX.slice(0, 26));
});

Deno.test("macInput1() and macInput2() cover everything before mac1 and before mac2", () => {
  const bytes = hex(INIT_HEX);
  assert.equal(macInput1(bytes).toHex(), INIT_HEX.slice(0, 2 * (MSG1_SIZE - 32)));
  assert.equal(macInput2(bytes).toHex(), INIT_HEX.slice(0, 2 * (MSG1_SIZE - 16)));
  assert.equal(macInput1(bytes).buffer, bytes.buffer);
});

Deno.test("macInput1() and macInput2() refuse anything but a handshake init", () => {
  assert.throws(() => macInput1(hex(RESP_HEX)), RangeError);
  assert.throws(() => macInput2(hex(INIT_HEX).subarray(1)), RangeError);
  const wrongType = hex(INIT_HEX);
  wrongType[0] = 2;
  assert.throws(() => macInput1(wrongType), RangeError);
});

Deno.test("MSG1_NOISE_SIZE fills a handshake init to exactly MSG1_SIZE", () => {
  assert.equal(MSG1_NOISE_SIZE, 347);
  assert.equal(1 + 4 + MSG1_NOISE_SIZE + 16 + 16, MSG1_SIZE);
});

Deno.test("decodeFrame() refuses a handshake init one byte short or one byte long", () => {
  refuses(hex(INIT_HEX).subarray(0, MSG1_SIZE - 1), "bad_length");
  refuses(hex(INIT_HEX + "00"), "bad_length");
});

Deno.test("encodeFrame() refuses a handshake init whose noise is not 347 bytes", () => {
  for (const n of [346, 348]) {
    assert.throws(
      () =>
        encodeFrame({
          type: "init",
          senderIndex: 1,
          noise: fill(n),
          mac1: fill(16),
          mac2: fill(16),
        }),
      RangeError,
    );
  }
  assert.throws(
    () =>
      encodeFrame({
        type: "init",
        senderIndex: 1,
        noise: fill(347),
        mac1: fill(15),
        mac2: fill(16),
      }),
    RangeError,
  );
});

Deno.test("a handshake resp may be as large as a handshake init but not one byte larger", () => {
  const largest = encodeFrame({
    type: "resp",
    senderIndex: 1,
    receiverIndex: 2,
    noise: fill(MAX_RESP_NOISE_SIZE),
  });
  assert.equal(largest.length, MSG1_SIZE);
  assert.equal(decodeFrame(largest).type, "resp");
  assert.throws(
    () =>
      encodeFrame({
        type: "resp",
        senderIndex: 1,
        receiverIndex: 2,
        noise: fill(MAX_RESP_NOISE_SIZE + 1),
      }),
    RangeError,
  );
  refuses(new Uint8Array([...largest, 0]), "too_long");
});

Deno.test("decodeFrame() refuses a handshake resp whose noise is shorter than 96 bytes", () => {
  assert.equal(MIN_RESP_NOISE_SIZE, 96);
  refuses(hex(RESP_HEX).subarray(0, 9 + 95), "truncated");
  assert.throws(
    () => encodeFrame({ type: "resp", senderIndex: 1, receiverIndex: 2, noise: fill(95) }),
    RangeError,
  );
});

Deno.test("a handshake final fits in 1400 bytes and refuses noise shorter than 64 bytes", () => {
  assert.equal(MIN_FINAL_NOISE_SIZE, 64);
  const largest = encodeFrame({
    type: "final",
    senderIndex: 1,
    receiverIndex: 2,
    noise: fill(MAX_FINAL_NOISE_SIZE),
  });
  assert.equal(largest.length, 1400);
  assert.equal(decodeFrame(largest).type, "final");
  refuses(new Uint8Array([...largest, 0]), "too_long");
  refuses(hex(FINAL_HEX).subarray(0, 9 + 63), "truncated");
  assert.throws(
    () =>
      encodeFrame({
        type: "final",
        senderIndex: 1,
        receiverIndex: 2,
        noise: fill(MAX_FINAL_NOISE_SIZE + 1),
      }),
    RangeError,
  );
  assert.throws(
    () => encodeFrame({ type: "final", senderIndex: 1, receiverIndex: 2, noise: fill(63) }),
    RangeError,
  );
});

Deno.test("decodeFrame() refuses a cookie reply that is not exactly 37 bytes", () => {
  refuses(hex(COOKIE_HEX).subarray(0, 36), "bad_length");
  refuses(hex(COOKIE_HEX + "00"), "bad_length");
  assert.throws(
    () => encodeFrame({ type: "cookie", receiverIndex: 1, echo: fill(17), cookie: fill(16) }),
    RangeError,
  );
});

Deno.test("decodeFrame() refuses a data frame shorter than its tag", () => {
  refuses(hex(KEEPALIVE_HEX).subarray(0, 28), "truncated");
  refuses(hex("051a2b3c4d0000010203040506"), "truncated");
  assert.throws(
    () => encodeFrame({ type: "data", receiverIndex: 1, counter: 0, body: fill(15) }),
    RangeError,
  );
});

Deno.test("a data frame may be 65507 bytes but not one byte more", () => {
  const body = fill(MAX_DATA_FRAME_SIZE - DATA_HEADER_SIZE);
  const largest = encodeFrame({ type: "data", receiverIndex: 1, counter: 0, body });
  assert.equal(largest.length, 65_507);
  assert.equal(decodeFrame(largest).type, "data");
  refuses(new Uint8Array(largest.length + 1).fill(0x05, 0, 1).fill(1, 4, 5), "too_long");
  assert.throws(
    () => encodeFrame({ type: "data", receiverIndex: 1, counter: 0, body: fill(body.length + 1) }),
    RangeError,
  );
});

Deno.test("decodeFrame() accepts counter 2^48 - 1 and refuses 2^48 and above", () => {
  const tag = "00".repeat(16);
  const f = decodeFrame(hex("05" + "00000001" + "0000ffffffffffff" + tag));
  assert.equal(f.type === "data" && f.counter, REJECT_AFTER_MESSAGES - 1);
  refuses(hex("05" + "00000001" + "0001000000000000" + tag), "counter_limit");
  refuses(hex("05" + "00000001" + "ffffffffffffffff" + tag), "counter_limit");
});

Deno.test("encodeFrame() and encodeDataHeader() refuse a counter outside 0 to 2^48 - 1", () => {
  assert.equal(
    encodeDataHeader(1, REJECT_AFTER_MESSAGES - 1).toHex(),
    "05" + "00000001" + "0000ffffffffffff",
  );
  for (const counter of [REJECT_AFTER_MESSAGES, -1, 1.5, Number.NaN, 2 ** 64]) {
    assert.throws(() => encodeDataHeader(1, counter), RangeError);
    assert.throws(
      () => encodeFrame({ type: "data", receiverIndex: 1, counter, body: fill(16) }),
      RangeError,
    );
  }
});

Deno.test("decodeFrame() refuses the reserved session index 0 in every frame type", () => {
  const zeroAt = (h: string, offset: number): Uint8Array => {
    const b = hex(h);
    b.fill(0, offset, offset + 4);
    return b;
  };
  refuses(zeroAt(INIT_HEX, 1), "reserved_index");
  refuses(zeroAt(RESP_HEX, 1), "reserved_index");
  refuses(zeroAt(RESP_HEX, 5), "reserved_index");
  refuses(zeroAt(FINAL_HEX, 1), "reserved_index");
  refuses(zeroAt(FINAL_HEX, 5), "reserved_index");
  refuses(zeroAt(COOKIE_HEX, 1), "reserved_index");
  refuses(zeroAt(DATA_HEX, 1), "reserved_index");
});

Deno.test("encodeFrame() refuses the reserved session index 0 and indices beyond u32", () => {
  for (const bad of [0, -1, 2 ** 32, 1.5]) {
    const frames: FrameInput[] = [
      { type: "init", senderIndex: bad, noise: fill(347), mac1: fill(16), mac2: fill(16) },
      { type: "resp", senderIndex: bad, receiverIndex: 1, noise: fill(96) },
      { type: "resp", senderIndex: 1, receiverIndex: bad, noise: fill(96) },
      { type: "final", senderIndex: bad, receiverIndex: 1, noise: fill(64) },
      { type: "final", senderIndex: 1, receiverIndex: bad, noise: fill(64) },
      { type: "cookie", receiverIndex: bad, echo: fill(16), cookie: fill(16) },
      { type: "data", receiverIndex: bad, counter: 0, body: fill(16) },
    ];
    for (const f of frames) assert.throws(() => encodeFrame(f), RangeError);
    assert.throws(() => encodeDataHeader(bad, 0), RangeError);
  }
});

Deno.test("decodeFrame() refuses an empty datagram and unknown frame types", () => {
  refuses(new Uint8Array(0), "truncated");
  for (const type of [0x00, 0x06, 0x80, 0xff]) {
    refuses(new Uint8Array([type, ...fill(100, 1)]), "unknown_type");
  }
});

// ---- Property tests ----

const index = fc.integer({ min: 1, max: 0xffff_ffff });
const bytesOf = (minLength: number, maxLength: number) => fc.uint8Array({ minLength, maxLength });
const counter = fc.oneof(
  fc.integer({ min: 0, max: REJECT_AFTER_MESSAGES - 1 }),
  fc.constantFrom(0, 1, 2 ** 32 - 1, 2 ** 32, REJECT_AFTER_MESSAGES - 1),
);

const validFrame: fc.Arbitrary<FrameInput> = fc.oneof(
  fc.record({
    type: fc.constant("init" as const),
    senderIndex: index,
    noise: bytesOf(MSG1_NOISE_SIZE, MSG1_NOISE_SIZE),
    mac1: bytesOf(16, 16),
    mac2: bytesOf(16, 16),
  }),
  fc.record({
    type: fc.constant("resp" as const),
    senderIndex: index,
    receiverIndex: index,
    noise: bytesOf(MIN_RESP_NOISE_SIZE, MAX_RESP_NOISE_SIZE),
  }),
  fc.record({
    type: fc.constant("final" as const),
    senderIndex: index,
    receiverIndex: index,
    noise: bytesOf(MIN_FINAL_NOISE_SIZE, 400),
  }),
  fc.record({
    type: fc.constant("cookie" as const),
    receiverIndex: index,
    echo: bytesOf(16, 16),
    cookie: bytesOf(16, 16),
  }),
  fc.record({
    type: fc.constant("data" as const),
    receiverIndex: index,
    counter,
    body: bytesOf(16, 120),
  }),
);

Deno.test("decodeFrame() inverts encodeFrame() for every valid frame", () => {
  fc.assert(
    fc.property(validFrame, (frame) => {
      const bytes = encodeFrame(frame);
      const decoded = decodeFrame(bytes);
      if (decoded.type === "data") {
        const { header, ...rest } = decoded;
        assert.deepEqual(header, bytes.subarray(0, DATA_HEADER_SIZE));
        // fc.record() builds null-prototype objects; spread them to compare.
        assert.deepEqual(rest, { ...frame });
      } else {
        assert.deepEqual(decoded, { ...frame });
      }
      assert.equal(encodeFrame(decoded).toHex(), bytes.toHex());
    }),
  );
});

Deno.test("decodeFrame() on random bytes decodes canonically or throws only DecodeError", () => {
  fc.assert(fc.property(bytesOf(0, 600), decodesCanonicallyOrRefuses), { numRuns: 1000 });
  const typed = fc
    .tuple(fc.integer({ min: 0, max: 6 }), bytesOf(0, 500))
    .map(([t, rest]) => new Uint8Array([t, ...rest]));
  fc.assert(fc.property(typed, decodesCanonicallyOrRefuses), { numRuns: 1000 });
  const init = bytesOf(MSG1_SIZE - 1, MSG1_SIZE - 1).map((b) => new Uint8Array([1, ...b]));
  fc.assert(fc.property(init, decodesCanonicallyOrRefuses));
});

Deno.test("decodeFrame() on every truncation of a valid frame decodes canonically or throws only DecodeError", () => {
  fc.assert(
    fc.property(validFrame, (frame) => {
      const bytes = encodeFrame(frame);
      for (let n = 0; n < bytes.length; n++) decodesCanonicallyOrRefuses(bytes.subarray(0, n));
    }),
    { numRuns: 200 },
  );
});

Deno.test("decodeFrame() on a valid frame with one byte or bit changed decodes canonically or throws only DecodeError", () => {
  fc.assert(
    fc.property(
      validFrame,
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      fc.boolean(),
      (frame, at, value, flipBit) => {
        const bytes = encodeFrame(frame).slice();
        const i = at % bytes.length;
        bytes[i] = flipBit ? bytes[i]! ^ (1 << (value % 8)) : value;
        decodesCanonicallyOrRefuses(bytes);
      },
    ),
    { numRuns: 2000 },
  );
});
