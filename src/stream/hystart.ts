/**
 * HyStart++ (RFC 9406): ends the first slow start when the round-trip time
 * rises, before the queue that slow start is filling overflows. Rounds and
 * their smallest RTT sample are counted by `rtt_rounds.ts`. A rise of that
 * minimum over the previous round's by a threshold starts conservative slow
 * start (CSS): cwnd grows a quarter as fast, and after `cssRounds` rounds
 * the caller leaves slow start for congestion avoidance. A minimum back
 * below the CSS baseline means the rise was noise: slow start resumes.
 *
 * @module
 */

import { STREAM_HYSTART } from "../constants.ts";
import { RttRounds } from "./rtt_rounds.ts";

/** What HyStart++ says about one ACK. */
export type HyStartVerdict = "slow_start" | "css" | "exit";

/** The state of one connection's HyStart++. */
export class HyStart {
  /** Rounds of CSS so far, or -1 outside CSS. */
  #cssRounds = -1;
  #cssBaseline = Infinity;
  #rounds = new RttRounds();

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
    const round = this.#rounds;
    if (round.onAck(una, highSeq, rtt) && this.inCss && ++this.#cssRounds >= p.cssRounds) {
      return "exit";
    }
    if (round.samples < p.rttSamples || round.min === Infinity) return this.#verdict();
    if (this.inCss) {
      if (round.min < this.#cssBaseline) {
        this.#cssBaseline = Infinity;
        this.#cssRounds = -1;
      }
    } else if (round.lastMin !== Infinity) {
      const thresh = Math.max(
        p.minRttThreshMs,
        Math.min(round.lastMin / p.minRttDivisor, p.maxRttThreshMs),
      );
      if (round.min >= round.lastMin + thresh) {
        this.#cssBaseline = round.min;
        this.#cssRounds = 0;
      }
    }
    return this.#verdict();
  }

  #verdict(): HyStartVerdict {
    return this.inCss ? "css" : "slow_start";
  }
}
