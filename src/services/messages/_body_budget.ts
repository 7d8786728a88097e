/**
 * Memory for message bodies on port 1001, charged per peer as the bytes
 * arrive (a header that announces 16 MiB costs nothing until they come).
 * Each peer may hold `perPeer` bytes; its first `reserve` bytes are its
 * own, the rest come from `total`, shared by all peers. A peer at its limit
 * waits alone: its streams stop reading (their windows fill, its writes
 * block) until bytes come free, while every other peer goes on. So memory
 * is at most `total + reserve` per peer with bytes in flight, and no peer's
 * announcements or slow stores can hold up another's.
 *
 * @module
 */

/** Limits of a {@linkcode BodyBudget}. */
export interface BodyBudgetLimits {
  /** Bytes one peer holds at most. */
  perPeer: number;
  /** Bytes each peer may hold without drawing on `total` (one largest message). */
  reserve: number;
  /** Bytes all peers share beyond their reserves. */
  total: number;
}

/** Per-peer byte budget of bodies being received and stored; waits are per peer. */
export class BodyBudget {
  #limits: BodyBudgetLimits;
  #held = new Map<string, number>();
  #all = 0;
  #shared = 0;
  #waiters = new Map<string, Set<() => void>>();

  /** A budget with these limits. */
  constructor(limits: BodyBudgetLimits) {
    this.#limits = limits;
  }

  /** Bytes held by every peer. */
  get used(): number {
    return this.#all;
  }

  /** Bytes `peer` holds. */
  held(peer: string): number {
    return this.#held.get(peer) ?? 0;
  }

  /** Whether `peer` may take more bytes now. */
  open(peer: string): boolean {
    const h = this.held(peer);
    return h < this.#limits.perPeer &&
      (h < this.#limits.reserve || this.#shared < this.#limits.total);
  }

  /** Charges `n` bytes that arrived for `peer` (never refused: the caller reads only while open). */
  charge(peer: string, n: number): void {
    this.#move(peer, n);
  }

  /** Releases `n` bytes of `peer`; wakes the peers that may read again. */
  release(peer: string, n: number): void {
    if (n === 0) return;
    this.#move(peer, -n);
    for (const [p, set] of this.#waiters) {
      if (!this.open(p)) continue;
      this.#waiters.delete(p);
      for (const wake of set) wake();
    }
  }

  /** Resolves once `peer` may take more bytes; `cancel` forgets the wait (the stream is gone). */
  wait(peer: string): { ready: Promise<void>; cancel(): void } {
    if (this.open(peer)) return { ready: Promise.resolve(), cancel: () => {} };
    let wake!: () => void;
    const ready = new Promise<void>((resolve) => wake = resolve);
    let set = this.#waiters.get(peer);
    if (set === undefined) this.#waiters.set(peer, set = new Set());
    set.add(wake);
    return {
      ready,
      cancel: () => {
        const s = this.#waiters.get(peer);
        s?.delete(wake);
        if (s?.size === 0) this.#waiters.delete(peer);
      },
    };
  }

  #move(peer: string, n: number): void {
    const before = this.held(peer);
    const after = before + n;
    const r = this.#limits.reserve;
    this.#shared += Math.max(0, after - r) - Math.max(0, before - r);
    this.#all += n;
    if (after > 0) this.#held.set(peer, after);
    else this.#held.delete(peer);
  }
}
