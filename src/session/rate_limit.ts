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

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Per-key token bucket: each key may spend `burst` requests at once, refilled
 * at `perSecond`.
 *
 * Memory is bounded by `maxKeys`. Forgetting a key is the same as giving it a
 * full bucket, so the key forgotten first is the least recently used one: it
 * has been refilling longest and is the most likely to be full already. Under
 * a flood of more than `maxKeys` distinct keys a throttled key can thus be
 * forgotten and allowed its burst again — no more than any one of the
 * flood's fresh keys gets, so a spoofing attacker gains nothing from it.
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
  #perSecond: number;
  #maxKeys: number;
  #now: () => number;
  // Map iteration follows insertion order; re-inserting on every use keeps
  // the least recently used key first.
  #buckets = new Map<string, Bucket>();

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
    this.#perSecond = perSecond;
    this.#maxKeys = maxKeys;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Number of keys currently tracked, never more than `maxKeys`. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Spends `cost` tokens (default 1) of `key` and returns true, or returns false if it has fewer. */
  allow(key: string, cost = 1): boolean {
    const now = this.#now();
    const bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (cost > this.#burst) return false;
      if (this.#buckets.size >= this.#maxKeys) {
        const oldest = this.#buckets.keys().next();
        if (!oldest.done) this.#buckets.delete(oldest.value);
      }
      this.#buckets.set(key, { tokens: this.#burst - cost, at: now });
      return true;
    }
    // A clock that steps back refills nothing rather than draining the bucket.
    const elapsed = Math.max(0, now - bucket.at);
    bucket.tokens = Math.min(this.#burst, bucket.tokens + (elapsed * this.#perSecond) / 1000);
    bucket.at = Math.max(bucket.at, now);
    this.#buckets.delete(key);
    this.#buckets.set(key, bucket);
    if (bucket.tokens < cost) return false;
    bucket.tokens -= cost;
    return true;
  }
}
