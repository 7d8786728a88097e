/**
 * HyStart++ (RFC 9406): ends the first slow start when the round-trip time
 * rises, before the queue that slow start is filling overflows. A round is
 * the data sent when it starts (it ends when the cumulative ACK passes that
 * point); each keeps its smallest RTT sample. A rise of that minimum over
 * the previous round's by a threshold starts conservative slow start (CSS):
 * cwnd grows a quarter as fast, and after `cssRounds` rounds the caller
 * leaves slow start for congestion avoidance. A minimum back below the CSS
 * baseline means the rise was noise: slow start resumes.
 *
 * @module
 */

import { STREAM_HYSTART } from "../constants.ts";

/** What HyStart++ says about one ACK. */
export type HyStartVerdict = "slow_start" | "css" | "exit";

/** The state of one connection's HyStart++. */
export class HyStart {
  /** Rounds of CSS so far, or -1 outside CSS. */
  #cssRounds = -1;
  #cssBaseline = Infinity;
  #windowEnd = -1;
  #lastRoundMin = Infinity;
  #roundMin = Infinity;
  #samples = 0;

  /** Whether the connection is in conservative slow start. */
  get inCss(): boolean {
    return this.#cssRounds >= 0;
  }

  /** The divisor of slow start's cwnd growth: 1, or `cssGrowthDivisor` in CSS. */
  get growthDivisor(): number {
    return this.inCss ? STREAM_HYSTART.cssGrowthDivisor : 1;
  }

  /**
   * One ACK during slow start: `una` is the cumulative ACK after it,
   * `highSeq` the next sequence to send (SND.NXT), `rtt` its sample (ms) or
   * a negative number when it gives none. Returns whether slow start goes
   * on, goes on conservatively, or ends now (the caller sets ssthresh to cwnd).
   */
  onAck(una: number, highSeq: number, rtt: number): HyStartVerdict {
    const p = STREAM_HYSTART;
    if (this.#windowEnd < 0 || una >= this.#windowEnd) {
      if (this.#windowEnd >= 0) {
        this.#lastRoundMin = this.#roundMin;
        if (this.inCss && ++this.#cssRounds >= p.cssRounds) return "exit";
      }
      this.#roundMin = Infinity;
      this.#samples = 0;
      this.#windowEnd = highSeq;
    }
    if (rtt >= 0) {
      if (rtt < this.#roundMin) this.#roundMin = rtt;
      this.#samples++;
    }
    if (this.#samples < p.rttSamples || this.#roundMin === Infinity) return this.#verdict();
    if (this.inCss) {
      if (this.#roundMin < this.#cssBaseline) {
        this.#cssBaseline = Infinity;
        this.#cssRounds = -1;
      }
    } else if (this.#lastRoundMin !== Infinity) {
      const thresh = Math.max(
        p.minRttThreshMs,
        Math.min(this.#lastRoundMin / p.minRttDivisor, p.maxRttThreshMs),
      );
      if (this.#roundMin >= this.#lastRoundMin + thresh) {
        this.#cssBaseline = this.#roundMin;
        this.#cssRounds = 0;
      }
    }
    return this.#verdict();
  }

  #verdict(): HyStartVerdict {
    return this.inCss ? "css" : "slow_start";
  }
}
