/**
 * The retransmission timer's estimator, as RFC 6298 computes it: smoothed
 * round-trip time (SRTT), its variation (RTTVAR), a lower and upper bound,
 * and exponential backoff. Karn's rule is the caller's half of the contract:
 * never feed {@linkcode RtoEstimator.sample} the round trip of a segment
 * that was retransmitted (its ACK is ambiguous); a backed-off RTO then stays
 * until a sample from a segment sent once arrives.
 *
 * @module
 */

/** Bounds and clock granularity of the estimator (ms). */
export interface RtoOptions {
  /** RTO before the first sample (RFC 6298 (2.1): 1 s). */
  initialMs: number;
  /** Lower bound (RFC 6298 (2.4) says 1 s; Linux uses 200 ms). */
  minMs: number;
  /** Upper bound, also of backoff (RFC 6298 (2.5): at least 60 s). */
  maxMs: number;
  /** Clock granularity G (RFC 6298 (2.2)). */
  granularityMs: number;
}

const ALPHA = 1 / 8;
const BETA = 1 / 4;
const K = 4;

/** RFC 6298 SRTT/RTTVAR/RTO with backoff. */
export class RtoEstimator {
  #o: RtoOptions;
  #srtt: number | null = null;
  #rttvar = 0;
  #base: number;
  #rto: number;
  #backoffs = 0;

  /** Starts with no sample: RTO = `initialMs`. */
  constructor(options: RtoOptions) {
    this.#o = options;
    this.#base = this.#clamp(options.initialMs);
    this.#rto = this.#base;
  }

  #clamp(v: number): number {
    return Math.min(this.#o.maxMs, Math.max(this.#o.minMs, v));
  }

  /** Smoothed RTT (ms), null before the first sample. */
  get srtt(): number | null {
    return this.#srtt;
  }

  /** RTT variation (ms), 0 before the first sample. */
  get rttvar(): number {
    return this.#rttvar;
  }

  /** Current retransmission timeout (ms), backoff included. */
  get rto(): number {
    return this.#rto;
  }

  /** Times the timer backed off since the last sample. */
  get backoffs(): number {
    return this.#backoffs;
  }

  /**
   * Takes one RTT measurement `r` (ms) of a segment sent exactly once
   * (Karn); clears any backoff.
   */
  sample(r: number): void {
    if (!(r >= 0)) return;
    if (this.#srtt === null) {
      this.#srtt = r;
      this.#rttvar = r / 2;
    } else {
      // (2.3): RTTVAR first, with the old SRTT.
      this.#rttvar = (1 - BETA) * this.#rttvar + BETA * Math.abs(this.#srtt - r);
      this.#srtt = (1 - ALPHA) * this.#srtt + ALPHA * r;
    }
    this.#base = this.#clamp(this.#srtt + Math.max(this.#o.granularityMs, K * this.#rttvar));
    this.#rto = this.#base;
    this.#backoffs = 0;
  }

  /** The timer expired: doubles the RTO, up to the upper bound (RFC 6298 (5.5)). */
  backoff(): void {
    this.#backoffs++;
    this.#rto = Math.min(this.#o.maxMs, this.#rto * 2);
  }
}
