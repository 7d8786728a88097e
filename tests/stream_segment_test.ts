import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeSegment,
  encodeSegment,
  MAX_RESET_REASON,
  MAX_SACK_BLOCKS,
  MAX_SEQ,
  SEG_ACK,
  SEG_FIN,
  SEG_PROBE,
  SEG_RST,
  SEG_SYN,
  SEGMENT_HEADER_SIZE,
  type StreamSegment,
} from "../src/wire/stream_segment.ts";
import { mssFor, STREAM_OVERHEAD } from "../src/stream/mss.ts";
import { assertCanonicalOrRefused, assertRefuses } from "./_codec_contract.ts";

// Worked example: an ACK for conn 0x0a0b0c0d that has everything below
// offset 1001, 65536 bytes of window, and SACKs [2329, 3657), 50 bytes:
//   02                  flags: ACK
//   01                  one SACK block
//   0a0b0c0d            conn id
//   0000000000000001    seq 1
//   00000000000003e9    ack 1001
//   00010000            window 65536
//   00000530 00000a60   SACK block: start = ack + 1328, end = ack + 2656
const ACK_HEX = [
  "02",
  "01",
  "0a0b0c0d",
  "0000000000000001",
  "00000000000003e9",
  "00010000",
  "00000530",
  "00000a60",
].join("");

// A SYN opening conn 7 with a 1 MiB window and an MSS of 1328, 30 bytes:
//   01 00 00000007 0000000000000000 0000000000000000 00100000 00000530
const SYN_HEX = "01" + "00" + "00000007" + "00".repeat(8) + "00".repeat(8) + "00100000" +
  "00000530";

const hex = (s: string) => Uint8Array.fromHex(s);

/** Asserts that `decodeSegment` refuses `bytes` with exactly `reason`. */
function refuses(bytes: Uint8Array, reason: string): void {
  assertRefuses(decodeSegment, bytes, reason);
}

/** The decoder contract: a canonical decode or a DecodeError, nothing else. */
function decodesCanonicallyOrRefuses(bytes: Uint8Array): void {
  assertCanonicalOrRefused(decodeSegment, encodeSegment, bytes);
}

Deno.test("encodeSegment() and decodeSegment() agree on the worked ACK example", () => {
  const seg: StreamSegment = {
    flags: SEG_ACK,
    connId: 0x0a0b0c0d,
    seq: 1,
    ack: 1001,
    window: 65536,
    sack: [{ start: 2329, end: 3657 }],
    data: new Uint8Array(0),
  };
  assert.equal(encodeSegment(seg).toHex(), ACK_HEX);
  assert.deepEqual(decodeSegment(hex(ACK_HEX)), seg);
  assert.equal(hex(ACK_HEX).length, SEGMENT_HEADER_SIZE + 8);
});

Deno.test("a SYN carries the MSS as four data bytes and a window without the ACK flag", () => {
  const syn = decodeSegment(hex(SYN_HEX));
  assert.equal(syn.flags, SEG_SYN);
  assert.equal(syn.window, 1024 * 1024);
  assert.equal(new DataView(syn.data.buffer, syn.data.byteOffset).getUint32(0), 1328);
});

Deno.test("decodeSegment() returns the data as a view into the input", () => {
  const bytes = encodeSegment({
    flags: SEG_ACK,
    connId: 1,
    seq: 1,
    ack: 1,
    window: 10,
    sack: [],
    data: new Uint8Array([1, 2, 3]),
  });
  const seg = decodeSegment(bytes);
  assert.equal(seg.data.buffer, bytes.buffer);
  assert.equal(seg.data.byteOffset, bytes.byteOffset + SEGMENT_HEADER_SIZE);
});

Deno.test("decodeSegment() refuses every truncation of the header", () => {
  const bytes = hex(ACK_HEX);
  for (let n = 0; n < SEGMENT_HEADER_SIZE; n++) refuses(bytes.subarray(0, n), "truncated");
  // A SACK block cut short is truncated too.
  refuses(bytes.subarray(0, SEGMENT_HEADER_SIZE + 4), "truncated");
});

Deno.test("decodeSegment() refuses unknown flag bits and forbidden flag combinations", () => {
  const base = hex(ACK_HEX);
  for (const flags of [0x20, 0x40, 0x80, SEG_ACK | 0x20]) {
    const b = base.slice();
    b[0] = flags;
    refuses(b, "bad_flags");
  }
  const mk = (flags: number, data = new Uint8Array(0)) =>
    new Uint8Array([flags, 0, ...new Uint8Array(24), ...data]);
  refuses(mk(SEG_RST | SEG_SYN, new Uint8Array(4)), "bad_flags");
  refuses(mk(SEG_RST | SEG_FIN), "bad_flags");
  refuses(mk(SEG_RST | SEG_PROBE), "bad_flags");
  refuses(mk(SEG_SYN | SEG_FIN, new Uint8Array(4)), "bad_flags");
  refuses(mk(SEG_SYN), "bad_flags"); // no MSS
  refuses(mk(SEG_SYN, new Uint8Array(5)), "bad_flags");
  refuses(mk(SEG_PROBE, new Uint8Array(1)), "bad_flags");
  refuses(mk(SEG_RST, new Uint8Array(MAX_RESET_REASON + 1)), "bad_flags");
  assert.equal(decodeSegment(mk(SEG_RST, new Uint8Array(MAX_RESET_REASON))).flags, SEG_RST);
});

Deno.test("decodeSegment() refuses an ack or SACK blocks without the ACK flag", () => {
  const b = hex(ACK_HEX);
  b[0] = 0;
  refuses(b, "bad_ack");
  const noSack = hex(ACK_HEX).subarray(0, SEGMENT_HEADER_SIZE).slice();
  noSack[0] = 0;
  noSack[1] = 0;
  refuses(noSack, "bad_ack"); // ack 1001 without ACK
});

Deno.test("decodeSegment() refuses more than four SACK blocks and empty or inverted ones", () => {
  const b = hex(ACK_HEX);
  b[1] = MAX_SACK_BLOCKS + 1;
  refuses(b, "bad_sack");
  const empty = hex(ACK_HEX);
  empty.set([0, 0, 5, 0x30], SEGMENT_HEADER_SIZE + 4); // end == start
  refuses(empty, "bad_sack");
  const atAck = hex(ACK_HEX);
  atAck.set([0, 0, 0, 0], SEGMENT_HEADER_SIZE); // start == ack
  refuses(atAck, "bad_sack");
});

Deno.test("decodeSegment() refuses offsets above 2^53 - 1", () => {
  const b = hex(ACK_HEX);
  b.set([0x00, 0x20, 0, 0], 6); // seq high word 0x00200000 = 2^53
  refuses(b, "out_of_range");
  const ok = hex(ACK_HEX);
  ok.set([0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 14); // ack = 2^53 - 1
  refuses(ok, "out_of_range"); // its SACK block now ends above the limit
  assert.throws(
    () =>
      encodeSegment({
        flags: SEG_ACK,
        connId: 1,
        seq: MAX_SEQ,
        ack: 0,
        window: 0,
        sack: [],
        data: new Uint8Array(1),
      }),
    RangeError,
  );
});

Deno.test("encodeSegment() refuses every field the decoder would refuse", () => {
  const good: StreamSegment = {
    flags: SEG_ACK,
    connId: 1,
    seq: 1,
    ack: 1,
    window: 0,
    sack: [],
    data: new Uint8Array(0),
  };
  const bad: Partial<StreamSegment>[] = [
    { flags: 0x40 },
    { connId: -1 },
    { connId: 2 ** 32 },
    { seq: 1.5 },
    { ack: -1 },
    { window: 2 ** 32 },
    { flags: 0, ack: 5 },
    { sack: [{ start: 1, end: 2 }] }, // start == ack
    { sack: [{ start: 5, end: 5 }] },
    { sack: Array.from({ length: 5 }, (_, i) => ({ start: 2 + 2 * i, end: 3 + 2 * i })) },
    { flags: SEG_SYN, seq: 0 }, // no MSS
    { flags: SEG_SYN | SEG_ACK, seq: 3, data: new Uint8Array(4) },
  ];
  for (const change of bad) {
    assert.throws(() => encodeSegment({ ...good, ...change }), RangeError, JSON.stringify(change));
  }
});

Deno.test("mssFor(1400) keeps a full data segment's datagram at exactly 1400 bytes", () => {
  assert.equal(STREAM_OVERHEAD, 13 + 16 + 17 + 26);
  assert.equal(mssFor(1400), 1328);
  const seg = encodeSegment({
    flags: SEG_ACK,
    connId: 1,
    seq: 1,
    ack: 1,
    window: 1,
    sack: [],
    data: new Uint8Array(mssFor(1400)),
  });
  assert.equal(13 + 17 + seg.length + 16, 1400);
  assert.throws(() => mssFor(100), RangeError);
});

// ---- Property tests ----

const seqArb = fc.integer({ min: 0, max: MAX_SEQ - 2 ** 33 });
const validSegment: fc.Arbitrary<StreamSegment> = fc.oneof(
  // data / ACK / FIN / PROBE segments
  fc.record({
    kind: fc.constantFrom("data", "fin", "probe", "rst"),
    hasAck: fc.boolean(),
    connId: fc.integer({ min: 0, max: 0xffff_ffff }),
    seq: seqArb,
    ack: seqArb,
    window: fc.integer({ min: 0, max: 0xffff_ffff }),
    // A block ends at most 2^32 - 1 past the ACK (offset + length).
    sackOffsets: fc.array(
      fc.tuple(fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 1, max: 2 ** 31 - 1 })),
      { maxLength: MAX_SACK_BLOCKS },
    ),
    data: fc.uint8Array({ maxLength: 200 }),
  }).map((r): StreamSegment => {
    let flags = r.hasAck ? SEG_ACK : 0;
    let data = r.data;
    if (r.kind === "fin") flags |= SEG_FIN;
    if (r.kind === "probe") {
      flags |= SEG_PROBE;
      data = new Uint8Array(0);
    }
    if (r.kind === "rst") {
      flags |= SEG_RST;
      data = data.subarray(0, MAX_RESET_REASON);
    }
    const ack = r.hasAck ? r.ack : 0;
    const sack = r.hasAck
      ? r.sackOffsets.map(([a, len]) => ({ start: ack + a, end: ack + a + len }))
      : [];
    return { flags, connId: r.connId, seq: r.seq, ack, window: r.window, sack, data };
  }),
  // SYN and SYN-ACK
  fc.record({
    ack: fc.boolean(),
    connId: fc.integer({ min: 0, max: 0xffff_ffff }),
    window: fc.integer({ min: 0, max: 0xffff_ffff }),
    mss: fc.uint8Array({ minLength: 4, maxLength: 4 }),
  }).map((r): StreamSegment => ({
    flags: SEG_SYN | (r.ack ? SEG_ACK : 0),
    connId: r.connId,
    seq: 0,
    ack: r.ack ? 1 : 0,
    window: r.window,
    sack: [],
    data: r.mss,
  })),
);

Deno.test("decodeSegment() inverts encodeSegment() for every valid segment", () => {
  fc.assert(
    fc.property(validSegment, (seg) => {
      const decoded = decodeSegment(encodeSegment(seg));
      assert.deepEqual(decoded, { ...seg, sack: seg.sack.map((b) => ({ ...b })) });
    }),
    { numRuns: 500 },
  );
});

Deno.test("decodeSegment() on random bytes decodes canonically or throws only DecodeError", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), decodesCanonicallyOrRefuses), {
    numRuns: 2000,
  });
  // Random bytes after a plausible header reach the deeper checks too.
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0x1f }),
      fc.integer({ min: 0, max: 5 }),
      fc.uint8Array({ minLength: 24, maxLength: 90 }),
      (flags, n, rest) => decodesCanonicallyOrRefuses(new Uint8Array([flags, n, ...rest])),
    ),
    { numRuns: 2000 },
  );
});

Deno.test("decodeSegment() on every truncation of a valid segment decodes canonically or throws only DecodeError", () => {
  fc.assert(
    fc.property(validSegment, (seg) => {
      const bytes = encodeSegment(seg);
      for (let n = 0; n < bytes.length; n++) decodesCanonicallyOrRefuses(bytes.subarray(0, n));
    }),
    { numRuns: 200 },
  );
});

Deno.test("decodeSegment() on a valid segment with one byte or bit changed decodes canonically or throws only DecodeError", () => {
  fc.assert(
    fc.property(
      validSegment,
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      fc.boolean(),
      (seg, at, value, flipBit) => {
        const bytes = encodeSegment(seg).slice();
        const i = at % bytes.length;
        bytes[i] = flipBit ? bytes[i]! ^ (1 << (value % 8)) : value;
        decodesCanonicallyOrRefuses(bytes);
      },
    ),
    { numRuns: 2000 },
  );
});
