/**
 * Bounds-checked byte reading and writing shared by every codec. A decoder
 * built on {@linkcode Reader} throws only {@linkcode DecodeError}.
 *
 * @module
 */

/** Why a decoder refused its input; the only error a decoder throws. */
export class DecodeError extends Error {
  /** Short machine-readable reason, e.g. `"truncated"`. */
  readonly reason: string;
  /** Creates a decode error with a reason code and a sentence-case message. */
  constructor(reason: string, message: string) {
    super(message);
    this.name = "DecodeError";
    this.reason = reason;
  }
}

/** Sequential reader over a byte array that never reads past its end. */
export class Reader {
  #bytes: Uint8Array;
  #view: DataView;
  #offset = 0;

  /** Reads from `bytes` starting at offset 0. */
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.#bytes.length - this.#offset;
  }

  /** Current offset from the start. */
  get offset(): number {
    return this.#offset;
  }

  #need(n: number, what: string): void {
    if (n > this.remaining) {
      throw new DecodeError(
        "truncated",
        `Cannot read ${what}: need ${n} bytes at offset ${this.#offset}, ${this.remaining} left`,
      );
    }
  }

  /** Reads one unsigned byte. */
  u8(what = "u8"): number {
    this.#need(1, what);
    return this.#view.getUint8(this.#offset++);
  }

  /** Reads a big-endian u16. */
  u16(what = "u16"): number {
    this.#need(2, what);
    const v = this.#view.getUint16(this.#offset);
    this.#offset += 2;
    return v;
  }

  /** Reads a big-endian u32. */
  u32(what = "u32"): number {
    this.#need(4, what);
    const v = this.#view.getUint32(this.#offset);
    this.#offset += 4;
    return v;
  }

  /** Reads a big-endian u64 as a bigint. */
  u64(what = "u64"): bigint {
    this.#need(8, what);
    const v = this.#view.getBigUint64(this.#offset);
    this.#offset += 8;
    return v;
  }

  /** Returns a view (not a copy) of the next `n` bytes. */
  bytes(n: number, what = "bytes"): Uint8Array {
    this.#need(n, what);
    const v = this.#bytes.subarray(this.#offset, this.#offset + n);
    this.#offset += n;
    return v;
  }

  /** Returns a view of everything not yet read. */
  rest(): Uint8Array {
    const v = this.#bytes.subarray(this.#offset);
    this.#offset = this.#bytes.length;
    return v;
  }

  /** Throws unless every byte was consumed (strict decoding). */
  end(what = "message"): void {
    if (this.remaining !== 0) {
      throw new DecodeError(
        "trailing",
        `Cannot decode ${what}: ${this.remaining} unexpected trailing bytes`,
      );
    }
  }
}

/** Growable big-endian writer. */
export class Writer {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;

  /** Starts with room for `capacity` bytes; grows as needed. */
  constructor(capacity = 64) {
    this.#buf = new Uint8Array(capacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  /** Appends one byte. */
  u8(v: number): this {
    this.#room(1);
    this.#view.setUint8(this.#len, v);
    this.#len += 1;
    return this;
  }

  /** Appends a big-endian u16. */
  u16(v: number): this {
    this.#room(2);
    this.#view.setUint16(this.#len, v);
    this.#len += 2;
    return this;
  }

  /** Appends a big-endian u32. */
  u32(v: number): this {
    this.#room(4);
    this.#view.setUint32(this.#len, v);
    this.#len += 4;
    return this;
  }

  /** Appends a big-endian u64. */
  u64(v: bigint): this {
    this.#room(8);
    this.#view.setBigUint64(this.#len, v);
    this.#len += 8;
    return this;
  }

  /** Appends raw bytes. */
  bytes(v: Uint8Array): this {
    this.#room(v.length);
    this.#buf.set(v, this.#len);
    this.#len += v.length;
    return this;
  }

  /** Returns the written bytes (a copy-free view of the buffer). */
  finish(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Copies `parts` into one new buffer and returns a view of each, in order:
 * for small arrays kept long, since in Deno each typed array made on its own
 * has its own backing store, costing far more memory than its bytes.
 *
 * @example
 * ```ts
 * import { packBytes } from "./bytes.ts";
 * const [a, b] = packBytes(new Uint8Array([1]), new Uint8Array([2, 3]));
 * a.buffer === b.buffer; // true
 * ```
 */
export function packBytes<T extends Uint8Array[]>(...parts: T): { [K in keyof T]: Uint8Array } {
  const all = concat(...parts);
  let o = 0;
  return parts.map((p) => all.subarray(o, o += p.length)) as { [K in keyof T]: Uint8Array };
}

/**
 * `bytes` as a one-byte string, char i = byte i: a compact key for a `Map`
 * (a 32-byte digest takes 32 characters, not 64 as hex) that, unlike a
 * typed array, lives wholly in V8's heap. For small arrays: every byte is
 * an argument of one call.
 */
export function binaryString(bytes: Uint8Array): string {
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
}

/** The bytes of a string made by {@linkcode binaryString}. */
export function bytesOfBinary(binary: string): Uint8Array {
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Encodes a string as UTF-8. */
export function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/**
 * Cuts `text` to at most `max` bytes of UTF-8 without splitting a character.
 *
 * @example
 * ```ts
 * import { truncateUtf8 } from "./bytes.ts";
 * truncateUtf8("aé", 2); // "a"
 * ```
 */
export function truncateUtf8(text: string, max: number): string {
  const b = new TextEncoder().encode(text);
  if (b.length <= max) return text;
  let n = max;
  // Back up over continuation bytes (10xxxxxx) to the start of the cut character.
  while (n > 0 && (b[n]! & 0xc0) === 0x80) n--;
  return new TextDecoder().decode(b.subarray(0, n));
}

/** Compares two byte arrays in time independent of where they differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Orders byte strings lexicographically (a shorter prefix first): negative, 0 or positive. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}
