/**
 * The decoder contract every codec test checks (DESIGN.md, Tests): a decoder
 * either returns a value whose encoding is exactly the input, or throws its
 * typed error with a machine-readable reason, never anything else.
 *
 * ```ts
 * assertRefuses(decodeSegment, Uint8Array.of(1), "truncated");
 * assertCanonicalOrRefused(decodeSegment, encodeSegment, randomBytes);
 * ```
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { DecodeError } from "../src/bytes.ts";

/** An error class whose instances carry a machine-readable `reason` (DecodeError and its kin). */
export type ReasonedError<R extends string = string> = abstract new (
  ...args: never[]
) => Error & { readonly reason: R };

/** Which typed error a decoder refuses with; DecodeError unless given. */
export interface RefusalOptions<R extends string = string> {
  /** The decoder's error class. */
  error?: ReasonedError<R>;
}

/** Checks one refusal: the decoder's own error class and exactly `reason`. */
function refusalCheck(reason: string, error: ReasonedError): (e: unknown) => true {
  return (e) => {
    assert.ok(e instanceof error, `expected ${error.name} "${reason}", got ${e}`);
    assert.equal(e.reason, reason, e.message);
    return true;
  };
}

/** Asserts that `decode(bytes)` throws the decoder's typed error with exactly `reason`. */
export function assertRefuses<R extends string>(
  decode: (bytes: Uint8Array) => unknown,
  bytes: Uint8Array,
  reason: R,
  options: RefusalOptions<R> = {},
): void {
  const error: ReasonedError = options.error ?? DecodeError;
  assert.throws(() => decode(bytes), refusalCheck(reason, error));
}

/** Asserts that `decode(bytes)` rejects with the decoder's typed error with exactly `reason`. */
export async function assertRefusesAsync<R extends string>(
  decode: (bytes: Uint8Array) => Promise<unknown>,
  bytes: Uint8Array,
  reason: R,
  options: RefusalOptions<R> = {},
): Promise<void> {
  const error: ReasonedError = options.error ?? DecodeError;
  await assert.rejects(decode(bytes), refusalCheck(reason, error));
}

/**
 * Asserts the contract on any input: `decode(bytes)` either returns a value
 * that `encode` turns back into exactly `bytes` (true), or throws the
 * decoder's typed error (false); any other throw fails the test.
 */
export function assertCanonicalOrRefused<T>(
  decode: (bytes: Uint8Array) => T,
  encode: (value: T) => Uint8Array,
  bytes: Uint8Array,
  options: RefusalOptions = {},
): boolean {
  const error = options.error ?? DecodeError;
  let value: T;
  try {
    value = decode(bytes);
  } catch (e) {
    assert.ok(e instanceof error, `expected ${error.name}, got ${e}`);
    return false;
  }
  assert.equal(encode(value).toHex(), bytes.toHex());
  return true;
}

/** {@linkcode assertCanonicalOrRefused} for a decoder that returns a promise. */
export async function assertCanonicalOrRefusedAsync<T>(
  decode: (bytes: Uint8Array) => Promise<T>,
  encode: (value: T) => Uint8Array,
  bytes: Uint8Array,
  options: RefusalOptions = {},
): Promise<boolean> {
  const error = options.error ?? DecodeError;
  let value: T;
  try {
    value = await decode(bytes);
  } catch (e) {
    assert.ok(e instanceof error, `expected ${error.name}, got ${e}`);
    return false;
  }
  assert.equal(encode(value).toHex(), bytes.toHex());
  return true;
}

/** Mutations of valid bytes: a few bytes replaced, then maybe cut or extended. */
export function mutated(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.tuple(
    valid,
    fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 4 }),
    fc.option(fc.nat(), { nil: undefined }),
    fc.uint8Array({ maxLength: 3 }),
  ).map(([bytes, edits, cut, extra]) => {
    const b = Uint8Array.from(bytes);
    for (const [at, v] of edits) if (b.length > 0) b[at % b.length] = v;
    const kept = cut === undefined ? b : b.subarray(0, cut % (b.length + 1));
    return Uint8Array.of(...kept, ...extra);
  });
}
