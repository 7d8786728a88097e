/**
 * A global budget of expensive handshake work (X25519, Ed25519
 * verification) per second, so that no flood of handshakes, whatever its
 * sources, can take more than a fixed share of the CPU.
 *
 * The budget is two token buckets: a reserve that only priority work (live
 * peers' rekeys and reconnects) may spend, and a shared part that everyone
 * may spend, priority work too once its reserve is used up. One source may
 * spend at most its fair share, so a single noisy source cannot starve the
 * others either.
 *
 * Work that may wait (from sources that proved their address) is shaped
 * rather than policed: when the shared part is short it borrows against the
 * next refill, at most `maxWaitMs` of it, and is told how long to wait until
 * that refill has come. Handshakes over the rate are then delayed by
 * milliseconds, in the order they came, instead of dropped and retried
 * seconds later; the long-run rate stays at `perSecond`, and the debt never
 * touches the reserve.
 *
 * @module
 */
import { RateLimiter } from "./rate_limit.ts";

/** Options of {@linkcode WorkBudget}. */
export interface WorkBudgetOptions {
  /** Units refilled per second, reserve included. */
  perSecond: number;
  /** How much of its refill each bucket holds (ms; default one second): the largest burst. */
  burstMs?: number;
  /** Share of the rate (0 to 1) only priority work may spend. */
  reserved: number;
  /** Share of `perSecond` (0 to 1) one source may spend per second. */
  perSource: number;
  /** Longest wait work may be given by borrowing (ms; 0: never borrow). */
  maxWaitMs?: number;
  /** Sources tracked at once, at most. */
  maxSources: number;
  /** Monotonic clock in milliseconds. */
  now: () => number;
}

/** A token bucket of `rate` units per second that holds `size` of them. */
class Bucket {
  tokens: number;
  #rate: number;
  #size: number;
  #at: number;

  constructor(rate: number, size: number, now: number) {
    this.#rate = rate;
    this.#size = size;
    this.tokens = size;
    this.#at = now;
  }

  get rate(): number {
    return this.#rate;
  }

  refill(now: number): void {
    const elapsed = Math.max(0, now - this.#at);
    this.tokens = Math.min(this.#size, this.tokens + (elapsed * this.#rate) / 1000);
    this.#at = Math.max(this.#at, now);
  }
}

/**
 * A budget of work units with a reserve for priority work, a fair share per
 * source, and a bounded wait for work over the rate.
 *
 * @example
 * ```ts
 * import { WorkBudget } from "./work_budget.ts";
 * const budget = new WorkBudget({
 *   perSecond: 100, reserved: 0.25, perSource: 0.5, maxSources: 1024, now: () => performance.now(),
 * });
 * budget.take("198.18.0.1", 3, false); // true
 * ```
 */
export class WorkBudget {
  #shared: Bucket;
  #reserve: Bucket;
  #maxDebt: number;
  #now: () => number;
  #sources: RateLimiter;

  /** Creates a full budget. */
  constructor(options: WorkBudgetOptions) {
    const { perSecond, reserved, perSource, maxWaitMs = 0, burstMs = 1000 } = options;
    if (
      !(perSecond > 0) || !(reserved >= 0 && reserved < 1) ||
      !(perSource > 0 && perSource <= 1) || !(maxWaitMs >= 0) || !(burstMs > 0)
    ) {
      throw new RangeError(
        `Invalid work budget ${perSecond}/s, reserved ${reserved}, per source ${perSource}, ` +
          `wait ${maxWaitMs} ms, burst ${burstMs} ms: expected a positive rate and burst, ` +
          "shares in [0, 1) and a wait of 0 or more",
      );
    }
    const now = options.now();
    const shared = perSecond * (1 - reserved);
    this.#shared = new Bucket(shared, (shared * burstMs) / 1000, now);
    // The reserve always holds a second of its refill: rekeys come in bursts.
    this.#reserve = new Bucket(perSecond * reserved, perSecond * reserved, now);
    this.#maxDebt = (this.#shared.rate * maxWaitMs) / 1000;
    this.#now = options.now;
    const share = perSecond * perSource;
    this.#sources = new RateLimiter({
      burst: share,
      perSecond: share,
      maxKeys: options.maxSources,
      now: options.now,
    });
  }

  /** Sources whose share is tracked (refilling). */
  get sourcesTracked(): number {
    return this.#sources.size;
  }

  /** Forgets sources whose share is full again (see `RateLimiter.forgetFull`); returns how many. */
  forgetFull(): number {
    return this.#sources.forgetFull();
  }

  /**
   * Spends `units` for `source` and returns true, or spends nothing and
   * returns false: when the budget (less the reserve, for other than
   * priority work) is short, or the source has used its share.
   */
  take(source: string, units: number, priority: boolean): boolean {
    return this.reserve(source, units, priority, false) === 0;
  }

  /**
   * Like {@linkcode WorkBudget.take}, but work that is not priority may
   * borrow against the refill when `mayWait`: the answer is then how many
   * milliseconds to wait before doing the work (0: at once), or false.
   */
  reserve(source: string, units: number, priority: boolean, mayWait: boolean): number | false {
    const now = this.#now();
    this.#shared.refill(now);
    this.#reserve.refill(now);
    if (priority) {
      // Priority work is not held to a share: it is what the reserve is for.
      const fromReserve = Math.min(units, this.#reserve.tokens);
      if (fromReserve + Math.max(0, this.#shared.tokens) < units) return false;
      this.#reserve.tokens -= fromReserve;
      this.#shared.tokens -= units - fromReserve;
      return 0;
    }
    const left = this.#shared.tokens - units;
    if (left < (mayWait ? -this.#maxDebt : 0)) return false;
    if (!this.#sources.allow(source, units)) return false;
    this.#shared.tokens = left;
    return left >= 0 ? 0 : (-left * 1000) / this.#shared.rate;
  }
}
