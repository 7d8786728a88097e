/**
 * A cap on work in flight by count and by bytes at once: a datagram waiting
 * for a decryption holds its bytes, and a count alone lets large ones hold
 * far more memory than small ones.
 *
 * @module
 */

/** Items (and their bytes) in flight under a count cap and a byte cap. */
export class InFlightCap {
  /** Items in flight. */
  count = 0;
  /** Their bytes. */
  bytes = 0;
  #maxCount: number;
  #maxBytes: number;

  /** At most `maxCount` items and `maxBytes` bytes at once. */
  constructor(maxCount: number, maxBytes: number) {
    this.#maxCount = maxCount;
    this.#maxBytes = maxBytes;
  }

  /** Whether one more item of `size` bytes stays within both caps. */
  fits(size: number): boolean {
    return this.count < this.#maxCount && this.bytes + size <= this.#maxBytes;
  }

  /** Counts an item of `size` bytes in (after `fits` said yes). */
  take(size: number): void {
    this.count++;
    this.bytes += size;
  }

  /** Counts an item of `size` bytes out. */
  give(size: number): void {
    this.count--;
    this.bytes -= size;
  }
}
