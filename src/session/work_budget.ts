/**
 * A global budget of expensive handshake work (X25519, Ed25519
 * verification) per second, so that no flood of handshakes, whatever its
 * sources, can take more than a fixed share of the CPU.
 *
 * Strangers may not spend the part held back for priority work (live
 * peers' rekeys and reconnects), and one source may spend at most its fair
 * share, so a single noisy source cannot starve the others either.
 *
 * Work that may wait (from sources that proved their address) is shaped
 * rather than policed: when the budget is short it borrows against the
 * next refill, at most half the reserve, and is told how long to wait until
 * that refill has come. Handshakes over the rate are then delayed by a few
 * milliseconds instead of dropped and retried seconds later, the long-run
 * rate stays at `perSecond`, and priority work keeps at least half its
 * reserve.
 *
 * @module
 */
import { RateLimiter } from "./rate_limit.ts";

/** Options of {@linkcode WorkBudget}. */
export interface WorkBudgetOptions {
  /** Units refilled per second; also the bucket size (one second of work). */
  perSecond: number;
  /** Share of the bucket (0 to 1) only priority work may spend. */
  reserved: number;
  /** Share of `perSecond` (0 to 1) one source may spend per second. */
  perSource: number;
  /** Sources tracked at once, at most. */
  maxSources: number;
  /** Monotonic clock in milliseconds. */
  now: () => number;
}

/**
 * A token bucket of work units with a reserve for priority work and a fair
 * share per source.
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
  #perSecond: number;
  #floor: number;
  #tokens: number;
  #at: number;
  #now: () => number;
  #sources: RateLimiter;
  #debt: number;

  /** Creates a full budget. */
  constructor(options: WorkBudgetOptions) {
    const { perSecond, reserved, perSource } = options;
    if (
      !(perSecond > 0) || !(reserved >= 0 && reserved < 1) || !(perSource > 0 && perSource <= 1)
    ) {
      throw new RangeError(
        `Invalid work budget ${perSecond}/s, reserved ${reserved}, per source ${perSource}: ` +
          "expected a positive rate and shares in [0, 1)",
      );
    }
    this.#perSecond = perSecond;
    this.#floor = perSecond * reserved;
    this.#debt = this.#floor / 2;
    this.#tokens = perSecond;
    this.#now = options.now;
    this.#at = options.now();
    const share = perSecond * perSource;
    this.#sources = new RateLimiter({
      burst: share,
      perSecond: share,
      maxKeys: options.maxSources,
      now: options.now,
    });
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
    const elapsed = Math.max(0, now - this.#at);
    this.#tokens = Math.min(this.#perSecond, this.#tokens + (elapsed * this.#perSecond) / 1000);
    this.#at = Math.max(this.#at, now);
    const left = this.#tokens - units;
    const floor = priority ? 0 : this.#floor;
    if (left < floor - (mayWait && !priority ? this.#debt : 0)) return false;
    // Priority work is not held to a share: it is what the reserve is for.
    if (!priority && !this.#sources.allow(source, units)) return false;
    this.#tokens = left;
    return left >= floor ? 0 : ((floor - left) * 1000) / this.#perSecond;
  }
}
