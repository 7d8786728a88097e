/**
 * A delay brake for congestion avoidance. NewReno grows cwnd by a segment
 * each round trip until a queue overflows; where the bottleneck is the
 * receiver itself (a peer whose CPU cannot keep up, its socket buffer the
 * queue), every sawtooth ends in dropped datagrams and retransmissions. The
 * brake withholds that growth while a standing queue shows in the round trip:
 * as TCP Vegas estimates it, `cwnd × (1 − base / current)` bytes, where
 * `current` is the smallest RTT of the last round (one late sample is noise; a
 * whole round of them is a queue) and `base` the smallest of the last
 * `baseRounds` to twice that many rounds (a path that got longer is learnt
 * again). It never shrinks cwnd: a loss still halves it, so a braked flow
 * yields to others as NewReno does, and one on a path with no queue of its
 * own grows as before.
 *
 * It lengthens the sawtooth rather than ending it: a queue that stands for
 * a whole base window becomes part of the base, so cwnd may grow again by
 * the limit every 64 to 128 rounds until a loss drains the queue. Slow
 * start is left to HyStart++ (its overshoot on a path of a millisecond or
 * two still costs a few retransmissions at the start of a transfer).
 *
 * @module
 */

import { STREAM_DELAY_BRAKE } from "../constants.ts";
import { RttRounds } from "./rtt_rounds.ts";

/** One connection's view of its queue, from the RTT samples of its ACKs. */
export class DelayBrake {
  #rounds = new RttRounds();
  /** Smallest RTT of the last round that had a sample (ms). */
  #lastRoundMin = Infinity;
  #roundsEnded = 0;
  /** Smallest RTT of the current epoch of `baseRounds` rounds, and of the one before. */
  #baseNow = Infinity;
  #basePrevious = Infinity;

  /**
   * One ACK: `una` is the cumulative ACK after it, `highSeq` the next
   * sequence to send (SND.NXT), `rtt` its sample (ms) or a negative number
   * when it gives none (rounds as `rtt_rounds.ts` counts them).
   */
  onAck(una: number, highSeq: number, rtt: number): void {
    const ended = this.#rounds.onAck(una, highSeq, rtt);
    // A round without a sample leaves the last one's minimum standing.
    if (ended && this.#rounds.lastMin !== Infinity) {
      this.#lastRoundMin = this.#rounds.lastMin;
      if (++this.#roundsEnded % STREAM_DELAY_BRAKE.baseRounds === 0) {
        this.#basePrevious = this.#baseNow;
        this.#baseNow = Infinity;
      }
    }
    if (rtt >= 0 && rtt < this.#baseNow) this.#baseNow = rtt;
  }

  /** The path's base round trip (ms): Infinity before the first sample. */
  get baseRtt(): number {
    return Math.min(this.#baseNow, this.#basePrevious);
  }

  /** Bytes standing in queues along the path with `cwnd` in flight, as the last full round shows. */
  queued(cwnd: number): number {
    const current = this.#lastRoundMin;
    const base = this.baseRtt;
    if (current === Infinity || base === Infinity || current <= base) return 0;
    return cwnd * (1 - base / current);
  }

  /** Whether congestion avoidance must not grow `cwnd` now (segments of `mss` bytes). */
  holds(cwnd: number, mss: number): boolean {
    return this.queued(cwnd) > STREAM_DELAY_BRAKE.queueSegments * mss;
  }
}
