/**
 * Small values the worked examples show in their tables: big-endian numbers
 * as bytes, session indices and times as text, fixed bytes derived from labels.
 *
 * @module
 */

import { utf8 } from "../../src/bytes.ts";
import { sha256 } from "../../src/session/crypto.ts";

/** `v` as 2 big-endian bytes. */
export function u16(v: number): Uint8Array {
  return Uint8Array.of(v >>> 8, v);
}

/** `v` as 4 big-endian bytes. */
export function u32(v: number): Uint8Array {
  return Uint8Array.of(v >>> 24, v >>> 16, v >>> 8, v);
}

/** `v` as 8 big-endian bytes. */
export function u64(v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v));
  return b;
}

/** A 32-bit index or id as `0x` and 8 hex digits. */
export function hexIndex(v: number): string {
  return `0x${v.toString(16).padStart(8, "0")}`;
}

/** A Unix time in ms as an ISO 8601 string. */
export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The first `n` bytes of SHA-256(label): fixed stand-ins for random values. */
export async function labelBytes(label: string, n: number): Promise<Uint8Array> {
  return (await sha256(utf8(label))).slice(0, n);
}
