/**
 * Times out a frame that stops making progress: armed when a body starts,
 * told of every chunk, it calls `onStall` once nothing moved for `stallMs`.
 * One timer per stream, re-armed only when it fires (not per chunk), so a
 * 16 MiB body costs a few timer calls, not one per segment.
 *
 * @module
 */

/** The clock a {@linkcode StallWatch} runs on; real timers by default. */
export interface StallClock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Calls `fn` after `ms` milliseconds; returns a function that cancels it. */
  after(ms: number, fn: () => void): () => void;
}

/** The real clock: `performance.now` and `setTimeout`. */
export const REAL_CLOCK: StallClock = {
  now: () => performance.now(),
  after: (ms, fn) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

/** Watches one stream's frame in progress for a stall. */
export class StallWatch {
  #stallMs: number;
  #clock: StallClock;
  #onStall: () => void;
  #last = 0;
  #cancel: (() => void) | null = null;

  /** Calls `onStall` when an armed watch sees no progress for `stallMs`. */
  constructor(stallMs: number, clock: StallClock, onStall: () => void) {
    this.#stallMs = stallMs;
    this.#clock = clock;
    this.#onStall = onStall;
  }

  /** Starts watching (a body begins); restarts the count if armed already. */
  arm(): void {
    this.#last = this.#clock.now();
    if (this.#cancel === null) this.#schedule(this.#stallMs);
  }

  /** Bytes moved: the count starts again. */
  progress(): void {
    this.#last = this.#clock.now();
  }

  /** Stops watching (the body is complete, or the stream is gone). */
  disarm(): void {
    this.#cancel?.();
    this.#cancel = null;
  }

  #schedule(ms: number): void {
    this.#cancel = this.#clock.after(ms, () => {
      this.#cancel = null;
      const idle = this.#clock.now() - this.#last;
      if (idle >= this.#stallMs) this.#onStall();
      else this.#schedule(this.#stallMs - idle);
    });
  }
}
