/**
 * A per-peer byte budget shared by that peer's connections, one per
 * direction. Every connection may hold up to `reserve` bytes on its own (so
 * that one stalled stream cannot starve the others of all progress); what it
 * holds beyond its reserve is drawn from the shared `total`. The peer's
 * memory in that direction is thus bounded by
 * `total + reserve x connections`.
 *
 * @module
 */

/** Shared byte budget with per-connection reserves and waiters. */
export class Budget {
  /** Shared bytes, beyond the reserves. */
  readonly total: number;
  /** Bytes each holder may use without touching the shared ones. */
  readonly reserve: number;
  #used = 0;
  #held = 0;
  #waiters = new Set<() => void>();
  #waking = false;

  /** A budget of `total` shared bytes and `reserve` bytes per connection. */
  constructor(total: number, reserve: number) {
    this.total = total;
    this.reserve = reserve;
  }

  /** Shared bytes in use. */
  get used(): number {
    return this.#used;
  }

  /** Bytes held by all connections, reserves included. */
  get held(): number {
    return this.#held;
  }

  #shared(held: number): number {
    return held > this.reserve ? held - this.reserve : 0;
  }

  /** How many more bytes a connection now holding `held` may take. */
  room(held: number): number {
    const own = held < this.reserve ? this.reserve - held : 0;
    return own + Math.max(0, this.total - this.#used);
  }

  /** A connection's holding changed from `before` to `after`; wakes waiters when bytes came free. */
  charge(before: number, after: number): void {
    this.#held += after - before;
    const delta = this.#shared(after) - this.#shared(before);
    this.#used += delta;
    if (delta < 0 && this.#waiters.size > 0) this.#wake();
  }

  #wake(): void {
    if (this.#waking) return;
    this.#waking = true;
    try {
      for (const w of [...this.#waiters]) {
        if (this.#used >= this.total) break;
        w();
      }
    } finally {
      this.#waking = false;
    }
  }

  /** Calls `waiter` whenever shared bytes come free, until {@linkcode Budget.unwait}. */
  wait(waiter: () => void): void {
    this.#waiters.add(waiter);
  }

  /** Stops calling `waiter`. */
  unwait(waiter: () => void): void {
    this.#waiters.delete(waiter);
  }
}
