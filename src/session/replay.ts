/**
 * Sliding replay window over per-direction packet counters, in the manner of
 * wireguard-go's `replay` package: a ring of 32-bit words, O(1) per packet,
 * made only once a counter arrives out of order.
 *
 * @module
 */

import { REJECT_AFTER_MESSAGES, REPLAY_WINDOW } from "../constants.ts";

const WORD_BITS = 32;
// One word more than the window needs, so that the word being cleared as the
// window advances never holds a counter that is still inside the window.
const RING_WORDS = REPLAY_WINDOW / WORD_BITS + 1;

/**
 * Remembers which counters of one direction were accepted among the last
 * `REPLAY_WINDOW` (8192), and refuses repeats and counters older than that.
 *
 * Use it in two steps because WebCrypto completes decryptions out of order:
 * call {@linkcode ReplayWindow.check} before decrypting (cheap rejection of
 * replays and stale packets), then {@linkcode ReplayWindow.accept}
 * synchronously once the tag has verified. Two packets with the same counter
 * may both pass `check` while in flight; only the first `accept` returns
 * `true`, and a packet whose `accept` returns `false` must be dropped. Never
 * `accept` a counter whose tag did not verify: that would let forged packets
 * advance the window.
 *
 * @example
 * ```ts
 * import { ReplayWindow } from "./replay.ts";
 * const w = new ReplayWindow();
 * w.check(5) && w.check(5); // true: both in flight
 * w.accept(5); // true: the first verified copy wins
 * w.accept(5); // false: drop the duplicate
 * ```
 */
export class ReplayWindow {
  /**
   * The ring, made at the first gap: until then every counter from 0 to
   * `#next - 1` was accepted and nothing else, so `#next` alone answers
   * (most sessions, and every idle one, only ever see counters in order,
   * and a ring is 1 KB).
   */
  #words: Uint32Array | null = null;
  /** While there is no ring: the counter after the last accepted (0 before any). */
  #next = 0;
  #highest = 0;

  /** Highest counter accepted so far, or 0 before any. */
  get highest(): number {
    return this.#highest;
  }

  /** Bytes the window holds for its bitmap: 0 until a counter arrives out of order. */
  get bitmapBytes(): number {
    return this.#words?.byteLength ?? 0;
  }

  /**
   * Returns true if `counter` is a valid counter (integer, below
   * `REJECT_AFTER_MESSAGES`) not yet accepted and not older than the window.
   */
  check(counter: number): boolean {
    if (!Number.isInteger(counter) || counter < 0 || counter >= REJECT_AFTER_MESSAGES) {
      return false;
    }
    if (this.#words === null) return counter >= this.#next;
    if (counter > this.#highest) return true;
    if (this.#highest - counter >= REPLAY_WINDOW) return false;
    const word = Math.floor(counter / WORD_BITS) % RING_WORDS;
    return (this.#words[word]! & (1 << (counter % WORD_BITS))) === 0;
  }

  /**
   * Checks `counter` again and marks it seen; returns false (and changes
   * nothing) if it was already accepted, is too old, or is invalid.
   */
  accept(counter: number): boolean {
    if (!this.check(counter)) return false;
    if (this.#words === null) {
      if (counter === this.#next) {
        this.#highest = this.#next++;
        return true;
      }
      this.#words = this.#ringOfNext();
    }
    const words = this.#words;
    const block = Math.floor(counter / WORD_BITS);
    if (counter > this.#highest) {
      const last = Math.floor(this.#highest / WORD_BITS);
      const advance = block - last;
      if (advance >= RING_WORDS) {
        words.fill(0);
      } else {
        for (let i = 1; i <= advance; i++) words[(last + i) % RING_WORDS] = 0;
      }
      this.#highest = counter;
    }
    words[block % RING_WORDS]! |= 1 << (counter % WORD_BITS);
    return true;
  }

  /** A ring marking what `#next` stood for: every counter below it that is still in the window. */
  #ringOfNext(): Uint32Array {
    const words = new Uint32Array(RING_WORDS);
    for (let c = Math.max(0, this.#next - REPLAY_WINDOW); c < this.#next; c++) {
      words[Math.floor(c / WORD_BITS) % RING_WORDS]! |= 1 << (c % WORD_BITS);
    }
    return words;
  }
}
