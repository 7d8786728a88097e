/**
 * Token buckets keyed by string (source endpoint, peer key), with a hard cap
 * on how many keys are tracked so that memory stays bounded when an attacker
 * floods from spoofed sources.
 *
 * @module
 */

/** Options of {@linkcode RateLimiter}. */
export interface RateLimiterOptions {
  /** Bucket size: requests allowed at once from a new or idle key (at least 1). */
  burst: number;
  /** Tokens refilled per second (positive). */
  perSecond: number;
  /** Most keys tracked at once (at least 1); beyond it the least recently used is forgotten. */
  maxKeys: number;
  /** Monotonic clock in milliseconds; defaults to `performance.now`. */
  now?: () => number;
}

/** Keys whose bucket is full again that adding a key forgets, at most: more than the one it adds. */
export const FORGET_PER_CALL = 2;
/** Keys whose bucket is full again that one {@linkcode RateLimiter.forgetFull} forgets, at most (a few ms of work). */
export const FORGET_PER_SWEEP = 4096;

/**
 * Per-key token bucket: each key may spend `burst` requests at once, refilled
 * at `perSecond`.
 *
 * A key's whole state is one number, the time its bucket is full again
 * (the generic cell rate algorithm's form of the token bucket): at `now` it
 * holds `burst - max(0, full - now) / interval` tokens, `interval` being
 * the time one token takes to refill. One number a key, rather than an
 * object of two, is about 56 bytes of heap less a key (146 -> 90 measured
 * over 200,000 keys): a rendezvous tracks up to 230,000 keys in its limiters.
 *
 * Forgetting a key is the same as giving it a full bucket. So each call
 * that adds a key also forgets up to {@linkcode FORGET_PER_CALL} of the
 * least recently used keys whose bucket is full again, and the owner's
 * timer calls {@linkcode RateLimiter.forgetFull} for the rest: a limiter
 * tracks about the keys used in the last `burst / perSecond` seconds, not
 * every key it ever met (a rendezvous meets one per node). Both walk from
 * the least recently used key and stop at the first bucket still
 * refilling, which holds the keys behind it until it is full.
 *
 * Memory is bounded by `maxKeys`. When the cap is reached the key forgotten
 * is the least recently used one: it has been refilling longest and is the
 * most likely to be full already. Under a flood of more than `maxKeys`
 * distinct keys a throttled key can thus be forgotten and allowed its burst
 * again — no more than any one of the flood's fresh keys gets, so a
 * spoofing attacker gains nothing from it.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "./rate_limit.ts";
 * const limiter = new RateLimiter({ burst: 2, perSecond: 1, maxKeys: 1024 });
 * limiter.allow("198.18.0.1:9000"); // true
 * limiter.allow("198.18.0.1:9000"); // true
 * limiter.allow("198.18.0.1:9000"); // false until a token refills
 * ```
 */
export class RateLimiter {
  #burst: number;
  /** Milliseconds one token takes to refill. */
  #interval: number;
  #maxKeys: number;
  #now: () => number;
  /** The latest time read: a clock that steps back reads as standing still. */
  #latest = -Infinity;
  // When each key's bucket is full again. Map iteration follows insertion
  // order; re-inserting on every use keeps the least recently used key first.
  #full = new Map<string, number>();

  /** Creates a limiter; throws `RangeError` for a non-positive burst, rate or key cap. */
  constructor(options: RateLimiterOptions) {
    const { burst, perSecond, maxKeys } = options;
    if (!Number.isFinite(burst) || burst < 1) {
      throw new RangeError(`Invalid burst ${burst}: expected a finite number of at least 1`);
    }
    if (!Number.isFinite(perSecond) || perSecond <= 0) {
      throw new RangeError(`Invalid perSecond ${perSecond}: expected a finite positive number`);
    }
    if (!Number.isInteger(maxKeys) || maxKeys < 1) {
      throw new RangeError(`Invalid maxKeys ${maxKeys}: expected an integer of at least 1`);
    }
    this.#burst = burst;
    this.#interval = 1000 / perSecond;
    this.#maxKeys = maxKeys;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Number of keys currently tracked, never more than `maxKeys`. */
  get size(): number {
    return this.#full.size;
  }

  /** Spends `cost` tokens (default 1) of `key` and returns true, or returns false if it has fewer. */
  allow(key: string, cost = 1): boolean {
    // A clock that steps back refills nothing rather than draining the bucket.
    const now = this.#latest = Math.max(this.#latest, this.#now());
    const full = this.#full.get(key);
    if (full === undefined) {
      if (cost > this.#burst) return false;
      this.#forgetFull(now, FORGET_PER_CALL);
      if (this.#full.size >= this.#maxKeys) {
        const oldest = this.#full.keys().next();
        if (!oldest.done) this.#full.delete(oldest.value);
      }
      this.#full.set(key, now + cost * this.#interval);
      return true;
    }
    const from = Math.max(full, now);
    this.#full.delete(key);
    // Fewer than `cost` tokens: the bucket is more than `burst - cost` tokens from full.
    // (The margin absorbs rounding in `interval`, a few ulps of a millisecond.)
    if (from - now > (this.#burst - cost) * this.#interval + 1e-6) {
      this.#full.set(key, full);
      return false;
    }
    this.#full.set(key, from + cost * this.#interval);
    return true;
  }

  /**
   * Forgets the least recently used keys whose bucket is full again, from
   * the front, until one is not or `max` are gone; returns how many went.
   * For an owner to call on a timer: keys are otherwise forgotten only as
   * new ones come, so the memory a burst of keys took (a flood from
   * spoofed sources) would stay while none do.
   */
  forgetFull(max: number = FORGET_PER_SWEEP): number {
    return this.#forgetFull(this.#latest = Math.max(this.#latest, this.#now()), max);
  }

  #forgetFull(now: number, max: number): number {
    let forgotten = 0;
    for (const [key, full] of this.#full) {
      if (full > now || forgotten === max) break;
      this.#full.delete(key);
      forgotten++;
    }
    return forgotten;
  }
}
