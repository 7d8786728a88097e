/**
 * Length-prefixed frames on a reliable stream, shared by the stream services
 * (messages on port 1001, events on port 1002): `kind u8 | length u32 |
 * body`, big-endian. A service describes its frames with a caps table
 * (kind → name and body bounds) and keeps only its body codecs.
 *
 * A {@linkcode FrameReader} checks each header against the table as soon as
 * its 5 bytes are in, before any of the body is read or allocated, so a peer
 * can make it hold at most one largest frame of its kind (plus the chunk
 * last received). It reads by pull (from a {@linkcode ChunkSource}: a
 * stream's `read()`) or by push (bytes handed to it), returns a body as a
 * view when it lies in one received chunk and copies it once otherwise, and
 * throws {@linkcode DecodeError} for a bad header or a stream that ends
 * inside a frame.
 *
 * @module
 */
import { DecodeError, Writer } from "../bytes.ts";

const EMPTY = new Uint8Array(0);

/** Bytes of a frame header: kind u8 and body length u32. */
export const FRAME_HEADER_SIZE = 5;

/** The bounds of one frame kind's body. */
export interface FrameBounds {
  /** Name in errors and logs (`MESSAGE`, `PUBLISH`, …). */
  name: string;
  /** Smallest body in bytes. */
  min: number;
  /** Largest body in bytes. */
  max: number;
}

/** A service's frames: what its errors call them, and each kind's bounds. */
export interface FrameCaps {
  /** The frames' family in errors (`messages`, `events`). */
  label: string;
  /** Bounds by kind byte; a kind not listed is refused. */
  kinds: Readonly<Record<number, FrameBounds>>;
}

/** A frame's kind and body length, checked against the caps. */
export interface FrameHeader {
  /** Kind byte (a listed kind). */
  kind: number;
  /** Body length in bytes, within the kind's bounds. */
  length: number;
}

/** A frame whose header passed its checks, body not yet decoded. */
export interface RawFrame {
  /** Kind byte (a listed kind). */
  kind: number;
  /** The body: within the kind's bounds; a view when it arrived in one chunk. */
  body: Uint8Array;
}

/** Where a pulling {@linkcode FrameReader} gets bytes: a stream's `read()`. */
export interface ChunkSource {
  /** The next chunk in order, or null at the end of the stream. */
  read(): Promise<Uint8Array | null>;
}

/** Largest body any kind of `caps` allows. */
export function largestBody(caps: FrameCaps): number {
  return Math.max(...Object.values(caps.kinds).map((b) => b.max));
}

/** The bounds of `kind`; throws DecodeError (`unknown_kind`) for a kind not in `caps`. */
export function boundsOf(caps: FrameCaps, kind: number): FrameBounds {
  const bounds = caps.kinds[kind];
  if (bounds === undefined) {
    const hex = kind.toString(16).padStart(2, "0");
    throw new DecodeError("unknown_kind", `Unknown ${caps.label} frame kind 0x${hex}`);
  }
  return bounds;
}

/** Checks a header; throws DecodeError (`unknown_kind`, `too_large`, `too_short`) only. */
export function checkFrameHeader(caps: FrameCaps, kind: number, length: number): FrameHeader {
  const { name, min, max } = boundsOf(caps, kind);
  if (length > max) {
    throw new DecodeError(
      "too_large",
      `${name} frame of ${length} bytes is over its cap of ${max}`,
    );
  }
  if (length < min) {
    throw new DecodeError("too_short", `${name} frame of ${length} bytes is under its ${min}`);
  }
  return { kind, length };
}

/**
 * Encodes a frame header; throws RangeError for a kind not in `caps` or a
 * length outside its bounds (what the reader would refuse).
 *
 * @example
 * ```ts
 * import { encodeFrameHeader } from "./framing.ts";
 * const caps = { label: "demo", kinds: { 1: { name: "PING", min: 0, max: 8 } } };
 * encodeFrameHeader(caps, 1, 8); // Uint8Array [1, 0, 0, 0, 8]
 * ```
 */
export function encodeFrameHeader(caps: FrameCaps, kind: number, length: number): Uint8Array {
  const bounds = caps.kinds[kind];
  if (bounds === undefined) throw new RangeError(`Unknown ${caps.label} frame kind ${kind}`);
  if (!Number.isInteger(length) || length < bounds.min || length > bounds.max) {
    throw new RangeError(
      `${bounds.name} frame body of ${length} bytes; expected ${bounds.min} to ${bounds.max}`,
    );
  }
  return new Writer(FRAME_HEADER_SIZE).u8(kind).u32(length).finish();
}

/** Header and body as one buffer (the body copied once); RangeError as {@linkcode encodeFrameHeader}. */
export function encodeRawFrame(caps: FrameCaps, kind: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_SIZE + body.length);
  out.set(encodeFrameHeader(caps, kind, body.length));
  out.set(body, FRAME_HEADER_SIZE);
  return out;
}

function u32At(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** Decodes a 5-byte header strictly; throws DecodeError only. */
export function decodeFrameHeader(caps: FrameCaps, bytes: Uint8Array): FrameHeader {
  if (bytes.length < FRAME_HEADER_SIZE) {
    throw new DecodeError("truncated", `Frame header of ${bytes.length} bytes; expected 5`);
  }
  if (bytes.length > FRAME_HEADER_SIZE) {
    throw new DecodeError("trailing", `Frame header of ${bytes.length} bytes; expected 5`);
  }
  return checkFrameHeader(caps, bytes[0]!, u32At(bytes, 1));
}

/** Splits exactly one whole frame (no bytes after it) into kind and body view; DecodeError only. */
export function splitFrame(caps: FrameCaps, bytes: Uint8Array): RawFrame {
  if (bytes.length < FRAME_HEADER_SIZE) throw truncated(FRAME_HEADER_SIZE, bytes.length, "header");
  const { kind, length } = checkFrameHeader(caps, bytes[0]!, u32At(bytes, 1));
  const have = bytes.length - FRAME_HEADER_SIZE;
  if (have < length) throw truncated(length, have, "body");
  if (have > length) {
    throw new DecodeError("trailing", `${have - length} bytes after the ${caps.label} frame`);
  }
  return { kind, body: bytes.subarray(FRAME_HEADER_SIZE) };
}

function truncated(length: number, got: number, what: string): DecodeError {
  return new DecodeError(
    "truncated",
    `Stream ended inside a frame ${what}: got ${got} of ${length} bytes`,
  );
}

/**
 * Cuts a byte stream into frames checked against a caps table, by pull or
 * by push.
 *
 * @example
 * ```ts
 * import { FrameReader } from "./framing.ts";
 * const caps = { label: "demo", kinds: { 1: { name: "PING", min: 0, max: 8 } } };
 * const reader = new FrameReader(caps);
 * reader.push(Uint8Array.of(1, 0, 0, 0, 2, 0xaa));
 * reader.take(); // null: one body byte is still missing
 * reader.push(Uint8Array.of(0xbb));
 * reader.take(); // { kind: 1, body: Uint8Array [0xaa, 0xbb] }
 * ```
 */
export class FrameReader {
  #caps: FrameCaps;
  #source: ChunkSource | null;
  #chunks: Uint8Array[] = [];
  #head = 0; // index of the first chunk still held
  #offset = 0; // into the first chunk
  #size = 0;
  #ended = false;
  /** A header taken in push mode whose body is not complete yet. */
  #header: FrameHeader | null = null;

  /** Reads frames of `caps`, pulling from `source` or, without one, from what is pushed. */
  constructor(caps: FrameCaps, source?: ChunkSource) {
    this.#caps = caps;
    this.#source = source ?? null;
  }

  /** Bytes held, not yet returned in a frame (a checked header included). */
  get buffered(): number {
    return this.#size + (this.#header === null ? 0 : FRAME_HEADER_SIZE);
  }

  /** Adds received bytes (kept as views, not copied). */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  /**
   * Push mode: the next whole frame, or null until more bytes arrive.
   * Throws DecodeError for a bad header, before any of its body is held.
   */
  take(): RawFrame | null {
    if (this.#header === null) {
      if (this.#size < FRAME_HEADER_SIZE) return null;
      this.#header = this.#readHeader();
    }
    const { kind, length } = this.#header;
    if (this.#size < length) return null;
    this.#header = null;
    return { kind, body: this.#take(length) };
  }

  /**
   * Pull mode: the next frame's header, or null when the stream ended
   * cleanly between frames. Throws DecodeError for a bad header or an end
   * inside it.
   */
  async header(): Promise<FrameHeader | null> {
    if (!(await this.#fill(1))) return null;
    if (!(await this.#fill(FRAME_HEADER_SIZE))) {
      throw truncated(FRAME_HEADER_SIZE, this.#size, "header");
    }
    return this.#readHeader();
  }

  /** Pull mode: the body of the frame whose header was just read; DecodeError when the stream ends first. */
  async body(length: number): Promise<Uint8Array> {
    if (length === 0) return new Uint8Array(0);
    if (!(await this.#fill(1))) throw truncated(length, 0, "body");
    if (this.#size >= length) return this.#take(length);
    // Copied as it arrives, so a large body is never held twice.
    const out = new Uint8Array(length);
    let o = 0;
    while (o < length) {
      if (!(await this.#fill(1))) throw truncated(length, o, "body");
      const c = this.#chunks[this.#head]!;
      const k = Math.min(length - o, c.length - this.#offset);
      out.set(c.subarray(this.#offset, this.#offset + k), o);
      o += k;
      this.#advance(k);
    }
    return out;
  }

  /**
   * Pull mode: the body of the frame whose header was just read, as views
   * in arrival order (nothing allocated for it); DecodeError when the
   * stream ends first.
   */
  async *bodyParts(length: number): AsyncGenerator<Uint8Array> {
    let left = length;
    while (left > 0) {
      if (!(await this.#fill(1))) throw truncated(length, length - left, "body");
      const first = this.#chunks[this.#head]!;
      const n = Math.min(left, first.length - this.#offset);
      const part = first.subarray(this.#offset, this.#offset + n);
      this.#advance(n);
      left -= n;
      yield part;
    }
  }

  /** Pull mode: discards `length` body bytes; DecodeError when the stream ends first. */
  async skip(length: number): Promise<void> {
    let left = length;
    while (left > 0) {
      if (!(await this.#fill(1))) throw truncated(length, length - left, "body");
      const n = Math.min(left, this.#chunks[this.#head]!.length - this.#offset);
      this.#advance(n);
      left -= n;
    }
  }

  /** Pull mode: the next whole frame, or null at a clean end; DecodeError only. */
  async next(): Promise<RawFrame | null> {
    const h = await this.header();
    if (h === null) return null;
    return { kind: h.kind, body: await this.body(h.length) };
  }

  /** Reads from the source until `n` bytes are held; false if the stream ends first. */
  async #fill(n: number): Promise<boolean> {
    while (this.#size < n) {
      if (this.#ended || this.#source === null) return false;
      const chunk = await this.#source.read();
      if (chunk === null) {
        this.#ended = true;
        return false;
      }
      this.push(chunk);
    }
    return true;
  }

  #readHeader(): FrameHeader {
    const first = this.#chunks[this.#head]!;
    let kind: number;
    let length: number;
    if (first.length - this.#offset >= FRAME_HEADER_SIZE) {
      kind = first[this.#offset]!;
      length = u32At(first, this.#offset + 1);
      this.#advance(FRAME_HEADER_SIZE);
    } else {
      const h = this.#take(FRAME_HEADER_SIZE);
      kind = h[0]!;
      length = u32At(h, 1);
    }
    return checkFrameHeader(this.#caps, kind, length);
  }

  /** The next `n` held bytes: a view when they lie in one chunk, else one copy (n was checked). */
  #take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.#chunks[this.#head]!;
    if (first.length - this.#offset >= n) {
      const view = first.subarray(this.#offset, this.#offset + n);
      this.#advance(n);
      return view;
    }
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const c = this.#chunks[this.#head]!;
      const k = Math.min(n - o, c.length - this.#offset);
      out.set(c.subarray(this.#offset, this.#offset + k), o);
      o += k;
      this.#advance(k);
    }
    return out;
  }

  #advance(n: number): void {
    this.#offset += n;
    this.#size -= n;
    if (this.#offset < this.#chunks[this.#head]!.length) return;
    this.#offset = 0;
    this.#chunks[this.#head++] = EMPTY; // let go of it now, not at the next compaction
    // Compacted now and then rather than shifted each time: a large body
    // arrives in thousands of chunks.
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head >= 64 && this.#head * 2 >= this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}
