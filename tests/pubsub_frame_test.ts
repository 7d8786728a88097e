import assert from "node:assert/strict";
import fc from "fast-check";
import { PUBSUB_MAX_DATA, PUBSUB_MAX_TOPIC } from "../src/constants.ts";
import { formatAddress } from "../src/identity/address.ts";
import { DecodeError } from "../src/bytes.ts";
import { checkPattern, checkTopic } from "../src/wire/pubsub_topic.ts";
import {
  decodeFrame,
  encodeFrame,
  MAX_PUBSUB_FRAME,
  PUBSUB_FRAMES,
  type PubSubFrame,
} from "../src/wire/pubsub_frame.ts";
import { FrameReader } from "../src/wire/framing.ts";
import { patternMatches } from "../src/services/pubsub/topic.ts";
import { assertCanonicalOrRefused, assertRefuses } from "./_codec_contract.ts";

const hex = (s: string) => Uint8Array.fromHex(s.replaceAll(" ", ""));
const text = (s: string) => new TextEncoder().encode(s);
/** How an error message quotes input: whole when short, cut after 64 characters. */
const quoted = (s: string) =>
  s.length > 64 ? JSON.stringify(s.slice(0, 64)).slice(0, -1) + '…"' : JSON.stringify(s);

// Worked example: PUBLISH id 7 on topic "a.b" with data "hi", 15 bytes:
//   02          kind PUBLISH
//   0000000a    body length 10
//   00000007    id 7
//   03 612e62   topic length 3, "a.b"
//   6869        data "hi"
const PUBLISH_HEX = "02 0000000a 00000007 03 612e62 6869";

// OVERFLOW: 3 events dropped, seqs 10 to 12, 29 bytes:
//   04 00000018 0000000000000003 000000000000000a 000000000000000c
const OVERFLOW_HEX = "04 00000018 0000000000000003 000000000000000a 000000000000000c";

/** Asserts that `decodeFrame` refuses `bytes` with exactly `reason`. */
function refuses(bytes: Uint8Array, reason: string): void {
  assertRefuses(decodeFrame, bytes, reason);
}

Deno.test("encodeFrame() lays out a PUBLISH exactly as the worked example", () => {
  const frame: PubSubFrame = { kind: "publish", id: 7, topic: "a.b", data: text("hi") };
  assert.equal(encodeFrame(frame).toHex(), hex(PUBLISH_HEX).toHex());
  assert.deepEqual(decodeFrame(hex(PUBLISH_HEX)), frame);
});

Deno.test("encodeFrame() lays out an OVERFLOW exactly as the worked example", () => {
  const frame: PubSubFrame = { kind: "overflow", dropped: 3, firstSeq: 10, lastSeq: 12 };
  assert.equal(encodeFrame(frame).toHex(), hex(OVERFLOW_HEX).toHex());
  assert.deepEqual(decodeFrame(hex(OVERFLOW_HEX)), frame);
});

Deno.test("checkTopic() accepts labels of [a-z0-9_-] separated by dots, up to 128 bytes", () => {
  for (const t of ["a", "a.b.c", "swarm-1.status_x", "0.1.2", "a".repeat(128)]) {
    assert.equal(checkTopic(t), t);
  }
});

Deno.test("checkTopic() refuses malformed topics with a message quoting them", () => {
  const cases: [string, RegExp][] = [
    ["", /it is empty/],
    ["a..b", /empty label/],
    [".a", /empty label/],
    ["a.", /empty label/],
    ["Temp.x", /"T" is not allowed/],
    ["a b", /" " is not allowed/],
    ["a.*", /"\*" is not allowed/],
    ["é", /"é" is not allowed/],
    ["a".repeat(129), /129 bytes long/],
  ];
  for (const [topic, why] of cases) {
    assert.throws(() => checkTopic(topic), (e: unknown) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /^Invalid topic "/);
      assert.ok(e.message.includes(quoted(topic)), e.message);
      assert.match(e.message, why);
      return true;
    });
  }
});

Deno.test("checkPattern() accepts a topic, a topic followed by .*, and a lone *", () => {
  for (const p of ["a.b.c", "a.b.*", "a.*", "*", "x".repeat(126) + ".*"]) {
    assert.equal(checkPattern(p), p);
  }
});

Deno.test("checkPattern() refuses a * anywhere but alone or last, and malformed prefixes, quoting the pattern", () => {
  const cases: [string, RegExp][] = [
    ["a.*.c", /may only stand alone or as the last label/],
    ["*.a", /may only stand alone or as the last label/],
    ["a.*.*", /may only stand alone or as the last label/],
    ["a*", /"\*" is not allowed/],
    [".*", /empty label/],
    ["a..*", /empty label/],
    ["**", /"\*" is not allowed/],
    ["A.*", /"A" is not allowed/],
    ["", /it is empty/],
    ["x".repeat(127) + ".*", /129 bytes long/],
  ];
  for (const [pattern, why] of cases) {
    assert.throws(() => checkPattern(pattern), (e: unknown) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /^Invalid topic pattern "/);
      assert.ok(e.message.includes(quoted(pattern)), e.message);
      assert.match(e.message, why);
      return true;
    });
  }
});

Deno.test("patternMatches() matches a prefix pattern strictly below the prefix, not the prefix itself", () => {
  assert.ok(patternMatches("a.b.*", "a.b.c"));
  assert.ok(patternMatches("a.b.*", "a.b.c.d"));
  assert.ok(!patternMatches("a.b.*", "a.b"));
  assert.ok(!patternMatches("a.b.*", "a.bc"));
  assert.ok(patternMatches("a.b", "a.b"));
  assert.ok(!patternMatches("a.b", "a.b.c"));
  assert.ok(patternMatches("*", "anything.at.all"));
});

Deno.test("encodeFrame() refuses what the decoder would refuse", () => {
  assert.throws(() => encodeFrame({ kind: "subscribe", pattern: "a.*.b" }), TypeError);
  assert.throws(
    () => encodeFrame({ kind: "publish", id: 1, topic: "A", data: new Uint8Array() }),
    TypeError,
  );
  assert.throws(
    () =>
      encodeFrame({
        kind: "publish",
        id: 1,
        topic: "a",
        data: new Uint8Array(PUBSUB_MAX_DATA + 1),
      }),
    RangeError,
  );
  assert.throws(
    () => encodeFrame({ kind: "publish", id: -1, topic: "a", data: new Uint8Array() }),
    RangeError,
  );
  assert.throws(
    () => encodeFrame({ kind: "overflow", dropped: 4, firstSeq: 10, lastSeq: 12 }),
    RangeError,
  );
  assert.throws(
    () => encodeFrame({ kind: "overflow", dropped: 1, firstSeq: 12, lastSeq: 10 }),
    RangeError,
  );
  assert.throws(() => encodeFrame({ kind: "error", id: 0, code: "Bad", message: "" }), TypeError);
  assert.throws(
    () => encodeFrame({ kind: "error", id: 0, code: "x", message: "é".repeat(300) }),
    RangeError,
  );
});

Deno.test("decodeFrame() refuses unknown kinds, lengths outside a kind's bounds, truncation and trailing bytes", () => {
  refuses(hex("07 00000001 00"), "unknown_kind");
  refuses(hex("05 00000015" + "00".repeat(21)), "too_large"); // ACK is exactly 20
  refuses(hex("05 00000013" + "00".repeat(19)), "too_short");
  refuses(hex("02 ffffffff"), "too_large"); // refused from the header alone
  refuses(hex(PUBLISH_HEX).subarray(0, 14), "truncated");
  refuses(hex(PUBLISH_HEX + "00"), "trailing");
  refuses(hex("02 00000007 00000001 02 4142"), "bad_topic"); // "AB"
  refuses(hex("01 00000003 2a2e61"), "bad_pattern"); // "*.a"
  refuses(hex("04 00000018 0000000000000000 0000000000000001 0000000000000001"), "out_of_range");
  refuses(hex("05 00000014 00000000 0020000000000000 00000000 00000000"), "out_of_range"); // 2^53
  refuses(hex("06 00000007 00000000 01 41 0a"), "bad_code");
  refuses(hex("06 00000007 00000000 01 61 ff"), "bad_utf8");
});

Deno.test("decodeFrame() refuses an EVENT from a reserved address", () => {
  const body = "0000000000000001" + "0000000000000000" + "000000000000" + "11".repeat(32) +
    "01" + "61";
  refuses(hex("03 " + (body.length / 2).toString(16).padStart(8, "0") + body), "bad_address");
});

Deno.test("a FrameReader over PUBSUB_FRAMES refuses an oversized header before any of its body arrives", () => {
  const s = new FrameReader(PUBSUB_FRAMES);
  s.push(hex("03 7fffffff"));
  assert.throws(
    () => s.take(),
    (e: unknown) => e instanceof DecodeError && e.reason === "too_large",
  );
  assert.equal(MAX_PUBSUB_FRAME, 5 + 8 + 8 + 6 + 32 + 1 + PUBSUB_MAX_TOPIC + PUBSUB_MAX_DATA);
});

// ---- Properties ----

const label = fc.stringMatching(/^[a-z0-9_-]{1,12}$/);
const topic = fc.array(label, { minLength: 1, maxLength: 8 }).map((l) => l.join("."))
  .filter((t) => t.length <= PUBSUB_MAX_TOPIC);
const pattern = fc.oneof(
  topic,
  topic.filter((t) => t.length <= PUBSUB_MAX_TOPIC - 2).map((t) => t + ".*"),
  fc.constant("*"),
);
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const seq = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const data = fc.uint8Array({ maxLength: 300 });
const address = fc.uint8Array({ minLength: 6, maxLength: 6 })
  .filter((b) => b.some((x) => x !== 0) && b.some((x) => x !== 0xff))
  .map(formatAddress);

const frame: fc.Arbitrary<PubSubFrame> = fc.oneof(
  pattern.map((p): PubSubFrame => ({ kind: "subscribe", pattern: p })),
  fc.record({ id: u32, topic, data }).map((f): PubSubFrame => ({ kind: "publish", ...f })),
  fc.record({
    seq,
    time: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    from: address,
    fromKey: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    topic,
    data,
  }).map((f): PubSubFrame => ({ kind: "event", ...f })),
  fc.tuple(seq, fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 1000 }))
    .filter(([first, span]) => first + span <= Number.MAX_SAFE_INTEGER)
    .map(([first, span, d]): PubSubFrame => ({
      kind: "overflow",
      dropped: 1 + (d % (span + 1)),
      firstSeq: first,
      lastSeq: first + span,
    })),
  fc.record({
    id: u32,
    seq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    delivered: u32,
    dropped: u32,
  }).map((f): PubSubFrame => ({ kind: "ack", ...f })),
  fc.record({
    id: u32,
    code: fc.stringMatching(/^[a-z_]{1,32}$/),
    message: fc.string({ maxLength: 100 }),
  }).map((f): PubSubFrame => ({ kind: "error", ...f })),
);

Deno.test("every frame survives an encode/decode round trip", () => {
  fc.assert(
    fc.property(frame, (f) => {
      assert.deepEqual(decodeFrame(encodeFrame(f)), f);
    }),
    { numRuns: 500 },
  );
});

Deno.test("decodeFrame() throws only DecodeError on arbitrary bytes, and what it accepts re-encodes to the same bytes", () => {
  const mutated = fc.tuple(frame, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }))
    .map(([f, flips]) => {
      const b = encodeFrame(f).slice();
      for (const [at, v] of flips) b[at % b.length] = v;
      return b;
    });
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 80 }), mutated), (bytes) => {
      assertCanonicalOrRefused(decodeFrame, encodeFrame, bytes);
    }),
    { numRuns: 1000 },
  );
});

Deno.test("a FrameReader over PUBSUB_FRAMES yields the same frames however the stream is cut into chunks", () => {
  fc.assert(
    fc.property(
      fc.array(frame, { minLength: 1, maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 30 }),
      (frames, cuts) => {
        const parts = frames.map(encodeFrame);
        const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let o = 0;
        for (const p of parts) {
          all.set(p, o);
          o += p.length;
        }
        const s = new FrameReader(PUBSUB_FRAMES);
        const got: Uint8Array[] = [];
        let at = 0;
        for (let i = 0; at < all.length; i++) {
          const n = cuts[i % cuts.length]!;
          s.push(all.subarray(at, at + n));
          at += n;
          for (let raw = s.take(); raw !== null; raw = s.take()) {
            const whole = new Uint8Array(5 + raw.body.length);
            new DataView(whole.buffer).setUint8(0, raw.kind);
            new DataView(whole.buffer).setUint32(1, raw.body.length);
            whole.set(raw.body, 5);
            got.push(whole);
          }
        }
        assert.equal(s.buffered, 0);
        assert.deepEqual(got.map((g) => g.toHex()), parts.map((p) => p.toHex()));
      },
    ),
    { numRuns: 200 },
  );
});
