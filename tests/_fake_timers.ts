/**
 * Timers that fire only when a test moves the clock, for components that
 * take a {@linkcode Timers} (the daemon's ticker, webhook retries).
 */
import type { Timers } from "../src/daemon/timers.ts";

/** A fake clock and its timers: nothing fires until the test advances it. */
export class FakeTimers implements Timers {
  /** The clock (ms). */
  now = 0;
  #nextId = 1;
  #timers = new Map<number, { at: number; fn: () => void }>();

  setTimeout(fn: () => void, ms: number): number {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.now + ms, fn });
    return id;
  }

  clearTimeout(id: unknown): void {
    this.#timers.delete(id as number);
  }

  /** Timers armed and not yet fired. */
  get armed(): number {
    return this.#timers.size;
  }

  /**
   * Fires the earliest timer due at `end` or before, moving the clock to its
   * time (never back); false when none is due.
   */
  fireNext(end: number): boolean {
    let first: [number, { at: number; fn: () => void }] | undefined;
    for (const entry of this.#timers) {
      if (entry[1].at <= end && (first === undefined || entry[1].at < first[1].at)) first = entry;
    }
    if (first === undefined) return false;
    this.#timers.delete(first[0]);
    this.now = Math.max(this.now, first[1].at);
    first[1].fn();
    return true;
  }

  /** Moves the clock forward by `ms`, firing what falls due, in order. */
  advance(ms: number): void {
    const end = this.now + ms;
    while (this.fireNext(end));
    this.now = end;
  }

  /** The clock jumps `ms` with nothing fired (a blocked event loop); what fell due fires at the next advance. */
  stall(ms: number): void {
    this.now += ms;
  }
}
