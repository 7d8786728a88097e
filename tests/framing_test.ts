import assert from "node:assert/strict";
import { DecodeError } from "../src/bytes.ts";
import {
  type ChunkSource,
  decodeFrameHeader,
  encodeFrameHeader,
  encodeRawFrame,
  type FrameCaps,
  FrameReader,
  splitFrame,
} from "../src/wire/framing.ts";

const CAPS: FrameCaps = {
  label: "demo",
  kinds: {
    1: { name: "PING", min: 0, max: 8 },
    2: { name: "BLOB", min: 1, max: 1000 },
  },
};

/** Hands out `chunks` one read at a time and counts the reads. */
function source(chunks: Uint8Array[]): ChunkSource & { reads: number } {
  const s = {
    reads: 0,
    read: () => {
      s.reads++;
      return Promise.resolve(chunks.shift() ?? null);
    },
  };
  return s;
}

function bytes(n: number, fill = 7): Uint8Array {
  return new Uint8Array(n).fill(fill);
}

Deno.test("a body that lies in one received chunk comes back as a view of it, not a copy", async () => {
  const chunk = encodeRawFrame(CAPS, 2, bytes(100));
  const reader = new FrameReader(CAPS, source([chunk]));
  const frame = await reader.next();
  assert.equal(frame?.body.buffer, chunk.buffer);
  assert.equal(frame?.body.length, 100);
});

Deno.test("a header over its kind's cap is refused before any of its body is read", async () => {
  const head = new Uint8Array([2, 0, 0, 0x03, 0xe9]); // BLOB of 1001 bytes
  const src = source([head, bytes(1001)]);
  const reader = new FrameReader(CAPS, src);
  await assert.rejects(
    reader.header(),
    (e) => e instanceof DecodeError && e.reason === "too_large",
  );
  assert.equal(src.reads, 1);
});

Deno.test("unknown kinds and bodies under their kind's minimum are refused by the header alone", () => {
  assert.throws(
    () => decodeFrameHeader(CAPS, Uint8Array.of(9, 0, 0, 0, 0)),
    (e: unknown) => e instanceof DecodeError && e.reason === "unknown_kind",
  );
  assert.throws(
    () => decodeFrameHeader(CAPS, Uint8Array.of(2, 0, 0, 0, 0)),
    (e: unknown) => e instanceof DecodeError && e.reason === "too_short",
  );
  assert.throws(() => encodeFrameHeader(CAPS, 2, 0), RangeError);
  assert.throws(() => encodeFrameHeader(CAPS, 9, 0), RangeError);
});

Deno.test("push and pull reading yield the same frames however the bytes are cut", async () => {
  const frames = [encodeRawFrame(CAPS, 1, bytes(0)), encodeRawFrame(CAPS, 2, bytes(300, 1))];
  frames.push(encodeRawFrame(CAPS, 1, bytes(8, 2)));
  const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let o = 0;
  for (const f of frames) {
    all.set(f, o);
    o += f.length;
  }
  for (const cut of [1, 2, 5, 7, 64, all.length]) {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < all.length; i += cut) chunks.push(all.slice(i, i + cut));
    const pulled: string[] = [];
    const reader = new FrameReader(CAPS, source([...chunks]));
    for (let f = await reader.next(); f !== null; f = await reader.next()) {
      pulled.push(`${f.kind}:${f.body.toHex()}`);
    }
    const pushed: string[] = [];
    const pusher = new FrameReader(CAPS);
    for (const c of chunks) {
      pusher.push(c);
      for (let f = pusher.take(); f !== null; f = pusher.take()) {
        pushed.push(`${f.kind}:${f.body.toHex()}`);
      }
    }
    assert.equal(pusher.buffered, 0);
    const want = frames.map((f) => {
      const { kind, body } = splitFrame(CAPS, f);
      return `${kind}:${body.toHex()}`;
    });
    assert.deepEqual(pulled, want, `cut ${cut}`);
    assert.deepEqual(pushed, want, `cut ${cut}`);
  }
});

Deno.test("a stream that ends inside a header or a body is refused with DecodeError truncated", async () => {
  const frame = encodeRawFrame(CAPS, 2, bytes(50));
  for (const cut of [3, 20]) {
    const reader = new FrameReader(CAPS, source([frame.slice(0, cut)]));
    await assert.rejects(
      reader.next(),
      (e) => e instanceof DecodeError && e.reason === "truncated",
    );
  }
  assert.equal(await new FrameReader(CAPS, source([])).next(), null);
  assert.throws(
    () => splitFrame(CAPS, frame.slice(0, 20)),
    (e: unknown) => e instanceof DecodeError && e.reason === "truncated",
  );
  assert.throws(
    () => splitFrame(CAPS, Uint8Array.of(...frame, 0)),
    (e: unknown) => e instanceof DecodeError && e.reason === "trailing",
  );
});

Deno.test("bodyParts() yields a body as the views it arrived in and skip() discards one", async () => {
  const body = bytes(30, 3);
  const frame = encodeRawFrame(CAPS, 2, body);
  const reader = new FrameReader(CAPS, source([frame.slice(0, 15), frame.slice(15)]));
  const h = await reader.header();
  assert.deepEqual(h, { kind: 2, length: 30 });
  const parts: number[] = [];
  for await (const p of reader.bodyParts(30)) parts.push(p.length);
  assert.deepEqual(parts, [10, 20]);
  const two = new FrameReader(CAPS, source([frame, encodeRawFrame(CAPS, 1, bytes(2))]));
  const first = await two.header();
  await two.skip(first!.length);
  assert.deepEqual((await two.next())?.kind, 1);
});
