/**
 * Field checks the encoders of signed payloads share (handshake payloads,
 * presence records): each throws `RangeError` naming the field.
 *
 * @module
 */

/** Throws unless `v` is exactly `size` bytes. */
export function checkSize(v: Uint8Array, field: string, size: number): void {
  if (v.length !== size) {
    throw new RangeError(`Invalid ${field} of ${v.length} bytes: expected exactly ${size} bytes`);
  }
}

/** Throws unless `v` is an integer from 0 to 2^53 - 1 (a time in ms, a serial). */
export function checkTime(v: number, field: string): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`Invalid ${field} ${v}: expected an integer from 0 to 2^53 - 1`);
  }
}
