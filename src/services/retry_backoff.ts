/**
 * When to try a silent peer again: exponential backoff with jitter per key,
 * and an end to active retries. Used for trust answers (accept, reject,
 * revoke) that could not be delivered: a peer that left is tried a handful
 * of times over a few minutes, then only when it connects again. Sans-IO,
 * with an injected monotonic clock and random source.
 *
 * @module
 */

/** Options of {@linkcode RetryBackoff}. */
export interface RetryBackoffOptions {
  /** Wait after the first failure (ms); doubles per failure. */
  minMs: number;
  /** Longest wait between tries (ms). */
  maxMs: number;
  /** Active tries stop once this long has passed since the first failure (ms). */
  giveUpMs: number;
  /** Monotonic clock in ms (default `performance.now`). */
  now?: () => number;
  /** Random number in [0, 1) for jitter (default `Math.random`). */
  random?: () => number;
}

interface State {
  /** When the first failure of this streak happened. */
  since: number;
  /** Failures so far in this streak. */
  failures: number;
  /** Not before this time. */
  next: number;
}

/** Backoff per key; a key with no failures is always due. */
export class RetryBackoff {
  #o: RetryBackoffOptions;
  #now: () => number;
  #random: () => number;
  #keys = new Map<string, State>();

  /** Creates a schedule with no failures recorded. */
  constructor(options: RetryBackoffOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => performance.now());
    this.#random = options.random ?? Math.random;
  }

  /** Whether `key` may be tried now (not waiting out a backoff, not given up). */
  due(key: string): boolean {
    const s = this.#keys.get(key);
    return s === undefined || (!this.#gaveUp(s) && this.#now() >= s.next);
  }

  /** Whether active tries to `key` have stopped (until {@linkcode reset}). */
  gaveUp(key: string): boolean {
    const s = this.#keys.get(key);
    return s !== undefined && this.#gaveUp(s);
  }

  /** Records a failed try: the next waits twice as long as the last, plus up to a quarter more. */
  failed(key: string): void {
    const now = this.#now();
    const s = this.#keys.get(key) ?? { since: now, failures: 0, next: now };
    const wait = Math.min(this.#o.maxMs, this.#o.minMs * 2 ** s.failures);
    s.failures++;
    // Jitter keeps peers that failed together from being retried together.
    s.next = now + wait * (1 + this.#random() / 4);
    this.#keys.set(key, s);
  }

  /** Forgets `key`'s failures (it answered, or it connected again). */
  reset(key: string): void {
    this.#keys.delete(key);
  }

  /** Forgets every key not in `keys` (those with nothing left to retry). */
  retain(keys: ReadonlySet<string>): void {
    for (const key of this.#keys.keys()) if (!keys.has(key)) this.#keys.delete(key);
  }

  /** Keys with failures recorded. */
  get size(): number {
    return this.#keys.size;
  }

  #gaveUp(s: State): boolean {
    return s.next - s.since > this.#o.giveUpMs;
  }
}
