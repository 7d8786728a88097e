/**
 * Round trips as the delay-based parts of congestion control count them
 * (HyStart++, RFC 9406; the delay brake): a round is the data outstanding
 * when it begins, and ends when the cumulative ACK passes that point; each
 * round keeps its smallest RTT sample, the one least disturbed by noise.
 *
 * @module
 */

/** The round under way and the last one's smallest RTT, from the ACKs. */
export class RttRounds {
  #windowEnd = -1;
  /** Smallest RTT sample of the round under way (ms); Infinity before one. */
  min = Infinity;
  /** RTT samples in the round under way. */
  samples = 0;
  /** Smallest RTT sample of the round before (ms); Infinity when it had none. */
  lastMin = Infinity;

  /**
   * One ACK: `una` is the cumulative ACK after it, `highSeq` the next
   * sequence to send (SND.NXT), `rtt` its sample (ms) or a negative number
   * when it gives none. Returns whether it ended a round (`lastMin` is then
   * that round's; the sample counts in the new one).
   */
  onAck(una: number, highSeq: number, rtt: number): boolean {
    let ended = false;
    if (this.#windowEnd < 0 || una >= this.#windowEnd) {
      ended = this.#windowEnd >= 0;
      if (ended) this.lastMin = this.min;
      this.min = Infinity;
      this.samples = 0;
      this.#windowEnd = highSeq;
    }
    if (rtt >= 0) {
      if (rtt < this.min) this.min = rtt;
      this.samples++;
    }
    return ended;
  }
}
