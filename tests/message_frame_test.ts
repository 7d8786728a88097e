import assert from "node:assert/strict";
import fc from "fast-check";
import { MAX_FILE_CHUNK, MAX_STREAM_MESSAGE } from "../src/constants.ts";
import { DecodeError, utf8 } from "../src/bytes.ts";
import { type Envelope, MESSAGE_TYPES } from "../src/wire/data_message.ts";
import { REFUSAL_CODES, type RefusalCode } from "../src/wire/refusal_code.ts";
import {
  decodeFrame,
  decodeFrameHeader,
  encodeFrame,
  encodeFrameHeader,
  FRAME_FILE_BEGIN,
  FRAME_FILE_DATA,
  FRAME_FILE_END,
  FRAME_MESSAGE,
  FRAME_RECEIPT,
  frameCap,
  type FrameKind,
  MAX_ENVELOPE_OVERHEAD,
  MESSAGE_FRAMES,
  type MessageFrame,
  nextMessageFrame,
  RECEIPT_FRAMES,
} from "../src/wire/message_frame.ts";
import { type ChunkSource, FrameReader } from "../src/wire/framing.ts";
import { assertRefuses, mutated } from "./_codec_contract.ts";

const HELLO_SHA = Uint8Array.fromHex(
  "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
);

// Worked example: a 5-byte file "a.txt" (content "hello") offered as id "f1",
// its content, its end, and the receipt that says it was stored as seq 7.
//
//   02 00000031                FILE_BEGIN, 49-byte body
//      02 6631                 id "f1"
//      05 612e747874           name "a.txt"
//      0000000000000005        size 5
//      2cf24dba…938b9824       SHA-256("hello")
//   03 00000005 68656c6c6f     FILE_DATA "hello"
//   04 00000001 00             FILE_END, complete
//   05 0000003c                RECEIPT, 60-byte body
//      00 02                   stored, a file
//      0000000000000007        seq 7
//      02 6631                 id "f1"
//      00                      detail ""
//      05 612e747874           stored name "a.txt"
//      0000000000000005        size 5
//      2cf24dba…938b9824       SHA-256
const EXAMPLE: MessageFrame[] = [
  { kind: "file_begin", file: { id: "f1", name: "a.txt", size: 5, sha256: HELLO_SHA } },
  { kind: "file_data", data: new TextEncoder().encode("hello") },
  { kind: "file_end", cancelled: false },
  {
    kind: "receipt",
    receipt: {
      subject: "file",
      status: "stored",
      seq: 7,
      id: "f1",
      detail: "",
      name: "a.txt",
      size: 5,
      sha256: HELLO_SHA,
    },
  },
];
const SHA_HEX = HELLO_SHA.toHex();
const EXAMPLE_FRAMES_HEX = [
  "02" + "00000031" + "02" + "6631" + "05" + "612e747874" + "0000000000000005" + SHA_HEX,
  "03" + "00000005" + "68656c6c6f",
  "04" + "00000001" + "00",
  "05" + "0000003c" + "00" + "02" + "0000000000000007" + "02" + "6631" + "00" + "05" +
  "612e747874" + "0000000000000005" + SHA_HEX,
];

Deno.test("encodeFrame() writes the worked file example byte for byte and decodeFrame() reads it back", () => {
  EXAMPLE.forEach((frame, i) => {
    const hex = EXAMPLE_FRAMES_HEX[i]!;
    assert.equal(encodeFrame(frame).toHex(), hex);
    assert.deepEqual(decodeFrame(Uint8Array.fromHex(hex)), frame);
  });
});

Deno.test("a MESSAGE frame's body is the envelope encoding, and a refusal receipt names its code", () => {
  // 01 0000001b | the 27-byte envelope of data_message_test.ts ("hi" from id "m1").
  const envelope: Envelope = {
    id: "m1",
    type: "text",
    correlationId: "c",
    inReplyTo: "",
    expiresAt: 1_700_000_000_000,
    meta: { k: "v" },
    data: Uint8Array.of(0x68, 0x69),
  };
  const hex = "010000001b" + "0101026d310163000000018bcfe5680001016b0176000000026869";
  assert.equal(encodeFrame({ kind: "message", envelope }).toHex(), hex);
  assert.deepEqual(decodeFrame(Uint8Array.fromHex(hex)), { kind: "message", envelope });
  // 05 0000001a | 02 refused | 01 message | seq 0 | 02 6d31 "m1" | 0c "rate_limited"
  const refused: MessageFrame = {
    kind: "receipt",
    receipt: { subject: "message", status: "refused", seq: 0, id: "m1", detail: "rate_limited" },
  };
  const refusedHex = "050000001a" + "0201" + "0000000000000000" + "026d31" + "0c" +
    new TextEncoder().encode("rate_limited").toHex();
  assert.equal(encodeFrame(refused).toHex(), refusedHex);
  assert.deepEqual(decodeFrame(Uint8Array.fromHex(refusedHex)), refused);
});

Deno.test("a conflict receipt carries the stored message's size and digest, and only a conflict does", () => {
  const digest = Uint8Array.from({ length: 32 }, (_, i) => i);
  const conflict: MessageFrame = {
    kind: "receipt",
    receipt: {
      subject: "message",
      status: "refused",
      seq: 0,
      id: "job-1",
      detail: "conflict",
      stored: { size: 5, digest },
    },
  };
  // 05 00000041 | 02 refused | 01 message | seq 0 | 05 "job-1" | 08 "conflict"
  //   | size u64 5 | digest 000102…1f
  const hex = "0500000041" + "0201" + "0000000000000000" + "05" + utf8("job-1").toHex() + "08" +
    utf8("conflict").toHex() + "0000000000000005" + digest.toHex();
  assert.equal(encodeFrame(conflict).toHex(), hex);
  assert.deepEqual(decodeFrame(Uint8Array.fromHex(hex)), conflict);
  // Without its tail a conflict receipt is cut short.
  const short = Uint8Array.fromHex("0500000019" + hex.slice(10, 10 + 50));
  assert.throws(() => decodeFrame(short), (e) => e instanceof DecodeError);
  const receipt = { subject: "message" as const, status: "refused" as const, seq: 0, id: "" };
  assert.throws(
    () => encodeFrame({ kind: "receipt", receipt: { ...receipt, detail: "conflict" } }),
    RangeError,
  );
  assert.throws(
    () =>
      encodeFrame({
        kind: "receipt",
        receipt: { ...receipt, detail: "rate_limited", stored: { size: 1, digest } },
      }),
    RangeError,
  );
});

Deno.test("a refused receipt with a well-formed code this version does not know decodes as internal", () => {
  const unknown = new TextEncoder().encode("quota_exceeded_2");
  const body = Uint8Array.of(2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, unknown.length, ...unknown);
  const frame = Uint8Array.of(FRAME_RECEIPT, 0, 0, 0, body.length, ...body);
  assert.deepEqual(decodeFrame(frame), {
    kind: "receipt",
    receipt: { subject: "message", status: "refused", seq: 0, id: "", detail: "internal" },
  });
  // Every known code survives the round trip as itself.
  for (const detail of REFUSAL_CODES) {
    const stored = detail === "conflict" ? { stored: { size: 1, digest: new Uint8Array(32) } } : {};
    const receipt = {
      subject: "message" as const,
      status: "refused" as const,
      seq: 0,
      id: "",
      detail,
      ...stored,
    };
    assert.deepEqual(decodeFrame(encodeFrame({ kind: "receipt", receipt })), {
      kind: "receipt",
      receipt,
    });
  }
});

Deno.test("decodeFrameHeader() refuses a length over its kind's cap and unknown kinds", () => {
  const kinds: FrameKind[] = [
    FRAME_MESSAGE,
    FRAME_FILE_BEGIN,
    FRAME_FILE_DATA,
    FRAME_FILE_END,
    FRAME_RECEIPT,
  ];
  for (const kind of kinds) {
    const cap = frameCap(kind);
    assert.deepEqual(decodeFrameHeader(encodeFrameHeader(kind, cap)), { kind, length: cap });
    const over = Uint8Array.of(kind, 0, 0, 0, 0);
    new DataView(over.buffer).setUint32(1, cap + 1);
    assertRefuses(decodeFrameHeader, over, "too_large");
    assert.throws(() => encodeFrameHeader(kind, cap + 1), RangeError);
  }
  assert.equal(frameCap(FRAME_MESSAGE), MAX_STREAM_MESSAGE + MAX_ENVELOPE_OVERHEAD);
  assert.equal(frameCap(FRAME_FILE_DATA), MAX_FILE_CHUNK);
  for (const kind of [0, 6, 255]) {
    assertRefuses(decodeFrameHeader, Uint8Array.of(kind, 0, 0, 0, 0), "unknown_kind");
  }
});

Deno.test("encodeFrame() refuses out-of-range fields with RangeError", () => {
  const offer = { id: "f", name: "n", size: 1, sha256: HELLO_SHA };
  const bad: MessageFrame[] = [
    { kind: "file_begin", file: { ...offer, id: "" } },
    { kind: "file_begin", file: { ...offer, name: "" } },
    { kind: "file_begin", file: { ...offer, name: "x".repeat(256) } },
    { kind: "file_begin", file: { ...offer, size: -1 } },
    { kind: "file_begin", file: { ...offer, size: 2 ** 53 } },
    { kind: "file_begin", file: { ...offer, sha256: new Uint8Array(31) } },
    { kind: "file_data", data: new Uint8Array(0) },
    { kind: "file_data", data: new Uint8Array(MAX_FILE_CHUNK + 1) },
    {
      kind: "receipt",
      receipt: { subject: "message", status: "refused", seq: 0, id: "", detail: "" },
    },
    {
      kind: "receipt",
      receipt: {
        subject: "message",
        status: "stored",
        seq: 1,
        id: "",
        detail: "oops" as RefusalCode,
      },
    },
    {
      kind: "receipt",
      receipt: {
        subject: "message",
        status: "refused",
        seq: 0,
        id: "",
        detail: "Bad Code" as RefusalCode,
      },
    },
  ];
  for (const frame of bad) assert.throws(() => encodeFrame(frame), RangeError);
});

// --- properties -----------------------------------------------------------------------------

/** Any text, a leading U+FEFF included (decoders keep it). */
const text = (maxLength: number, minLength = 0) =>
  fc.string({ unit: "binary", minLength, maxLength });
const sha = fc.uint8Array({ minLength: 32, maxLength: 32 });
const status = fc.constantFrom("stored" as const, "duplicate" as const, "refused" as const);
const code = fc.constantFrom(...REFUSAL_CODES);

const envelopes: fc.Arbitrary<Envelope> = fc.record({
  id: text(32, 1),
  type: fc.constantFrom(...MESSAGE_TYPES),
  correlationId: text(32),
  inReplyTo: text(32),
  expiresAt: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  meta: fc.dictionary(text(16), text(32), { maxKeys: 16, noNullPrototype: true }),
  data: fc.uint8Array({ maxLength: 2_000 }),
}, { noNullPrototype: true });

const frames: fc.Arbitrary<MessageFrame> = fc.oneof(
  envelopes.map((envelope) => ({ kind: "message" as const, envelope })),
  fc.record({
    id: text(32, 1),
    name: text(60, 1),
    size: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    sha256: sha,
  }, { noNullPrototype: true }).map((file) => ({ kind: "file_begin" as const, file })),
  fc.uint8Array({ minLength: 1, maxLength: 3_000 }).map((data) => ({
    kind: "file_data" as const,
    data,
  })),
  fc.boolean().map((cancelled) => ({ kind: "file_end" as const, cancelled })),
  fc.tuple(status, code).chain(([s, c]) =>
    fc.oneof(
      fc.record({
        subject: fc.constant("message" as const),
        status: fc.constant(s),
        seq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        id: text(32),
        detail: fc.constant(s === "refused" ? c : ""),
      }, { noNullPrototype: true }).chain((r) =>
        r.detail !== "conflict" ? fc.constant(r) : fc.record({
          size: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
          digest: sha,
        }, { noNullPrototype: true }).map((stored) => ({ ...r, stored }))
      ),
      fc.record({
        subject: fc.constant("file" as const),
        status: fc.constant(s),
        seq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        id: text(32),
        detail: fc.constant(s === "refused" ? c : ""),
        name: text(60),
        size: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        sha256: sha,
      }, { noNullPrototype: true }),
    )
  ).map((receipt) => ({ kind: "receipt" as const, receipt })),
);

Deno.test("every frame round-trips: decode(encode(f)) is f and re-encoding gives the same bytes", () => {
  fc.assert(
    fc.property(frames, (frame) => {
      const bytes = encodeFrame(frame);
      const back = decodeFrame(bytes);
      assert.deepEqual(back, frame);
      assert.deepEqual(encodeFrame(back), bytes);
    }),
    { numRuns: 500 },
  );
});

Deno.test("random, truncated and mutated frame bytes decode to a frame that re-encodes exactly, or throw DecodeError", () => {
  let decoded = 0;
  let refused = 0;
  const inputs = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.tuple(fc.integer({ min: 1, max: 5 }), fc.uint8Array({ maxLength: 80 })).map(([k, b]) => {
      const out = new Uint8Array(5 + b.length);
      out[0] = k;
      new DataView(out.buffer).setUint32(1, b.length);
      out.set(b, 5);
      return out;
    }),
    mutated(frames.map(encodeFrame)),
    // Valid ones too, so that every run decodes some.
    frames.map(encodeFrame),
  );
  fc.assert(
    fc.property(inputs, (bytes) => {
      let frame;
      try {
        frame = decodeFrame(bytes);
      } catch (e) {
        assert.ok(e instanceof DecodeError, `expected DecodeError, got ${e}`);
        refused++;
        return;
      }
      const again = encodeFrame(frame);
      if (again.toHex() !== bytes.toHex()) {
        // The one read that is not canonical, by design (tested above): a
        // well-formed refusal code this version does not know reads as internal.
        assert.equal(frame.kind === "receipt" && frame.receipt.detail, "internal");
        assert.deepEqual(decodeFrame(again), frame);
      }
      decoded++;
    }),
    { numRuns: 2_000 },
  );
  assert.ok(decoded > 0 && refused > 0, `decoded ${decoded}, refused ${refused}`);
});

/** A source that hands out `bytes` in the given chunk sizes, then ends. */
function chunked(bytes: Uint8Array, sizes: number[]): ChunkSource & { reads: number } {
  let o = 0;
  let i = 0;
  const src = {
    reads: 0,
    read(): Promise<Uint8Array | null> {
      src.reads++;
      if (o >= bytes.length) return Promise.resolve(null);
      const n = Math.max(1, Math.min(bytes.length - o, sizes[i++ % sizes.length] ?? 1));
      const chunk = bytes.subarray(o, o + n);
      o += n;
      return Promise.resolve(chunk);
    },
  };
  return src;
}

Deno.test("FrameReader reads the same frames whatever the chunk boundaries", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(frames, { minLength: 1, maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 8 }),
      async (list, sizes) => {
        const parts = list.map(encodeFrame);
        const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let o = 0;
        for (const p of parts) {
          all.set(p, o);
          o += p.length;
        }
        const reader = new FrameReader(MESSAGE_FRAMES, chunked(all, sizes));
        for (const f of list) assert.deepEqual(await nextMessageFrame(reader), f);
        assert.equal(await nextMessageFrame(reader), null);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("FrameReader refuses an over-cap MESSAGE length before it reads or allocates the body", async () => {
  const header = Uint8Array.of(FRAME_MESSAGE, 0xff, 0xff, 0xff, 0xff);
  let reads = 0;
  const source: ChunkSource = {
    read() {
      reads++;
      if (reads > 1) throw new Error("the body was read");
      return Promise.resolve(header);
    },
  };
  const reader = new FrameReader(MESSAGE_FRAMES, source);
  await assert.rejects(
    () => reader.header(),
    (e) => e instanceof DecodeError && e.reason === "too_large",
  );
  assert.equal(reads, 1);
});

Deno.test("FrameReader refuses a stream that ends inside a header or a body with DecodeError", async () => {
  const frame = encodeFrame({ kind: "file_data", data: new Uint8Array(100).fill(7) });
  for (const cut of [1, 4, 5, 6, 104]) {
    const reader = new FrameReader(MESSAGE_FRAMES, chunked(frame.subarray(0, cut), [3]));
    await assert.rejects(
      () => nextMessageFrame(reader),
      (e) => e instanceof DecodeError && e.reason === "truncated",
      `cut at ${cut}`,
    );
  }
  const empty = new FrameReader(MESSAGE_FRAMES, chunked(new Uint8Array(0), [1]));
  assert.equal(await empty.next(), null);
});

Deno.test("a sender's reader (RECEIPT_FRAMES) refuses a MESSAGE header at once, whatever length it claims", () => {
  const reader = new FrameReader(RECEIPT_FRAMES);
  reader.push(encodeFrameHeader(FRAME_MESSAGE, frameCap(FRAME_MESSAGE)));
  reader.push(new Uint8Array(6));
  assert.throws(
    () => reader.take(),
    (e) => e instanceof DecodeError && e.reason === "unknown_kind",
  );
  const receipts = new FrameReader(RECEIPT_FRAMES);
  const receipt = encodeFrame({
    kind: "receipt",
    receipt: { subject: "message", status: "stored", seq: 7, id: "m", detail: "" },
  });
  receipts.push(receipt);
  assert.equal(receipts.take()?.kind, FRAME_RECEIPT);
});
