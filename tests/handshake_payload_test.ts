import assert from "node:assert/strict";
import fc from "fast-check";
import { MSG1_SIZE } from "../src/constants.ts";
import { DecodeError } from "../src/bytes.ts";
import {
  MAX_FINAL_NOISE_SIZE,
  MAX_RESP_NOISE_SIZE,
  MSG1_NOISE_SIZE as FRAMES_MSG1_NOISE_SIZE,
} from "../src/wire/frames.ts";
import {
  decodeHandshakePayload,
  encodeHandshakePayload,
  type HandshakePayload,
  MAX_HANDSHAKE_PAYLOAD_SIZE,
  MIN_HANDSHAKE_PAYLOAD_SIZE,
  MSG1_NOISE_SIZE,
} from "../src/wire/handshake_payload.ts";
import { assertCanonicalOrRefused, assertRefuses } from "./_codec_contract.ts";

// Worked example (docs/PROTOCOL.md): node "alpha", 195 bytes.
//   01                  version
//   000102…1f           Ed25519 public key (32 bytes)
//   0000000000a1b2c3    address stamp (8 bytes)
//   00000001            static key serial 1
//   0000018bcfe56800    static key created 1700000000000 ms (2023-11-14T22:13:20Z)
//   b5 x 64             binding signature
//   05                  hostname length
//   616c706861          hostname "alpha"
//   0000018bcfe65260    self-description time 1700000060000 ms
//   5e x 64             self-description signature
const ALPHA_HEX = [
  "01",
  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
  "0000000000a1b2c3",
  "00000001",
  "0000018bcfe56800",
  "b5".repeat(64),
  "05",
  "616c706861",
  "0000018bcfe65260",
  "5e".repeat(64),
].join("");

const hex = (s: string): Uint8Array => Uint8Array.fromHex(s);

const ALPHA: HandshakePayload = {
  publicKey: hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
  stamp: hex("0000000000a1b2c3"),
  staticSerial: 1,
  staticCreated: 1_700_000_000_000,
  bindingSignature: new Uint8Array(64).fill(0xb5),
  hostname: "alpha",
  selfTime: 1_700_000_060_000,
  selfSignature: new Uint8Array(64).fill(0x5e),
};

// Offsets into a payload with hostname "alpha".
const HOSTNAME_LEN_AT = 1 + 32 + 8 + 4 + 8 + 64;
const STATIC_CREATED_AT = 1 + 32 + 8 + 4;
const SELF_TIME_AT = HOSTNAME_LEN_AT + 1 + 5;

/** Asserts that `decodeHandshakePayload` refuses `bytes` with exactly `reason`. */
function refuses(bytes: Uint8Array, reason: string): void {
  assertRefuses(decodeHandshakePayload, bytes, reason);
}

/** The decoder contract: a canonical decode or a DecodeError, nothing else. */
function decodesCanonicallyOrRefuses(bytes: Uint8Array): void {
  assertCanonicalOrRefused(decodeHandshakePayload, encodeHandshakePayload, bytes);
}

Deno.test("encodeHandshakePayload() writes the worked example", () => {
  const bytes = encodeHandshakePayload(ALPHA);
  assert.equal(bytes.toHex(), ALPHA_HEX);
  assert.equal(bytes.length, 195);
});

Deno.test("decodeHandshakePayload() reads the worked example", () => {
  assert.deepEqual(decodeHandshakePayload(hex(ALPHA_HEX)), ALPHA);
});

Deno.test("decodeHandshakePayload() returns copies, not views of the input", () => {
  const bytes = hex(ALPHA_HEX);
  const p = decodeHandshakePayload(bytes);
  bytes.fill(0xff);
  assert.deepEqual(p, ALPHA);
});

Deno.test("MSG1_NOISE_SIZE is 347 and the same constant frames.ts uses", () => {
  assert.equal(MSG1_NOISE_SIZE, 347);
  assert.equal(MSG1_NOISE_SIZE, FRAMES_MSG1_NOISE_SIZE);
});

Deno.test("the largest handshake payload fits in message 2 without exceeding message 1", () => {
  assert.equal(MIN_HANDSHAKE_PAYLOAD_SIZE, 190);
  assert.equal(MAX_HANDSHAKE_PAYLOAD_SIZE, 253);
  // Noise message 2: e (32) + encrypted s (32 + 16) + encrypted payload (+ 16).
  const msg2Noise = 32 + 48 + MAX_HANDSHAKE_PAYLOAD_SIZE + 16;
  assert.ok(msg2Noise <= MAX_RESP_NOISE_SIZE, `${msg2Noise} > ${MAX_RESP_NOISE_SIZE}`);
  assert.ok(9 + msg2Noise <= MSG1_SIZE);
  // Noise message 3: encrypted s (32 + 16) + encrypted payload (+ 16).
  assert.ok(48 + MAX_HANDSHAKE_PAYLOAD_SIZE + 16 <= MAX_FINAL_NOISE_SIZE);
});

Deno.test("a handshake payload may have an empty hostname or one of 63 characters", () => {
  for (const hostname of ["", "a".repeat(63), "node-7", "0-9"]) {
    const bytes = encodeHandshakePayload({ ...ALPHA, hostname });
    assert.equal(bytes.length, MIN_HANDSHAKE_PAYLOAD_SIZE + hostname.length);
    assert.equal(decodeHandshakePayload(bytes).hostname, hostname);
  }
});

Deno.test("encodeHandshakePayload() refuses a hostname longer than 63 or outside [a-z0-9-]", () => {
  for (const hostname of ["a".repeat(64), "Alpha", "a.b", "a_b", "é", "a b", "ａ"]) {
    assert.throws(() => encodeHandshakePayload({ ...ALPHA, hostname }), RangeError, hostname);
  }
});

Deno.test("decodeHandshakePayload() refuses a hostname length of 64", () => {
  const bytes = encodeHandshakePayload({ ...ALPHA, hostname: "a".repeat(63) });
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes.subarray(0, HOSTNAME_LEN_AT));
  longer[HOSTNAME_LEN_AT] = 64;
  longer.fill(0x61, HOSTNAME_LEN_AT + 1, HOSTNAME_LEN_AT + 65);
  longer.set(bytes.subarray(HOSTNAME_LEN_AT + 64), HOSTNAME_LEN_AT + 65);
  refuses(longer, "bad_hostname");
});

Deno.test("decodeHandshakePayload() refuses hostname bytes outside [a-z0-9-]", () => {
  for (const bad of [0x41, 0x2e, 0x5f, 0x00, 0x20, 0x7b, 0x2f, 0x3a, 0x60, 0xc3, 0xff]) {
    const bytes = hex(ALPHA_HEX);
    bytes[HOSTNAME_LEN_AT + 3] = bad;
    refuses(bytes, "bad_hostname");
  }
});

Deno.test("decodeHandshakePayload() refuses any version but 1", () => {
  for (const version of [0, 2, 0xff]) {
    const bytes = hex(ALPHA_HEX);
    bytes[0] = version;
    refuses(bytes, "unsupported_version");
  }
});

Deno.test("decodeHandshakePayload() refuses a trailing byte", () => {
  refuses(hex(ALPHA_HEX + "00"), "trailing");
});

Deno.test("decodeHandshakePayload() refuses every truncation", () => {
  const bytes = hex(ALPHA_HEX);
  for (let n = 0; n < bytes.length; n++) refuses(bytes.subarray(0, n), "truncated");
});

Deno.test("decodeHandshakePayload() accepts times up to 2^53 - 1 and refuses 2^53", () => {
  const max = encodeHandshakePayload({
    ...ALPHA,
    staticCreated: Number.MAX_SAFE_INTEGER,
    selfTime: Number.MAX_SAFE_INTEGER,
  });
  assert.equal(
    max.subarray(STATIC_CREATED_AT, STATIC_CREATED_AT + 8).toHex(),
    "001fffffffffffff",
  );
  const p = decodeHandshakePayload(max);
  assert.equal(p.staticCreated, Number.MAX_SAFE_INTEGER);
  assert.equal(p.selfTime, Number.MAX_SAFE_INTEGER);
  for (const at of [STATIC_CREATED_AT, SELF_TIME_AT]) {
    const bytes = hex(ALPHA_HEX);
    bytes.set(hex("0020000000000000"), at);
    refuses(bytes, "out_of_range");
  }
});

Deno.test("encodeHandshakePayload() refuses out-of-range numbers and wrong-size byte fields", () => {
  const bad: Partial<HandshakePayload>[] = [
    { staticSerial: -1 },
    { staticSerial: 2 ** 32 },
    { staticSerial: 1.5 },
    { staticCreated: 2 ** 53 },
    { staticCreated: -1 },
    { selfTime: 0.5 },
    { selfTime: Number.NaN },
    { publicKey: new Uint8Array(31) },
    { stamp: new Uint8Array(9) },
    { bindingSignature: new Uint8Array(63) },
    { selfSignature: new Uint8Array(65) },
  ];
  for (const change of bad) {
    assert.throws(() => encodeHandshakePayload({ ...ALPHA, ...change }), RangeError);
  }
  assert.equal(
    decodeHandshakePayload(encodeHandshakePayload({ ...ALPHA, staticSerial: 0xffff_ffff }))
      .staticSerial,
    0xffff_ffff,
  );
});

// ---- Property tests ----

const hostname = fc.string({
  unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789-"),
  maxLength: 63,
});
const validPayload: fc.Arbitrary<HandshakePayload> = fc.record({
  publicKey: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  stamp: fc.uint8Array({ minLength: 8, maxLength: 8 }),
  staticSerial: fc.integer({ min: 0, max: 0xffff_ffff }),
  staticCreated: fc.maxSafeNat(),
  bindingSignature: fc.uint8Array({ minLength: 64, maxLength: 64 }),
  hostname,
  selfTime: fc.maxSafeNat(),
  selfSignature: fc.uint8Array({ minLength: 64, maxLength: 64 }),
});

Deno.test("decodeHandshakePayload() inverts encodeHandshakePayload() for every valid payload", () => {
  fc.assert(
    fc.property(validPayload, (p) => {
      // fc.record() builds null-prototype objects; spread them to compare.
      assert.deepEqual(decodeHandshakePayload(encodeHandshakePayload(p)), { ...p });
    }),
  );
});

Deno.test("decodeHandshakePayload() on random bytes decodes canonically or throws only DecodeError", () => {
  const anyBytes = fc.uint8Array({ maxLength: 300 });
  fc.assert(fc.property(anyBytes, decodesCanonicallyOrRefuses), { numRuns: 1000 });
  // Version 1 and a plausible length, so that the checks past the header run.
  const plausible = fc
    .tuple(
      fc.uint8Array({ minLength: HOSTNAME_LEN_AT - 1, maxLength: HOSTNAME_LEN_AT - 1 }),
      fc.integer({ min: 0, max: 70 }),
      fc.uint8Array({ minLength: 130, maxLength: 210 }),
    )
    .map(([head, len, tail]) => new Uint8Array([1, ...head, len, ...tail]));
  fc.assert(fc.property(plausible, decodesCanonicallyOrRefuses), { numRuns: 1000 });
});

Deno.test("decodeHandshakePayload() on every truncation of a valid payload throws only DecodeError", () => {
  fc.assert(
    fc.property(validPayload, (p) => {
      const bytes = encodeHandshakePayload(p);
      for (let n = 0; n < bytes.length; n++) {
        assert.throws(() => decodeHandshakePayload(bytes.subarray(0, n)), DecodeError);
      }
    }),
    { numRuns: 100 },
  );
});

Deno.test("decodeHandshakePayload() on a valid payload with one byte or bit changed decodes canonically or throws only DecodeError", () => {
  fc.assert(
    fc.property(
      validPayload,
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      fc.boolean(),
      (p, at, value, flipBit) => {
        const bytes = encodeHandshakePayload(p).slice();
        const i = at % bytes.length;
        bytes[i] = flipBit ? bytes[i]! ^ (1 << (value % 8)) : value;
        decodesCanonicallyOrRefuses(bytes);
      },
    ),
    { numRuns: 2000 },
  );
});
