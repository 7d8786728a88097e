import assert from "node:assert/strict";
import fc from "fast-check";
import { MAX_MAILBOX_ITEM } from "../src/services/rendezvous/mailbox.ts";
import { FrameReader } from "../src/wire/framing.ts";
import {
  decodeMailboxBody,
  decodeMailboxFrame,
  encodeMailboxFrame,
  MAILBOX_ANSWERS,
  MAILBOX_DEPOSIT,
  MAILBOX_FRAMES,
  MAILBOX_ITEMS,
  MAILBOX_REQUESTS,
  type MailboxFrame,
  MAX_MAILBOX_SEALED,
  nextMailboxFrame,
  PORT_MAILBOX,
} from "../src/wire/mailbox_frame.ts";
import { assertCanonicalOrRefused, assertRefuses, mutated } from "./_codec_contract.ts";

const hex = (s: string) => Uint8Array.fromHex(s.replaceAll(" ", ""));
const KEY = new Uint8Array(32).fill(0x11);

// Worked example (docs/PROTOCOL.md §16.8): DEPOSIT of the 3-byte item
// "abc" for key 11…11, kept 60 s, 44 bytes:
//   01                 kind DEPOSIT
//   00000027           body length 39
//   1111…11            recipient key (32 bytes)
//   0000ea60           ttl_ms 60000
//   616263             sealed item
const DEPOSIT_HEX = "01 00000027" + " 11".repeat(32) + " 0000ea60 616263";
// ITEMS with one item, id 5, deposited 2026-01-01T00:00:00Z, sealed aabb, no more:
const ITEMS_HEX = "82 00000018 00 01 0000000000000005 0000019b76daa800 00000002 aabb";

function refuses(bytes: Uint8Array, reason: string): void {
  assertRefuses(decodeMailboxFrame, bytes, reason);
}

/** A whole frame of `kind` with `body`, bypassing the encoder's checks. */
function raw(kind: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + body.length);
  out[0] = kind;
  new DataView(out.buffer).setUint32(1, body.length);
  out.set(body, 5);
  return out;
}

Deno.test("PORT_MAILBOX is 447 and the sealed cap is the mailbox store's", () => {
  assert.equal(PORT_MAILBOX, 447);
  assert.equal(MAX_MAILBOX_SEALED, MAX_MAILBOX_ITEM);
});

Deno.test("encodeMailboxFrame() writes the documented DEPOSIT and ITEMS examples", () => {
  const deposit = encodeMailboxFrame({
    kind: "deposit",
    recipient: KEY,
    ttlMs: 60_000,
    sealed: new TextEncoder().encode("abc"),
  });
  assert.equal(deposit.toHex(), hex(DEPOSIT_HEX).toHex());
  const items = encodeMailboxFrame({
    kind: "items",
    more: false,
    items: [{ id: 5, depositedAt: Date.UTC(2026, 0, 1), sealed: hex("aabb") }],
  });
  assert.equal(items.toHex(), hex(ITEMS_HEX).toHex());
  assert.deepEqual(decodeMailboxFrame(hex(ITEMS_HEX)), {
    kind: "items",
    more: false,
    items: [{ id: 5, depositedAt: Date.UTC(2026, 0, 1), sealed: hex("aabb") }],
  });
});

const u53 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const sealed = fc.uint8Array({ minLength: 1, maxLength: 200 });
const frame: fc.Arbitrary<MailboxFrame> = fc.oneof(
  fc.record({
    recipient: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    ttlMs: fc.integer({ min: 0, max: 0xffff_ffff }),
    sealed,
  }).map((f): MailboxFrame => ({ kind: "deposit", ...f })),
  fc.record({ after: u53, max: fc.integer({ min: 1, max: 64 }) })
    .map((f): MailboxFrame => ({ kind: "fetch", ...f })),
  fc.array(u53, { minLength: 1, maxLength: 64 }).map((ids): MailboxFrame => ({ kind: "ack", ids })),
  u53.map((id): MailboxFrame => ({ kind: "deposited", id })),
  fc.record({
    more: fc.boolean(),
    items: fc.array(fc.record({ id: u53, depositedAt: u53, sealed }).map((i) => ({ ...i })), {
      maxLength: 8,
    }),
  }).map((f): MailboxFrame => ({ kind: "items", ...f })),
  fc.integer({ min: 0, max: 64 }).map((count): MailboxFrame => ({ kind: "acked", count })),
  fc.stringMatching(/^[a-z_]{1,32}$/).map((code): MailboxFrame => ({ kind: "refused", code })),
);

Deno.test("every mailbox frame survives an encode/decode round trip", () => {
  fc.assert(
    fc.property(frame, (f) => assert.deepEqual(decodeMailboxFrame(encodeMailboxFrame(f)), f)),
    { numRuns: 500 },
  );
});

Deno.test("decodeMailboxFrame() throws only DecodeError, and what it accepts re-encodes to the same bytes", () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.uint8Array({ maxLength: 80 }), mutated(frame.map(encodeMailboxFrame))),
      (bytes) => {
        assertCanonicalOrRefused(decodeMailboxFrame, encodeMailboxFrame, bytes);
      },
    ),
    { numRuns: 1000 },
  );
});

Deno.test("decodeMailboxFrame() refuses unknown kinds, wrong lengths and trailing bytes", () => {
  refuses(raw(0x04, Uint8Array.of(0)), "unknown_kind");
  refuses(raw(0x80, Uint8Array.of(0)), "unknown_kind");
  refuses(raw(0x02, new Uint8Array(10)), "too_large"); // FETCH is exactly 9
  refuses(raw(0x02, new Uint8Array(8)), "too_short");
  refuses(raw(0x81, new Uint8Array(7)), "too_short");
  refuses(raw(MAILBOX_DEPOSIT, new Uint8Array(36)), "too_short"); // no sealed byte
  refuses(raw(MAILBOX_DEPOSIT, new Uint8Array(36 + MAX_MAILBOX_SEALED + 1)), "too_large");
  refuses(hex(DEPOSIT_HEX).subarray(0, 20), "truncated");
  refuses(Uint8Array.of(...hex(DEPOSIT_HEX), 0), "trailing");
  // An ACK that says 2 ids but carries 3.
  refuses(raw(0x03, Uint8Array.of(2, ...new Uint8Array(24))), "trailing");
  refuses(raw(0x03, Uint8Array.of(3, ...new Uint8Array(16))), "truncated");
  // An ITEMS item whose length runs past the frame.
  refuses(
    raw(MAILBOX_ITEMS, hex("00 01 0000000000000001 0000000000000001 00000003 aabb")),
    "truncated",
  );
  refuses(raw(MAILBOX_ITEMS, hex("00 00 00")), "trailing");
});

Deno.test("decodeMailboxFrame() refuses out-of-range values", () => {
  const big = "0020000000000000"; // 2^53
  refuses(raw(0x02, hex(big + "01")), "out_of_range");
  refuses(raw(0x02, hex("0000000000000000 00")), "out_of_range"); // max 0
  refuses(raw(0x02, hex("0000000000000000 41")), "out_of_range"); // max 65
  refuses(raw(0x03, hex("00 0000000000000001")), "out_of_range"); // count 0
  refuses(raw(0x03, Uint8Array.of(65, ...new Uint8Array(8))), "out_of_range");
  refuses(raw(0x03, hex("01" + big)), "out_of_range");
  refuses(raw(0x81, hex(big)), "out_of_range");
  refuses(raw(MAILBOX_ITEMS, hex("02 00")), "out_of_range"); // more 2
  refuses(raw(MAILBOX_ITEMS, hex("00 41")), "out_of_range"); // 65 items
  refuses(raw(MAILBOX_ITEMS, hex(`00 01 ${big} 0000000000000001 00000001 aa`)), "out_of_range");
  refuses(raw(MAILBOX_ITEMS, hex(`00 01 0000000000000001 ${big} 00000001 aa`)), "out_of_range");
  refuses(
    raw(MAILBOX_ITEMS, hex("00 01 0000000000000001 0000000000000001 00000000")),
    "bad_length",
  );
  refuses(raw(0x83, hex("41")), "out_of_range");
  refuses(raw(0x84, hex("00 61")), "bad_length");
  refuses(raw(0x84, hex("02 61")), "truncated");
  refuses(raw(0x84, hex("01 41")), "bad_code"); // "A"
  refuses(raw(0x84, hex("02 612d")), "bad_code"); // "a-"
});

Deno.test("decodeMailboxFrame() refuses an ITEMS frame over 1 MiB of sealed bytes within its frame cap", () => {
  // 20 items of 52,429 bytes: 4 bytes over 1 MiB, while the frame cap leaves room for 64 headers.
  const size = 52_429;
  const item = new Uint8Array(20 + size);
  new DataView(item.buffer).setUint32(16, size);
  const body = new Uint8Array(2 + 20 * item.length);
  body[1] = 20;
  for (let i = 0; i < 20; i++) body.set(item, 2 + i * item.length);
  assert.ok(body.length <= MAILBOX_FRAMES.kinds[MAILBOX_ITEMS]!.max);
  refuses(raw(MAILBOX_ITEMS, body), "too_large");
  body[1] = 19;
  const nineteen = decodeMailboxFrame(raw(MAILBOX_ITEMS, body.subarray(0, 2 + 19 * item.length)));
  assert.equal(nineteen.kind === "items" && nineteen.items.length, 19, "just under 1 MiB decodes");
});

Deno.test("encodeMailboxFrame() throws RangeError for what the decoder would refuse", () => {
  const bad: MailboxFrame[] = [
    { kind: "deposit", recipient: new Uint8Array(31), ttlMs: 1, sealed: Uint8Array.of(1) },
    { kind: "deposit", recipient: KEY, ttlMs: -1, sealed: Uint8Array.of(1) },
    { kind: "deposit", recipient: KEY, ttlMs: 2 ** 32, sealed: Uint8Array.of(1) },
    { kind: "deposit", recipient: KEY, ttlMs: 1, sealed: new Uint8Array(0) },
    { kind: "deposit", recipient: KEY, ttlMs: 1, sealed: new Uint8Array(MAX_MAILBOX_SEALED + 1) },
    { kind: "fetch", after: 2 ** 53, max: 1 },
    { kind: "fetch", after: 0, max: 0 },
    { kind: "fetch", after: 0, max: 65 },
    { kind: "fetch", after: 1.5, max: 1 },
    { kind: "ack", ids: [] },
    { kind: "ack", ids: new Array(65).fill(1) },
    { kind: "ack", ids: [-1] },
    { kind: "deposited", id: 2 ** 53 },
    {
      kind: "items",
      more: false,
      items: new Array(65).fill({ id: 1, depositedAt: 1, sealed: Uint8Array.of(1) }),
    },
    {
      kind: "items",
      more: true,
      items: new Array(17).fill({
        id: 1,
        depositedAt: 1,
        sealed: new Uint8Array(MAX_MAILBOX_SEALED),
      }),
    },
    { kind: "acked", count: 65 },
    { kind: "refused", code: "" },
    { kind: "refused", code: "Mailbox_full" },
    { kind: "refused", code: "a".repeat(33) },
  ];
  for (const f of bad) {
    assert.throws(() => encodeMailboxFrame(f), RangeError, JSON.stringify(f.kind));
  }
});

Deno.test("a request reader refuses an answer kind, and an answer reader a request kind, at the header", async () => {
  const deposited = encodeMailboxFrame({ kind: "deposited", id: 1 });
  const requests = new FrameReader(MAILBOX_REQUESTS);
  requests.push(deposited);
  assert.throws(
    () => requests.take(),
    (e: Error & { reason?: string }) => e.reason === "unknown_kind",
  );
  const answers = new FrameReader(MAILBOX_ANSWERS);
  answers.push(encodeMailboxFrame({ kind: "fetch", after: 0, max: 1 }));
  assert.throws(
    () => answers.take(),
    (e: Error & { reason?: string }) => e.reason === "unknown_kind",
  );
  // An oversize header is refused from its 5 bytes, before any body.
  const early = new FrameReader(MAILBOX_REQUESTS);
  early.push(Uint8Array.of(MAILBOX_DEPOSIT, 0x7f, 0xff, 0xff, 0xff));
  assert.throws(() => early.take(), (e: Error & { reason?: string }) => e.reason === "too_large");
  const pulled = new FrameReader(MAILBOX_ANSWERS, {
    chunks: [deposited.subarray(0, 3), deposited.subarray(3)],
    read() {
      return Promise.resolve(this.chunks.shift() ?? null);
    },
  } as { chunks: Uint8Array[]; read(): Promise<Uint8Array | null> });
  assert.deepEqual(await nextMailboxFrame(pulled), { kind: "deposited", id: 1 });
  assert.equal(await nextMailboxFrame(pulled), null);
});

Deno.test("decodeMailboxBody() checks the body against its kind's cap", () => {
  assertRefuses((b) => decodeMailboxBody(0x02, b), new Uint8Array(10), "too_large");
  assert.deepEqual(decodeMailboxBody(0x83, Uint8Array.of(3)), { kind: "acked", count: 3 });
});
