/**
 * Pacing (as Linux's internal TCP pacing and quic-go's `pacer`): the sender
 * lets segments out at a rate derived from cwnd / srtt instead of a whole
 * window at each ACK, in bursts of about one quantum. A burst the size of a
 * window overflows a short queue (a receiving socket buffer, a home router)
 * that the same bytes spread over a round trip do not.
 *
 * A token bucket: it fills at the rate, holds one quantum of it (two
 * segments at least) so an idle sender resumes with a burst no larger, and
 * a segment goes when the bucket holds its size.
 *
 * @module
 */

/** Rate over cwnd / srtt in slow start, where the window doubles per round trip (Linux's 200%). */
export const PACE_GAIN_SS = 2;
/** Rate over cwnd / srtt otherwise: a little over the window, so ACK clocking still leads (Linux's 120%). */
export const PACE_GAIN_CA = 1.25;
/**
 * The burst, as time at the rate (ms). Timers here fire at millisecond
 * granularity, later when the event loop is busy, and a bucket smaller than
 * the timer's real period caps the rate below the one asked for. Measured
 * on loopback (2 cores): 1 ms and 4 ms gave the same throughput and
 * retransmissions within noise; 4 ms leaves the more room for a late timer.
 */
export const PACE_QUANTUM_MS = 4;
/** Segments a burst may hold whatever the rate (a delayed ACK acknowledges two). */
const MIN_BURST_SEGMENTS = 2;

/** A connection's pacing state: bytes it may send now, refilled as time passes. */
export class Pacer {
  #mss: number;
  #tokens = Infinity;
  #last = -Infinity;

  /** A pacer for segments of at most `mss` bytes; it starts with a full bucket. */
  constructor(mss: number) {
    this.#mss = mss;
  }

  /**
   * The pacing rate (bytes per ms) for a window `cwnd` and a smoothed RTT
   * `srtt` (ms): Infinity, no pacing, before the first RTT sample.
   */
  static rate(cwnd: number, ssthresh: number, srtt: number | null): number {
    if (srtt === null || !(srtt > 0)) return Infinity;
    return (cwnd < ssthresh / 2 ? PACE_GAIN_SS : PACE_GAIN_CA) * cwnd / srtt;
  }

  /**
   * How long (ms) a segment of `len` bytes must wait at `rate` from `now`;
   * 0 when it may go now (then the caller sends it and calls `spend`).
   */
  delay(len: number, rate: number, now: number): number {
    if (rate === Infinity) {
      this.#tokens = Infinity;
      this.#last = now;
      return 0;
    }
    const burst = Math.max(MIN_BURST_SEGMENTS * this.#mss, rate * PACE_QUANTUM_MS);
    if (now > this.#last) {
      this.#tokens = Math.min(burst, this.#tokens + (now - this.#last) * rate);
      this.#last = now;
    } else if (this.#tokens > burst) {
      this.#tokens = burst;
    }
    // Within a byte counts as there: float refills must not leave a wait too small to pass.
    const missing = Math.min(len, burst) - this.#tokens;
    return missing < 1 ? 0 : missing / rate;
  }

  /** A segment of `len` bytes went. */
  spend(len: number): void {
    this.#tokens -= len;
  }
}
