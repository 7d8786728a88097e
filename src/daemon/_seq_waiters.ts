/**
 * Readers waiting for an entry with a seq above theirs (optionally from one
 * sender): the long-poll behind `inbox --wait` and `received --wait`.
 *
 * @module
 */

interface Waiter {
  after: number;
  fromKey: string | undefined;
  done: () => void;
  fail: (e: unknown) => void;
}

/** Waiters on a seq-numbered store. */
export class SeqWaiters {
  #waiters = new Set<Waiter>();

  /** Resolves when {@linkcode wake} names a later seq (from `fromKey`, if given); rejects on abort. */
  wait(after: number, fromKey: string | undefined, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const onAbort = () => waiter.fail(signal.reason);
    const waiter: Waiter = {
      after,
      fromKey,
      done: () => {
        this.#waiters.delete(waiter);
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      fail: (e) => {
        this.#waiters.delete(waiter);
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    };
    signal.addEventListener("abort", onAbort, { once: true });
    this.#waiters.add(waiter);
    return promise;
  }

  /** Wakes every waiter an entry of `seq` from `fromKey` satisfies. */
  wake(seq: number, fromKey: string): void {
    for (const w of [...this.#waiters]) {
      if (w.after < seq && (w.fromKey === undefined || w.fromKey === fromKey)) w.done();
    }
  }

  /** Rejects every waiter (the store is closing). */
  failAll(e: unknown): void {
    for (const w of [...this.#waiters]) w.fail(e);
  }
}
