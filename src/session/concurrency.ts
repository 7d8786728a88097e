/**
 * At most `limit` tasks running at once; the others wait their turn, first
 * come first served. What waits is bounded by the caller (the handshake
 * slots of `admission.ts`), not here.
 *
 * @example
 * ```ts
 * import { ConcurrencyLimit } from "./concurrency.ts";
 * const limit = new ConcurrencyLimit(2);
 * const results = await Promise.all([1, 2, 3].map((n) => limit.run(async () => n * 2)));
 * // results: [2, 4, 6]; the third ran once one of the first two was done
 * ```
 *
 * @module
 */

/** A counting semaphore over async tasks. */
export class ConcurrencyLimit {
  #free: number;
  #waiting: (() => void)[] = [];

  /** Allows `limit` (a positive integer) tasks at once. */
  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RangeError(`Invalid concurrency limit ${limit}: expected a positive integer`);
    }
    this.#free = limit;
  }

  /** Tasks waiting for their turn. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Runs `task` once fewer than `limit` others run; its turn ends when it settles. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await task();
    } finally {
      // The turn passes straight to the next waiter, so a newcomer cannot overtake it.
      const next = this.#waiting.shift();
      if (next === undefined) this.#free++;
      else next();
    }
  }
}
